package app

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"fiberauth/app/config"
	"fiberauth/app/mail/mailtest"
	"fiberauth/db"
)

// serveOn starts a test server listening on a loopback port and reached
// as host (two hosts keep two services' cookies apart in one cookie jar,
// as two sites' are in a browser); env is made from its base URL.
func serveOn(t *testing.T, host string, env func(base string) []string) (*testServer, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	base := "http://" + host + ":" + port
	ts := newTestServer(t, env(base)...)
	go ts.s.App().Listener(ln)
	t.Cleanup(func() { ts.s.App().Shutdown() })
	return ts, base
}

// listen serves ts on a loopback port and returns its base URL.
func listen(t *testing.T, ts *testServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ts.s.App().Listener(ln)
	t.Cleanup(func() { ts.s.App().Shutdown() })
	return "http://" + ln.Addr().String()
}

// fedRig is this service (R, at localhost) signing people in with another
// instance of it (P, at 127.0.0.1, with a database of its own) as the
// OpenID Connect provider "acme", registered there as an application
// through P's command line and here through R's.
type fedRig struct {
	t            *testing.T
	p, r         *testServer
	pBase, rBase string
	pMail, rMail *mailtest.Sink
	clientID     string
	secret       string
}

var (
	cliClientID     = regexp.MustCompile(`client_id: (\S+)`)
	cliClientSecret = regexp.MustCompile(`client_secret: (\S+)`)
)

func newFedRig(t *testing.T, env ...string) *fedRig {
	t.Helper()
	rig := &fedRig{t: t, pMail: mailtest.Start(t), rMail: mailtest.Start(t)}
	rig.p, rig.pBase = serveOn(t, "127.0.0.1", func(base string) []string {
		return append([]string{"ISSUER", base, "PUBLIC_URL", base, "SMTP_URL", rig.pMail.URL(), "ACCESS_TOKEN_EXPIRE_MINUTES", "1"}, env...)
	})
	rig.r, rig.rBase = serveOn(t, "localhost", func(base string) []string {
		return append([]string{"PUBLIC_URL", base, "SMTP_URL", rig.rMail.URL()}, env...)
	})
	rig.p.s.outbox.SetBackoff(10 * time.Millisecond)
	rig.r.s.outbox.SetBackoff(10 * time.Millisecond)
	rig.clientID, rig.secret = rig.register("acme")
	out := rig.r.mustCLI(rig.secret+"\n", "providers", "add", "--name", "acme", "--display-name", "Acme SSO", "--issuer", rig.pBase,
		"--client-id", rig.clientID)
	if !strings.Contains(out, rig.rBase+"/login/acme/callback") {
		t.Fatalf("providers add does not show the redirect URI to register:\n%s", out)
	}
	return rig
}

// register makes R an application of P (first-party: no consent page)
// for the provider name, through P's command line.
func (rig *fedRig) register(name string) (string, string) {
	out := rig.p.mustCLI("", "clients", "create", "--name", "Team wiki "+name, "--redirect-uri", rig.rBase+"/login/"+name+"/callback",
		"--first-party")
	id, secret := cliClientID.FindStringSubmatch(out), cliClientSecret.FindStringSubmatch(out)
	if id == nil || secret == nil {
		rig.t.Fatalf("clients create said:\n%s", out)
	}
	return id[1], secret[1]
}

// person registers name at the provider, its address verified there or
// not.
func (rig *fedRig) person(name, email string, verified bool) {
	rig.t.Helper()
	rig.p.register(name, email, pw)
	if verified {
		code := rig.p.mailTo(rig.t, rig.pMail, email).Code()
		wantStatus(rig.t, rig.p.postJSON("/users/me/email/verify", `{"code":"`+code+`"}`, bearer(rig.p.token(name, pw))...),
			http.StatusNoContent)
	}
}

// agent is a browser that signs in at the provider as user.
func (rig *fedRig) agent(user string) *agent {
	return newAgent(rig.t, rig.pBase, user)
}

// here is the account of R named name, with its identities.
func (rig *fedRig) here(name string) (db.User, []db.Identity) {
	rig.t.Helper()
	ctx := context.Background()
	u, err := rig.r.store.UserByUsernameKey(ctx, strings.ToLower(name))
	if err != nil {
		rig.t.Fatalf("no account %s here: %v", name, err)
	}
	ids, err := rig.r.store.Identities(ctx, u.ID)
	if err != nil {
		rig.t.Fatal(err)
	}
	return u, ids
}

// users counts R's accounts.
func (rig *fedRig) users() int {
	page, err := rig.r.store.ListUsers(context.Background(), "", 0, 1000)
	if err != nil {
		rig.t.Fatal(err)
	}
	return page.Total
}

// postAt posts a form to base (another site than the agent's provider).
func (a *agent) postAt(base, path string, f url.Values) (*http.Response, string) {
	a.t.Helper()
	keep := a.base
	a.base = base
	defer func() { a.base = keep }()
	return a.post(path, f)
}

// session is the claims of the agent's session cookie at base.
func (a *agent) session(ts *testServer, base string) map[string]any {
	a.t.Helper()
	u, _ := url.Parse(base)
	for _, c := range a.c.Jar.Cookies(u) {
		if strings.HasSuffix(c.Name, sessionCookie) {
			v, _ := url.QueryUnescape(c.Value)
			cl := mustClaims(a.t, ts, strings.TrimPrefix(v, "Bearer "))
			return map[string]any{"sub": cl.Subject, "amr": cl.AMR}
		}
	}
	a.t.Fatalf("no session cookie at %s", base)
	return nil
}

