package app

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// step30 is the start of the 30-second step that holds t, plus off.
func step30(t time.Time, off time.Duration) time.Time {
	return time.Unix(t.Unix()/30*30, 0).Add(off)
}

// TestMFAAPI: enrolment, then the password grant with and without codes,
// replay, the window either side, recovery codes, step-up and turning off,
// on both engines.
func TestMFAAPI(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, append([]string{"LOGIN_FAILURES_PER_ACCOUNT", "50"}, env...)...)
		base := step30(time.Now().Add(time.Minute), 5*time.Second)
		ts.clockAt(base)
		ts.register("alice", "alice@example.com", pw)
		tok := ts.token("alice", pw)
		if me := ts.get("/users/me", bearer(tok)...).json(t); me["mfa_enabled"] != false {
			t.Fatalf("/users/me: %v", me)
		}

		// The recipe's path starts enrolment; the URI is what apps read.
		res := ts.postJSON("/user/enable-mfa", ``, bearer(tok)...)
		wantStatus(t, res, http.StatusOK)
		body := res.json(t)
		secret, uri := body["secret"].(string), body["totp_uri"].(string)
		u, err := url.Parse(uri)
		if err != nil || u.Scheme != "otpauth" || u.Host != "totp" || u.Query().Get("issuer") != "Fiberauth" ||
			u.Query().Get("secret") != secret || !strings.Contains(u.Path, "alice") || len(secret) != 32 ||
			u.Query().Get("digits") != "6" || u.Query().Get("period") != "30" || u.Query().Get("algorithm") != "SHA1" {
			t.Fatalf("enrolment: uri %q secret %q", uri, secret)
		}
		// Not on until confirmed: sign-in still needs only the password.
		ts.token("alice", pw)
		wantStatus(t, ts.postJSON("/users/me/mfa/totp/confirm", `{"code":"000000","password":"`+pw+`"}`, bearer(tok)...), http.StatusForbidden)
		// Turning two-factor on takes the password: a stolen session alone
		// cannot enrol an authenticator of its own.
		wantDetail(t, ts.postJSON("/users/me/mfa/totp/confirm", `{"code":"`+totpAt(t, secret, base)+`","password":"wrong password"}`, bearer(tok)...),
			http.StatusForbidden, "Incorrect password")
		wantStatus(t, ts.postJSON("/users/me/mfa/totp/confirm", `{"code":"`+totpAt(t, secret, base)+`"}`, bearer(tok)...), http.StatusUnprocessableEntity)
		res = ts.postJSON("/users/me/mfa/totp/confirm", `{"code":"`+totpAt(t, secret, base)+`","password":"`+pw+`"}`, bearer(tok)...)
		wantStatus(t, res, http.StatusOK)
		var codes []string
		for _, c := range res.json(t)["recovery_codes"].([]any) {
			codes = append(codes, c.(string))
		}
		if len(codes) != 10 {
			t.Fatalf("%d recovery codes", len(codes))
		}
		if me := ts.get("/users/me", bearer(tok)...).json(t); me["mfa_enabled"] != true {
			t.Fatalf("/users/me after confirming: %v", me)
		}
		wantStatus(t, ts.postJSON("/users/me/mfa/totp", ``, bearer(tok)...), http.StatusConflict)

		grant := func(otp string) response {
			f := url.Values{"username": {"alice"}, "password": {pw}}
			if otp != "" {
				f.Set("otp", otp)
			}
			return ts.postForm("/token", f)
		}
		// No code: mfa_required, exactly; a wrong one: invalid_grant.
		res = grant("")
		wantStatus(t, res, http.StatusUnauthorized)
		if res.Body != `{"detail":"One-time code required","error":"mfa_required","error_description":"One-time code required"}` {
			t.Fatalf("without a code: %s", res.Body)
		}
		res = grant("123456")
		wantStatus(t, res, http.StatusUnauthorized)
		if b := res.json(t); b["error"] != "invalid_grant" || b["detail"] != "Invalid one-time code" {
			t.Fatalf("wrong code: %s", res.Body)
		}
		// The confirming code cannot be used again.
		wantStatus(t, grant(totpAt(t, secret, base)), http.StatusUnauthorized)

		// One step either side is accepted, two are not (earlier steps
		// are refused anyway: a later one was used).
		ts.clockAt(base.Add(30 * time.Second))
		wantStatus(t, grant(totpAt(t, secret, base.Add(90*time.Second))), http.StatusUnauthorized)
		res = grant(totpAt(t, secret, base.Add(60*time.Second)))
		wantStatus(t, res, http.StatusOK)
		access := res.json(t)["access_token"].(string)
		if amr := mustClaims(t, ts, access).AMR; strings.Join(amr, " ") != "pwd otp" {
			t.Fatalf("amr %v", amr)
		}
		// Codes of the accepted step and earlier are spent.
		ts.clockAt(base.Add(90 * time.Second))
		wantStatus(t, grant(totpAt(t, secret, base.Add(60*time.Second))), http.StatusUnauthorized)
		wantStatus(t, grant(totpAt(t, secret, base.Add(30*time.Second))), http.StatusUnauthorized)
		ts.clockAt(base.Add(120 * time.Second))
		res = grant(totpAt(t, secret, base.Add(120*time.Second)))
		wantStatus(t, res, http.StatusOK)
		// A refresh keeps how the session was signed in to.
		ref := ts.postForm("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {res.json(t)["refresh_token"].(string)}})
		wantStatus(t, ref, http.StatusOK)
		if amr := mustClaims(t, ts, ref.json(t)["access_token"].(string)).AMR; strings.Join(amr, " ") != "pwd otp" {
			t.Fatalf("amr after refresh %v", amr)
		}

		// Recovery codes: each once, with the count on the profile.
		wantStatus(t, grant(strings.ToLower(strings.ReplaceAll(codes[0], "-", ""))), http.StatusOK)
		wantStatus(t, grant(codes[0]), http.StatusUnauthorized)
		tok = grant(codes[1]).json(t)["access_token"].(string)
		ts.s.acct.FlushEvents()
		if ev := ts.get("/users/me/events", bearer(tok)...).Body; !strings.Contains(ev, "Recovery code used, 8 left") {
			t.Fatalf("events: %s", ev)
		}

		// Step-up: changing the password needs a code too.
		wantDetail(t, ts.postJSON("/users/me/password", `{"current_password":"`+pw+`","new_password":"another passphrase 1"}`, bearer(tok)...),
			http.StatusForbidden, "One-time code required")
		wantDetail(t, ts.postJSON("/users/me/password", `{"current_password":"`+pw+`","new_password":"another passphrase 1","code":"000000"}`, bearer(tok)...),
			http.StatusForbidden, "Invalid one-time code")
		ts.clockAt(base.Add(150 * time.Second))
		wantStatus(t, ts.postJSON("/users/me/password", `{"current_password":"`+pw+`","new_password":"another passphrase 1","code":"`+
			totpAt(t, secret, base.Add(150*time.Second))+`"}`, bearer(tok)...), http.StatusNoContent)
		const pw2 = "another passphrase 1"

		// New recovery codes void the old ones.
		ts.clockAt(base.Add(180 * time.Second))
		res = ts.postJSON("/users/me/mfa/recovery-codes", `{"password":"`+pw2+`","code":"`+totpAt(t, secret, base.Add(180*time.Second))+`"}`, bearer(tok)...)
		wantStatus(t, res, http.StatusOK)
		fresh := res.json(t)["recovery_codes"].([]any)
		grant2 := func(otp string) response {
			return ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw2}, "otp": {otp}})
		}
		wantStatus(t, grant2(codes[5]), http.StatusUnauthorized)
		wantStatus(t, grant2(fresh[0].(string)), http.StatusOK)

		// The recipe's check: gates nothing, spends the code.
		ts.clockAt(base.Add(210 * time.Second))
		code := totpAt(t, secret, base.Add(210*time.Second))
		res = ts.postJSON("/verify-totp", `{"username":"alice","code":"`+code+`"}`)
		if res.StatusCode != http.StatusOK || res.Body != `{"message":"TOTP token verified successfully"}` {
			t.Fatalf("verify-totp: %d %s", res.StatusCode, res.Body)
		}
		// Again, the recipe's way (query parameters): the code is spent.
		wantDetail(t, ts.postForm("/verify-totp?username=alice&code="+code, nil), http.StatusUnauthorized, "Invalid TOTP token")
		wantDetail(t, ts.postJSON("/verify-totp", `{"username":"nobody","code":"123456"}`), http.StatusBadRequest, "MFA not activated")

		// Turning off needs the password and a code; then the password
		// is enough again.
		ts.clockAt(base.Add(240 * time.Second))
		wantStatus(t, ts.send("DELETE", "/users/me/mfa/totp", `{"password":"`+pw2+`","code":"000000"}`, bearer(tok)...), http.StatusForbidden)
		wantStatus(t, ts.send("DELETE", "/users/me/mfa/totp", `{"password":"wrong password","code":"`+totpAt(t, secret, base.Add(240*time.Second))+`"}`, bearer(tok)...),
			http.StatusForbidden)
		wantStatus(t, ts.send("DELETE", "/users/me/mfa/totp", `{"password":"`+pw2+`","code":"`+totpAt(t, secret, base.Add(240*time.Second))+`"}`, bearer(tok)...),
			http.StatusNoContent)
		res = ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw2}, "otp": {"ignored"}})
		wantStatus(t, res, http.StatusOK)
		if amr := mustClaims(t, ts, res.json(t)["access_token"].(string)).AMR; strings.Join(amr, " ") != "pwd" {
			t.Fatalf("amr without two-factor %v", amr)
		}
		ts.s.acct.FlushEvents()
		ev := ts.get("/users/me/events", bearer(res.json(t)["access_token"].(string))...).Body
		for _, kind := range []string{"mfa_enabled", "mfa_disabled", "recovery_codes_replaced", "otp_failed"} {
			if !strings.Contains(ev, `"`+kind+`"`) {
				t.Errorf("no %s event: %s", kind, ev)
			}
		}
	})
}

