package app

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"fiberauth/app/mail/mailtest"
)

// newMailServer is a test server whose mail goes to a real SMTP server in
// the test, over TCP.
func newMailServer(t *testing.T, env ...string) (*testServer, *mailtest.Sink) {
	t.Helper()
	sink := mailtest.Start(t)
	ts := newTestServer(t, append([]string{"SMTP_URL", sink.URL()}, env...)...)
	ts.s.outbox.SetBackoff(10 * time.Millisecond)
	return ts, sink
}

// mailTo waits for the mail of the requests so far and returns the newest
// message to addr.
func (ts *testServer) mailTo(t *testing.T, sink *mailtest.Sink, addr string) mailtest.Message {
	t.Helper()
	ts.flushMail()
	return sink.Last(t, addr)
}

// verifyCode waits for the mail of the requests so far and returns the
// code of the newest "Confirm your email address" to addr (notices of new
// ways in may follow it).
func (ts *testServer) verifyCode(t *testing.T, sink *mailtest.Sink, addr string) string {
	t.Helper()
	ts.flushMail()
	msgs := sink.To(addr)
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Header.Get("Subject") == "Confirm your email address" {
			return msgs[i].Code()
		}
	}
	t.Fatalf("no verification mail to %s", addr)
	return ""
}

// clockAt moves the service's clock to at, for the rest of the test.
func (ts *testServer) clockAt(at time.Time) {
	ts.s.acct.Now = func() time.Time { return at }
}