// stopAt makes the agent stop before following a redirect whose path ends
// in suffix, and returns where it would have gone.
func (a *agent) stopAt(suffix string) func() *url.URL {
	var to *url.URL
	follow := a.c.CheckRedirect
	a.c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if strings.HasSuffix(req.URL.Path, suffix) && to == nil {
			to = req.URL
			return http.ErrUseLastResponse
		}
		return follow(req, via)
	}
	return func() *url.URL { a.c.CheckRedirect = follow; return to }
}

func wantPage(t *testing.T, res *http.Response, body string, status int, path string, says ...string) {
	t.Helper()
	if res.StatusCode != status || (path != "" && res.Request.URL.Path != path) {
		t.Fatalf("ended at %s with %d, want %s with %d: %.600s", res.Request.URL, res.StatusCode, path, status, body)
	}
	for _, s := range says {
		if !strings.Contains(body, s) {
			t.Fatalf("%s (%d) does not say %q: %.1500s", res.Request.URL, res.StatusCode, s, body)
		}
	}
}

var profileCSRF = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// TestSignInWithProvider signs people in here with another instance of
// this service as their OpenID Connect provider, over real HTTP, on both
// engines: a first sign-in makes the account, the next finds it; an
// account links the provider from its profile; an address an account here
// uses is never linked silently; an address the provider does not vouch
// for is not taken as verified; the last way in cannot be unlinked.
func TestSignInWithProvider(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		rig := newFedRig(t, env...)
		ctx := context.Background()

		t.Run("buttons", func(t *testing.T) {
			for _, page := range []string{"/login", "/register"} {
				body := rig.r.get(page).Body
				if !strings.Contains(body, `href="/login/acme"`) || !strings.Contains(body, "Continue with Acme SSO") {
					t.Fatalf("%s has no button for Acme SSO", page)
				}
			}
		})

		t.Run("sign up, then sign in again", func(t *testing.T) {
			rig.person("alice", "alice@example.com", true)
			res, body := rig.agent("alice").open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusOK, "/profile", "alice authorized")
			u, ids := rig.here("alice")
			if !u.EmailVerified || u.Email != "alice@example.com" || len(ids) != 1 || ids[0].Provider != "acme" || ids[0].Issuer != rig.pBase {
				t.Fatalf("account made: verified %v, email %s, identities %+v", u.EmailVerified, u.Email, ids)
			}
			if u.PasswordHash != "" {
				t.Fatal("an account made with a provider has a password")
			}
			// The subject is the provider's, which is not the username.
			pu, _ := rig.p.store.UserByUsernameKey(ctx, "alice")
			if ids[0].Subject != pu.Subject {
				t.Fatalf("identity subject %q, the provider's is %q", ids[0].Subject, pu.Subject)
			}
			before := rig.users()
			a := rig.agent("alice")
			res, body = a.open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusOK, "/profile", "alice authorized", "with Acme SSO", "Connected sign-ins")
			if rig.users() != before {
				t.Fatal("signing in again made another account")
			}
			if amr := a.session(rig.r, rig.rBase)["amr"].([]string); !slices.Contains(amr, "fed") {
				t.Fatalf("amr %v, want fed", amr)
			}
			if _, ids := rig.here("alice"); ids[0].LastUsedAt.IsZero() {
				t.Fatal("the identity's last use is not recorded")
			}
		})

		t.Run("unlink refused when last", func(t *testing.T) {
			a := rig.agent("alice")
			a.open(rig.rBase + "/login/acme")
			_, body := a.get(rig.rBase + "/profile")
			m := profileCSRF.FindStringSubmatch(body)
			res, body := a.postAt(rig.rBase, "/profile/providers/acme/unlink", url.Values{"csrf_token": {m[1]}})
			wantPage(t, res, body, http.StatusConflict, "", "last way to sign in")
			if _, ids := rig.here("alice"); len(ids) != 1 {
				t.Fatal("the last way in was unlinked")
			}
		})

		t.Run("link from the profile", func(t *testing.T) {
			rig.r.register("bob", "bob@example.org", pw)
			rig.person("bobby", "bobby@example.com", true)
			a := rig.agent("bobby")
			_, body := a.get(rig.rBase + "/login")
			f := hidden(body)
			f.Set("username", "bob")
			f.Set("password", pw)
			res, body := a.postAt(rig.rBase, "/login", f)
			wantPage(t, res, body, http.StatusOK, "/profile", "bob authorized", "Link Acme SSO")
			m := profileCSRF.FindStringSubmatch(body)
			res, _ = a.postAt(rig.rBase, "/profile/providers/acme/link", url.Values{"csrf_token": {m[1]}})
			res, body = a.open(res.Request.URL.String()) // through the provider's login page
			wantPage(t, res, body, http.StatusOK, "/profile", "bob authorized")
			if res.Request.URL.Query().Get("done") != "provider_linked" {
				t.Fatalf("linked, but the profile was not told: %s", res.Request.URL)
			}
			if _, ids := rig.here("bob"); len(ids) != 1 || ids[0].Email != "bobby@example.com" {
				t.Fatalf("bob's identities: %+v", ids)
			}
			if m := rig.r.mailTo(t, rig.rMail, "bob@example.org"); !strings.Contains(m.Text, "Acme SSO") {
				t.Fatalf("the owner was not told of the new way in: %s", m.Text)
			}
			// bobby at the provider is bob here from now on.
			other := rig.agent("bobby")
			res, body = other.open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusOK, "/profile", "bob authorized")
			// Unlinking (bob has a password) ends the other sessions.
			tok := rig.r.token("bob", pw)
			list := rig.r.get("/users/me/providers", bearer(tok)...)
			wantStatus(t, list, http.StatusOK)
			if !strings.Contains(list.Body, `"provider":"acme"`) || !strings.Contains(list.Body, `"display_name":"Acme SSO"`) {
				t.Fatalf("GET /users/me/providers: %s", list.Body)
			}
			wantStatus(t, rig.r.send("DELETE", "/users/me/providers/acme", ``, bearer(tok)...), http.StatusNoContent)
			if res, _ := other.get(rig.rBase + "/profile"); res.Request.URL.Path != "/login" {
				t.Fatalf("the session signed in with the unlinked provider lives on: %s", res.Request.URL)
			}
			wantStatus(t, rig.r.send("DELETE", "/users/me/providers/acme", ``, bearer(tok)...), http.StatusNotFound)
		})

		t.Run("an address in use is not linked silently", func(t *testing.T) {
			rig.r.register("carol", "carol@example.com", pw)
			rig.person("carol-p", "Carol@Example.com", true)
			before := rig.users()
			a := rig.agent("carol-p")
			res, body := a.open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusConflict, "/login/acme/callback", "Sign in to link Acme SSO", "Nothing has been linked")
			if _, ids := rig.here("carol"); len(ids) != 0 || rig.users() != before {
				t.Fatalf("identities %+v, accounts %d (was %d)", ids, rig.users(), before)
			}
			// Another browser (without the waiting identity) signed in as
			// carol cannot link it.
			thief := rig.r.browser()
			wantStatus(t, thief.login("carol", pw), http.StatusSeeOther)
			wantStatus(t, thief.get("/login/link"), http.StatusBadRequest)
			// The person signs in to carol, then confirms.
			a.base, a.user = rig.rBase, "carol"
			res, body = a.open(rig.rBase + "/login?next=/login/link")
			wantPage(t, res, body, http.StatusOK, "/login/link", "Link Acme SSO?")
			res, body = a.post("/login/link", hidden(body))
			wantPage(t, res, body, http.StatusOK, "/profile", "carol authorized")
			if _, ids := rig.here("carol"); len(ids) != 1 {
				t.Fatalf("carol's identities after confirming: %+v", ids)
			}
			res, body = rig.agent("carol-p").open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusOK, "/profile", "carol authorized")
		})

		t.Run("an address the provider does not vouch for", func(t *testing.T) {
			rig.person("dave", "dave@example.com", false)
			res, body := rig.agent("dave").open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusOK, "/profile", "dave authorized")
			if u, _ := rig.here("dave"); u.EmailVerified {
				t.Fatal("an address the provider did not vouch for is verified here")
			}
			if m := rig.r.mailTo(t, rig.rMail, "dave@example.com"); m.Code() == "" {
				t.Fatal("no code to verify the address")
			}
			// Nor is such an address linked to the account that has it.
			rig.r.register("erin", "erin@example.com", pw)
			rig.person("erin-p", "erin@example.com", false)
			res, body = rig.agent("erin-p").open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusConflict, "", "Sign in to link Acme SSO")
			if _, ids := rig.here("erin"); len(ids) != 0 {
				t.Fatal("an unverified address linked an account")
			}
		})

		t.Run("an account made with someone else's address", func(t *testing.T) {
			// At the provider, mallory's address is victor's, not verified
			// there: the account made here is not the address's owner's.
			rig.person("mallory", "victor@example.com", false)
			mallory := rig.agent("mallory")
			res, body := mallory.open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusOK, "/profile", "mallory authorized")
			if _, ids := rig.here("mallory"); len(ids) != 1 || ids[0].Vouched {
				t.Fatalf("identities of an account made with an address not vouched for: %+v", ids)
			}
			// Victor resets the password by mail: the account is his, and
			// mallory's way in is not.
			wantStatus(t, rig.r.postJSON("/password/forgot", `{"login":"victor@example.com"}`), http.StatusAccepted)
			code := rig.r.mailTo(t, rig.rMail, "victor@example.com").Code()
			wantStatus(t, rig.r.postJSON("/password/reset", `{"login":"victor@example.com","code":"`+code+`","new_password":"victor's own passphrase"}`),
				http.StatusNoContent)
			if _, ids := rig.here("mallory"); len(ids) != 0 {
				t.Fatalf("the provider that made the account is still linked after its address was proven: %+v", ids)
			}
			if res, _ := mallory.get(rig.rBase + "/profile"); res.Request.URL.Path != "/login" {
				t.Fatalf("the session signed in with the provider lives on: %s", res.Request.URL)
			}
			res, body = rig.agent("mallory").open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusConflict, "", "Sign in to link Acme SSO")
			tok := rig.r.token("mallory", "victor's own passphrase")
			wantStatus(t, rig.r.get("/users/me", bearer(tok)...), http.StatusOK)

			// The verification link in the mail, followed without signing
			// in, proves the address but not who made the account: its
			// owner is asked, and disowns the provider.
			rig.person("mallet", "wendy@example.com", false)
			mallet := rig.agent("mallet")
			res, body = mallet.open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusOK, "/profile", "mallet authorized")
			code = rig.r.mailTo(t, rig.rMail, "wendy@example.com").Code()
			wendy := rig.r.browser()
			asked := wendy.submit("/email/verify", "/email/verify", url.Values{"login": {"wendy@example.com"}, "code": {code}})
			wantStatus(t, asked, http.StatusOK)
			if !strings.Contains(asked.Body, "sign-in with Acme SSO") || !strings.Contains(asked.Body, "Did you set them up?") {
				t.Fatalf("the owner of the address is not asked: %s", asked.Body)
			}
			if u, ids := rig.here("mallet"); u.EmailVerified || len(ids) != 1 {
				t.Fatalf("before the owner answers: verified %v, identities %+v", u.EmailVerified, ids)
			}
			f := hidden(asked.Body)
			f.Set("keep", "not-mine")
			res2 := wendy.submit("/email/verify", "/email/verify", f)
			wantStatus(t, res2, http.StatusSeeOther)
			if loc := res2.Header.Get("Location"); !strings.HasPrefix(loc, "/password/forgot?") {
				t.Errorf("after disowning, the owner is sent to %q, not to set a password", loc)
			}
			if u, ids := rig.here("mallet"); len(ids) != 0 || !u.EmailVerified {
				t.Fatalf("the provider is still linked after its owner disowned it: %+v (verified %v)", ids, u.EmailVerified)
			}
			if res, _ := mallet.get(rig.rBase + "/profile"); res.Request.URL.Path != "/login" {
				t.Fatalf("the session signed in with the provider lives on: %s", res.Request.URL)
			}
		})

		t.Run("the verification link opened elsewhere by the one who made the account", func(t *testing.T) {
			// Made with an address the provider does not vouch for; the
			// mail's link opened in another browser, not signed in.
			rig.person("maya", "maya@example.com", false)
			maya := rig.agent("maya")
			res, body := maya.open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusOK, "/profile", "maya authorized")
			code := rig.r.mailTo(t, rig.rMail, "maya@example.com").Code()
			phone := rig.r.browser()
			asked := phone.submit("/email/verify", "/email/verify", url.Values{"login": {"maya"}, "code": {code}})
			wantStatus(t, asked, http.StatusOK)
			f := hidden(asked.Body)
			// An answer whose list no longer holds is asked again.
			stale := hidden(asked.Body)
			stale.Set("unproven", "AAAAAAAAAAAAAAAAAAAAAAAA")
			stale.Set("keep", "not-mine")
			wantStatus(t, phone.submit("/email/verify", "/email/verify", stale), http.StatusOK)
			f.Set("keep", "mine")
			wantStatus(t, phone.submit("/email/verify", "/email/verify", f), http.StatusSeeOther)
			u, ids := rig.here("maya")
			if !u.EmailVerified || len(ids) != 1 || !ids[0].Vouched {
				t.Fatalf("after the owner said the provider is theirs: verified %v, identities %+v", u.EmailVerified, ids)
			}
			res, body = maya.get(rig.rBase + "/profile")
			wantPage(t, res, body, http.StatusOK, "/profile", "maya authorized")
			// Vouched for now: a reset by mail keeps it.
			wantStatus(t, rig.r.postJSON("/password/forgot", `{"login":"maya"}`), http.StatusAccepted)
			code = rig.r.mailTo(t, rig.rMail, "maya@example.com").Code()
			wantStatus(t, rig.r.postJSON("/password/reset", `{"login":"maya","code":"`+code+`","new_password":"maya's own passphrase"}`),
				http.StatusNoContent)
			if _, ids := rig.here("maya"); len(ids) != 1 {
				t.Fatalf("a provider vouched for was forgotten at a reset: %+v", ids)
			}
		})

		t.Run("an address verified while signed in keeps the provider", func(t *testing.T) {
			rig.person("ivy", "ivy@example.com", false)
			a := rig.agent("ivy")
			res, body := a.open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusOK, "/profile", "ivy authorized", "Verify your email address")
			code := rig.r.mailTo(t, rig.rMail, "ivy@example.com").Code()
			m := profileCSRF.FindStringSubmatch(body)
			res, body = a.postAt(rig.rBase, "/email/verify", url.Values{"csrf_token": {m[1]}, "code": {code}})
			wantPage(t, res, body, http.StatusOK, "/profile", "ivy authorized")
			if _, ids := rig.here("ivy"); len(ids) != 1 || !ids[0].Vouched {
				t.Fatalf("ivy's identities after she verified her address: %+v", ids)
			}
			// Her own reset by mail (setting a first password) keeps it.
			wantStatus(t, rig.r.postJSON("/password/forgot", `{"login":"ivy"}`), http.StatusAccepted)
			code = rig.r.mailTo(t, rig.rMail, "ivy@example.com").Code()
			wantStatus(t, rig.r.postJSON("/password/reset", `{"login":"ivy","code":"`+code+`","new_password":"ivy's first passphrase"}`),
				http.StatusNoContent)
			res, body = rig.agent("ivy").open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusOK, "/profile", "ivy authorized")
		})

		t.Run("a username taken here", func(t *testing.T) {
			rig.r.register("gina", "gina@example.org", pw)
			rig.person("gina", "gina@example.com", true)
			a := rig.agent("gina")
			res, body := a.open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusOK, "/login/acme/callback", "Choose a username", "gina@example.com")
			f := hidden(body)
			f.Set("username", "gina")
			res, body = a.postAt(rig.rBase, "/login/signup", f)
			wantPage(t, res, body, http.StatusUnprocessableEntity, "/login/signup", "taken")
			f.Set("username", "gina-sso")
			res, body = a.postAt(rig.rBase, "/login/signup", f)
			wantPage(t, res, body, http.StatusOK, "/profile", "gina-sso authorized")
			if u, ids := rig.here("gina-sso"); !u.EmailVerified || len(ids) != 1 {
				t.Fatalf("gina-sso: verified %v, identities %+v", u.EmailVerified, ids)
			}
		})

		t.Run("an account without a password confirms with a fresh sign-in", func(t *testing.T) {
			defer func() { rig.r.s.acct.Now, rig.p.s.acct.Now = time.Now, time.Now }()
			rig.person("joan", "joan@example.com", true)
			a := rig.agent("joan")
			res, body := a.open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusOK, "/profile", "joan authorized", "it signs in with the providers")
			if strings.Contains(body, "signs in with passkeys") {
				t.Fatal("the profile says an account that signs in with a provider signs in with passkeys")
			}
			res, body = a.get(rig.rBase + "/profile/password")
			wantPage(t, res, body, http.StatusOK, "/profile/password", "Set a password", "You signed in with Acme SSO in the last 10 minutes")
			if strings.Contains(body, "data-passkey-confirm") {
				t.Fatal("the page asks for a passkey the account does not have")
			}
			// Eleven minutes on, the sign-in no longer confirms.
			later := time.Now().Add(11 * time.Minute)
			rig.r.clockAt(later)
			rig.p.clockAt(later)
			res, body = a.get(rig.rBase + "/profile/password")
			wantPage(t, res, body, http.StatusOK, "/profile/password", "Sign in again with Acme SSO")
			f := hidden(body)
			f.Set("new_password", "jo's first passphrase")
			res, body = a.postAt(rig.rBase, "/profile/password", f)
			wantPage(t, res, body, http.StatusForbidden, "/profile/password", "sign in again with your provider")
			res, body = a.get(rig.rBase + "/profile/delete")
			wantPage(t, res, body, http.StatusOK, "/profile/delete", "Sign in again with Acme SSO")
			res, body = a.postAt(rig.rBase, "/profile/delete", hidden(body))
			wantPage(t, res, body, http.StatusForbidden, "/profile/delete", "sign in again with your provider")
			if u, _ := rig.here("joan"); u.PasswordHash != "" {
				t.Fatal("a password was set without a confirmation")
			}
			// Signing in again (the provider asked for a new sign-in) comes
			// back to the page, which then sets the password.
			stop := a.stopAt("/authorize")
			_, body = a.get(rig.rBase + "/profile/password")
			m := regexp.MustCompile(`href="(/login/acme\?reauth=1&amp;next=[^"]+)"`).FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("no way to sign in again: %s", body)
			}
			a.get(rig.rBase + html.UnescapeString(m[1]))
			if to := stop(); to == nil || to.Query().Get("prompt") != "login" {
				t.Fatalf("the provider was not asked for a new sign-in: %v", to)
			}
			res, body = a.open(rig.rBase + html.UnescapeString(m[1]))
			wantPage(t, res, body, http.StatusOK, "/profile/password", "You signed in with Acme SSO in the last 10 minutes")
			f = hidden(body)
			f.Set("new_password", "jo's first passphrase")
			res, body = a.postAt(rig.rBase, "/profile/password", f)
			wantPage(t, res, body, http.StatusOK, "/profile", "joan authorized")
			if u, _ := rig.here("joan"); u.PasswordHash == "" {
				t.Fatal("the password was not set")
			}
		})

		t.Run("two-factor", func(t *testing.T) {
			rig.r.register("frank", "frank@example.com", pw)
			rig.person("frank", "frank@example.com", true)
			a := rig.agent("frank")
			a.open(rig.rBase + "/login/acme") // the address is frank's: sign in to link
			a.base, a.user = rig.rBase, "frank"
			_, body := a.open(rig.rBase + "/login?next=/login/link")
			a.post("/login/link", hidden(body))
			secret, _ := rig.r.enrolled(t, rig.r.token("frank", pw))
			b := rig.agent("frank")
			res, body := b.open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusOK, "/login/acme/callback", `action="/login/mfa"`)
			f := hidden(body)
			f.Set("code", totpAt(t, secret, time.Now().Add(30*time.Second))) // the next step: the current one confirmed the set-up
			res, body = b.postAt(rig.rBase, "/login/mfa", f)
			wantPage(t, res, body, http.StatusOK, "/profile", "frank authorized", "with Acme SSO and authenticator code")
			amr := b.session(rig.r, rig.rBase)["amr"].([]string)
			if !slices.Contains(amr, "fed") || !slices.Contains(amr, "otp") {
				t.Fatalf("amr %v, want fed and otp", amr)
			}
		})

		// Last: it takes the provider away.
		t.Run("deleting the provider ends the sessions signed in with it", func(t *testing.T) {
			rig.r.register("lena", "lena@example.com", pw)
			rig.person("lena", "lena@example.com", true)
			a := rig.agent("lena")
			a.open(rig.rBase + "/login/acme")
			a.base, a.user = rig.rBase, "lena"
			_, body := a.open(rig.rBase + "/login?next=/login/link")
			a.post("/login/link", hidden(body))
			withPassword := rig.r.token("lena", pw)
			b := rig.agent("lena")
			res, body := b.open(rig.rBase + "/login/acme")
			wantPage(t, res, body, http.StatusOK, "/profile", "lena authorized", "with Acme SSO")
			out := rig.r.mustCLI("", "providers", "delete", "acme")
			if !strings.Contains(out, "signed in with it ended") || strings.Contains(out, "; 0 sessions") {
				t.Errorf("providers delete: %s", out)
			}
			// The command line is another process: the server sees its
			// change through the notices.
			rig.r.seeChange(func() bool {
				res, _ := b.get(rig.rBase + "/profile")
				return res.Request.URL.Path == "/login"
			})
			wantStatus(t, rig.r.get("/users/me", bearer(withPassword)...), http.StatusOK)
			if _, ids := rig.here("lena"); len(ids) != 0 {
				t.Fatalf("links to a deleted provider: %+v", ids)
			}
		})
	})
}

