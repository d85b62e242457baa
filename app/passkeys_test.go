package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"fiberauth/app/account"
	"fiberauth/app/passkey/passkeytest"
)

// Passkeys are on in these tests: the relying party is localhost, and the
// pages are at pkOrigin (the software authenticator writes it in its
// client data, as a browser on that page would).
const pkOrigin = "http://localhost:8000"

var passkeyEnv = []string{"WEBAUTHN_RP_ID", "localhost", "WEBAUTHN_ORIGINS", pkOrigin}

// pkBrowser is a browser with a software authenticator: it keeps cookies
// (the session, the ceremony's) and sends the page's CSRF token with the
// JSON calls, as static/js/passkeys.js does.
type pkBrowser struct {
	*browser
	auth *passkeytest.Authenticator
	csrf string
}

func (ts *testServer) pkBrowser(a *passkeytest.Authenticator) *pkBrowser {
	if a == nil {
		a = passkeytest.New(pkOrigin)
	}
	return &pkBrowser{browser: ts.browser(), auth: a}
}

var metaCSRF = regexp.MustCompile(`<meta name="csrf-token" content="([^"]+)">`)

// page loads a page and keeps its CSRF token.
func (b *pkBrowser) page(path string) response {
	b.ts.t.Helper()
	res := b.get(path)
	if m := metaCSRF.FindStringSubmatch(res.Body); m != nil {
		b.csrf = m[1]
	}
	return res
}

// call sends a JSON request as the page script does.
func (b *pkBrowser) call(method, path, body string) response {
	b.ts.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-CSRF-Token", b.csrf)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	return b.send(req)
}

// options begins a ceremony and returns its options.
func (b *pkBrowser) options(path, body string) []byte {
	b.ts.t.Helper()
	res := b.call("POST", path, body)
	wantStatus(b.ts.t, res, http.StatusOK)
	if b.cookies[ceremonyCookie] == "" {
		b.ts.t.Fatalf("POST %s set no ceremony cookie", path)
	}
	return []byte(res.Body)
}