// TestMFAStoredEncrypted: the secret is not in the database in clear, it
// survives a restart, and it works on another instance of the same
// database.
func TestMFAStoredEncrypted(t *testing.T) {
	ts := newTestServer(t)
	now := step30(time.Now().Add(time.Minute), 5*time.Second)
	ts.clockAt(now)
	ts.register("alice", "alice@example.com", pw)
	tok := ts.token("alice", pw)
	secret, codes := ts.enrolled(t, tok)
	u, _ := ts.store.UserByUsernameKey(context.Background(), "alice")
	stored, err := ts.store.TOTPFor(context.Background(), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored.Secret, secret) || len(stored.Secret) < 40 {
		t.Fatalf("secret stored as %q", stored.Secret)
	}
	if left, _ := ts.store.RecoveryCodesLeft(context.Background(), u.ID); left != 10 {
		t.Fatalf("%d recovery codes stored", left)
	}
	// A second server on the same file (a restart, or another instance).
	other := ts.withConfig(t, func(*configT) {})
	other.clockAt(now.Add(30 * time.Second))
	res := other.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}, "otp": {totpAt(t, secret, now.Add(30*time.Second))}})
	wantStatus(t, res, http.StatusOK)
	wantStatus(t, other.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}, "otp": {codes[3]}}), http.StatusOK)
}