// TestEmailFlowsAPI drives every email flow of the JSON API against a real
// SMTP server: verification at registration, resend, password reset,
// change of address.
func TestEmailFlowsAPI(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts, sink := newMailServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		tok := ts.token("alice", pw)

		// Registration sent a verification code.
		m := ts.mailTo(t, sink, "alice@example.com")
		if m.Header.Get("Subject") != "Confirm your email address" || m.Code() == "" || m.HTML == "" ||
			!strings.Contains(m.HTML, m.Code()) {
			t.Fatalf("verification mail: subject %q, code %q\n%s", m.Header.Get("Subject"), m.Code(), m.Raw)
		}
		for _, h := range []string{"Date", "Message-Id", "From", "To", "Subject", "Mime-Version"} {
			if m.Header.Get(h) == "" {
				t.Errorf("mail without %s header:\n%s", h, m.Raw)
			}
		}
		if !strings.HasPrefix(m.Header.Get("Content-Type"), "multipart/alternative") {
			t.Errorf("Content-Type %q, want multipart/alternative", m.Header.Get("Content-Type"))
		}
		if from := m.Header.Get("From"); !strings.Contains(from, "no-reply@localhost") {
			t.Errorf("From %q", from)
		}
		if link := m.Link(); !strings.Contains(link, "/email/verify?") || !strings.Contains(link, "code=") {
			t.Errorf("link %q", link)
		}
		if me := ts.get("/users/me", bearer(tok)...).json(t); me["email_verified"] != false {
			t.Fatalf("/users/me before verifying: %v", me)
		}
		// Only an HMAC of the code is stored.
		u, err := ts.store.UserByUsernameKey(context.Background(), "alice")
		if err != nil {
			t.Fatal(err)
		}
		stored, err := ts.store.CodeFor(context.Background(), u.ID, "verify")
		if err != nil {
			t.Fatal(err)
		}
		plain := strings.ReplaceAll(m.Code(), "-", "")
		if len(stored.Hash) != 64 || strings.Contains(strings.ToUpper(stored.Hash), plain) || strings.Contains(stored.Hash, m.Code()) {
			t.Fatalf("stored code %q for code %s", stored.Hash, m.Code())
		}

		// A wrong code, then the right one typed loosely, then again.
		wantDetail(t, ts.postJSON("/users/me/email/verify", `{"code":"AAAA-AAAA"}`, bearer(tok)...), 400, "Invalid or expired code")
		loose := strings.ToLower(strings.ReplaceAll(m.Code(), "-", ""))
		wantStatus(t, ts.postJSON("/users/me/email/verify", `{"code":"`+loose+`"}`, bearer(tok)...), http.StatusNoContent)
		if me := ts.get("/users/me", bearer(tok)...).json(t); me["email_verified"] != true {
			t.Fatalf("/users/me after verifying: %v", me)
		}
		wantDetail(t, ts.postJSON("/users/me/email/verify", `{"code":"`+m.Code()+`"}`, bearer(tok)...), 400, "Invalid or expired code")
		wantDetail(t, ts.postJSON("/users/me/email/verify/resend", ``, bearer(tok)...), 409, "Email address already verified")

		// Forgotten password: the same answer for a real and a made-up
		// account, and mail only for the real one.
		before := len(sink.Messages())
		for _, login := range []string{"nobody", "nobody@example.com"} {
			res := ts.postJSON("/password/forgot", `{"login":"`+login+`"}`)
			wantDetail(t, res, http.StatusAccepted, "If an account exists for that name, a code has been sent to its email address.")
		}
		ts.flushMail()
		if n := len(sink.Messages()); n != before {
			t.Fatalf("mail sent for an unknown account: %d messages, had %d", n, before)
		}
		res := ts.postJSON("/password/forgot", `{"login":"ALICE@example.com"}`)
		wantDetail(t, res, http.StatusAccepted, "If an account exists for that name, a code has been sent to its email address.")
		m = ts.mailTo(t, sink, "alice@example.com")
		if m.Header.Get("Subject") != "Reset your password" || m.Code() == "" || !strings.Contains(m.Link(), "/password/reset?") {
			t.Fatalf("reset mail: %q %q %q", m.Header.Get("Subject"), m.Code(), m.Link())
		}
		code := m.Code()
		const newPW = "a completely new passphrase"
		wantDetail(t, ts.postJSON("/password/reset", `{"login":"alice","code":"ZZZZ-ZZZZ","new_password":"`+newPW+`"}`), 400, "Invalid or expired code")
		wantDetail(t, ts.postJSON("/password/reset", `{"login":"nobody","code":"`+code+`","new_password":"`+newPW+`"}`), 400, "Invalid or expired code")
		wantStatus(t, ts.postJSON("/password/reset", `{"login":"alice","code":"`+code+`","new_password":"short"}`), http.StatusUnprocessableEntity)
		wantStatus(t, ts.postJSON("/password/reset", `{"login":"alice","code":"`+code+`","new_password":"`+newPW+`"}`), http.StatusNoContent)
		// Every session ended: the old token is refused at once.
		wantStatus(t, ts.get("/users/me", bearer(tok)...), http.StatusUnauthorized)
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}), http.StatusUnauthorized)
		tok = ts.token("alice", newPW)
		wantDetail(t, ts.postJSON("/password/reset", `{"login":"alice","code":"`+code+`","new_password":"yet another passphrase"}`), 400, "Invalid or expired code")
		notice := ts.mailTo(t, sink, "alice@example.com")
		if notice.Header.Get("Subject") != "Your password was changed" || !strings.Contains(notice.Text, "If this wasn't you") {
			t.Fatalf("notice: %q\n%s", notice.Header.Get("Subject"), notice.Text)
		}
		ts.s.acct.FlushEvents()
		if !strings.Contains(ts.get("/users/me/events", bearer(tok)...).Body, `"password_reset"`) {
			t.Error("no password_reset event")
		}

		// Changing the address.
		ts.register("bob", "bob@example.com", pw)
		wantStatus(t, ts.postJSON("/users/me/email", `{"new_email":"alice@new.example.com","password":"wrong password"}`, bearer(tok)...), http.StatusForbidden)
		wantStatus(t, ts.postJSON("/users/me/email", `{"new_email":"BOB@example.com","password":"`+newPW+`"}`, bearer(tok)...), http.StatusConflict)
		wantStatus(t, ts.postJSON("/users/me/email", `{"new_email":"not an address","password":"`+newPW+`"}`, bearer(tok)...), http.StatusUnprocessableEntity)
		wantStatus(t, ts.postJSON("/users/me/email", `{"new_email":"alice@new.example.com","password":"`+newPW+`"}`, bearer(tok)...), http.StatusAccepted)
		m = ts.mailTo(t, sink, "alice@new.example.com")
		if m.Header.Get("Subject") != "Confirm your new email address" || m.Code() == "" {
			t.Fatalf("change mail: %q %q", m.Header.Get("Subject"), m.Code())
		}
		if me := ts.get("/users/me", bearer(tok)...).json(t); me["email"] != "alice@example.com" {
			t.Fatalf("the address changed before the code came back: %v", me)
		}
		wantStatus(t, ts.postJSON("/users/me/email/verify", `{"code":"`+m.Code()+`"}`, bearer(tok)...), http.StatusNoContent)
		if me := ts.get("/users/me", bearer(tok)...).json(t); me["email"] != "alice@new.example.com" || me["email_verified"] != true {
			t.Fatalf("after confirming the change: %v", me)
		}
		old := ts.mailTo(t, sink, "alice@example.com")
		if old.Header.Get("Subject") != "Your email address was changed" || !strings.Contains(old.Text, "alice@new.example.com") {
			t.Fatalf("the old address was not told: %q\n%s", old.Header.Get("Subject"), old.Text)
		}
		// The old address no longer names the account.
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice@example.com"}, "password": {newPW}}), http.StatusUnauthorized)
		ts.token("alice@new.example.com", newPW)
	})
}