// answer wraps a credential for an endpoint that takes one.
func answer(cred []byte, extra ...string) string {
	m := map[string]any{"credential": json.RawMessage(cred)}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// register makes an account with a password through the register page;
// the browser is signed in.
func (b *pkBrowser) register(name string) {
	b.ts.t.Helper()
	res := b.submit("/register", "/register", url.Values{"username": {name}, "email": {name + "@example.com"}, "password": {pw}})
	if res.StatusCode != http.StatusSeeOther {
		b.ts.t.Fatalf("register %s: %d %s", name, res.StatusCode, res.Body)
	}
	b.page("/profile")
}

// addPasskey adds a passkey from the profile and returns its id and the
// authenticator's credential.
func (b *pkBrowser) addPasskey(name string) (string, *passkeytest.Credential) {
	b.ts.t.Helper()
	options := b.options("/users/me/passkeys/options", "")
	cred, c, err := b.auth.Create(options)
	if err != nil {
		b.ts.t.Fatal(err)
	}
	res := b.call("POST", "/users/me/passkeys", answer(cred, "name", name))
	wantStatus(b.ts.t, res, http.StatusCreated)
	id, _ := res.json(b.ts.t)["id"].(string)
	return id, c
}

// signIn signs in with a passkey and no name; it returns the answer of
// POST /passkeys/login.
func (b *pkBrowser) signIn(next string, tamper ...passkeytest.Tamper) response {
	b.ts.t.Helper()
	b.page("/login")
	options := b.options("/passkeys/login/options", "")
	cred, err := b.auth.Get(options, tamper...)
	if err != nil {
		b.ts.t.Fatal(err)
	}
	return b.call("POST", "/passkeys/login", answer(cred, "next", next))
}

// signUp makes an account with a passkey only; the browser is signed in.
func (b *pkBrowser) signUp(name string) response {
	b.ts.t.Helper()
	b.page("/register")
	options := b.options("/register/passkey/options", `{"username":"`+name+`","email":"`+name+`@example.com"}`)
	cred, _, err := b.auth.Create(options)
	if err != nil {
		b.ts.t.Fatal(err)
	}
	res := b.call("POST", "/register/passkey", answer(cred))
	if res.StatusCode == http.StatusCreated {
		b.page("/profile")
	}
	return res
}

// me is GET /users/me with the browser's cookie.
func (b *pkBrowser) me() response {
	b.ts.t.Helper()
	return b.get("/users/me")
}

func passkeyServer(t *testing.T, env ...string) *testServer {
	t.Helper()
	return newTestServer(t, append(append([]string{"LOGIN_FAILURES_PER_IP", "1000000"}, passkeyEnv...), env...)...)
}

// TestPasskeyLifecycle: a passkey added from the profile, listed (cookie
// and bearer), renamed, used to sign in without a name (complete even with
// two-factor on), and removed, on both engines.
func TestPasskeyLifecycle(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := passkeyServer(t, env...)
		b := ts.pkBrowser(nil)
		b.register("alice")
		if !strings.Contains(b.page("/profile").Body, `data-passkey="add"`) {
			t.Fatal("the profile has no Add a passkey button")
		}
		options := b.options("/users/me/passkeys/options", "")
		var o struct {
			PublicKey struct {
				User      map[string]string `json:"user"`
				RP        map[string]string `json:"rp"`
				Selection map[string]any    `json:"authenticatorSelection"`
			} `json:"publicKey"`
		}
		json.Unmarshal(options, &o)
		u, _ := ts.store.UserByUsernameKey(context.Background(), "alice")
		if handle := o.PublicKey.User["id"]; handle == "" || strings.Contains(handle, "YWxpY2") || len(u.WebAuthnID) != 32 ||
			o.PublicKey.RP["id"] != "localhost" || o.PublicKey.Selection["residentKey"] != "required" {
			t.Errorf("creation options: %s (handle %x)", options, u.WebAuthnID)
		}
		cred, _, err := b.auth.Create(options)
		if err != nil {
			t.Fatal(err)
		}
		res := b.call("POST", "/users/me/passkeys", answer(cred, "name", "Laptop"))
		wantStatus(t, res, http.StatusCreated)
		created := res.json(t)
		if len(created) != 3 || created["name"] != "Laptop" || created["id"] == "" || created["created_at"] == "" {
			t.Errorf("201 body %s, want {id, name, created_at}", res.Body)
		}
		id := created["id"].(string)

		tok := ts.token("alice", pw)
		res = ts.get("/users/me/passkeys", bearer(tok)...)
		wantStatus(t, res, http.StatusOK)
		var list []map[string]any
		json.Unmarshal([]byte(res.Body), &list)
		if len(list) != 1 || list[0]["name"] != "Laptop" || list[0]["last_used_at"] != nil || list[0]["id"] != id {
			t.Fatalf("list: %s", res.Body)
		}
		res = b.call("PATCH", "/users/me/passkeys/"+id, `{"name":"  Work laptop "}`)
		wantStatus(t, res, http.StatusOK)
		if res.json(t)["name"] != "Work laptop" {
			t.Errorf("renamed: %s", res.Body)
		}
		wantStatus(t, b.call("PATCH", "/users/me/passkeys/"+id, `{"name":""}`), http.StatusUnprocessableEntity)
		wantStatus(t, b.call("PATCH", "/users/me/passkeys/nope", `{"name":"x"}`), http.StatusNotFound)

		// Two-factor on: a passkey with verification is still a complete
		// sign-in.
		secret, _ := ts.enrolled(t, tok)
		other := ts.pkBrowser(b.auth)
		res = other.signIn("/profile/password")
		wantStatus(t, res, http.StatusOK)
		if res.json(t)["redirect"] != "/profile/password" {
			t.Errorf("redirect %s, want the next asked for", res.Body)
		}
		wantStatus(t, other.me(), http.StatusOK)
		if res := other.signIn("//evil.example/"); res.json(t)["redirect"] != "/profile" {
			t.Errorf("next //evil.example/: %s", res.Body)
		}
		access := other.cookies[sessionCookie]
		if c := mustClaims(t, ts, access); strings.Join(c.AMR, " ") != "hwk user" {
			t.Errorf("token amr %v, want [hwk user]", c.AMR)
		}
		if !strings.Contains(other.page("/profile").Body, "with a passkey") {
			t.Error("the sessions list does not say with a passkey")
		}
		ts.s.acct.FlushEvents()
		events := ts.get("/users/me/events", bearer(tok)...).Body
		for _, want := range []string{"Passkey added: Laptop", "Signed in with a passkey"} {
			if !strings.Contains(events, want) {
				t.Errorf("events lack %q: %s", want, events)
			}
		}
		json.Unmarshal([]byte(ts.get("/users/me/passkeys", bearer(tok)...).Body), &list)
		if list[0]["last_used_at"] == nil {
			t.Error("last_used_at not set by a sign-in")
		}

		// Removal asks for the password and, with two-factor on, a code.
		// (Turning two-factor on ended b's session: the bearer of tok
		// goes on.)
		wantDetail(t, ts.send("DELETE", "/users/me/passkeys/"+id, `{"password":"wrong"}`, bearer(tok)...), http.StatusForbidden, account.MsgIncorrectPassword)
		wantDetail(t, ts.send("DELETE", "/users/me/passkeys/"+id, `{"password":"`+pw+`"}`, bearer(tok)...), http.StatusForbidden, account.MsgOTPRequired)
		code := totpAt(t, secret, time.Now().Add(30*time.Second))
		wantStatus(t, ts.send("DELETE", "/users/me/passkeys/"+id, `{"password":"`+pw+`","code":"`+code+`"}`, bearer(tok)...), http.StatusNoContent)
		if other.me().StatusCode != http.StatusUnauthorized {
			t.Error("the session signed in with the removed passkey lives on")
		}
		wantStatus(t, ts.get("/users/me", bearer(tok)...), http.StatusOK)
		ts.s.acct.FlushEvents()
		if !strings.Contains(ts.get("/users/me/events", bearer(tok)...).Body, "Passkey removed: Work laptop") {
			t.Error("no Passkey removed event")
		}
		// The removed passkey signs in no more.
		wantDetail(t, ts.pkBrowser(b.auth).signIn(""), http.StatusUnauthorized, account.MsgPasskeyRefused)
	})
}