// TestMFAWrongCodesThrottled: wrong codes count as failed sign-ins, and the
// right password does not wipe them.
func TestMFAWrongCodesThrottled(t *testing.T) {
	ts := newTestServer(t)
	now := step30(time.Now().Add(time.Minute), 5*time.Second)
	ts.clockAt(now)
	ts.register("alice", "alice@example.com", pw)
	secret, _ := ts.enrolled(t, ts.token("alice", pw))
	limit := ts.s.cfg.LoginFailuresPerAccount
	for i := 0; i < limit; i++ {
		// Between guesses, the right password alone (mfa_required).
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}), http.StatusUnauthorized)
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}, "otp": {"00000" + string(rune('0'+i))}}),
			http.StatusUnauthorized)
	}
	// The right code, within the block the failures started, is refused.
	ts.clockAt(now.Add(20 * time.Second))
	res := ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}, "otp": {totpAt(t, secret, now.Add(30*time.Second))}})
	wantStatus(t, res, http.StatusTooManyRequests)
}

// TestMFAPages: the login page's second step, bound to the browser, with
// no session before it succeeds; a wrong code keeps the person on it.
func TestMFAPages(t *testing.T) {
	ts := newTestServer(t)
	now := step30(time.Now().Add(time.Minute), 5*time.Second)
	ts.clockAt(now)
	ts.register("alice", "alice@example.com", pw)
	secret, codes := ts.enrolled(t, ts.token("alice", pw))
	// The code of the enrolment's step is spent: sign in a step later.
	now = now.Add(30 * time.Second)
	ts.clockAt(now)

	b := ts.browser()
	res := b.login("alice", pw)
	wantStatus(t, res, http.StatusOK)
	if !strings.Contains(res.Body, `action="/login/mfa"`) || res.cookie(sessionCookie) != nil || res.cookie(mfaCookie) == nil {
		t.Fatalf("after the password: session %v, pending %v\n%s", res.cookie(sessionCookie), res.cookie(mfaCookie), res.Body)
	}
	if c := res.cookie(mfaCookie); !c.HttpOnly || c.MaxAge != 300 {
		t.Fatalf("pending cookie %+v", c)
	}
	wantStatus(t, b.get("/profile"), http.StatusSeeOther)
	// Another browser cannot finish this sign-in.
	stranger := ts.browser()
	res = stranger.submit("/login", "/login/mfa", url.Values{"code": {totpAt(t, secret, now)}})
	wantStatus(t, res, http.StatusSeeOther)
	if res.Header.Get("Location") != "/login?done=mfa_expired" {
		t.Fatalf("a browser without the pending step: %s", res.Header.Get("Location"))
	}
	// A pending step whose fields were changed (another account, a
	// later expiry) is refused: its signature no longer matches.
	real := b.cookies[mfaCookie]
	parts := strings.Split(real, ".")
	for _, forged := range []string{
		"1" + parts[0] + "." + strings.Join(parts[1:], "."),
		parts[0] + "." + parts[1] + "9." + strings.Join(parts[2:], "."),
	} {
		thief := ts.browser()
		thief.get("/login")
		thief.cookies[mfaCookie] = forged
		res = thief.submit("/login", "/login/mfa", url.Values{"code": {totpAt(t, secret, now)}})
		if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/login?done=mfa_expired" {
			t.Fatalf("a forged pending step %q: %d %s", forged, res.StatusCode, res.Header.Get("Location"))
		}
	}
	// A wrong code stays on the second step.
	res = b.submit("/login", "/login/mfa", url.Values{"code": {"000000"}})
	wantStatus(t, res, http.StatusUnauthorized)
	if !strings.Contains(res.Body, `action="/login/mfa"`) || !strings.Contains(res.Body, "That code is wrong") {
		t.Fatalf("wrong code:\n%s", res.Body)
	}
	res = b.submit("/login", "/login/mfa", url.Values{"code": {totpAt(t, secret, now)}})
	wantStatus(t, res, http.StatusSeeOther)
	if res.Header.Get("Location") != "/profile" || res.cookie(sessionCookie) == nil {
		t.Fatalf("after the code: %s", res.Header.Get("Location"))
	}
	p := b.get("/profile")
	if !strings.Contains(p.Body, "alice authorized") || !strings.Contains(p.Body, "with password and authenticator code") ||
		!strings.Contains(p.Body, "10 recovery codes left") {
		t.Fatalf("profile:\n%s", p.Body)
	}

	// Step-up on the pages: the password form asks for a code too.
	if !strings.Contains(b.get("/profile/password").Body, `name="code"`) {
		t.Fatal("the change-password form has no code field")
	}
	res = b.submit("/profile/password", "/profile/password", url.Values{"current_password": {pw}, "new_password": {"a new passphrase 5"}})
	wantStatus(t, res, http.StatusForbidden)
	if !strings.Contains(res.Body, "Enter a code from your authenticator app.") {
		t.Fatalf("without a code:\n%s", res.Body)
	}
	ts.clockAt(now.Add(30 * time.Second))
	res = b.submit("/profile/mfa/off", "/profile/mfa/off", url.Values{"password": {pw}, "code": {"000000"}})
	wantStatus(t, res, http.StatusForbidden)
	res = b.submit("/profile/mfa/off", "/profile/mfa/off", url.Values{"password": {pw}, "code": {totpAt(t, secret, now.Add(30*time.Second))}})
	wantStatus(t, res, http.StatusSeeOther)
	if p := b.get("/profile?done=mfa_off"); !strings.Contains(p.Body, "Two-factor sign-in is off.") || !strings.Contains(p.Body, `id="mfa-status">Off`) {
		t.Fatalf("profile after turning off:\n%s", p.Body)
	}
	secret, codes = ts.enrolled(t, ts.token("alice", pw))
	now = now.Add(60 * time.Second)
	ts.clockAt(now)

	// The pending step expires after five minutes.
	b2 := ts.browser()
	b2.login("alice", pw)
	ts.clockAt(now.Add(5*time.Minute + time.Second))
	res = b2.submit("/login", "/login/mfa", url.Values{"code": {totpAt(t, secret, now.Add(5*time.Minute))}})
	wantStatus(t, res, http.StatusSeeOther)
	if res.Header.Get("Location") != "/login?done=mfa_expired" {
		t.Fatalf("after five minutes: %s", res.Header.Get("Location"))
	}
	// A recovery code works in its place.
	b3 := ts.browser()
	b3.login("alice", pw)
	res = b3.submit("/login", "/login/mfa", url.Values{"code": {codes[0]}, "recovery": {"1"}})
	wantStatus(t, res, http.StatusSeeOther)
	if !strings.Contains(b3.get("/profile").Body, "9 recovery codes left") {
		t.Fatal("recovery code count not shown")
	}
}

