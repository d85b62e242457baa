package app

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"fiberauth/app/mail/mailtest"
	"fiberauth/app/oidc"
)

// What an account had before its address was proven, and a provider's
// deletion: nothing survives that should not (found by an attack review).

// TestDisownAfterAChange: the squatter removes the passkey between the
// question and the owner's answer: the answer no longer fits what the
// account has, so the owner is asked again (with the password and
// two-factor still listed), and "No" then takes everything.
func TestDisownAfterAChange(t *testing.T) {
	ts, sink := newMailServer(t, append([]string{"LOGIN_FAILURES_PER_IP", "1000000"}, passkeyEnv...)...)
	ctx := context.Background()
	b := ts.pkBrowser(nil)
	res := b.submit("/register", "/register", url.Values{"username": {"squatter"}, "email": {"victim@example.com"}, "password": {pw}})
	wantStatus(t, res, http.StatusSeeOther)
	b.page("/profile")
	keyID, _ := b.addPasskey("Squatter's key")
	tok := ts.token("squatter", pw)
	secret, _ := ts.enrolled(t, tok)
	t1 := time.Now().Add(30 * time.Second)
	ts.clockAt(t1)
	res = ts.postForm("/token", url.Values{"username": {"squatter"}, "password": {pw}, "otp": {totpAt(t, secret, t1)}})
	wantStatus(t, res, http.StatusOK)
	tok, _ = res.json(t)["access_token"].(string)

	code := ts.verifyCode(t, sink, "victim@example.com")
	victim := ts.browser()
	asked := victim.submit("/email/verify", "/email/verify", url.Values{"login": {"victim@example.com"}, "code": {code}})
	wantStatus(t, asked, http.StatusOK)
	if !strings.Contains(asked.Body, "Did you set them up?") {
		t.Fatalf("no question: %s", asked.Body)
	}
	// The squatter removes the passkey meanwhile (password + current code).
	later := t1.Add(30 * time.Second)
	ts.clockAt(later)
	res = ts.send("DELETE", "/users/me/passkeys/"+keyID, `{"password":"`+pw+`","code":"`+totpAt(t, secret, later)+`"}`, bearer(tok)...)
	wantStatus(t, res, http.StatusNoContent)

	f := hidden(asked.Body)
	f.Set("keep", "not-mine")
	again := victim.submit("/email/verify", "/email/verify", f)
	wantStatus(t, again, http.StatusOK)
	if strings.Contains(again.Body, "Squatter&#39;s key") || !strings.Contains(again.Body, "<li>a password</li>") ||
		!strings.Contains(again.Body, "two-factor") {
		t.Fatalf("asked again with: %s", again.Body)
	}
	if u, _ := ts.store.UserByUsernameKey(ctx, "squatter"); u.EmailVerified {
		t.Fatal("verified by an answer to a question that no longer fits")
	}
	f = hidden(again.Body)
	f.Set("keep", "not-mine")
	res = victim.submit("/email/verify", "/email/verify", f)
	wantStatus(t, res, http.StatusSeeOther)
	u, _ := ts.store.UserByUsernameKey(ctx, "squatter")
	if !u.EmailVerified || u.PasswordHash != "" || u.MFAEnabled {
		t.Errorf("after the owner said not-mine: verified %v, password %v, two-factor %v", u.EmailVerified, u.PasswordHash != "", u.MFAEnabled)
	}
	if res := ts.get("/users/me", bearer(tok)...); res.StatusCode == http.StatusOK {
		t.Errorf("the squatter's session lives on after the owner said not-mine: %s", res.Body)
	}
}