// TestPasskeySignInRefusals: each way a sign-in answer can be wrong is
// refused with the same answer (whether or not the passkey exists), and
// counted; what the challenge guards (once, five minutes, this browser)
// is refused before anything is checked.
func TestPasskeySignInRefusals(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := passkeyServer(t, append([]string{"LOGIN_FAILURES_PER_ACCOUNT", "1000"}, env...)...)
		b := ts.pkBrowser(nil)
		b.register("bob")
		b.addPasskey("Phone")
		refused := func(t *testing.T, res response) {
			t.Helper()
			wantStatus(t, res, http.StatusUnauthorized)
			if res.Body != `{"detail":"Passkey not accepted"}` {
				t.Errorf("body %s", res.Body)
			}
		}
		ok := func(t *testing.T, res response) {
			t.Helper()
			wantStatus(t, res, http.StatusOK)
		}
		ok(t, ts.pkBrowser(b.auth).signIn(""))
		for _, tt := range []struct {
			name   string
			tamper passkeytest.Tamper
		}{
			{"another origin", passkeytest.Tamper{Origin: "http://localhost:9999"}},
			{"a look-alike site", passkeytest.Tamper{Origin: "https://localhost.evil.example"}},
			{"another relying party", passkeytest.Tamper{RPID: "evil.example"}},
			{"no user verification", passkeytest.Tamper{NoUV: true}},
			{"a bad signature", passkeytest.Tamper{BadSignature: true}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				refused(t, ts.pkBrowser(b.auth).signIn("", tt.tamper))
			})
		}
		t.Run("a passkey no account has", func(t *testing.T) {
			stranger := passkeytest.New(pkOrigin)
			// A credential made for this site but never registered.
			sb := ts.pkBrowser(stranger)
			sb.page("/register")
			opts := sb.options("/register/passkey/options", `{"username":"ghost","email":"ghost@example.com"}`)
			if _, _, err := stranger.Create(opts); err != nil {
				t.Fatal(err)
			}
			refused(t, ts.pkBrowser(stranger).signIn(""))
		})
		t.Run("a counter that goes back", func(t *testing.T) {
			list, _ := ts.store.Passkeys(context.Background(), ts.userID("bob"))
			stored := list[0].SignCount
			if stored == 0 {
				t.Fatal("the counter was not stored")
			}
			back := stored - 1
			refused(t, ts.pkBrowser(b.auth).signIn("", passkeytest.Tamper{Counter: &back}))
			same := stored
			refused(t, ts.pkBrowser(b.auth).signIn("", passkeytest.Tamper{Counter: &same}))
			ts.s.acct.FlushEvents()
			if !strings.Contains(b.get("/users/me/events").Body, "its signature counter went back") {
				t.Error("the counter going back is not recorded")
			}
			// An authenticator that counts and then answers right is
			// accepted again.
			ok(t, ts.pkBrowser(b.auth).signIn(""))
		})
		t.Run("a replayed challenge", func(t *testing.T) {
			r := ts.pkBrowser(b.auth)
			r.page("/login")
			cred, err := r.auth.Get(r.options("/passkeys/login/options", ""))
			if err != nil {
				t.Fatal(err)
			}
			spent := r.cookies[ceremonyCookie]
			ok(t, r.call("POST", "/passkeys/login", answer(cred)))
			// The same answer again, with the same cookie: the ceremony is
			// spent.
			r.cookies[ceremonyCookie] = spent
			wantDetail(t, r.call("POST", "/passkeys/login", answer(cred)), http.StatusBadRequest, account.MsgCeremonyGone)
			// Or with a fresh ceremony: the answer is for another challenge.
			r.options("/passkeys/login/options", "")
			refused(t, r.call("POST", "/passkeys/login", answer(cred)))
		})
		t.Run("an expired challenge", func(t *testing.T) {
			r := ts.pkBrowser(b.auth)
			r.page("/login")
			opts := r.options("/passkeys/login/options", "")
			cred, _ := r.auth.Get(opts)
			ts.clockAt(time.Now().Add(account.CeremonyLifetime + time.Second))
			defer func() { ts.s.acct.Now = time.Now }()
			wantDetail(t, r.call("POST", "/passkeys/login", answer(cred)), http.StatusBadRequest, account.MsgCeremonyGone)
		})
		t.Run("a challenge from another browser", func(t *testing.T) {
			victim, thief := ts.pkBrowser(b.auth), ts.pkBrowser(b.auth)
			victim.page("/login")
			cred, _ := b.auth.Get(victim.options("/passkeys/login/options", ""))
			// Without a ceremony of its own: nothing to finish.
			thief.page("/login")
			wantDetail(t, thief.call("POST", "/passkeys/login", answer(cred)), http.StatusBadRequest, account.MsgCeremonyGone)
			// With one of its own: the answer is for another challenge.
			thief.options("/passkeys/login/options", "")
			refused(t, thief.call("POST", "/passkeys/login", answer(cred)))
			// A forged cookie naming the victim's ceremony is not taken,
			// nor one with the signature of the thief's own.
			id, _, _ := strings.Cut(victim.cookies[ceremonyCookie], ".")
			thief.options("/passkeys/login/options", "")
			_, own, _ := strings.Cut(thief.cookies[ceremonyCookie], ".")
			for _, forged := range []string{id + ".forged", id + "." + own, id} {
				thief.cookies[ceremonyCookie] = forged
				wantDetail(t, thief.call("POST", "/passkeys/login", answer(cred)), http.StatusBadRequest, account.MsgCeremonyGone)
			}
			ok(t, victim.call("POST", "/passkeys/login", answer(cred)))
		})
		t.Run("malformed", func(t *testing.T) {
			r := ts.pkBrowser(b.auth)
			r.page("/login")
			r.options("/passkeys/login/options", "")
			wantStatus(t, r.call("POST", "/passkeys/login", `{"credential":"x"}`), http.StatusUnprocessableEntity)
			wantStatus(t, r.call("POST", "/passkeys/login", `{}`), http.StatusUnprocessableEntity)
			refused(t, r.call("POST", "/passkeys/login", `{"credential":{"id":"AAAA","type":"public-key","response":{}}}`))
		})
	})
}

// TestPasskeyAnswersCount: refused passkey answers count toward the
// sign-in limits like wrong passwords, for a passkey's account and for a
// passkey no account has alike, and a right answer is refused once the
// limit is reached; the answers are the same either way.
func TestPasskeyAnswersCount(t *testing.T) {
	ts := passkeyServer(t, "LOGIN_FAILURES_PER_ACCOUNT", "3")
	b := ts.pkBrowser(nil)
	b.register("carol")
	b.addPasskey("Phone")
	stranger := passkeytest.New(pkOrigin)
	sb := ts.pkBrowser(stranger)
	sb.page("/register")
	stranger.Create(sb.options("/register/passkey/options", `{"username":"nobody","email":"nobody@example.com"}`))
	var bodies []string
	for _, a := range []*passkeytest.Authenticator{b.auth, stranger} {
		for i := 0; i < 3; i++ {
			res := ts.pkBrowser(a).signIn("", passkeytest.Tamper{BadSignature: true})
			wantStatus(t, res, http.StatusUnauthorized)
			bodies = append(bodies, res.Status+res.Body)
		}
		res := ts.pkBrowser(a).signIn("")
		wantStatus(t, res, http.StatusTooManyRequests)
		bodies = append(bodies, res.Status+strings.Split(res.Body, "Try again")[0])
	}
	for i := range bodies[:4] {
		if bodies[i] != bodies[i+4] {
			t.Errorf("answer %d differs for a passkey with and without an account: %q against %q", i, bodies[i], bodies[i+4])
		}
	}
	// A password for the account is refused too: one limit.
	res := ts.postForm("/token", url.Values{"username": {"carol"}, "password": {pw}})
	wantStatus(t, res, http.StatusTooManyRequests)
}