// TestMFAResetNeedsSecondFactor: a password reset by mail does not sign an
// account with two-factor in; signing in still needs a code.
func TestMFAResetNeedsSecondFactor(t *testing.T) {
	ts, sink := newMailServer(t)
	ts.register("alice", "alice@example.com", pw)
	ts.enrolled(t, ts.token("alice", pw))
	b := ts.browser()
	b.submit("/password/forgot", "/password/forgot", url.Values{"login": {"alice"}})
	code := ts.mailTo(t, sink, "alice@example.com").Code()
	res := b.submit("/password/reset", "/password/reset", url.Values{"login": {"alice"}, "code": {code}, "new_password": {"a new passphrase 7"}})
	wantStatus(t, res, http.StatusSeeOther)
	if res.Header.Get("Location") != "/login?done=password_reset_mfa" || res.cookie(sessionCookie) != nil {
		t.Fatalf("after a reset with two-factor on: %s", res.Header.Get("Location"))
	}
	wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {"a new passphrase 7"}}), http.StatusUnauthorized)
}

// TestAdminTurnsOffMFA: an owner who lost the phone and the recovery codes
// is helped by an admin: two-factor goes off, the account's sessions end,
// the owner signs in with the password alone, and both the account's
// activity and the audit list record it. Only admins may.
func TestAdminTurnsOffMFA(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	ts.makeAdmin("root")
	root := ts.token("root", pw)
	tok := ts.token("alice", pw)
	ts.enrolled(t, tok)
	id := strconv.FormatInt(ts.userID("alice"), 10)
	wantStatus(t, ts.send("DELETE", "/admin/api/users/"+id+"/mfa", "", bearer(tok)...), http.StatusForbidden)
	wantStatus(t, ts.send("DELETE", "/admin/api/users/"+id+"/mfa", "", bearer(root)...), http.StatusNoContent)
	wantStatus(t, ts.get("/users/me", bearer(tok)...), http.StatusUnauthorized)
	tok = ts.token("alice", pw)
	if me := ts.get("/users/me", bearer(tok)...).json(t); me["mfa_enabled"] != false {
		t.Fatalf("after the admin's change: %v", me)
	}
	ts.s.acct.FlushEvents()
	if ev := ts.get("/users/me/events", bearer(tok)...).Body; !strings.Contains(ev, "Two-factor turned off by admin root") {
		t.Fatalf("events: %s", ev)
	}
	if audit := ts.get("/admin/api/audit", bearer(root)...).Body; !strings.Contains(audit, `"disable_mfa"`) {
		t.Fatalf("audit: %s", audit)
	}
	wantStatus(t, ts.send("DELETE", "/admin/api/users/"+id+"/mfa", "", bearer(root)...), http.StatusConflict)
}
