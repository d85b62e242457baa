package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"fiberauth/app/token"
)

// The defects a review found where features meet, each with its test.

// 1. A token narrowed at a refresh keeps only what it was narrowed to:
// authorization is the intersection of the account's role, the session's
// grant and the token's own scope, on every route and in introspection.
func TestNarrowedTokenKeepsNarrowRights(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, append([]string{"INTROSPECTION_TOKENS", introspectionSecret}, env...)...)
		ts.makeAdmin("root")
		full := ts.signIn("root")
		wantStatus(t, ts.get("/admin/api/users", bearer(full.Access)...), http.StatusOK)
		narrow := ts.pairFrom(ts.refresh(full.Refresh, "scope", "basic"))
		if narrow.Scope != "basic" || mustClaims(t, ts, narrow.Access).Scope != "basic" {
			t.Fatalf("narrowed token: scope %q, claim %q", narrow.Scope, mustClaims(t, ts, narrow.Access).Scope)
		}
		for _, path := range []string{"/admin/api/users", "/welcome/premium-user", "/admin/api/audit"} {
			wantDetail(t, ts.get(path, bearer(narrow.Access)...), http.StatusForbidden, "User not authorized")
		}
		premium := `{"username":"paula","email":"paula@example.com","password":"` + pw + `"}`
		wantDetail(t, ts.postJSON("/register/premium-user", premium, bearer(narrow.Access)...), http.StatusForbidden, "User not authorized")
		wantJSONList(t, ts.get("/welcome/all-users", bearer(narrow.Access)...), "Hello root, welcome to your space")
		res := ts.postForm("/introspect", url.Values{"token": {narrow.Access}}, bearer(introspectionSecret)...)
		if got := res.json(t)["scope"]; got != "basic" {
			t.Errorf("introspection of the narrowed token: scope %v, want basic", got)
		}
		// The refresh token keeps the session's grant (RFC 6749 §6): the
		// next token without a scope has it all again.
		again := ts.pairFrom(ts.refresh(narrow.Refresh))
		if again.Scope != "basic premium admin" {
			t.Errorf("refreshed without a scope: %q", again.Scope)
		}
		wantStatus(t, ts.get("/admin/api/users", bearer(again.Access)...), http.StatusOK)
		// And the narrowed token stays narrow for its whole life.
		wantStatus(t, ts.get("/admin/api/users", bearer(narrow.Access)...), http.StatusForbidden)
	})
}