// TestPasskeyOnlyAccount: an account made with a passkey and no password:
// signed in at once, no password matches it (at a wrong password's cost),
// sensitive actions are confirmed with a passkey, the last passkey stays,
// and a password can be set (on the profile, or by a reset by mail).
func TestPasskeyOnlyAccount(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := passkeyServer(t, env...)
		b := ts.pkBrowser(nil)
		res := b.signUp("dora")
		wantStatus(t, res, http.StatusCreated)
		if body := res.json(t); body["redirect"] != "/profile?done=welcome" || body["message"] != "user created" {
			t.Errorf("201 body %s", res.Body)
		}
		wantStatus(t, b.me(), http.StatusOK)
		u, _ := ts.store.UserByUsernameKey(context.Background(), "dora")
		if !u.Passwordless || u.PasswordHash != "" {
			t.Fatalf("account %+v has a password", u)
		}
		// Its passkey's user handle is random, never the name or address.
		if len(u.WebAuthnID) != 32 || strings.Contains(string(u.WebAuthnID), "dora") {
			t.Fatalf("user handle %q of an account made with a passkey", u.WebAuthnID)
		}
		wantStatus(t, b.signUpAgain("dora"), http.StatusConflict)

		// No password matches, and trying costs a bcrypt comparison, as a
		// wrong password for another account does.
		before := ts.s.hasher.Verifications()
		for _, try := range []string{"", " ", "x", pw} {
			res := ts.postForm("/token", url.Values{"username": {"dora"}, "password": {try}})
			if res.StatusCode != http.StatusUnauthorized && !(try == "" && res.StatusCode == http.StatusBadRequest) {
				t.Errorf("password %q: %d %s", try, res.StatusCode, res.Body)
			}
		}
		if n := ts.s.hasher.Verifications() - before; n != 3 {
			t.Errorf("%d bcrypt comparisons for 3 passwords, want 3", n)
		}
		ts.s.acct.ClearLimits(context.Background(), u.ID)

		list := b.passkeys()
		only := list[0]["id"].(string)
		// The last way to sign in stays.
		wantDetail(t, b.call("DELETE", "/users/me/passkeys/"+only, `{}`), http.StatusConflict, account.MsgLastWay)
		if !strings.Contains(b.page("/profile/passkeys/"+only+"/remove").Body, `id="last-way"`) {
			t.Error("the remove page does not say the last passkey stays")
		}
		// A second passkey, then the first one can go, confirmed with a
		// passkey (with verification).
		second := passkeytest.New(pkOrigin)
		b2 := &pkBrowser{browser: b.browser, auth: second, csrf: b.csrf}
		b2.addPasskey("Tablet")
		wantStatus(t, b.call("DELETE", "/users/me/passkeys/"+only, `{}`), http.StatusUnprocessableEntity)
		wantStatus(t, b.call("DELETE", "/users/me/passkeys/"+only, `{"passkey":`+b.confirm(nil)+`}`), http.StatusNoContent)
		b.auth = second
		list = b.passkeys()
		if len(list) != 1 {
			t.Fatalf("%d passkeys left", len(list))
		}
		wantDetail(t, b.call("DELETE", "/users/me/passkeys/"+list[0]["id"].(string), `{"passkey":`+b.confirm(nil)+`}`), http.StatusConflict, account.MsgLastWay)
		// A confirmation without verification is refused.
		wantStatus(t, b.call("POST", "/users/me/email", `{"new_email":"dora@new.example.com","passkey":`+b.confirm(&passkeytest.Tamper{NoUV: true})+`}`),
			http.StatusForbidden)
		// Two-factor guards a password: there is none.
		wantStatus(t, b.call("POST", "/users/me/mfa/totp", ``), http.StatusConflict)

		// Setting a password: confirmed with a passkey.
		wantStatus(t, b.call("POST", "/users/me/password", `{"new_password":"a first passphrase","passkey":`+b.confirm(nil)+`}`), http.StatusNoContent)
		ts.token("dora", "a first passphrase")
		if u, _ := ts.store.UserByUsernameKey(context.Background(), "dora"); u.Passwordless {
			t.Error("still without a password")
		}
		// Now the passkey may go, with the password.
		wantStatus(t, b.call("DELETE", "/users/me/passkeys/"+list[0]["id"].(string), `{"password":"a first passphrase"}`), http.StatusNoContent)
	})
}

// signUpAgain begins an account with a name that may be taken.
func (b *pkBrowser) signUpAgain(name string) response {
	b.ts.t.Helper()
	return b.call("POST", "/register/passkey/options", `{"username":"`+name+`","email":"other-`+name+`@example.com"}`)
}

// passkeys lists the browser's account's passkeys.
func (b *pkBrowser) passkeys() []map[string]any {
	b.ts.t.Helper()
	res := b.get("/users/me/passkeys")
	wantStatus(b.ts.t, res, http.StatusOK)
	var list []map[string]any
	json.Unmarshal([]byte(res.Body), &list)
	return list
}

// confirm answers a confirmation with the browser's authenticator and
// returns the answer's JSON.
func (b *pkBrowser) confirm(tamper *passkeytest.Tamper) string {
	b.ts.t.Helper()
	options := b.options("/users/me/passkeys/confirm/options", "")
	var t []passkeytest.Tamper
	if tamper != nil {
		t = append(t, *tamper)
	}
	cred, err := b.auth.Get(options, t...)
	if err != nil {
		b.ts.t.Fatal(err)
	}
	return string(cred)
}

// TestPasskeyResetSetsPassword: an account without a password sets one
// with a reset by mail.
func TestPasskeyResetSetsPassword(t *testing.T) {
	ts, sink := newMailServer(t, passkeyEnv...)
	b := ts.pkBrowser(nil)
	wantStatus(t, b.signUp("erin"), http.StatusCreated)
	wantStatus(t, ts.postJSON("/password/forgot", `{"login":"erin"}`), http.StatusAccepted)
	code := ts.mailTo(t, sink, "erin@example.com").Code()
	wantStatus(t, ts.postJSON("/password/reset", `{"login":"erin","code":"`+code+`","new_password":"a reset passphrase"}`), http.StatusNoContent)
	ts.token("erin", "a reset passphrase")
}