// TestDisownLeavesNothing: once the address's owner disowns what was set
// up before, nothing the squatter held works: a refresh token, an
// application's offline session, an authorization code not yet exchanged,
// a pending change of address, the browser's session.
func TestDisownLeavesNothing(t *testing.T) {
	sink := mailtest.Start(t)
	ts, base := issuer(t, append([]string{"SMTP_URL", sink.URL(), "LOGIN_FAILURES_PER_IP", "1000000"}, passkeyEnv...)...)
	ts.s.outbox.SetBackoff(10 * time.Millisecond)
	b := ts.pkBrowser(nil)
	res := b.submit("/register", "/register", url.Values{"username": {"squatter"}, "email": {"victim@example.com"}, "password": {pw}})
	wantStatus(t, res, http.StatusSeeOther)
	b.page("/profile")
	b.addPasskey("Squatter's key")
	// A refresh token (password grant).
	res = ts.postForm("/token", url.Values{"username": {"squatter"}, "password": {pw}})
	wantStatus(t, res, http.StatusOK)
	rt, _ := res.json(t)["refresh_token"].(string)
	tok, _ := res.json(t)["access_token"].(string)
	// An application's offline session.
	cb := &rpCallback{}
	rp := httptest.NewServer(http.HandlerFunc(cb.handler))
	defer rp.Close()
	redirect := rp.URL + "/callback"
	id, secret := ts.client(t, oidc.ClientInput{Name: "Notes", RedirectURIs: []string{redirect}, FirstParty: true})
	a := newAgent(t, base, "squatter")
	verifier, challenge := pkce()
	got := a.authorize(id, redirect, url.Values{"scope": {"openid profile email offline_access"}, "nonce": {"n"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}})
	status, apptok := exchange(t, base, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")},
		"redirect_uri": {redirect}, "code_verifier": {verifier}}, id, secret)
	if status != 200 {
		t.Fatalf("exchange %d %v", status, apptok)
	}
	// An unused authorization code.
	verifier2, challenge2 := pkce()
	got2 := a.authorize(id, redirect, url.Values{"scope": {"openid"}, "nonce": {"n"},
		"code_challenge": {challenge2}, "code_challenge_method": {"S256"}})
	// A pending change of address, from the bearer session.
	res = ts.postJSON("/users/me/email", `{"new_email":"squatter@evil.example","password":"`+pw+`"}`, bearer(tok)...)
	wantStatus(t, res, http.StatusAccepted)
	change := ts.mailTo(t, sink, "squatter@evil.example").Code()

	code := ts.verifyCode(t, sink, "victim@example.com")
	victim := ts.browser()
	asked := victim.submit("/email/verify", "/email/verify", url.Values{"login": {"victim@example.com"}, "code": {code}})
	wantStatus(t, asked, http.StatusOK)
	f := hidden(asked.Body)
	f.Set("keep", "not-mine")
	wantStatus(t, victim.submit("/email/verify", "/email/verify", f), http.StatusSeeOther)

	if r := ts.postForm("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}); r.StatusCode == 200 {
		t.Error("the refresh token lives on")
	}
	if st, _ := exchange(t, base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {apptok["refresh_token"].(string)}}, id, secret); st == 200 {
		t.Error("the application's offline session lives on")
	}
	if st, _ := exchange(t, base, url.Values{"grant_type": {"authorization_code"}, "code": {got2.Get("code")},
		"redirect_uri": {redirect}, "code_verifier": {verifier2}}, id, secret); st == 200 {
		t.Error("an authorization code not yet exchanged still works")
	}
	if r := ts.postJSON("/users/me/email/verify", `{"code":"`+change+`"}`, bearer(tok)...); r.StatusCode < 400 {
		t.Errorf("the pending change of address was confirmed: %d", r.StatusCode)
	}
	if r, _ := a.get(base + "/profile"); r.Request.URL.Path == "/profile" {
		t.Error("the browser's session lives on")
	}
}