// 2. A change of address started by a stolen session: only that session
// may confirm it; /email/verify without a session verifies only the
// current address; the owner's password change, a reset and signing out
// everywhere void it, so that a reset can never be sent to the thief.
func TestEmailChangeTakeover(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts, sink := newMailServer(t, append([]string{"LOGIN_FAILURES_PER_ACCOUNT", "50"}, env...)...)
		ts.register("alice", "alice@example.com", pw)
		owner, thief := ts.signIn("alice"), ts.signIn("alice")
		start := func(p pair) string {
			t.Helper()
			wantStatus(t, ts.postJSON("/users/me/email", `{"new_email":"thief@evil.example","password":"`+pw+`"}`, bearer(p.Access)...),
				http.StatusAccepted)
			return ts.mailTo(t, sink, "thief@evil.example").Code()
		}
		code := start(thief)
		// Not from another session of the account, nor without one.
		wantDetail(t, ts.postJSON("/users/me/email/verify", `{"code":"`+code+`"}`, bearer(owner.Access)...), 400, "Invalid or expired code")
		res := ts.browser().submit("/email/verify", "/email/verify", url.Values{"login": {"alice"}, "code": {code}})
		wantStatus(t, res, http.StatusBadRequest)
		// The owner's session does not take the thief's pending change as
		// its own: its resend goes to the owner's own address.
		ts.clockAt(time.Now().Add(2 * time.Minute))
		if to := ts.postJSON("/users/me/email/verify/resend", ``, bearer(owner.Access)...).json(t)["detail"]; !strings.Contains(fmt.Sprint(to), "alice@example.com") {
			t.Errorf("resend from the owner's session: %v", to)
		}
		ts.s.acct.Now = time.Now

		// The owner changes the password: the thief's session ends, and its
		// change with it.
		wantStatus(t, ts.postJSON("/users/me/password", `{"current_password":"`+pw+`","new_password":"the owner's new passphrase"}`,
			bearer(owner.Access)...), http.StatusNoContent)
		wantStatus(t, ts.get("/users/me", bearer(thief.Access)...), http.StatusUnauthorized)
		alice, _ := ts.store.UserByUsernameKey(context.Background(), "alice")
		if c, err := ts.store.CodeFor(context.Background(), alice.ID, "email_change"); err == nil {
			t.Fatalf("a change of address survived the password change: %+v", c)
		}
		wantDetail(t, ts.postJSON("/users/me/email/verify", `{"code":"`+code+`"}`, bearer(owner.Access)...), 400, "Invalid or expired code")
		// A reset still goes to the owner.
		wantStatus(t, ts.postJSON("/password/forgot", `{"login":"alice"}`), http.StatusAccepted)
		ts.flushMail()
		if len(sink.To("thief@evil.example")) != 1 {
			t.Fatal("mail reached the thief's address after the change was voided")
		}
		if ts.mailTo(t, sink, "alice@example.com").Header.Get("Subject") != "Reset your password" {
			t.Fatal("the reset did not go to the owner's address")
		}

		// Signing out everywhere else ends a change another session
		// started.
		const pw2 = "the owner's new passphrase"
		owner = ts.pairFrom(ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw2}}))
		thief = ts.pairFrom(ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw2}}))
		ts.clockAt(time.Now().Add(2 * time.Minute)) // past the mail spacing
		wantStatus(t, ts.postJSON("/users/me/email", `{"new_email":"thief@evil.example","password":"`+pw2+`"}`, bearer(thief.Access)...),
			http.StatusAccepted)
		code = ts.mailTo(t, sink, "thief@evil.example").Code()
		wantStatus(t, ts.send("DELETE", "/users/me/sessions", ``, bearer(owner.Access)...), http.StatusNoContent)
		ts.s.acct.Now = time.Now
		u, _ := ts.store.UserByUsernameKey(context.Background(), "alice")
		if c, err := ts.store.CodeFor(context.Background(), u.ID, "email_change"); err == nil {
			t.Fatalf("a change of address survived signing out everywhere: %+v", c)
		}
		if u.Email != "alice@example.com" {
			t.Fatalf("address %q", u.Email)
		}
	})
}