// TestPasskeySecondStep: with a password and two-factor on, the login
// page's second step takes a passkey beside the code.
func TestPasskeySecondStep(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := passkeyServer(t, env...)
		b := ts.pkBrowser(nil)
		b.register("fay")
		b.addPasskey("Key")
		ts.enrolled(t, ts.token("fay", pw))

		s := ts.pkBrowser(b.auth)
		res := s.login("fay", pw)
		if !strings.Contains(res.Body, `data-passkey="second"`) || !strings.Contains(res.Body, "Use a passkey") {
			t.Fatalf("second step without Use a passkey: %d", res.StatusCode)
		}
		s.page("/login/mfa")
		options := s.options("/login/mfa/passkey/options", "")
		if !strings.Contains(string(options), `"allowCredentials":[{`) {
			t.Errorf("second-step options name no passkey: %s", options)
		}
		cred, _ := s.auth.Get(options, passkeytest.Tamper{NoUV: true})
		res = s.call("POST", "/login/mfa/passkey", answer(cred, "next", "/profile/email"))
		wantStatus(t, res, http.StatusOK)
		if res.json(t)["redirect"] != "/profile/email" {
			t.Errorf("redirect %s", res.Body)
		}
		if c := mustClaims(t, ts, s.cookies[sessionCookie]); strings.Join(c.AMR, " ") != "pwd hwk" {
			t.Errorf("amr %v, want [pwd hwk] (presence only)", c.AMR)
		}
		if s.cookies[mfaCookie] != "" {
			t.Error("the pending step outlived the sign-in")
		}
		// A wrong answer keeps the step; without a pending step there is
		// nothing to finish.
		s2 := ts.pkBrowser(b.auth)
		s2.login("fay", pw)
		s2.page("/login/mfa")
		cred, _ = s2.auth.Get(s2.options("/login/mfa/passkey/options", ""), passkeytest.Tamper{Origin: "https://evil.example"})
		wantStatus(t, s2.call("POST", "/login/mfa/passkey", answer(cred)), http.StatusUnauthorized)
		cred, _ = s2.auth.Get(s2.options("/login/mfa/passkey/options", ""))
		res = s2.call("POST", "/login/mfa/passkey", answer(cred))
		wantStatus(t, res, http.StatusOK)
		if c := mustClaims(t, ts, s2.cookies[sessionCookie]); strings.Join(c.AMR, " ") != "pwd hwk user" {
			t.Errorf("amr %v, want [pwd hwk user]", c.AMR)
		}
		wantStatus(t, ts.pkBrowser(b.auth).call("POST", "/login/mfa/passkey/options", ""), http.StatusUnauthorized)
		// A pending step voided by a change (the table of what ends what:
		// signing out everywhere else ends pending second steps) takes no
		// passkey either.
		s3 := ts.pkBrowser(b.auth)
		s3.login("fay", pw)
		cred, _ = s3.auth.Get(s3.options("/login/mfa/passkey/options", ""))
		s.page("/profile")
		wantStatus(t, s.call("DELETE", "/users/me/sessions", ""), http.StatusNoContent)
		wantStatus(t, s3.call("POST", "/login/mfa/passkey", answer(cred)), http.StatusUnauthorized)
		if s3.cookies[sessionCookie] != "" {
			t.Error("signed in with a voided second step")
		}
		// A pending step is used once: a copy of it, its passkey answer
		// ready, signs in no one after the step was finished.
		s4 := ts.pkBrowser(b.auth)
		s4.login("fay", pw)
		s5 := ts.pkBrowser(b.auth)
		s5.cookies[mfaCookie] = s4.cookies[mfaCookie]
		// (s4's answer is made first: the copy's counter is then ahead.)
		cred, _ = s4.auth.Get(s4.options("/login/mfa/passkey/options", ""))
		copied, _ := s5.auth.Get(s5.options("/login/mfa/passkey/options", ""))
		wantStatus(t, s4.call("POST", "/login/mfa/passkey", answer(cred)), http.StatusOK)
		if res := s5.call("POST", "/login/mfa/passkey", answer(copied)); res.StatusCode == http.StatusOK || s5.cookies[sessionCookie] != "" {
			t.Errorf("a copy of a used second step signed in: %d", res.StatusCode)
		}
	})
}

// TestPasskeyAcrossInstances: a ceremony begun on one instance is finished
// on another (its state is in the database), for each kind.
func TestPasskeyAcrossInstances(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		one := passkeyServer(t, env...)
		two := one.instance(t)
		b := one.pkBrowser(nil)
		b.register("gus")
		options := b.options("/users/me/passkeys/options", "")
		cred, _, _ := b.auth.Create(options)
		b.ts = two
		wantStatus(t, b.call("POST", "/users/me/passkeys", answer(cred)), http.StatusCreated)
		s := one.pkBrowser(b.auth)
		s.page("/login")
		cred, _ = s.auth.Get(s.options("/passkeys/login/options", ""))
		s.ts = two
		wantStatus(t, s.call("POST", "/passkeys/login", answer(cred)), http.StatusOK)
		wantStatus(t, s.me(), http.StatusOK)
		n := one.pkBrowser(nil)
		n.page("/register")
		cred, _, _ = n.auth.Create(n.options("/register/passkey/options", `{"username":"hal","email":"hal@example.com"}`))
		n.ts = two
		wantStatus(t, n.call("POST", "/register/passkey", answer(cred)), http.StatusCreated)
	})
}

// TestPasskeyLimit: at most MaxPasskeys an account; one passkey twice is
// refused.
func TestPasskeyLimit(t *testing.T) {
	ts := passkeyServer(t)
	b := ts.pkBrowser(nil)
	b.register("ivy")
	for i := 0; i < account.MaxPasskeys; i++ {
		b.auth = passkeytest.New(pkOrigin)
		b.addPasskey(fmt.Sprintf("Key %d", i))
	}
	wantDetail(t, b.call("POST", "/users/me/passkeys/options", ""), http.StatusConflict, account.MsgTooManyPasskeys)
	if !strings.Contains(b.page("/profile").Body, "You have 10 passkeys") {
		t.Error("the profile still offers Add a passkey")
	}
	// The same authenticator again: its browser refuses (excluded), and
	// an answer made anyway is refused by the service.
	c := ts.pkBrowser(nil)
	c.register("jim")
	options := c.options("/users/me/passkeys/options", "")
	cred, _, _ := c.auth.Create(options)
	wantStatus(t, c.call("POST", "/users/me/passkeys", answer(cred)), http.StatusCreated)
	if _, _, err := c.auth.Create(c.options("/users/me/passkeys/options", "")); err != passkeytest.ErrInvalidState {
		t.Errorf("the authenticator was not asked to exclude its passkey: %v", err)
	}
	// The first answer again, to a new ceremony: for another challenge.
	c.options("/users/me/passkeys/options", "")
	wantStatus(t, c.call("POST", "/users/me/passkeys", answer(cred)), http.StatusUnprocessableEntity)
}