// TestProviderAnswersRefused: what comes back from a provider is checked
// before anyone is signed in: the state (tampered, or from another
// browser), the nonce, the issuer, the expiry; and a provider that cannot
// be reached gives a page that says so. Nothing is made on a refusal.
func TestProviderAnswersRefused(t *testing.T) {
	rig := newFedRig(t)
	rig.person("hana", "hana@example.com", true)
	// refused: the answer was refused, for why (the state is checked
	// before the code is exchanged; the ID token after).
	const badState, badToken = "was not started in this browser", "could not be verified"
	refused := func(t *testing.T, res *http.Response, body, why string) {
		t.Helper()
		wantPage(t, res, body, http.StatusBadRequest, "", "Sign-in not accepted", why)
		if rig.users() != 0 {
			t.Fatal("an account was made from a refused answer")
		}
	}
	// callback takes hana through the provider and stops at the way back.
	callback := func(a *agent, from string) *url.URL {
		stop := a.stopAt("/callback")
		a.open(from)
		to := stop()
		if to == nil {
			t.Fatal("the provider did not send the browser back")
		}
		return to
	}

	t.Run("state", func(t *testing.T) {
		a := rig.agent("hana")
		to := callback(a, rig.rBase+"/login/acme")
		q := to.Query()
		q.Set("state", q.Get("state")+"x")
		bad := *to
		bad.RawQuery = q.Encode()
		res, body := a.get(bad.String())
		refused(t, res, body, badState)
		// The flow is spent: the genuine answer, after, is refused too.
		res, body = a.get(to.String())
		refused(t, res, body, badState)
		// And the genuine answer in another browser.
		b := rig.agent("hana")
		to = callback(b, rig.rBase+"/login/acme")
		res, body = rig.agent("hana").get(to.String())
		refused(t, res, body, badState)
	})

	t.Run("nonce", func(t *testing.T) {
		a := rig.agent("hana")
		stop := a.stopAt("/authorize")
		a.get(rig.rBase + "/login/acme")
		to := stop()
		q := to.Query()
		if q.Get("nonce") == "" || q.Get("code_challenge_method") != "S256" || q.Get("state") == "" {
			t.Fatalf("the request to the provider: %s", to)
		}
		q.Set("nonce", "a-nonce-of-another-sign-in")
		to.RawQuery = q.Encode()
		res, body := a.open(to.String())
		refused(t, res, body, badToken)
	})

	t.Run("expired ID token", func(t *testing.T) {
		a := rig.agent("hana")
		to := callback(a, rig.rBase+"/login/acme")
		// The provider's ID tokens live a minute; two later, it has
		// expired (the flow itself has not).
		rig.r.clockAt(time.Now().Add(2 * time.Minute))
		defer func() { rig.r.s.acct.Now = time.Now }()
		res, body := a.get(to.String())
		refused(t, res, body, badToken)
	})

	t.Run("another issuer", func(t *testing.T) {
		// twin is the provider at another address (the issuer R knows);
		// its token endpoint is answered by an instance on the same
		// database that names itself otherwise, so the ID token is signed
		// with the right key but by another issuer.
		var twinBase string
		mux := http.NewServeMux()
		srv := &http.Server{Handler: mux}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		twinBase = "http://" + ln.Addr().String()
		twin := rig.p.withConfig(t, func(cfg *config.Config) { cfg.Issuer, cfg.PublicURL = twinBase, twinBase })
		elsewhere := rig.p.withConfig(t, func(cfg *config.Config) { cfg.Issuer = "http://sso.elsewhere.example" })
		toTwin, _ := url.Parse(listen(t, twin))
		toElsewhere, _ := url.Parse(listen(t, elsewhere))
		mux.Handle("/", httputil.NewSingleHostReverseProxy(toTwin))
		mux.Handle("/token", httputil.NewSingleHostReverseProxy(toElsewhere))
		go srv.Serve(ln)
		t.Cleanup(func() { srv.Close() })
		id, secret := rig.register("twin")
		rig.r.mustCLI(secret+"\n", "providers", "add", "--name", "twin", "--issuer", twinBase, "--client-id", id)
		a := newAgent(t, twinBase, "hana")
		res, body := a.open(rig.rBase + "/login/twin")
		refused(t, res, body, badToken)
	})

	t.Run("provider down", func(t *testing.T) {
		// Never reached: no discovery document.
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		gone := "http://" + ln.Addr().String()
		ln.Close()
		rig.r.mustCLI("s3cret\n", "providers", "add", "--name", "gone", "--display-name", "Gone SSO", "--issuer", gone, "--client-id", "x")
		res, body := rig.agent("hana").get(rig.rBase + "/login/gone")
		wantPage(t, res, body, http.StatusBadGateway, "/login/gone", "Gone SSO cannot be reached")
		// Down between leaving and coming back: the code cannot be
		// exchanged.
		a := rig.agent("hana")
		to := callback(a, rig.rBase+"/login/acme")
		if err := rig.p.s.App().Shutdown(); err != nil {
			t.Fatal(err)
		}
		res, body = a.get(to.String())
		wantPage(t, res, body, http.StatusBadGateway, "/login/acme/callback", "Acme SSO cannot be reached")
		if rig.users() != 0 {
			t.Fatal("an account was made")
		}
	})
}