// TestPasskeyCeremonyPeriods: the ceremonies an address begins are
// counted in periods of LOGIN_WINDOW: a steady visitor below the limit is
// never refused, and one past it waits for the next period only.
func TestPasskeyCeremonyPeriods(t *testing.T) {
	ts := newTestServer(t, append([]string{"PASSKEY_CEREMONIES_PER_IP", "10", "TRUSTED_PROXIES", "0.0.0.0"}, passkeyEnv...)...)
	from := func(addr string) response {
		req := httptest.NewRequest("POST", "/passkeys/login/options", strings.NewReader(""))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		req.Header.Set("X-Forwarded-For", addr)
		return ts.do(req)
	}
	t0 := time.Now()
	// One login page every 2 minutes: at most 8 in any 15-minute window
	// (the limit is 10).
	for i := 0; i < 20; i++ {
		ts.clockAt(t0.Add(time.Duration(i) * 2 * time.Minute))
		res := from("203.0.113.9")
		if res.StatusCode != http.StatusOK {
			t.Errorf("ceremony %d at t+%dm refused (%d, Retry-After %s): at most 8 began in any 15-minute window", i+1, i*2, res.StatusCode, res.Header.Get("Retry-After"))
		}
	}
	// A burst from another address: 10, then refused until the period
	// ends, then served again.
	start := time.Unix(0, (t0.UnixNano()/int64(15*time.Minute)+1)*int64(15*time.Minute)).Add(time.Minute)
	ts.clockAt(start)
	for i := 0; i < 10; i++ {
		wantStatus(t, from("203.0.113.10"), http.StatusOK)
	}
	res := from("203.0.113.10")
	wantStatus(t, res, http.StatusTooManyRequests)
	if ra := res.Header.Get("Retry-After"); ra != "840" {
		t.Errorf("Retry-After %q, want the 840 s left of the period", ra)
	}
	ts.clockAt(start.Add(14 * time.Minute))
	wantStatus(t, from("203.0.113.10"), http.StatusOK)
}

// TestProviderDeletionLeavesNothing: deleting a sign-in provider voids a
// sign-in with it waiting at the second step, and ends the applications'
// sessions authorized from a session signed in with it, offline access or
// not.
func TestProviderDeletionLeavesNothing(t *testing.T) {
	rig := newFedRig(t)
	rig.r.register("frank", "frank@example.com", pw)
	rig.person("frank", "frank@example.com", true)
	a := rig.agent("frank")
	a.open(rig.rBase + "/login/acme")
	a.base, a.user = rig.rBase, "frank"
	_, body := a.open(rig.rBase + "/login?next=/login/link")
	a.post("/login/link", hidden(body))
	secret, _ := rig.r.enrolled(t, rig.r.token("frank", pw))
	pending := rig.agent("frank")
	res, body := pending.open(rig.rBase + "/login/acme")
	wantPage(t, res, body, http.StatusOK, "/login/acme/callback", `action="/login/mfa"`)

	rig.person("olga", "olga@example.com", true)
	cb := &rpCallback{}
	rp := httptest.NewServer(http.HandlerFunc(cb.handler))
	defer rp.Close()
	redirect := rp.URL + "/callback"
	id, clientSecret := rig.r.client(t, oidc.ClientInput{Name: "Notes", RedirectURIs: []string{redirect}, FirstParty: true})
	b := rig.agent("olga")
	res, mine := b.open(rig.rBase + "/login/acme")
	wantPage(t, res, mine, http.StatusOK, "/profile", "with Acme SSO")
	b.base = rig.rBase
	verifier, challenge := pkce()
	got := b.authorize(id, redirect, url.Values{"scope": {"openid profile email offline_access"}, "nonce": {"n"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}})
	status, tok := exchange(t, rig.rBase, url.Values{"grant_type": {"authorization_code"}, "code": {got.Get("code")},
		"redirect_uri": {redirect}, "code_verifier": {verifier}}, id, clientSecret)
	if status != http.StatusOK || tok["refresh_token"] == nil {
		t.Fatalf("exchange %d %v", status, tok)
	}

	rig.r.mustCLI("", "providers", "delete", "acme")
	rig.r.seeChange(func() bool { r, _ := b.get(rig.rBase + "/profile"); return r.Request.URL.Path == "/login" })
	if status, _ := exchange(t, rig.rBase, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}},
		id, clientSecret); status == http.StatusOK {
		t.Error("an application's offline session authorized from a sign-in with the deleted provider lives on")
	}
	f := hidden(body)
	f.Set("code", totpAt(t, secret, time.Now().Add(30*time.Second)))
	res, _ = pending.postAt(rig.rBase, "/login/mfa", f)
	if res.Request.URL.Path == "/profile" {
		t.Error("a sign-in with the deleted provider, waiting at the second step, went through")
	}
}