// TestPasskeyAdmin: an admin sees an account's passkeys and removes one,
// recorded on the account and in the audit list; the account's sessions
// end.
func TestPasskeyAdmin(t *testing.T) {
	ts := passkeyServer(t)
	ts.makeAdmin("root")
	admin := bearer(ts.token("root", pw))
	b := ts.pkBrowser(nil)
	b.register("kim")
	id, _ := b.addPasskey("Phone")
	uid := fmt.Sprint(ts.userID("kim"))
	res := ts.get("/admin/api/users/"+uid, admin...)
	if !strings.Contains(res.Body, `"passkeys":[{"id":"`+id+`","name":"Phone"`) {
		t.Errorf("admin view: %s", res.Body)
	}
	wantStatus(t, ts.send("DELETE", "/admin/api/users/"+uid+"/passkeys/"+id, "", admin...), http.StatusNoContent)
	wantStatus(t, b.me(), http.StatusUnauthorized)
	wantStatus(t, ts.send("DELETE", "/admin/api/users/"+uid+"/passkeys/"+id, "", admin...), http.StatusNotFound)
	audit := ts.get("/admin/api/audit", admin...).Body
	if !strings.Contains(audit, `"action":"remove_passkey"`) || !strings.Contains(audit, `"detail":"Phone"`) {
		t.Errorf("audit: %s", audit)
	}
	ts.s.acct.FlushEvents()
	if !strings.Contains(ts.get("/admin/api/users/"+uid, admin...).Body, "Passkey removed by admin root: Phone") {
		t.Error("the removal is not on the account's activity")
	}
	// Never the last way to sign in.
	d := ts.pkBrowser(nil)
	wantStatus(t, d.signUp("lou"), http.StatusCreated)
	only := d.passkeys()[0]["id"].(string)
	wantDetail(t, ts.send("DELETE", "/admin/api/users/"+fmt.Sprint(ts.userID("lou"))+"/passkeys/"+only, "", admin...), http.StatusConflict, account.MsgLastWay)
}

// TestPasskeysOff: with PUBLIC_URL naming an address that is not this
// machine's, passkeys are off: the pages offer none and the endpoints say
// so.
func TestPasskeysOff(t *testing.T) {
	ts := newTestServer(t, "PUBLIC_URL", "http://192.0.2.7:8000")
	if ts.s.acct.PasskeysOn() {
		t.Fatal("passkeys are on for an address")
	}
	login := ts.get("/login").Body
	if strings.Contains(login, "passkey") || strings.Contains(login, "webauthn") {
		t.Error("the login page offers passkeys")
	}
	wantDetail(t, ts.postJSON("/passkeys/login/options", ``), http.StatusNotFound, account.MsgPasskeysOff)
}

// TestPasskeyUnverifiedAddress: with verified addresses required, a
// passkey sign-in is refused like a password one until the address is
// verified (the one sign-in decision, admit).
func TestPasskeyUnverifiedAddress(t *testing.T) {
	ts := passkeyServer(t, "REQUIRE_VERIFIED_EMAIL", "true")
	b := ts.pkBrowser(nil)
	res := b.signUp("max")
	wantStatus(t, res, http.StatusCreated)
	if !strings.HasPrefix(res.json(t)["redirect"].(string), "/email/verify") || b.cookies[sessionCookie] != "" {
		t.Fatalf("signed in before verifying: %s", res.Body)
	}
	wantDetail(t, ts.pkBrowser(b.auth).signIn(""), http.StatusForbidden, account.MsgNotVerified)
}

// TestPasskeyAddedIsMailed: a passkey added to an account is mailed to its
// owner (whoever holds a session could add one, and it outlives a
// password reset); the answer may be the credential itself as toJSON
// gives it, with the name beside its fields.
func TestPasskeyAddedIsMailed(t *testing.T) {
	ts, sink := newMailServer(t, passkeyEnv...)
	b := ts.pkBrowser(nil)
	b.register("gina")
	b.page("/profile")
	options := b.options("/users/me/passkeys/options", "")
	cred, _, err := b.auth.Create(options)
	if err != nil {
		t.Fatal(err)
	}
	var bare map[string]any
	if err := json.Unmarshal(cred, &bare); err != nil {
		t.Fatal(err)
	}
	bare["name"] = "Laptop"
	body, _ := json.Marshal(bare)
	res := b.call("POST", "/users/me/passkeys", string(body))
	wantStatus(t, res, http.StatusCreated)
	if got := res.json(t)["name"]; got != "Laptop" {
		t.Fatalf("name %v, want Laptop", got)
	}
	m := ts.mailTo(t, sink, "gina@example.com")
	if m.Header.Get("Subject") != "A passkey was added to your account" || !strings.Contains(m.Text, "“Laptop”") ||
		!strings.Contains(m.Text, "/profile") {
		t.Fatalf("mail: %s\n%s", m.Header.Get("Subject"), m.Text)
	}
}