// TestEmailTakenBeforeConfirming: uniqueness is checked again when the
// code comes back: of two accounts changing to one address, the second to
// confirm is refused, and keeps its address.
func TestEmailTakenBeforeConfirming(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts, sink := newMailServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		ts.register("bob", "bob@example.com", pw)
		a, b := ts.token("alice", pw), ts.token("bob", pw)
		wantStatus(t, ts.postJSON("/users/me/email", `{"new_email":"shared@example.com","password":"`+pw+`"}`, bearer(a)...), http.StatusAccepted)
		codeA := ts.mailTo(t, sink, "shared@example.com").Code()
		wantStatus(t, ts.postJSON("/users/me/email", `{"new_email":"shared@example.com","password":"`+pw+`"}`, bearer(b)...), http.StatusAccepted)
		codeB := ts.mailTo(t, sink, "shared@example.com").Code()
		wantStatus(t, ts.postJSON("/users/me/email/verify", `{"code":"`+codeA+`"}`, bearer(a)...), http.StatusNoContent)
		wantDetail(t, ts.postJSON("/users/me/email/verify", `{"code":"`+codeB+`"}`, bearer(b)...), http.StatusConflict,
			"An account with that email address already exists.")
		if me := ts.get("/users/me", bearer(b)...).json(t); me["email"] != "bob@example.com" {
			t.Fatalf("bob after the refused change: %v", me)
		}
	})
}