// 4. A retired signing key verifies nothing once the longest-lived token
// it may have signed has expired: not a fresh token forged with its
// private key (a key is rotated when it may have leaked), and not one the
// verified-token cache remembers.
func TestRetiredKeyVerifiesNothing(t *testing.T) {
	ts := newTestServer(t, "KEY_PUBLISH_DELAY", "0s")
	ts.register("alice", "alice@example.com", pw)
	env := map[string]string{"DATABASE_PATH": ts.path, "KEY_PUBLISH_DELAY": "0s"}
	start := time.Now()
	if err := runCommand(context.Background(), []string{"keys", "rotate"}, func(k string) string { return env[k] }, nil, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	ts.s.keys.reload(context.Background(), 0)
	old := ts.s.acct.Tokens().KeysOf(token.EdDSA)[0]
	p := ts.signIn("alice")
	sid := mustClaims(t, ts, p.Access).SessionID
	forge := func(at time.Time) string {
		t.Helper()
		c := token.Claims{SessionID: sid, Scope: "basic", RegisteredClaims: jwt.RegisteredClaims{Issuer: ts.s.cfg.Issuer, Subject: "alice",
			Audience: jwt.ClaimStrings{token.Audience}, IssuedAt: jwt.NewNumericDate(at), NotBefore: jwt.NewNumericDate(at),
			ExpiresAt: jwt.NewNumericDate(at.Add(2 * time.Hour))}}
		tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
		tok.Header["kid"] = old.ID
		raw, err := tok.SignedString(old.Private)
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	// Retired, still verifying: a token it signed may still live. Half a
	// minute before the key expires, a token forged with it is verified,
	// and remembered by the verified-token cache.
	retired := ts.s.acct.Tokens().States(start)[0].RetiredAt
	if retired.IsZero() {
		t.Fatal("the old key is not retired")
	}
	expires := retired.Add(ts.s.cfg.TokenLifetime + 5*time.Second)
	ts.clockAt(expires.Add(-30 * time.Second))
	cached := forge(expires.Add(-30 * time.Second))
	wantStatus(t, ts.get("/users/me", bearer(cached)...), http.StatusOK)
	// Past the retirement plus the longest token lifetime plus leeway.
	later := expires.Add(time.Second)
	ts.clockAt(later)
	for name, raw := range map[string]string{"a token verified before": cached, "a token forged now": forge(later)} {
		res := ts.get("/users/me", bearer(raw)...)
		wantStatus(t, res, http.StatusUnauthorized)
		if h := res.Header.Get("WWW-Authenticate"); !strings.Contains(h, "signature is invalid") {
			t.Errorf("%s: WWW-Authenticate %q", name, h)
		}
	}
	var jwks struct{ Keys []struct{ Kid string } }
	json.Unmarshal([]byte(ts.get("/.well-known/jwks.json").Body), &jwks)
	for _, k := range jwks.Keys {
		if k.Kid == old.ID {
			t.Error("the expired key is still in the JWKS")
		}
	}
}

// 8. REQUIRE_VERIFIED_EMAIL holds on the login page's second step too:
// one sign-in decision serves both surfaces and both steps, and it comes
// before the code is checked, so that a refused sign-in spends no code.
func TestVerifiedEmailRequiredAtSecondStep(t *testing.T) {
	ts := newTestServer(t)
	now := step30(time.Now().Add(time.Minute), 5*time.Second)
	ts.clockAt(now)
	ts.register("alice", "alice@example.com", pw)
	secret, codes := ts.enrolled(t, ts.token("alice", pw))
	// A second step started before the setting was turned on (a restart
	// with it, or another instance).
	b := ts.browser()
	wantStatus(t, b.login("alice", pw), http.StatusOK)
	strict := ts.withConfig(t, func(cfg *configT) { cfg.RequireVerifiedEmail = true })
	strict.clockAt(now.Add(30 * time.Second))
	sb := &browser{ts: strict, cookies: b.cookies}
	res := sb.submit("/login", "/login/mfa", url.Values{"code": {codes[0]}, "recovery": {"1"}})
	wantStatus(t, res, http.StatusForbidden)
	if res.cookie(sessionCookie) != nil || !strings.Contains(res.Body, "not verified") || !strings.Contains(res.Body, `action="/email/verify/resend"`) {
		t.Fatalf("second step of an unverified account: cookie %v\n%.600s", res.cookie(sessionCookie), res.Body)
	}
	wantStatus(t, sb.get("/profile"), http.StatusSeeOther)
	// The first step and the API say the same, before any code.
	wantStatus(t, strict.browser().login("alice", pw), http.StatusForbidden)
	res = strict.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}, "otp": {codes[1]}})
	wantOAuthError(t, res, http.StatusBadRequest, "invalid_grant")
	res = strict.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}, "otp": {totpAt(t, secret, now.Add(30*time.Second))}})
	wantOAuthError(t, res, http.StatusBadRequest, "invalid_grant")
	// No code was spent by the refusals.
	ts.clockAt(now.Add(30 * time.Second))
	for _, otp := range []string{codes[0], codes[1], totpAt(t, secret, now.Add(30*time.Second))} {
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}, "otp": {otp}}), http.StatusOK)
	}
}