// TestPasskeysAtLocalhost: with the default settings (PUBLIC_URL on
// 127.0.0.1) passkeys are on for localhost at the same port; the pages
// served at the address offer none (no browser keeps passkeys for an IP
// address) and say where they work.
func TestPasskeysAtLocalhost(t *testing.T) {
	ts := newTestServer(t)
	if !ts.s.acct.PasskeysOn() || ts.s.cfg.WebAuthnRPID != "localhost" {
		t.Fatalf("passkeys with the default settings: on %v, relying party %q", ts.s.acct.PasskeysOn(), ts.s.cfg.WebAuthnRPID)
	}
	page := func(host, path string) string {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		req.Host = host
		return ts.do(req).Body
	}
	for _, path := range []string{"/login", "/register"} {
		at := page("127.0.0.1:8000", path)
		if strings.Contains(at, "data-passkey=") || strings.Contains(at, "passkeys.js") ||
			!strings.Contains(at, `Passkeys work at <a href="http://localhost:8000`+path+`">`) {
			t.Errorf("%s at 127.0.0.1: offers passkeys or says not where they work:\n%s", path, at)
		}
		local := page("localhost:8000", path)
		if !strings.Contains(local, "data-passkey=") || !strings.Contains(local, "passkeys.js") || strings.Contains(local, "Passkeys work at") {
			t.Errorf("%s at localhost: no passkeys", path)
		}
	}
}

// TestPasskeyCeremoniesThrottled: the ceremonies one client address may
// begin without a session (sign-in and sign-up options together) are
// limited, as each is a row until it is taken or expires; another
// address, and a signed-in person adding a passkey, are not held back.
func TestPasskeyCeremoniesThrottled(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, append(append([]string{"PASSKEY_CEREMONIES_PER_IP", "3", "TRUSTED_PROXIES", "0.0.0.0"}, passkeyEnv...), env...)...)
		owner := ts.pkBrowser(nil)
		owner.register("alice")
		from := func(addr, path, body string) response {
			req := httptest.NewRequest("POST", path, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Sec-Fetch-Site", "same-origin")
			req.Header.Set("X-Forwarded-For", addr)
			return ts.do(req)
		}
		const signup = `{"username":"newcomer","email":"newcomer@example.com"}`
		for i, path := range []string{"/passkeys/login/options", "/register/passkey/options", "/passkeys/login/options"} {
			body := ""
			if strings.HasPrefix(path, "/register") {
				body = signup
			}
			res := from("203.0.113.5", path, body)
			wantStatus(t, res, http.StatusOK)
			if res.cookie(ceremonyCookie) == nil {
				t.Fatalf("ceremony %d began without its cookie", i+1)
			}
		}
		for _, path := range []string{"/passkeys/login/options", "/register/passkey/options"} {
			body := ""
			if strings.HasPrefix(path, "/register") {
				body = signup
			}
			res := from("203.0.113.5", path, body)
			wantStatus(t, res, http.StatusTooManyRequests)
			if res.Header.Get("Retry-After") == "" || res.cookie(ceremonyCookie) != nil {
				t.Errorf("%s past the limit: Retry-After %q, cookie %v", path, res.Header.Get("Retry-After"), res.cookie(ceremonyCookie))
			}
		}
		wantStatus(t, from("203.0.113.6", "/passkeys/login/options", ""), http.StatusOK)
		owner.options("/users/me/passkeys/options", "")
	})
}

// TestPasskeyRegisteredTwice: a credential belongs to one account. A
// client that answers a creation ceremony with a credential id already
// registered (its own account's, or another's) gets 409 and changes
// nothing; the credential still signs its owner in.
func TestPasskeyRegisteredTwice(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := passkeyServer(t, env...)
		alice := ts.pkBrowser(nil)
		alice.register("alice")
		_, c := alice.addPasskey("Phone")
		taken := func(b *pkBrowser, options []byte, path string, extra ...string) {
			t.Helper()
			// A client of its own: the owner's authenticator keeps to the
			// options' excludeCredentials.
			cred, _, err := passkeytest.New(pkOrigin).Create(options, passkeytest.Tamper{Credential: c})
			if err != nil {
				t.Fatal(err)
			}
			res := b.call("POST", path, answer(cred, extra...))
			wantStatus(t, res, http.StatusConflict)
			if d, _ := res.json(t)["detail"].(string); d != account.MsgPasskeyExists {
				t.Errorf("POST %s: detail %q", path, d)
			}
		}
		mallory := ts.pkBrowser(nil)
		mallory.register("mallory")
		taken(mallory, mallory.options("/users/me/passkeys/options", ""), "/users/me/passkeys", "name", "Stolen")
		options := alice.options("/users/me/passkeys/options", "")
		if _, _, err := alice.auth.Create(options); err != passkeytest.ErrInvalidState {
			t.Errorf("the creation options do not exclude the account's passkey: %v", err)
		}
		taken(alice, alice.options("/users/me/passkeys/options", ""), "/users/me/passkeys", "name", "Again")
		newcomer := ts.pkBrowser(nil)
		newcomer.page("/register")
		taken(newcomer, newcomer.options("/register/passkey/options", `{"username":"newcomer","email":"newcomer@example.com"}`), "/register/passkey")

		count := func(b *pkBrowser) int {
			var list []map[string]any
			res := b.get("/users/me/passkeys")
			wantStatus(t, res, http.StatusOK)
			json.Unmarshal([]byte(res.Body), &list)
			return len(list)
		}
		if n, m := count(alice), count(mallory); n != 1 || m != 0 {
			t.Errorf("passkeys after the refusals: alice %d, mallory %d", n, m)
		}
		if _, err := ts.store.UserByUsernameKey(context.Background(), "newcomer"); err == nil {
			t.Error("an account was made with a credential that was taken")
		}
		again := ts.pkBrowser(alice.auth)
		wantStatus(t, again.signIn(""), http.StatusOK)
		if me := again.me().json(t); me["username"] != "alice" {
			t.Errorf("the credential signs in %v", me["username"])
		}
	})
}