// TestCodeRules: codes expire after 15 minutes, are void after 5 wrong
// tries, and a second code of a kind waits a minute.
func TestCodeRules(t *testing.T) {
	ts, sink := newMailServer(t, "LOGIN_FAILURES_PER_ACCOUNT", "50")
	start := time.Now()
	ts.clockAt(start)
	ts.register("alice", "alice@example.com", pw)
	code := ts.mailTo(t, sink, "alice@example.com").Code()

	// A resend within a minute of the last code is refused, with the wait.
	tok := ts.token("alice", pw)
	res := ts.postJSON("/users/me/email/verify/resend", ``, bearer(tok)...)
	wantStatus(t, res, http.StatusTooManyRequests)
	if res.Header.Get("Retry-After") == "" || !strings.Contains(res.json(t)["detail"].(string), "less than a minute ago") {
		t.Fatalf("spaced resend: %v %s", res.Header, res.Body)
	}
	ts.clockAt(start.Add(61 * time.Second))
	tok = ts.token("alice", pw)
	res = ts.postJSON("/users/me/email/verify/resend", ``, bearer(tok)...)
	wantDetail(t, res, http.StatusAccepted, "A new code has been sent to alice@example.com.")
	fresh := ts.mailTo(t, sink, "alice@example.com").Code()
	if fresh == code {
		t.Fatal("the resend sent the same code")
	}
	// The new code replaced the old one.
	wantStatus(t, ts.postJSON("/users/me/email/verify", `{"code":"`+code+`"}`, bearer(tok)...), http.StatusBadRequest)

	// Five wrong tries void the code: the right one then fails too.
	for i := 0; i < 4; i++ {
		wantStatus(t, ts.postJSON("/users/me/email/verify", `{"code":"0000-0000"}`, bearer(tok)...), http.StatusBadRequest)
	}
	wantStatus(t, ts.postJSON("/users/me/email/verify", `{"code":"`+fresh+`"}`, bearer(tok)...), http.StatusBadRequest)

	// Expiry: a new code is good for 15 minutes, not more.
	ts.clockAt(start.Add(3 * time.Minute))
	tok = ts.token("alice", pw)
	wantStatus(t, ts.postJSON("/users/me/email/verify/resend", ``, bearer(tok)...), http.StatusAccepted)
	late := ts.mailTo(t, sink, "alice@example.com").Code()
	ts.clockAt(start.Add(3*time.Minute + 15*time.Minute + time.Second))
	tok = ts.token("alice", pw)
	wantStatus(t, ts.postJSON("/users/me/email/verify", `{"code":"`+late+`"}`, bearer(tok)...), http.StatusBadRequest)
	ts.clockAt(start.Add(20 * time.Minute))
	tok = ts.token("alice", pw)
	wantStatus(t, ts.postJSON("/users/me/email/verify/resend", ``, bearer(tok)...), http.StatusAccepted)
	ok := ts.mailTo(t, sink, "alice@example.com").Code()
	ts.clockAt(start.Add(20*time.Minute + 14*time.Minute + 59*time.Second))
	tok = ts.token("alice", pw)
	wantStatus(t, ts.postJSON("/users/me/email/verify", `{"code":"`+ok+`"}`, bearer(tok)...), http.StatusNoContent)

	// Forgot-password mail is spaced too, silently: the answer is the same.
	ts.postJSON("/password/forgot", `{"login":"alice"}`)
	ts.postJSON("/password/forgot", `{"login":"alice"}`)
	ts.flushMail()
	resets := 0
	for _, m := range sink.To("alice@example.com") {
		if m.Header.Get("Subject") == "Reset your password" {
			resets++
		}
	}
	if resets != 1 {
		t.Fatalf("%d reset mails for two requests within a minute, want 1", resets)
	}
}

// TestWrongCodesAreThrottled: wrong codes count as failed sign-ins for the
// account from the address, so that codes cannot be guessed at speed.
func TestWrongCodesAreThrottled(t *testing.T) {
	ts, sink := newMailServer(t)
	ts.register("alice", "alice@example.com", pw)
	ts.postJSON("/password/forgot", `{"login":"alice"}`)
	ts.flushMail()
	code := ""
	for _, m := range sink.To("alice@example.com") {
		if m.Header.Get("Subject") == "Reset your password" {
			code = m.Code()
		}
	}
	if code == "" {
		t.Fatal("no reset code")
	}
	limit := ts.s.cfg.LoginFailuresPerAccount
	for i := 0; i < limit; i++ {
		body := `{"login":"alice","code":"` + strings.Repeat(string("ABCDEFGH"[i]), 8) + `","new_password":"a new passphrase 1"}`
		wantStatus(t, ts.postJSON("/password/reset", body), http.StatusBadRequest)
	}
	res := ts.postJSON("/password/reset", `{"login":"alice","code":"`+code+`","new_password":"a new passphrase 1"}`)
	wantStatus(t, res, http.StatusTooManyRequests)
	// Password sign-ins from the address are held back as well.
	wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}), http.StatusTooManyRequests)
}