// A pending second step works once: used, it is void everywhere, so that
// a copy of its cookie signs nobody in again; and of two uses at once, one
// wins.
func TestSecondStepUsedOnce(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		_, codes := ts.enrolled(t, ts.token("alice", pw))
		b := ts.browser()
		wantStatus(t, b.login("alice", pw), http.StatusOK)
		stolen := b.cookies[mfaCookie]
		res := b.submit("/login", "/login/mfa", url.Values{"code": {codes[0]}, "recovery": {"1"}})
		wantStatus(t, res, http.StatusSeeOther)
		if res.Header.Get("Location") != "/profile" {
			t.Fatalf("first use: %s", res.Header.Get("Location"))
		}
		thief := ts.browser()
		thief.get("/login")
		thief.cookies[mfaCookie] = stolen
		res = thief.submit("/login", "/login/mfa", url.Values{"code": {codes[1]}, "recovery": {"1"}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?done=mfa_expired" || res.cookie(sessionCookie) != nil {
			t.Fatalf("the copy of a used pending step: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		// Two uses racing: the first is held after its code was accepted,
		// just before its session is written, while the second goes all
		// the way; released, the first must fail.
		b = ts.browser()
		b.login("alice", pw)
		pending := b.cookies[mfaCookie]
		held, release := make(chan struct{}), make(chan struct{})
		var calls atomic.Int32
		ts.s.acct.Hooks.BeforeSecondStepSession = func(context.Context) {
			if calls.Add(1) == 1 {
				close(held)
				<-release
			}
		}
		use := func(code string) response {
			x := ts.browser()
			x.get("/login")
			x.cookies[mfaCookie] = pending
			return x.submit("/login", "/login/mfa", url.Values{"code": {code}, "recovery": {"1"}})
		}
		first := make(chan response, 1)
		go func() { first <- use(codes[2]) }()
		<-held
		if res := use(codes[3]); res.cookie(sessionCookie) == nil {
			t.Fatalf("the second use, alone past the race point: %d %s", res.StatusCode, res.Header.Get("Location"))
		}
		close(release)
		if res := <-first; res.cookie(sessionCookie) != nil {
			t.Fatal("two sign-ins from one pending step used twice at once")
		}
		ts.s.acct.Hooks.BeforeSecondStepSession = nil
	})
}

// On SQLite a key made by the command line reaches a running server at
// once (the notices table), not at its next timed reload.
func TestRotationSeenAtOnce(t *testing.T) {
	ts := newTestServer(t, "KEY_PUBLISH_DELAY", "0s")
	ts.register("alice", "alice@example.com", pw)
	before := len(ts.s.acct.Tokens().Keys())
	env := map[string]string{"DATABASE_PATH": ts.path, "KEY_PUBLISH_DELAY": "0s"}
	if err := runCommand(context.Background(), []string{"keys", "rotate"}, func(k string) string { return env[k] }, nil, &strings.Builder{}); err != nil {
		t.Fatal(err)
	}
	if err := ts.store.PollNotices(context.Background()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Second)
	for len(ts.s.acct.Tokens().Keys()) == before {
		if time.Now().After(deadline) {
			t.Fatal("the running server has not loaded the new keys 2 s after reading the notices")
		}
		time.Sleep(10 * time.Millisecond)
	}
	newKid := ts.s.acct.Tokens().KeysOf(token.EdDSA)[1].ID
	p := ts.signIn("alice")
	var h struct{ Kid string }
	b, _ := jwtSegment(strings.Split(p.Access, ".")[0])
	json.Unmarshal(b, &h)
	if h.Kid != newKid {
		t.Fatalf("token signed with %s, want the new key %s", h.Kid, newKid)
	}
}

// 9. Changing the address of an account with two-factor on takes a current
// code; turning two-factor on takes the password; a pending set-up is
// seen and confirmed only by the session that started it.
func TestTwoFactorSeams(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, append([]string{"LOGIN_FAILURES_PER_ACCOUNT", "50"}, env...)...)
		now := step30(time.Now().Add(time.Minute), 5*time.Second)
		ts.clockAt(now)
		ts.register("alice", "alice@example.com", pw)
		mine, stolen := ts.token("alice", pw), ts.token("alice", pw)
		res := ts.postJSON("/users/me/mfa/totp", ``, bearer(stolen)...)
		wantStatus(t, res, http.StatusOK)
		secret := res.json(t)["secret"].(string)
		code := totpAt(t, secret, now)
		// Another session of the account neither sees nor confirms it.
		b := ts.browser()
		b.login("alice", pw)
		if page := b.get("/profile/mfa").Body; strings.Contains(page, groupSecret(secret)) || strings.Contains(page, `id="secret"`) {
			t.Fatal("another session sees the pending secret")
		}
		wantDetail(t, ts.postJSON("/users/me/mfa/totp/confirm", `{"code":"`+code+`","password":"`+pw+`"}`, bearer(mine)...),
			http.StatusConflict, "Start the set-up first: there is no authenticator waiting for its first code")
		// The session that started it needs the password as well.
		wantDetail(t, ts.postJSON("/users/me/mfa/totp/confirm", `{"code":"`+code+`","password":"not the password"}`, bearer(stolen)...),
			http.StatusForbidden, "Incorrect password")
		wantStatus(t, ts.postJSON("/users/me/mfa/totp/confirm", `{"code":"`+code+`","password":"`+pw+`"}`, bearer(stolen)...), http.StatusOK)
		// Turning it on ended every other session.
		wantStatus(t, ts.get("/users/me", bearer(mine)...), http.StatusUnauthorized)

		// With two-factor on, a change of address takes a current code.
		ts.clockAt(now.Add(30 * time.Second))
		wantDetail(t, ts.postJSON("/users/me/email", `{"new_email":"new@example.com","password":"`+pw+`"}`, bearer(stolen)...),
			http.StatusForbidden, "One-time code required")
		wantDetail(t, ts.postJSON("/users/me/email", `{"new_email":"new@example.com","password":"`+pw+`","code":"000000"}`, bearer(stolen)...),
			http.StatusForbidden, "Invalid one-time code")
		wantStatus(t, ts.postJSON("/users/me/email", `{"new_email":"new@example.com","password":"`+pw+`","code":"`+
			totpAt(t, secret, now.Add(30*time.Second))+`"}`, bearer(stolen)...), http.StatusAccepted)
		// The page asks for it too.
		page := ts.browser()
		page.login("alice", pw)
		page.submit("/login", "/login/mfa", url.Values{"code": {totpAt(t, secret, now.Add(60*time.Second))}})
		ts.clockAt(now.Add(60 * time.Second))
		if !strings.Contains(page.get("/profile/email").Body, `name="code"`) {
			t.Error("the change-of-address form has no code field with two-factor on")
		}
	})
}

