package app

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"fiberauth/app/account"
	"fiberauth/app/federation"
	"fiberauth/app/mail/mailtest"
	"fiberauth/app/oidc"
	"fiberauth/app/passkey/passkeytest"
	"fiberauth/db"
)

// instance is another server on ts's database, with a store (and so a
// session cache) of its own: a second instance of a cluster.
func (ts *testServer) instance(t *testing.T) *testServer {
	t.Helper()
	store, err := db.Open(context.Background(), db.Options{Path: ts.path, URL: ts.s.cfg.DatabaseURL})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if err := store.WaitListening(context.Background()); err != nil {
		t.Fatal(err)
	}
	s, err := New(context.Background(), ts.s.cfg, store, ts.s.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return &testServer{t: t, s: s, store: store, path: ts.path}
}

// scene is one account with every artefact a change may void: two
// sessions (A, another device; B, the one that makes the owner's changes),
// a reset code, a verification code, a change of address started by B, a
// passkey being added from B (its ceremony under way), and either a
// pending authenticator set-up started by B (two-factor off) or a pending
// second step in a browser (two-factor on). The account has a passkey too,
// for the changes that remove one.
type scene struct {
	t        *testing.T
	ts       *testServer
	other    *testServer
	sink     *mailtest.Sink
	name     string
	id       int64
	from     []string // X-Forwarded-For of the scene's requests
	password string
	mfa      bool
	recovery []string
	A, B     pair
	reset    string // the reset code
	verify   string // the verification code of the current address
	change   string // the code of B's change of address
	enrolled string // the secret of B's pending set-up
	second   *browser
	secret   string
	// app is an application's session C, authorized from B (its access
	// token, and the code it was exchanged for).
	app                   pair
	appCode               string
	appID, appSecret, cbk string
	passkey               string     // the id of the account's passkey
	pending               *pkBrowser // B's passkey ceremony under way
	options               []byte     // its options
}

// pkClient is an API client with session p's token that keeps cookies (a
// passkey ceremony's) and has an authenticator of its own.
func (sc *scene) pkClient(p pair) *pkBrowser {
	return &pkBrowser{browser: &browser{ts: sc.ts, cookies: map[string]string{}, header: sc.bearer(p)},
		auth: passkeytest.New(pkOrigin)}
}

var sceneCount atomic.Int64

// newScene sets up an account with every artefact.
func newScene(t *testing.T, ts, other *testServer, sink *mailtest.Sink, mfa bool, app [3]string) *scene {
	t.Helper()
	n := sceneCount.Add(1)
	// Requests fail the scene's test, not the whole run.
	mine, theirs := *ts, *other
	mine.t, theirs.t = t, t
	ts, other = &mine, &theirs
	sc := &scene{t: t, ts: ts, other: other, sink: sink, name: fmt.Sprintf("user%03d", n), password: pw, mfa: mfa,
		from: []string{"X-Forwarded-For", fmt.Sprintf("10.%d.%d.%d", n/65536%256, n/256%256, n%256)}}
	ts.register(sc.name, sc.email(), pw)
	sc.id = ts.userID(sc.name)
	sc.verify = ts.mailTo(t, sink, sc.email()).Code()
	if mfa {
		sc.mfa = false
		sc.secret, sc.recovery = ts.enrolled(t, sc.signIn().Access)
		sc.mfa = true
	}
	sc.A, sc.B = sc.signIn(), sc.signIn()
	wantStatus(t, ts.postJSON("/password/forgot", `{"login":"`+sc.name+`"}`, sc.from...), http.StatusAccepted)
	sc.reset = ts.mailTo(t, sink, sc.email()).Code()
	body := `{"new_email":"` + sc.name + `@new.example.com","password":"` + pw + `"` + sc.codeField() + `}`
	wantStatus(t, ts.postJSON("/users/me/email", body, sc.bearer(sc.B)...), http.StatusAccepted)
	sc.change = ts.mailTo(t, sink, sc.name+"@new.example.com").Code()
	if mfa {
		sc.second = ts.browser()
		res := sc.second.login(sc.name, pw)
		if !strings.Contains(res.Body, `action="/login/mfa"`) {
			t.Fatalf("no second step after the password: %d", res.StatusCode)
		}
	} else {
		res := ts.postJSON("/users/me/mfa/totp", ``, sc.bearer(sc.B)...)
		wantStatus(t, res, http.StatusOK)
		sc.enrolled = res.json(t)["secret"].(string)
	}
	// An application signs the person in from session B.
	sc.appID, sc.appSecret, sc.cbk = app[0], app[1], app[2]
	res := ts.get("/authorize?"+url.Values{"response_type": {"code"}, "client_id": {sc.appID}, "redirect_uri": {sc.cbk},
		"scope": {"openid"}}.Encode(), sc.bearer(sc.B)...)
	loc, _ := url.Parse(res.Header.Get("Location"))
	if loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code for the application: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	sc.appCode = loc.Query().Get("code")
	req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(url.Values{"grant_type": {"authorization_code"},
		"code": {sc.appCode}, "redirect_uri": {sc.cbk}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(sc.appID, sc.appSecret)
	tok := ts.do(req)
	wantStatus(t, tok, http.StatusOK)
	sc.app = pair{Access: tok.json(t)["access_token"].(string)}
	sc.passkey, _ = sc.pkClient(sc.B).addPasskey("Scene key")
	sc.unvouched()
	sc.pending = sc.pkClient(sc.B)
	sc.options = sc.pending.options("/users/me/passkeys/options", "")
	// Both instances have both sessions in their caches.
	for _, inst := range []*testServer{ts, other} {
		for _, p := range []pair{sc.A, sc.B} {
			wantStatus(t, inst.get("/users/me", bearer(p.Access)...), http.StatusOK)
		}
	}
	return sc
}

func (sc *scene) email() string { return sc.name + "@example.com" }

func (sc *scene) bearer(p pair) []string { return append(bearer(p.Access), sc.from...) }

// code is a recovery code for a step-up or a sign-in (two-factor on).
func (sc *scene) code() string {
	c := sc.recovery[0]
	sc.recovery = sc.recovery[1:]
	return c
}

func (sc *scene) codeField() string {
	if !sc.mfa {
		return ""
	}
	return `,"code":"` + sc.code() + `"`
}

func (sc *scene) signIn() pair {
	f := url.Values{"username": {sc.name}, "password": {sc.password}}
	if sc.mfa {
		f.Set("otp", sc.code())
	}
	return sc.ts.pairFrom(sc.ts.postForm("/token", f, sc.from...))
}

// alive tells whether a session still lives, from the database: its
// refresh token, introspected.
func (sc *scene) alive(p pair) bool {
	res := sc.ts.postForm("/introspect", url.Values{"token": {p.Refresh}}, bearer(introspectionSecret)...)
	return res.json(sc.t)["active"] == true
}

// adminToken signs the scene's admin in.
func (sc *scene) admin() []string {
	return bearer(sc.ts.token("root", pw))
}

// act makes the change ch, as its owner (from session B) or an admin
// would.
func (sc *scene) act(ch account.Change) {
	t, ts := sc.t, sc.ts
	t.Helper()
	user := fmt.Sprintf("/admin/api/users/%d", sc.id)
	switch ch {
	case account.ChangePassword:
		next := "a changed passphrase 7"
		wantStatus(t, ts.postJSON("/users/me/password", `{"current_password":"`+sc.password+`","new_password":"`+next+`"`+sc.codeField()+`}`,
			sc.bearer(sc.B)...), http.StatusNoContent)
		sc.password = next
	case account.ChangePasswordReset:
		next := "a reset passphrase 7"
		wantStatus(t, ts.postJSON("/password/reset", `{"login":"`+sc.name+`","code":"`+sc.reset+`","new_password":"`+next+`"}`, sc.from...),
			http.StatusNoContent)
		sc.password = next
	case account.ChangeEmailVerified:
		wantStatus(t, ts.postJSON("/users/me/email/verify", `{"code":"`+sc.verify+`"}`, sc.bearer(sc.B)...), http.StatusNoContent)
	case account.ChangeEmailVerifiedMail, account.ChangeEmailDisowned:
		// The address's owner is shown what was set up before, and says
		// whether it is theirs.
		b := ts.browser()
		res := b.submit("/email/verify", "/email/verify", url.Values{"login": {sc.name}, "code": {sc.verify}})
		wantStatus(t, res, http.StatusOK)
		f := hidden(res.Body)
		f.Set("keep", map[bool]string{true: "not-mine", false: "mine"}[ch == account.ChangeEmailDisowned])
		wantStatus(t, b.submit("/email/verify", "/email/verify", f), http.StatusSeeOther)
	case account.ChangeEmail:
		wantStatus(t, ts.postJSON("/users/me/email/verify", `{"code":"`+sc.change+`"}`, sc.bearer(sc.B)...), http.StatusNoContent)
	case account.ChangeMFAOn:
		code := totpAt(t, sc.enrolled, ts.s.acct.Now())
		wantStatus(t, ts.postJSON("/users/me/mfa/totp/confirm", `{"code":"`+code+`","password":"`+sc.password+`"}`, sc.bearer(sc.B)...),
			http.StatusOK)
	case account.ChangeMFAOff:
		wantStatus(t, ts.send("DELETE", "/users/me/mfa/totp", `{"password":"`+sc.password+`","code":"`+sc.code()+`"}`, sc.bearer(sc.B)...),
			http.StatusNoContent)
	case account.ChangeMFAOffByAdmin:
		wantStatus(t, ts.send("DELETE", user+"/mfa", ``, sc.admin()...), http.StatusNoContent)
	case account.ChangeRecoveryCodes:
		wantStatus(t, ts.postJSON("/users/me/mfa/recovery-codes", `{"password":"`+sc.password+`","code":"`+sc.code()+`"}`, sc.bearer(sc.B)...),
			http.StatusOK)
	case account.ChangeRole:
		wantStatus(t, ts.send("PUT", user+"/role", `{"role":"premium"}`, sc.admin()...), http.StatusNoContent)
	case account.ChangeSessionEnded:
		wantStatus(t, ts.postForm("/revoke", url.Values{"token": {sc.B.Access}}, sc.from...), http.StatusOK)
	case account.ChangeRefreshReused:
		spent := sc.B.Refresh
		sc.B = ts.pairFrom(ts.refresh(spent))
		now := time.Now()
		ts.clockAt(now.Add(ts.s.cfg.ReuseGrace + time.Second))
		wantOAuthError(t, ts.refresh(spent), http.StatusBadRequest, "invalid_grant")
		ts.s.acct.Now = time.Now
	case account.ChangeSignOutEverywhere:
		wantStatus(t, ts.send("DELETE", "/users/me/sessions", ``, sc.bearer(sc.B)...), http.StatusNoContent)
	case account.ChangeSessionsByAdmin:
		wantStatus(t, ts.send("DELETE", user+"/sessions", ``, sc.admin()...), http.StatusNoContent)
	case account.ChangeAppRevoked:
		wantStatus(t, ts.send("DELETE", "/users/me/apps/"+sc.appID, ``, sc.bearer(sc.B)...), http.StatusNoContent)
	case account.ChangeCodeReplayed:
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(url.Values{"grant_type": {"authorization_code"},
			"code": {sc.appCode}, "redirect_uri": {sc.cbk}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(sc.appID, sc.appSecret)
		wantStatus(t, ts.do(req), http.StatusBadRequest)
	case account.ChangeSecondStepDone:
		b := ts.browser()
		wantStatus(t, b.login(sc.name, sc.password), http.StatusOK)
		wantStatus(t, b.submit("/login", "/login/mfa", url.Values{"code": {sc.code()}, "recovery": {"1"}}), http.StatusSeeOther)
	case account.ChangePasskeyAdded:
		sc.pkClient(sc.B).addPasskey("Another key")
	case account.ChangePasskeyRemoved:
		wantStatus(t, ts.send("DELETE", "/users/me/passkeys/"+sc.passkey, `{"password":"`+sc.password+`"`+sc.codeField()+`}`, sc.bearer(sc.B)...),
			http.StatusNoContent)
	case account.ChangePasskeyByAdmin:
		wantStatus(t, ts.send("DELETE", user+"/passkeys/"+sc.passkey, ``, sc.admin()...), http.StatusNoContent)
	case account.ChangeProviderLinked:
		sc.link("acme")
	case account.ChangeProviderUnlinked:
		sc.link("acme")
		wantStatus(t, ts.send("DELETE", "/users/me/providers/acme", ``, sc.bearer(sc.B)...), http.StatusNoContent)
	case account.ChangeAccountDeleted:
		wantStatus(t, ts.send("DELETE", "/users/me", `{"password":"`+sc.password+`"`+sc.codeField()+`}`, sc.bearer(sc.B)...),
			http.StatusNoContent)
	default:
		t.Fatalf("no way to make the change %s", ch)
	}
}

// unvouched links the account, not verified yet, to an identity at the
// provider "early", as an account made with an address the provider did
// not vouch for is.
func (sc *scene) unvouched() {
	t, ts := sc.t, sc.ts
	t.Helper()
	ctx := context.Background()
	prov, err := ts.s.fed.Provider(ctx, "early")
	if err != nil {
		if prov, err = ts.s.fed.Add(ctx, account.CommandLine, federation.ProviderInput{Name: "early",
			Issuer: "https://early.example.com", ClientID: "fiberauth"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ts.store.LinkIdentity(ctx, db.Identity{Provider: prov.Name, Issuer: prov.Issuer, Subject: "early-" + sc.name, UserID: sc.id,
		CreatedAt: time.Now()}, db.Void{}, db.Event{}); err != nil {
		t.Fatal(err)
	}
	if id, err := ts.store.IdentityOf(ctx, prov.Issuer, "early-"+sc.name); err != nil || id.Vouched {
		t.Fatalf("an identity linked before the address was verified: %+v, %v", id, err)
	}
	// And a passkey added then (the scene's own passkey was too).
	if err := ts.store.AddPasskey(ctx, db.Passkey{ID: "early-" + sc.name, UserID: sc.id, CredentialID: []byte("early-" + sc.name),
		PublicKey: []byte{1}, AAGUID: make([]byte, 16), Attestation: "none", Name: "Early key", CreatedAt: time.Now()}, 10, db.Void{}, db.Event{}); err != nil {
		t.Fatal(err)
	}
	if keys, _, err := ts.store.Unproven(ctx, sc.id); err != nil || len(keys) != 2 {
		t.Fatalf("passkeys added before the address was verified: %+v, %v", keys, err)
	}
}

// unvouchedGone says whether the scene's identity at "early" was
// forgotten.
func (sc *scene) unvouchedGone() bool {
	ctx := context.Background()
	_, err := sc.ts.store.IdentityOf(ctx, "https://early.example.com", "early-"+sc.name)
	if err != nil && err != db.ErrNotFound {
		sc.t.Fatal(err)
	}
	keys, err2 := sc.ts.store.Passkeys(ctx, sc.id)
	if err2 != nil {
		sc.t.Fatal(err2)
	}
	early := false
	for _, k := range keys {
		early = early || k.ID == "early-"+sc.name
	}
	if (err == db.ErrNotFound) == early {
		sc.t.Errorf("the identity linked before the address was proven is gone: %v; the passkey added then is gone: %v",
			err == db.ErrNotFound, !early)
	}
	return err == db.ErrNotFound && !early
}

// link links the account, from session B, to an identity at the
// provider name (added here if it is not yet), as the profile's "Link"
// does once the provider has answered.
func (sc *scene) link(name string) {
	t, ts := sc.t, sc.ts
	t.Helper()
	ctx := context.Background()
	prov, err := ts.s.fed.Provider(ctx, name)
	if err != nil {
		if prov, err = ts.s.fed.Add(ctx, account.CommandLine, federation.ProviderInput{Name: name,
			Issuer: "https://sso.example.com", ClientID: "fiberauth"}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := ts.s.acct.Authenticate(ctx, sc.B.Access)
	if err != nil {
		t.Fatal(err)
	}
	id := account.Identity{Issuer: prov.Issuer, Subject: "sub-" + sc.name, Email: sc.email(), EmailVerified: true}
	if err := ts.s.acct.LinkIdentity(ctx, account.Client{}, p, prov, id); err != nil {
		t.Fatal(err)
	}
}

// me is what an instance says of a token at /users/me.
type me struct {
	Status               int
	Role, Email          string
	Verified, TwoFactors bool
}

func (sc *scene) me(inst *testServer, p pair) me {
	res := inst.get("/users/me", bearer(p.Access)...)
	if res.StatusCode != http.StatusOK {
		return me{Status: res.StatusCode}
	}
	m := res.json(sc.t)
	return me{Status: 200, Role: m["role"].(string), Email: m["email"].(string), Verified: m["email_verified"].(bool),
		TwoFactors: m["mfa_enabled"].(bool)}
}

// truth is what /users/me must say of p, from the database.
func (sc *scene) truth(p pair) me {
	if !sc.alive(p) {
		return me{Status: http.StatusUnauthorized}
	}
	u, err := sc.ts.store.UserByID(context.Background(), sc.id)
	if err != nil {
		sc.t.Fatal(err)
	}
	return me{Status: 200, Role: u.Role, Email: u.Email, Verified: u.EmailVerified, TwoFactors: u.MFAEnabled}
}

// cachesAgree checks that both instances say what the database says, at
// once on the instance that made the change and within a second on the
// other (SQLite: once it has read the notices).
func (sc *scene) cachesAgree() bool {
	for _, p := range []pair{sc.A, sc.B} {
		if sc.me(sc.ts, p) != sc.truth(p) {
			return false
		}
	}
	deadline := time.Now().Add(time.Second)
	for {
		sc.other.store.PollNotices(context.Background())
		ok := true
		for _, p := range []pair{sc.A, sc.B} {
			ok = ok && sc.me(sc.other, p) == sc.truth(p)
		}
		if ok {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wantEnds is what each change must end: the specification the account
// core's table is held to, written out again here so that a row changed
// there fails this test. Ending a session ends what is bound to it.
var wantEnds = map[account.Change]account.Ends{
	account.ChangePassword:          {Sessions: db.OtherSessions, ResetCode: true, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Cached: true},
	account.ChangePasswordReset:     {Sessions: db.AllSessions, ResetCode: true, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Unvouched: true, Cached: true},
	account.ChangeEmailVerified:     {VerifyCode: true, Cached: true},
	account.ChangeEmailVerifiedMail: {VerifyCode: true, Cached: true},
	account.ChangeEmailDisowned:     {Sessions: db.AllSessions, ResetCode: true, VerifyCode: true, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Unvouched: true, Disown: true, Cached: true},
	account.ChangeEmail:             {ResetCode: true, VerifyCode: true, EmailChange: true, Cached: true},
	account.ChangeMFAOn:             {Sessions: db.OtherSessions, Enrolment: true, Ceremonies: true, SecondSteps: true, Cached: true},
	account.ChangeMFAOff:            {ResetCode: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Cached: true},
	account.ChangeMFAOffByAdmin:     {Sessions: db.AllSessions, ResetCode: true, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Cached: true},
	account.ChangeRecoveryCodes:     {SecondSteps: true, Cached: true},
	account.ChangeRole:              {Cached: true},
	account.ChangeSessionEnded:      {Sessions: db.ThisSession, Cached: true},
	account.ChangeRefreshReused:     {Sessions: db.ThisSession, Cached: true},
	account.ChangeSignOutEverywhere: {Sessions: db.OtherSessions, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Cached: true},
	account.ChangeSessionsByAdmin:   {Sessions: db.AllSessions, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Cached: true},
	account.ChangeAccountDeleted:    {Sessions: db.AllSessions, ResetCode: true, VerifyCode: true, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Unvouched: true, Cached: true},
	// A passkey added is one more way in: it ends nothing. One removed
	// ends the other sessions (whoever held the device may hold one) and
	// the passkey ceremonies under way; by an admin (a lost or stolen
	// device), every session and what hangs on them.
	account.ChangePasskeyAdded:   {},
	account.ChangePasskeyRemoved: {Sessions: db.OtherSessions, Ceremonies: true, Cached: true},
	account.ChangePasskeyByAdmin: {Sessions: db.AllSessions, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Cached: true},
	account.ChangeSecondStepDone: {SecondSteps: true, Cached: true},
	account.ChangeAppRevoked:     {Sessions: db.AppSessions, Cached: true},
	account.ChangeCodeReplayed:   {Sessions: db.ThisSession, Cached: true},
	// A provider linked is one more way in; one unlinked ends the other
	// sessions (whoever holds that provider account may hold one) and the
	// passkey ceremonies under way, as a passkey removed does.
	account.ChangeProviderLinked:   {},
	account.ChangeProviderUnlinked: {Sessions: db.OtherSessions, Ceremonies: true, Cached: true},
}

// TestWhatEndsWhat plays every change of the table against every artefact,
// with two-factor off and on, on both engines, and checks that each
// artefact ended exactly when the specification says (or when the session
// it was bound to ended).
func TestWhatEndsWhat(t *testing.T) {
	if len(account.Table) != len(wantEnds) {
		t.Errorf("the table has %d changes, the specification %d", len(account.Table), len(wantEnds))
	}
	for _, r := range account.Table {
		if want, ok := wantEnds[r.Change]; !ok || want != r.Ends {
			t.Errorf("%s: the table says %+v, the specification %+v", r.Label, r.Ends, want)
		}
	}
	onEngines(t, func(t *testing.T, env ...string) {
		sink := mailtest.Start(t)
		ts := newTestServer(t, append(append([]string{"SMTP_URL", sink.URL(), "INTROSPECTION_TOKENS", introspectionSecret,
			"TRUSTED_PROXIES", "0.0.0.0/0", "LOGIN_FAILURES_PER_IP", "1000000"}, passkeyEnv...), env...)...)
		ts.s.outbox.SetBackoff(10 * time.Millisecond)
		ts.makeAdmin("root")
		other := ts.instance(t)
		cbk := "http://127.0.0.1:9/callback"
		c, secret, err := ts.s.oidc.CreateClient(context.Background(), account.CommandLine, oidc.ClientInput{Name: "Scene app",
			RedirectURIs: []string{cbk}, FirstParty: true})
		if err != nil {
			t.Fatal(err)
		}
		app := [3]string{c.ID, secret, cbk}
		for _, rule := range account.Table {
			for _, mfa := range []bool{false, true} {
				needsOn := rule.Change == account.ChangeMFAOff || rule.Change == account.ChangeMFAOffByAdmin || rule.Change == account.ChangeRecoveryCodes ||
					rule.Change == account.ChangeSecondStepDone
				if (rule.Change == account.ChangeMFAOn && mfa) || (needsOn && !mfa) {
					continue
				}
				// Two plays: a change of address, once confirmed, voids the
				// reset code, and a reset voids the change of address; each
				// is checked last in a play of its own.
				for _, last := range []string{"reset", "change"} {
					name := fmt.Sprintf("%s/mfa=%v/%s", rule.Change, mfa, last)
					t.Run(name, func(t *testing.T) {
						playRule(t, newScene(t, ts, other, sink, mfa, app), rule, last)
					})
				}
			}
		}
	})
}

func playRule(t *testing.T, sc *scene, rule account.Rule, last string) {
	ts := sc.ts
	sc.act(rule.Change)
	ts.flushMail()
	e := wantEnds[rule.Change]
	// For the changes that end an application's session, "that one" is
	// the application's (C), not B.
	appChange := rule.Change == account.ChangeAppRevoked || rule.Change == account.ChangeCodeReplayed
	thisEnds := !appChange && (e.Sessions == db.ThisSession || e.Sessions == db.AllSessions)
	othersEnd := e.Sessions == db.OtherSessions || e.Sessions == db.AllSessions
	// C was authorized from B: it ends with B, with every session, or as
	// the application's.
	appEnds := thisEnds || e.Sessions == db.AllSessions || e.Sessions == db.AppSessions || (appChange && e.Sessions == db.ThisSession)
	check := func(what string, want, got bool) {
		t.Helper()
		if want != got {
			t.Errorf("%s: %s ended = %v, want %v (table: %+v)", rule.Label, what, got, want, e)
		}
	}
	bAlive := sc.alive(sc.B)
	check("the sign-in linked and the passkey added before the address was proven", e.Unvouched, sc.unvouchedGone())
	if u, err := ts.store.UserByID(context.Background(), sc.id); err == nil {
		check("the password and two-factor set before the address was proven", e.Disown, u.PasswordHash == "" && !u.MFAEnabled)
	} else if rule.Change != account.ChangeAccountDeleted {
		t.Fatal(err)
	}
	if last == "reset" {
		check("session B (the one that made the change)", thisEnds, !bAlive)
		check("session A (another one)", othersEnd, !sc.alive(sc.A))
		res := ts.postForm("/introspect", url.Values{"token": {sc.app.Access}}, bearer(introspectionSecret)...)
		check("the application's session C (authorized from B)", appEnds, res.json(t)["active"] != true)
		if e.Cached {
			if !sc.cachesAgree() {
				t.Errorf("%s: an instance still serves what was cached before the change", rule.Label)
			}
		}
		if sc.mfa {
			res := sc.second.submit("/login", "/login/mfa", url.Values{"code": {"000000"}})
			ended := res.StatusCode == http.StatusSeeOther && res.Header.Get("Location") == "/login?done=mfa_expired"
			if !ended && res.StatusCode != http.StatusUnauthorized {
				t.Fatalf("second step: %d %s", res.StatusCode, res.Header.Get("Location"))
			}
			check("the pending second step", e.SecondSteps, ended)
		} else {
			ended := !bAlive || !strings.Contains(ts.get("/profile/mfa", bearer(sc.B.Access)...).Body, `id="secret"`)
			check("B's pending authenticator set-up", e.Enrolment || !bAlive, ended)
		}
		// B's passkey ceremony under way, finished now.
		ended := !bAlive
		if bAlive {
			sc.pending.header = sc.bearer(sc.B)
			cred, _, err := sc.pending.auth.Create(sc.options)
			if err != nil {
				t.Fatal(err)
			}
			res := sc.pending.call("POST", "/users/me/passkeys", answer(cred))
			if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusBadRequest {
				t.Fatalf("finishing the passkey ceremony: %d %s", res.StatusCode, res.Body)
			}
			ended = res.StatusCode == http.StatusBadRequest
		}
		check("B's passkey ceremony under way", e.Ceremonies || !bAlive, ended)
		// The verification code of the current address, as the link in
		// its mail does: by name, without a session.
		// (A right code may first be answered with what was set up
		// before the address was proven: 200.)
		res = ts.browser().submit("/email/verify", "/email/verify", url.Values{"login": {sc.name}, "code": {sc.verify}})
		if res.StatusCode != http.StatusSeeOther && res.StatusCode != http.StatusBadRequest && res.StatusCode != http.StatusOK {
			t.Fatalf("verifying the address: %d %s", res.StatusCode, res.Body)
		}
		check("the verification code", e.VerifyCode, res.StatusCode == http.StatusBadRequest)
	}
	switch last {
	case "reset":
		res := ts.postJSON("/password/reset", `{"login":"`+sc.name+`","code":"`+sc.reset+`","new_password":"the last passphrase 9"}`, sc.from...)
		if res.StatusCode != http.StatusNoContent && res.StatusCode != http.StatusBadRequest {
			t.Fatalf("reset: %d %s", res.StatusCode, res.Body)
		}
		check("the reset code", e.ResetCode, res.StatusCode == http.StatusBadRequest)
	case "change":
		ended := !bAlive
		if bAlive {
			res := ts.postJSON("/users/me/email/verify", `{"code":"`+sc.change+`"}`, sc.bearer(sc.B)...)
			if res.StatusCode != http.StatusNoContent && res.StatusCode != http.StatusBadRequest {
				t.Fatalf("confirming the change: %d %s", res.StatusCode, res.Body)
			}
			ended = res.StatusCode == http.StatusBadRequest
		}
		check("the pending change of address", e.EmailChange || !bAlive, ended)
	}
}

// TestReadmeTable: the README's "What ends what" is the table.
func TestReadmeTable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "## What ends what\n") || !strings.Contains(string(b), account.TableMarkdown()) {
		t.Fatalf("README.md's section \"What ends what\" must hold the table as the account core has it:\n%s", account.TableMarkdown())
	}
}