// TestLinksChangeNothing: opening the link of a mail (as mail scanners and
// link previews do) shows a form and changes nothing; the code still works.
func TestLinksChangeNothing(t *testing.T) {
	ts, sink := newMailServer(t)
	ts.register("alice", "alice@example.com", pw)
	verify := ts.mailTo(t, sink, "alice@example.com")
	ts.postJSON("/password/forgot", `{"login":"alice"}`)
	reset := ts.mailTo(t, sink, "alice@example.com")
	for _, m := range []string{verify.Link(), reset.Link()} {
		u, err := url.Parse(m)
		if err != nil {
			t.Fatal(err)
		}
		// A link checker's HEAD, then twice as a scanner and a link
		// preview would.
		head := ts.do(httptest.NewRequest(http.MethodHead, u.RequestURI(), nil))
		if head.StatusCode != http.StatusOK || head.Body != "" {
			t.Fatalf("HEAD %s: %d %q", u.Path, head.StatusCode, head.Body)
		}
		for range 2 {
			res := ts.get(u.RequestURI())
			wantStatus(t, res, http.StatusOK)
			if !strings.Contains(res.Body, `value="`+u.Query().Get("code")+`"`) {
				t.Fatalf("the page of %s does not fill in the code:\n%s", u.Path, res.Body)
			}
		}
	}
	tok := ts.token("alice", pw)
	if me := ts.get("/users/me", bearer(tok)...).json(t); me["email_verified"] != false {
		t.Fatal("opening the link verified the address")
	}
	wantStatus(t, ts.postJSON("/users/me/email/verify", `{"code":"`+verify.Code()+`"}`, bearer(tok)...), http.StatusNoContent)
	wantStatus(t, ts.postJSON("/password/reset", `{"login":"alice","code":"`+reset.Code()+`","new_password":"a new passphrase 1"}`), http.StatusNoContent)
}

// TestMailHeadersNotInjectable: nothing a user types can add a header or a
// recipient: addresses and usernames with line breaks or extra addresses
// are refused before any mail is made, and the headers of a sent message
// are the service's own.
func TestMailHeadersNotInjectable(t *testing.T) {
	ts, sink := newMailServer(t)
	for _, email := range []string{
		"eve@example.com\r\nBcc: victim@example.com",
		"eve@example.com\nSubject: hi",
		"eve@example.com, victim@example.com",
		"Eve <eve@example.com>",
		"eve@example.com>\r\nX-Evil: 1",
		"\"eve\r\n\"@example.com",
	} {
		body := `{"username":"eve","email":` + jsonString(email) + `,"password":"` + pw + `"}`
		wantStatus(t, ts.postJSON("/register/user", body), http.StatusUnprocessableEntity)
	}
	wantStatus(t, ts.postJSON("/register/user", `{"username":"eve\r\nBcc: x@example.com","email":"eve@example.com","password":"`+pw+`"}`),
		http.StatusUnprocessableEntity)
	ts.register("eve", "eve@example.com", pw)
	tok := ts.token("eve", pw)
	wantStatus(t, ts.postJSON("/users/me/email", `{"new_email":"x@example.com\r\nBcc: victim@example.com","password":"`+pw+`"}`, bearer(tok)...),
		http.StatusUnprocessableEntity)
	ts.flushMail()
	for _, m := range sink.Messages() {
		if len(m.To) != 1 || m.To[0] != "eve@example.com" {
			t.Fatalf("mail went to %v", m.To)
		}
		for _, h := range []string{"Bcc", "Cc", "X-Evil"} {
			if m.Header.Get(h) != "" {
				t.Fatalf("mail carries %s:\n%s", h, m.Raw)
			}
		}
		if to := m.Header.Get("To"); to != "<eve@example.com>" && to != "eve@example.com" {
			t.Fatalf("To header %q", to)
		}
	}
	if len(sink.Messages()) != 1 {
		t.Fatalf("%d messages, want only eve's verification", len(sink.Messages()))
	}
}

func jsonString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\r", `\r`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}