// The mail a change of address sends is spaced like every other: a second
// change to the same address within the minute is refused.
func TestEmailChangeMailSpacing(t *testing.T) {
	ts, sink := newMailServer(t)
	ts.register("alice", "alice@example.com", pw)
	tok := ts.token("alice", pw)
	body := `{"new_email":"new@example.com","password":"` + pw + `"}`
	wantStatus(t, ts.postJSON("/users/me/email", body, bearer(tok)...), http.StatusAccepted)
	res := ts.postJSON("/users/me/email", body, bearer(tok)...)
	wantStatus(t, res, http.StatusTooManyRequests)
	if res.Header.Get("Retry-After") == "" || !strings.Contains(res.Body, "A code was sent less than a minute ago") {
		t.Fatalf("second change within the minute: %s %s", res.Header.Get("Retry-After"), res.Body)
	}
	ts.flushMail()
	if n := len(sink.To("new@example.com")); n != 1 {
		t.Fatalf("%d messages to the new address, want 1", n)
	}
}

// 6. Introspection says what a token allows now: the intersection of
// role, session and token, and nothing once the session ended or when the
// token's subject is not its session's account.
func TestIntrospectionScopeIsCurrent(t *testing.T) {
	ts := newTestServer(t, "INTROSPECTION_TOKENS", introspectionSecret)
	ts.makeAdmin("root")
	ts.register("alice", "alice@example.com", pw)
	ask := func(tok string) map[string]any {
		t.Helper()
		return ts.postForm("/introspect", url.Values{"token": {tok}}, bearer(introspectionSecret)...).json(t)
	}
	p := ts.signIn("alice")
	if got := ask(p.Access)["scope"]; got != "basic" {
		t.Fatalf("scope %v", got)
	}
	root := ts.token("root", pw)
	wantStatus(t, ts.send("PUT", fmt.Sprintf("/admin/api/users/%d/role", ts.userID("alice")), `{"role":"premium"}`, bearer(root)...), 204)
	// The refresh token's session grants the new role; the access token
	// issued before it still only what it says.
	if got := ask(p.Refresh)["scope"]; got != "basic premium" {
		t.Errorf("refresh token after a promotion: scope %v", got)
	}
	if got := ask(p.Access)["scope"]; got != "basic" {
		t.Errorf("access token issued before a promotion: scope %v", got)
	}
	q := ts.pairFrom(ts.refresh(p.Refresh))
	wantStatus(t, ts.send("PUT", fmt.Sprintf("/admin/api/users/%d/role", ts.userID("alice")), `{"role":"basic"}`, bearer(root)...), 204)
	if got := ask(q.Access)["scope"]; got != "basic" {
		t.Errorf("access token after a demotion: scope %v, want basic", got)
	}
	// A token whose subject is not its session's account (signed here,
	// as a leaked key could) is inactive, and refused.
	sid := mustClaims(t, ts, q.Access).SessionID
	forged, _, err := ts.s.acct.Tokens().Issue(token.Grant{Subject: "root", SessionID: sid, Scope: "basic premium admin"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if m := ask(forged); m["active"] != false {
		t.Errorf("a token naming another subject: %v", m)
	}
	wantStatus(t, ts.get("/users/me", bearer(forged)...), http.StatusUnauthorized)
	ts.postForm("/revoke", url.Values{"token": {q.Refresh}})
	if m := ask(q.Access); m["active"] != false {
		t.Errorf("after the session ended: %v", m)
	}
}

// 7. A reset code works only while the address it went to is the
// account's.
func TestResetCodeBoundToAddress(t *testing.T) {
	ts, sink := newMailServer(t)
	ts.register("alice", "alice@example.com", pw)
	tok := ts.token("alice", pw)
	wantStatus(t, ts.postJSON("/password/forgot", `{"login":"alice"}`), http.StatusAccepted)
	reset := ts.mailTo(t, sink, "alice@example.com").Code()
	wantStatus(t, ts.postJSON("/users/me/email", `{"new_email":"alice@new.example.com","password":"`+pw+`"}`, bearer(tok)...), 202)
	change := ts.mailTo(t, sink, "alice@new.example.com").Code()
	wantStatus(t, ts.postJSON("/users/me/email/verify", `{"code":"`+change+`"}`, bearer(tok)...), http.StatusNoContent)
	wantDetail(t, ts.postJSON("/password/reset", `{"login":"alice","code":"`+reset+`","new_password":"a brand new passphrase"}`),
		http.StatusBadRequest, "Invalid or expired code")
	ts.token("alice", pw)
}

// 11. Every change the command line makes is in the audit list, as done by
// "the command line": a new signing key, a backup, a migration.
func TestCommandLineChangesAudited(t *testing.T) {
	ts := newTestServer(t)
	ts.makeAdmin("root")
	env := map[string]string{"DATABASE_PATH": ts.path}
	for _, args := range [][]string{{"keys", "rotate"}, {"backup", ts.path + ".copy"}, {"migrate"}} {
		if err := runCommand(context.Background(), args, func(k string) string { return env[k] }, nil, &strings.Builder{}); err != nil {
			t.Fatalf("%v: %v", args, err)
		}
	}
	defer os.Remove(ts.path + ".copy")
	res := ts.get("/admin/api/audit", bearer(ts.token("root", pw))...)
	var list struct {
		Entries []auditJSON `json:"entries"`
	}
	if err := json.Unmarshal([]byte(res.Body), &list); err != nil {
		t.Fatal(err)
	}
	for _, action := range []string{"rotate_key", "backup", "migrate"} {
		var found bool
		for _, e := range list.Entries {
			if e.Action == action {
				found = true
				if e.Admin != "the command line" {
					t.Errorf("%s entry by %q, want the command line", action, e.Admin)
				}
			}
		}
		if !found {
			t.Errorf("no %s entry in the audit list: %s", action, res.Body)
		}
	}
}

// guesser makes one wrong guess at a secret of an account, from an
// address, on one surface.
type guesser struct {
	name string
	// mfa: the account has two-factor on (the surface needs it, or off).
	mfa   bool
	guess func(t *testing.T, g *guessScene, from []string)
}

// guessScene is an account whose secrets are guessed.
type guessScene struct {
	ts       *testServer
	name     string
	secret   string
	recovery []string
	// sessions are signed in per address, for the surfaces that need one.
	sessions map[string]string
	// guessOnce makes one wrong guess from an address.
	guessOnce func(t *testing.T, from []string)
}

func (g *guessScene) session(t *testing.T, from []string) string {
	t.Helper()
	if tok, ok := g.sessions[from[1]]; ok {
		return tok
	}
	f := url.Values{"username": {g.name}, "password": {pw}}
	if g.secret != "" {
		f.Set("otp", g.recovery[0])
		g.recovery = g.recovery[1:]
	}
	tok := g.ts.pairFrom(g.ts.postForm("/token", f, from...)).Access
	g.sessions[from[1]] = tok
	return tok
}

var guessers = []guesser{
	{"password grant", false, func(t *testing.T, g *guessScene, from []string) {
		wantStatus(t, g.ts.postForm("/token", url.Values{"username": {g.name}, "password": {"wrong password"}}, from...), 401)
	}},
	{"login page", false, func(t *testing.T, g *guessScene, from []string) {
		b := g.ts.browser()
		b.header = from
		wantStatus(t, b.login(g.name, "wrong password"), 401)
	}},
	{"login page second step", true, func(t *testing.T, g *guessScene, from []string) {
		b := g.ts.browser()
		b.header = from
		wantStatus(t, b.login(g.name, pw), 200)
		wantStatus(t, b.submit("/login", "/login/mfa", url.Values{"code": {"000000"}}), 401)
	}},
	{"password grant code", true, func(t *testing.T, g *guessScene, from []string) {
		wantStatus(t, g.ts.postForm("/token", url.Values{"username": {g.name}, "password": {pw}, "otp": {"000000"}}, from...), 401)
	}},
	{"recovery code", true, func(t *testing.T, g *guessScene, from []string) {
		wantStatus(t, g.ts.postForm("/token", url.Values{"username": {g.name}, "password": {pw}, "otp": {"AAAAA-AAAAA"}}, from...), 401)
	}},
	{"verify-totp", true, func(t *testing.T, g *guessScene, from []string) {
		wantStatus(t, g.ts.postJSON("/verify-totp", `{"username":"`+g.name+`","code":"000000"}`, from...), 401)
	}},
	{"step-up password", false, func(t *testing.T, g *guessScene, from []string) {
		tok := g.session(t, from)
		wantStatus(t, g.ts.postJSON("/users/me/password", `{"current_password":"wrong password","new_password":"whatever new 123"}`,
			append(bearer(tok), from...)...), 403)
	}},
	{"step-up code", true, func(t *testing.T, g *guessScene, from []string) {
		tok := g.session(t, from)
		wantStatus(t, g.ts.postJSON("/users/me/password", `{"current_password":"`+pw+`","new_password":"whatever new 123","code":"000000"}`,
			append(bearer(tok), from...)...), 403)
	}},
	{"authenticator set-up", false, func(t *testing.T, g *guessScene, from []string) {
		tok := g.session(t, from)
		wantStatus(t, g.ts.postJSON("/users/me/mfa/totp", ``, append(bearer(tok), from...)...), 200)
		wantStatus(t, g.ts.postJSON("/users/me/mfa/totp/confirm", `{"code":"000000","password":"`+pw+`"}`, append(bearer(tok), from...)...), 403)
	}},
	{"mailed reset code", false, func(t *testing.T, g *guessScene, from []string) {
		wantStatus(t, g.ts.postJSON("/password/reset", `{"login":"`+g.name+`","code":"AAAA-AAAA","new_password":"whatever new 123"}`, from...), 400)
	}},
	{"mailed code, signed in", false, func(t *testing.T, g *guessScene, from []string) {
		tok := g.session(t, from)
		wantStatus(t, g.ts.postJSON("/users/me/email/verify", `{"code":"AAAA-AAAA"}`, append(bearer(tok), from...)...), 400)
	}},
}

// 5 and 10. Every place a secret is guessed counts toward the same limits:
// per address, per account from an address, and per account from every
// address (past which only clients the account knows may sign in).
func TestEveryGuessCountsAlike(t *testing.T) {
	limits := []struct {
		name  string
		env   []string
		check func(t *testing.T, g *guessScene, n int)
	}{
		{"account from one address", []string{"LOGIN_FAILURES_PER_ACCOUNT", "3"}, func(t *testing.T, g *guessScene, n int) {
			from := []string{"X-Forwarded-For", fmt.Sprintf("198.51.%d.1", n)}
			if g.secret == "" {
				g.session(t, from) // for the surfaces that need one, before any guess
			}
			for range 3 {
				g.guessOnce(t, from)
			}
			res := g.ts.postForm("/token", url.Values{"username": {g.name}, "password": {pw}}, from...)
			wantStatus(t, res, http.StatusTooManyRequests)
		}},
		{"one address, every account", []string{"LOGIN_FAILURES_PER_IP", "3"}, func(t *testing.T, g *guessScene, n int) {
			from := []string{"X-Forwarded-For", fmt.Sprintf("198.51.%d.2", n)}
			if g.secret == "" {
				g.session(t, from)
			}
			for range 3 {
				g.guessOnce(t, from)
			}
			g.ts.register(g.name+"x", g.name+"x@example.com", pw)
			res := g.ts.postForm("/token", url.Values{"username": {g.name + "x"}, "password": {pw}}, from...)
			wantStatus(t, res, http.StatusTooManyRequests)
		}},
		{"account from every address", []string{"LOGIN_FAILURES_ACCOUNT_WIDE", "4"}, func(t *testing.T, g *guessScene, n int) {
			known := []string{"X-Forwarded-For", fmt.Sprintf("198.51.%d.3", n)}
			g.session(t, known) // the owner, known from here
			for i := range 4 {
				g.guessOnce(t, []string{"X-Forwarded-For", fmt.Sprintf("203.0.%d.%d", n, i+1)})
			}
			stranger := []string{"X-Forwarded-For", fmt.Sprintf("192.0.%d.9", n)}
			wantStatus(t, g.ts.postForm("/token", url.Values{"username": {g.name}, "password": {pw}}, stranger...), http.StatusTooManyRequests)
			res := g.ts.postForm("/token", url.Values{"username": {g.name}, "password": {pw}}, known...)
			if res.StatusCode == http.StatusTooManyRequests {
				t.Fatalf("the owner's known address is locked out: %s", res.Body)
			}
		}},
	}
	for _, l := range limits {
		t.Run(l.name, func(t *testing.T) {
			ts := newTestServer(t, append([]string{"TRUSTED_PROXIES", "0.0.0.0/0"}, l.env...)...)
			now := step30(time.Now().Add(time.Minute), 5*time.Second)
			ts.clockAt(now)
			for n, gs := range guessers {
				t.Run(gs.name, func(t *testing.T) {
					mine := *ts
					mine.t = t
					g := &guessScene{ts: &mine, name: fmt.Sprintf("guess%02d", n), sessions: map[string]string{}}
					mine.register(g.name, g.name+"@example.com", pw)
					if gs.mfa {
						g.secret, g.recovery = mine.enrolled(t, mine.token(g.name, pw))
					}
					g.guessOnce = func(t *testing.T, from []string) { gs.guess(t, g, from) }
					l.check(t, g, n)
				})
			}
		})
	}
}

// A browser's cookie follows a role change on its next request: the token
// in it is renewed for the same session with the new scope, which the
// request itself already uses.
func TestBrowserFollowsRoleChange(t *testing.T) {
	ts := newTestServer(t)
	ts.makeAdmin("root")
	ts.register("alice", "alice@example.com", pw)
	b := ts.browser()
	wantStatus(t, b.login("alice", pw), http.StatusSeeOther)
	before := b.cookies[sessionCookie]
	wantStatus(t, ts.get("/welcome/premium-user", "Cookie", sessionCookie+"="+before), http.StatusForbidden)
	root := ts.token("root", pw)
	wantStatus(t, ts.send("PUT", fmt.Sprintf("/admin/api/users/%d/role", ts.userID("alice")), `{"role":"premium"}`, bearer(root)...), 204)
	res := b.get("/welcome/premium-user")
	wantStatus(t, res, http.StatusOK)
	after := b.cookies[sessionCookie]
	if after == before || mustClaims(t, ts, after).Scope != "basic premium" ||
		mustClaims(t, ts, after).SessionID != mustClaims(t, ts, before).SessionID {
		t.Fatalf("cookie after the role change: scope %q", mustClaims(t, ts, after).Scope)
	}
	// And down again: the next request is refused at once.
	wantStatus(t, ts.send("PUT", fmt.Sprintf("/admin/api/users/%d/role", ts.userID("alice")), `{"role":"basic"}`, bearer(root)...), 204)
	wantStatus(t, b.get("/welcome/premium-user"), http.StatusForbidden)
}