// fakeGitHub serves the parts of GitHub the preset uses: the OAuth app's
// authorization (it sends the browser straight back with a code) and
// token endpoints (client secret and PKCE checked), the user API and the
// emails API. emails is what /user/emails answers.
type fakeGitHub struct {
	t         *testing.T
	srv       *httptest.Server
	secret    string
	challenge string
	user      string
	emails    string
}

func newFakeGitHub(t *testing.T) *fakeGitHub {
	g := &fakeGitHub{t: t, secret: "gh-s3cret", user: `{"id":583231,"login":"octocat","name":"The Octocat"}`}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login/oauth/authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != "gh-client" || q.Get("code_challenge_method") != "S256" || !strings.Contains(q.Get("scope"), "user:email") {
			http.Error(w, "bad authorization request: "+r.URL.RawQuery, http.StatusBadRequest)
			return
		}
		g.challenge = q.Get("code_challenge")
		back, _ := url.Parse(q.Get("redirect_uri"))
		back.RawQuery = url.Values{"code": {"gh-code"}, "state": {q.Get("state")}}.Encode()
		http.Redirect(w, r, back.String(), http.StatusFound)
	})
	mux.HandleFunc("POST /login/oauth/access_token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		w.Header().Set("Content-Type", "application/json")
		if r.PostForm.Get("client_id") != "gh-client" || r.PostForm.Get("client_secret") != g.secret || r.PostForm.Get("code") != "gh-code" ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
			// GitHub answers its errors with 200.
			io.WriteString(w, `{"error":"bad_verification_code","error_description":"The code passed is incorrect or expired."}`)
			return
		}
		io.WriteString(w, `{"access_token":"gho_token","token_type":"bearer","scope":"read:user,user:email"}`)
	})
	api := func(body *string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer gho_token" {
				http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, *body)
		}
	}
	mux.HandleFunc("GET /user", api(&g.user))
	mux.HandleFunc("GET /user/emails", api(&g.emails))
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	return g
}