// TestMailServerDown: while the SMTP server refuses or is gone, answers do
// not change or wait; the queue retries, and a message that finally fails
// is logged with its reason and counted.
func TestMailServerDown(t *testing.T) {
	var log syncBuffer
	sink := mailtest.Start(t)
	ts := newLoggedServer(t, &log, "SMTP_URL", sink.URL(), "METRICS_TOKEN", metricsSecret)
	ts.s.outbox.SetBackoff(10 * time.Millisecond)

	// Two refusals, then delivery on the third attempt.
	sink.Refuse(2)
	ts.register("alice", "alice@example.com", pw)
	m := ts.mailTo(t, sink, "alice@example.com")
	if m.Code() == "" || sink.Attempts() != 3 {
		t.Fatalf("code %q after %d attempts, want a code after 3", m.Code(), sink.Attempts())
	}

	// A server that refuses every time: the answer is unchanged, the
	// message is given up after its attempts, logged and counted.
	sink.Refuse(1000)
	res := ts.postJSON("/password/forgot", `{"login":"alice"}`)
	wantDetail(t, res, http.StatusAccepted, "If an account exists for that name, a code has been sent to its email address.")
	ts.flushMail()
	out := log.String()
	if !strings.Contains(out, `"msg":"mail not sent"`) || !strings.Contains(out, "try again later") {
		t.Fatalf("a failed message is not logged with its reason:\n%s", out)
	}
	exp := ts.scrape()
	if !regexp.MustCompile(`fiberauth_mail_messages_total\{kind="password_reset",outcome="failed"\} 1`).MatchString(exp) ||
		!regexp.MustCompile(`fiberauth_mail_messages_total\{kind="verify_email",outcome="retried"\} 2`).MatchString(exp) {
		t.Fatalf("mail metrics:\n%s", grepLines(exp, "fiberauth_mail"))
	}
	// Once the server is back, a new request goes through.
	sink.Refuse(0)
	ts.clockAt(time.Now().Add(2 * time.Minute))
	ts.postJSON("/password/forgot", `{"login":"alice"}`)
	if got := ts.mailTo(t, sink, "alice@example.com"); got.Header.Get("Subject") != "Reset your password" {
		t.Fatalf("after the server came back: %q", got.Header.Get("Subject"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestRequireVerifiedEmail: with REQUIRE_VERIFIED_EMAIL the password grant
// refuses an unverified account with the contract's body, and the login
// page says why and offers a new code; once verified, both work.
func TestRequireVerifiedEmail(t *testing.T) {
	ts, sink := newMailServer(t, "REQUIRE_VERIFIED_EMAIL", "true")
	ts.register("alice", "alice@example.com", pw)
	res := ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}})
	wantStatus(t, res, http.StatusBadRequest)
	if res.Body != `{"detail":"Email address not verified","error":"invalid_grant","error_description":"Email address not verified"}` {
		t.Fatalf("body %s", res.Body)
	}
	// A wrong password is still just a wrong password.
	wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {"wrong password"}}), http.StatusUnauthorized)

	b := ts.browser()
	res = b.login("alice", pw)
	wantStatus(t, res, http.StatusForbidden)
	if !strings.Contains(res.Body, "not verified yet") || !strings.Contains(res.Body, `action="/email/verify/resend"`) {
		t.Fatalf("login page:\n%s", res.Body)
	}
	if res.cookie("access_token") != nil {
		t.Fatal("a session cookie for an unverified account")
	}
	// The page's "Send a new code" (a minute later, past the spacing).
	ts.clockAt(time.Now().Add(61 * time.Second))
	res = b.submit("/login", "/email/verify/resend", url.Values{"login": {"alice"}})
	wantStatus(t, res, http.StatusOK)
	code := ts.mailTo(t, sink, "alice@example.com").Code()
	res = b.submit("/email/verify", "/email/verify", url.Values{"login": {"alice"}, "code": {code}})
	// Not signed in: the address's owner says the password set before is
	// theirs.
	wantStatus(t, res, http.StatusOK)
	if !strings.Contains(res.Body, "<li>a password</li>") || !strings.Contains(res.Body, "Did you set them up?") {
		t.Fatalf("the question: %s", res.Body)
	}
	f := hidden(res.Body)
	f.Set("keep", "mine")
	res = b.submit("/email/verify", "/email/verify", f)
	wantStatus(t, res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); loc != "/login?done=email_verified" {
		t.Fatalf("after verifying: %s", loc)
	}
	ts.token("alice", pw)
	wantStatus(t, b.login("alice", pw), http.StatusSeeOther)

	// Registering on the page leads to the code, not to the profile.
	b2 := ts.browser()
	res = b2.submit("/register", "/register", url.Values{"username": {"bob"}, "email": {"bob@example.com"}, "password": {pw}})
	wantStatus(t, res, http.StatusSeeOther)
	if loc := res.Header.Get("Location"); !strings.HasPrefix(loc, "/email/verify?") {
		t.Fatalf("after registering: %s", loc)
	}
}