// TestPasskeyBeforeTheAddress: a passkey added while the account's
// address was not proven is not trusted once its owner proves it. The
// owner's reset by mail removes it (with every session); the mail's
// verification link, opened without a session, asks the owner, who
// disowns it with the password and two-factor set up then, or claims it.
// A passkey the signed-in owner vouched for (verifying the address, or
// added since) survives a reset.
func TestPasskeyBeforeTheAddress(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts, sink := newMailServer(t, append(append([]string{"LOGIN_FAILURES_PER_IP", "1000000"}, passkeyEnv...), env...)...)
		ctx := context.Background()
		// squat makes an account with someone else's address: a password,
		// a passkey and two-factor, all before the address is proven.
		squat := func(name, addr string) (*pkBrowser, string) {
			b := ts.pkBrowser(nil)
			res := b.submit("/register", "/register", url.Values{"username": {name}, "email": {addr}, "password": {pw}})
			if res.StatusCode != http.StatusSeeOther {
				t.Fatalf("register %s: %d %s", name, res.StatusCode, res.Body)
			}
			b.page("/profile")
			b.addPasskey("Squatter's key")
			secret, _ := ts.enrolled(t, ts.token(name, pw))
			if keys, _, _ := ts.store.Unproven(ctx, ts.userID(name)); len(keys) != 1 {
				t.Fatalf("a passkey added before the address was proven: %+v", keys)
			}
			return b, secret
		}
		passkeyRefused := func(b *pkBrowser) {
			t.Helper()
			fresh := ts.pkBrowser(b.auth)
			fresh.page("/login")
			cred, err := fresh.auth.Get(fresh.options("/passkeys/login/options", ""))
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, fresh.call("POST", "/passkeys/login", answer(cred)), http.StatusUnauthorized)
		}

		t.Run("disowned from the verification link", func(t *testing.T) {
			sq, secret := squat("squatter", "victim@example.com")
			code := ts.verifyCode(t, sink, "victim@example.com")
			victim := ts.browser()
			asked := victim.submit("/email/verify", "/email/verify", url.Values{"login": {"victim@example.com"}, "code": {code}})
			wantStatus(t, asked, http.StatusOK)
			for _, says := range []string{"a password", "two-factor sign-in", "a passkey named “Squatter&#39;s key”", "Did you set them up?"} {
				if !strings.Contains(asked.Body, says) {
					t.Errorf("the question does not list %q: %s", says, asked.Body)
				}
			}
			f := hidden(asked.Body)
			f.Set("keep", "not-mine")
			res := victim.submit("/email/verify", "/email/verify", f)
			wantStatus(t, res, http.StatusSeeOther)
			u, _ := ts.store.UserByUsernameKey(ctx, "squatter")
			if !u.EmailVerified || u.PasswordHash != "" || u.MFAEnabled {
				t.Fatalf("after the owner disowned them: verified %v, password %v, two-factor %v", u.EmailVerified, u.PasswordHash != "", u.MFAEnabled)
			}
			passkeyRefused(sq)
			wantStatus(t, sq.me(), http.StatusUnauthorized)
			wantStatus(t, ts.postForm("/token", url.Values{"username": {"squatter"}, "password": {pw}, "otp": {totpAt(t, secret, ts.s.acct.Now())}}),
				http.StatusUnauthorized)
			// The owner sets a password by mail and signs in with it alone.
			wantStatus(t, ts.postJSON("/password/forgot", `{"login":"victim@example.com"}`), http.StatusAccepted)
			code = ts.mailTo(t, sink, "victim@example.com").Code()
			wantStatus(t, ts.postJSON("/password/reset", `{"login":"victim@example.com","code":"`+code+`","new_password":"the victim's passphrase"}`),
				http.StatusNoContent)
			wantStatus(t, ts.postForm("/token", url.Values{"username": {"victim@example.com"}, "password": {"the victim's passphrase"}}), http.StatusOK)
		})

		t.Run("removed by the owner's reset", func(t *testing.T) {
			sq := ts.pkBrowser(nil)
			sq.page("/register")
			cred, _, err := sq.auth.Create(sq.options("/register/passkey/options", `{"username":"squatter2","email":"victim2@example.com"}`))
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, sq.call("POST", "/register/passkey", answer(cred)), http.StatusCreated)
			sq.page("/profile")
			wantStatus(t, ts.postJSON("/password/forgot", `{"login":"victim2@example.com"}`), http.StatusAccepted)
			code := ts.mailTo(t, sink, "victim2@example.com").Code()
			wantStatus(t, ts.postJSON("/password/reset", `{"login":"victim2@example.com","code":"`+code+`","new_password":"the victim's passphrase"}`),
				http.StatusNoContent)
			passkeyRefused(sq)
			wantStatus(t, sq.me(), http.StatusUnauthorized)
			if keys, _ := ts.store.Passkeys(ctx, ts.userID("squatter2")); len(keys) != 0 {
				t.Fatalf("passkeys after the owner's reset: %+v", keys)
			}
		})

		t.Run("claimed, or vouched for while signed in", func(t *testing.T) {
			// Made with a passkey; the mail's link opened in another
			// browser: the owner says it is theirs.
			own := ts.pkBrowser(nil)
			wantStatus(t, own.signUp("owner"), http.StatusCreated)
			code := ts.verifyCode(t, sink, "owner@example.com")
			phone := ts.browser()
			asked := phone.submit("/email/verify", "/email/verify", url.Values{"login": {"owner"}, "code": {code}})
			wantStatus(t, asked, http.StatusOK)
			f := hidden(asked.Body)
			f.Set("keep", "mine")
			wantStatus(t, phone.submit("/email/verify", "/email/verify", f), http.StatusSeeOther)
			wantStatus(t, own.me(), http.StatusOK)
			// Verified while signed in: the passkey added before is vouched
			// for too.
			other := ts.pkBrowser(nil)
			other.register("signedin")
			other.addPasskey("Laptop")
			code = ts.verifyCode(t, sink, "signedin@example.com")
			wantStatus(t, other.submit("/profile", "/email/verify", url.Values{"code": {code}}), http.StatusSeeOther)
			for _, name := range []string{"owner", "signedin"} {
				if keys, _, _ := ts.store.Unproven(ctx, ts.userID(name)); len(keys) != 0 {
					t.Fatalf("%s: passkeys not vouched for: %+v", name, keys)
				}
				wantStatus(t, ts.postJSON("/password/forgot", `{"login":"`+name+`"}`), http.StatusAccepted)
				code := ts.mailTo(t, sink, name+"@example.com").Code()
				wantStatus(t, ts.postJSON("/password/reset", `{"login":"`+name+`","code":"`+code+`","new_password":"a fresh passphrase 1"}`),
					http.StatusNoContent)
			}
			for _, b := range []*pkBrowser{own, other} {
				again := ts.pkBrowser(b.auth)
				wantStatus(t, again.signIn(""), http.StatusOK)
			}
		})
	})
}