// TestSignInWithGitHub: the GitHub preset against a local server that
// answers as GitHub does: the identity is the numeric user id, the
// address the primary one, verified only when GitHub says so.
func TestSignInWithGitHub(t *testing.T) {
	gh := newFakeGitHub(t)
	r, rBase := serveOn(t, "localhost", func(base string) []string {
		return []string{"PUBLIC_URL", base, "GITHUB_URL", gh.srv.URL, "GITHUB_API_URL", gh.srv.URL}
	})
	out := r.mustCLI(gh.secret+"\n", "providers", "add", "--name", "github", "--github", "--client-id", "gh-client")
	if !strings.Contains(out, "Continue with GitHub") {
		t.Fatalf("providers add: %s", out)
	}
	users := func() int {
		page, err := r.store.ListUsers(context.Background(), "", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		return page.Total
	}

	gh.emails = `[{"email":"octo@users.example","primary":false,"verified":true},{"email":"octocat@example.com","primary":true,"verified":true}]`
	res, body := newAgent(t, gh.srv.URL, "").open(rBase + "/login/github")
	wantPage(t, res, body, http.StatusOK, "/profile", "octocat authorized", "with GitHub")
	u, err := r.store.UserByUsernameKey(context.Background(), "octocat")
	if err != nil || u.Email != "octocat@example.com" || !u.EmailVerified {
		t.Fatalf("account: %+v, %v", u, err)
	}
	ids, _ := r.store.Identities(context.Background(), u.ID)
	if len(ids) != 1 || ids[0].Subject != "583231" || ids[0].Issuer != gh.srv.URL || ids[0].Provider != "github" {
		t.Fatalf("identity: %+v", ids)
	}
	// Again: the same account, whatever the login is now.
	gh.user = `{"id":583231,"login":"octocat-renamed"}`
	res, body = newAgent(t, gh.srv.URL, "").open(rBase + "/login/github")
	wantPage(t, res, body, http.StatusOK, "/profile", "octocat authorized")

	// Another GitHub user whose primary address is not verified there.
	gh.user = `{"id":9,"login":"hubber"}`
	gh.emails = `[{"email":"hubber@example.com","primary":true,"verified":false}]`
	res, body = newAgent(t, gh.srv.URL, "").open(rBase + "/login/github")
	wantPage(t, res, body, http.StatusOK, "/profile", "hubber authorized")
	if u, _ := r.store.UserByUsernameKey(context.Background(), "hubber"); u.EmailVerified {
		t.Fatal("an address GitHub does not vouch for is verified here")
	}

	// A code GitHub does not accept (the secret is wrong): refused, nothing
	// made.
	before := users()
	gh.user, gh.secret = `{"id":10,"login":"nobody"}`, "another secret"
	res, body = newAgent(t, gh.srv.URL, "").open(rBase + "/login/github")
	wantPage(t, res, body, http.StatusBadRequest, "/login/github/callback", "GitHub did not sign you in")
	if users() != before {
		t.Fatal("an account was made from a refused code")
	}
}

// TestProvidersManaged: providers from the command line (the secret from
// stdin, kept sealed) and the admin page and API, each change audited and
// seen by the running server's pages at once; bad input is refused with
// a message that says what to fix.
func TestProvidersManaged(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ctx := context.Background()
		out := ts.mustCLI("the-client-secret\n", "providers", "add", "--name", "acme", "--display-name", "Acme SSO",
			"--issuer", "https://sso.acme.example/", "--client-id", "fiberauth", "--scope", "groups")
		if !strings.Contains(out, ts.s.cfg.PublicURL+"/login/acme/callback") || !strings.Contains(out, "warning: ") {
			t.Fatalf("providers add said:\n%s", out)
		}
		p, err := ts.store.ProviderByName(ctx, "acme")
		if err != nil || p.Issuer != "https://sso.acme.example" || p.Scopes != "groups" || p.SealedSecret == "" ||
			strings.Contains(p.SealedSecret, "the-client-secret") {
			t.Fatalf("stored: %+v, %v", p, err)
		}
		if got, err := ts.s.acct.Open("provider:acme", p.SealedSecret); err != nil || got != "the-client-secret" {
			t.Fatalf("the sealed secret opens to %q, %v", got, err)
		}
		if !strings.Contains(ts.get("/login").Body, "Continue with Acme SSO") {
			t.Fatal("the login page does not offer the provider added")
		}
		for _, bad := range [][]string{
			{"--name", "x", "--client-id", "c"},
			{"--name", "x", "--issuer", "https://a.example", "--github", "--client-id", "c"},
			{"--name", "Bad Name", "--issuer", "https://a.example", "--client-id", "c"},
			{"--name", "mfa", "--issuer", "https://a.example", "--client-id", "c"},
			{"--name", "x", "--issuer", "http://sso.example.com", "--client-id", "c"},
			{"--name", "x", "--issuer", "https://a.example?x=1", "--client-id", "c"},
			{"--name", "acme", "--issuer", "https://a.example", "--client-id", "c"},
			// One issuer, one provider: its identities would be shared.
			{"--name", "acme2", "--issuer", "https://SSO.acme.example", "--client-id", "c"},
			// A flag is not a value.
			{"--name", "gh", "--github", "--client-id", "--scope"},
		} {
			if out, err := ts.cli("s\n", append([]string{"providers", "add"}, bad...)...); err == nil {
				t.Errorf("providers add %v was accepted: %s", bad, out)
			}
		}
		ts.mustCLI("\n", "providers", "add", "--name", "github", "--github", "--client-id", "gh")
		if out := ts.mustCLI("", "providers", "list"); !strings.Contains(out, "acme") || !strings.Contains(out, "github") ||
			!strings.Contains(out, "2 providers") {
			t.Fatalf("providers list:\n%s", out)
		}

		// The admin page and API.
		ts.makeAdmin("root")
		admin := bearer(ts.token("root", pw))
		res := ts.postJSON("/admin/api/providers", `{"name":"corp","kind":"oidc","issuer":"https://corp.example","client_id":"c","client_secret":"s"}`, admin...)
		wantStatus(t, res, http.StatusCreated)
		if m := res.json(t); m["redirect_uri"] != ts.s.cfg.PublicURL+"/login/corp/callback" || m["has_client_secret"] != true {
			t.Fatalf("POST /admin/api/providers: %s", res.Body)
		}
		res = ts.postJSON("/admin/api/providers", `{"name":"corp2","kind":"saml","client_id":"c"}`, admin...)
		wantStatus(t, res, http.StatusUnprocessableEntity)
		res = ts.postJSON("/admin/api/providers", `{"name":"corp2","kind":"oidc","issuer":"https://corp.example","client_id":"c"}`, admin...)
		wantStatus(t, res, http.StatusConflict)
		if !strings.Contains(res.Body, `provider \"corp\" has this issuer`) {
			t.Fatalf("a second provider of one issuer: %s", res.Body)
		}
		res = ts.postJSON("/admin/api/providers", `{"name":"github2","kind":"github","client_id":"c"}`, admin...)
		wantStatus(t, res, http.StatusConflict)
		b := ts.browser()
		wantStatus(t, b.login("root", pw), http.StatusSeeOther)
		res = b.submit("/admin/providers", "/admin/providers", url.Values{"kind": {"oidc"}, "name": {"wiki"}, "issuer": {"ftp://wiki"}, "client_id": {"c"}})
		if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "issuer") {
			t.Fatalf("a bad issuer on the admin page: %d", res.StatusCode)
		}
		res = b.submit("/admin/providers", "/admin/providers/corp/delete", url.Values{})
		wantStatus(t, res, http.StatusOK)
		if _, err := ts.store.ProviderByName(ctx, "corp"); err != db.ErrNotFound {
			t.Fatalf("corp after its deletion on the admin page: %v", err)
		}
		ts.mustCLI("", "providers", "delete", "acme")
		if strings.Contains(ts.get("/login").Body, "Acme SSO") {
			t.Fatal("the login page offers a deleted provider")
		}
		if _, err := ts.cli("", "providers", "delete", "acme"); err == nil {
			t.Fatal("deleting a provider that is not there succeeded")
		}
		audit := ts.get("/admin/api/audit", admin...).Body
		for _, want := range []string{"provider_add", "provider_delete"} {
			if !strings.Contains(audit, want) {
				t.Fatalf("the audit list has no %s: %.500s", want, audit)
			}
		}
	})
}