// TestEmailPages: the page flows, with the forms a browser sends.
func TestEmailPages(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts, sink := newMailServer(t, env...)
		b := ts.browser()
		res := b.submit("/register", "/register", url.Values{"username": {"alice"}, "email": {"alice@example.com"}, "password": {pw}})
		wantStatus(t, res, http.StatusSeeOther)
		profile := b.get("/profile")
		if !strings.Contains(profile.Body, "Not verified") || !strings.Contains(profile.Body, `action="/email/verify"`) {
			t.Fatalf("profile of an unverified account:\n%s", profile.Body)
		}
		code := ts.mailTo(t, sink, "alice@example.com").Code()
		res = b.submit("/profile", "/email/verify", url.Values{"code": {"WRONG123"}})
		wantStatus(t, res, http.StatusBadRequest)
		if !strings.Contains(res.Body, "That code is wrong or has expired.") {
			t.Fatalf("wrong code page:\n%s", res.Body)
		}
		res = b.submit("/profile", "/email/verify", url.Values{"code": {code}})
		wantStatus(t, res, http.StatusSeeOther)
		if res.Header.Get("Location") != "/profile?done=email_verified" {
			t.Fatalf("after verifying: %s", res.Header.Get("Location"))
		}
		profile = b.get("/profile?done=email_verified")
		if !strings.Contains(profile.Body, ">Verified<") || !strings.Contains(profile.Body, "Your email address is verified.") {
			t.Fatalf("profile after verifying:\n%s", profile.Body)
		}

		// Forgot → reset → signed in on the profile with a banner; the
		// other browser's session ended.
		login := ts.browser()
		if !strings.Contains(login.get("/login").Body, `href="/password/forgot"`) {
			t.Fatal("no Forgot your password? link on /login")
		}
		res = login.submit("/password/forgot", "/password/forgot", url.Values{"login": {"alice@example.com"}})
		wantStatus(t, res, http.StatusOK)
		if !strings.Contains(res.Body, "If an account exists for that name, we&#39;ve sent a code to its email address.") ||
			!strings.Contains(res.Body, `action="/password/reset"`) {
			t.Fatalf("after asking for a code:\n%s", res.Body)
		}
		// An unknown name gets the same page, but for the name typed and
		// the form's token.
		res2 := ts.browser().submit("/password/forgot", "/password/forgot", url.Values{"login": {"nobody@example.com"}})
		if res2.StatusCode != res.StatusCode ||
			withoutTokens(strings.ReplaceAll(res2.Body, "nobody@example.com", "alice@example.com")) != withoutTokens(res.Body) {
			t.Fatalf("the page tells whether the account exists:\n%s\n----\n%s", res.Body, res2.Body)
		}
		m := ts.mailTo(t, sink, "alice@example.com")
		res = login.submit("/password/forgot", "/password/reset", url.Values{"login": {"alice@example.com"}, "code": {m.Code()},
			"new_password": {"short"}})
		wantStatus(t, res, http.StatusUnprocessableEntity)
		res = login.submit("/password/forgot", "/password/reset", url.Values{"login": {"alice@example.com"}, "code": {m.Code()},
			"new_password": {"a new passphrase 42"}})
		wantStatus(t, res, http.StatusSeeOther)
		if res.Header.Get("Location") != "/profile?done=password_reset" || res.cookie("access_token") == nil {
			t.Fatalf("after the reset: %s", res.Header.Get("Location"))
		}
		if p := login.get("/profile?done=password_reset"); !strings.Contains(p.Body, "Your password was changed.") ||
			!strings.Contains(p.Body, "alice authorized") {
			t.Fatalf("profile after the reset:\n%s", p.Body)
		}
		if res := b.get("/profile"); res.StatusCode != http.StatusSeeOther {
			t.Fatalf("the first browser is still signed in after the reset: %d", res.StatusCode)
		}

		// Change of address on the page.
		res = login.submit("/profile/email", "/profile/email", url.Values{"new_email": {"alice@new.example.com"}, "password": {"wrong"}})
		wantStatus(t, res, http.StatusForbidden)
		res = login.submit("/profile/email", "/profile/email", url.Values{"new_email": {"alice@new.example.com"}, "password": {"a new passphrase 42"}})
		wantStatus(t, res, http.StatusSeeOther)
		p := login.get("/profile?done=email_code_sent")
		if !strings.Contains(p.Body, "alice@new.example.com") || !strings.Contains(p.Body, "Confirm your new address") {
			t.Fatalf("profile with a pending change:\n%s", p.Body)
		}
		code = ts.mailTo(t, sink, "alice@new.example.com").Code()
		res = login.submit("/profile", "/email/verify", url.Values{"code": {code}})
		wantStatus(t, res, http.StatusSeeOther)
		if p := login.get("/profile"); !strings.Contains(p.Body, `<span id="email">alice@new.example.com</span>`) {
			t.Fatalf("profile after the change:\n%s", p.Body)
		}
	})
}

// withoutTokens blanks a page's CSRF tokens, for comparing two renderings.
func withoutTokens(page string) string {
	page = regexp.MustCompile(`name="csrf_token" value="[^"]*"`).ReplaceAllString(page, `name="csrf_token" value=""`)
	return regexp.MustCompile(`name="csrf-token" content="[^"]*"`).ReplaceAllString(page, `name="csrf-token" content=""`)
}

// TestMailServerUnreachable: with nothing listening at SMTP_URL the
// answers are the usual ones, at once; the message is retried, then given
// up, logged and counted.
func TestMailServerUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close() // nothing listens there now
	var log syncBuffer
	ts := newLoggedServer(t, &log, "SMTP_URL", "smtp://"+dead, "METRICS_TOKEN", metricsSecret)
	ts.s.outbox.SetBackoff(time.Millisecond)
	res := ts.postJSON("/register/user", `{"username":"alice","email":"alice@example.com","password":"`+pw+`"}`)
	wantStatus(t, res, http.StatusCreated)
	wantStatus(t, ts.postJSON("/password/forgot", `{"login":"alice"}`), http.StatusAccepted)
	ts.flushMail()
	exp := ts.scrape()
	for _, want := range []string{
		`fiberauth_mail_messages_total{kind="verify_email",outcome="failed"} 1`,
		`fiberauth_mail_messages_total{kind="verify_email",outcome="retried"} 5`,
		`fiberauth_mail_messages_total{kind="password_reset",outcome="failed"} 1`,
	} {
		if !strings.Contains(exp, want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(exp, "fiberauth_mail"))
		}
	}
	if !strings.Contains(log.String(), `"msg":"mail not sent"`) || !strings.Contains(log.String(), "connection refused") {
		t.Fatalf("the failure is not logged with its reason:\n%s", grepLines(log.String(), "mail"))
	}
}

// TestMailLoggedWithoutServer: without SMTP_URL (the go run . default)
// each message is written whole to the log, its text readable, so that a
// developer can follow the flows.
func TestMailLoggedWithoutServer(t *testing.T) {
	var log syncBuffer
	ts := newLoggedServer(t, &log)
	ts.register("alice", "alice@example.com", pw)
	ts.flushMail()
	out := log.String()
	if !strings.Contains(out, `"msg":"mail not sent (SMTP_URL is not set); the message follows"`) ||
		!regexp.MustCompile(`Code: [0-9A-Z]{4}-[0-9A-Z]{4}\\n`).MatchString(out) ||
		!strings.Contains(out, `Subject: Confirm your email address`) || !strings.Contains(out, `"to":"alice@example.com"`) {
		t.Fatalf("the message is not in the log:\n%s", out)
	}
}
