package app

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

type sessionList []sessionJSON

func (ts *testServer) sessions(tok string) sessionList {
	ts.t.Helper()
	res := ts.get("/users/me/sessions", bearer(tok)...)
	wantStatus(ts.t, res, http.StatusOK)
	var l sessionList
	if err := json.Unmarshal([]byte(res.Body), &l); err != nil {
		ts.t.Fatalf("sessions: %v in %s", err, res.Body)
	}
	return l
}

func (ts *testServer) del(path string, body string, header ...string) response {
	ts.t.Helper()
	req := httptest.NewRequest(http.MethodDelete, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return ts.do(req)
}

func TestListSessions(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	ts.register("bob", "bob@example.com", pw)
	a1 := ts.token("alice", pw)
	a2 := ts.token("alice", pw)
	ts.token("bob", pw)

	l := ts.sessions(a2)
	if len(l) != 2 {
		t.Fatalf("%d sessions listed, want alice's 2: %+v", len(l), l)
	}
	current := 0
	for _, s := range l {
		if s.Current {
			current++
		}
		if s.ID == "" || s.CreatedAt == "" || s.LastUsedAt == "" || s.ExpiresAt == "" || s.IP == "" {
			t.Errorf("incomplete session: %+v", s)
		}
	}
	if current != 1 {
		t.Errorf("%d sessions marked current, want 1", current)
	}
	c1, _ := ts.s.acct.Tokens().Verify(a1)
	for _, s := range l {
		if s.Current == (s.ID == c1.SessionID) {
			t.Errorf("the session of a2 should be current, not a1's: %+v", s)
		}
	}
}

func TestEndSession(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		ts.register("bob", "bob@example.com", pw)
		a1, a2 := ts.token("alice", pw), ts.token("alice", pw)
		bob := ts.token("bob", pw)
		c1, _ := ts.s.acct.Tokens().Verify(a1)
		cb, _ := ts.s.acct.Tokens().Verify(bob)

		// Another user's session id and a made-up one answer the same 404.
		other := ts.del("/users/me/sessions/"+cb.SessionID, "", bearer(a2)...)
		made := ts.del("/users/me/sessions/nonexistent", "", bearer(a2)...)
		wantStatus(t, other, http.StatusNotFound)
		wantStatus(t, made, http.StatusNotFound)
		if other.Body != made.Body {
			t.Errorf("404 bodies differ: %s vs %s", other.Body, made.Body)
		}
		wantStatus(t, ts.get("/users/me", bearer(bob)...), http.StatusOK)

		wantStatus(t, ts.del("/users/me/sessions/"+c1.SessionID, "", bearer(a2)...), http.StatusNoContent)
		wantStatus(t, ts.get("/users/me", bearer(a1)...), http.StatusUnauthorized)
		wantStatus(t, ts.get("/users/me", bearer(a2)...), http.StatusOK)
	})
}

func TestEndOtherSessions(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	ts.register("bob", "bob@example.com", pw)
	a1, a2, a3 := ts.token("alice", pw), ts.token("alice", pw), ts.token("alice", pw)
	bob := ts.token("bob", pw)
	wantStatus(t, ts.del("/users/me/sessions", "", bearer(a2)...), http.StatusNoContent)
	wantStatus(t, ts.get("/users/me", bearer(a1)...), http.StatusUnauthorized)
	wantStatus(t, ts.get("/users/me", bearer(a3)...), http.StatusUnauthorized)
	wantStatus(t, ts.get("/users/me", bearer(a2)...), http.StatusOK)
	wantStatus(t, ts.get("/users/me", bearer(bob)...), http.StatusOK)
	if l := ts.sessions(a2); len(l) != 1 || !l[0].Current {
		t.Errorf("sessions left: %+v, want only the current one", l)
	}
}

func TestChangePassword(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		a1, a2 := ts.token("alice", pw), ts.token("alice", pw)
		const newPW = "a brand new passphrase"
		tests := []struct {
			name, body string
			status     int
			detail     string
		}{
			{"wrong current", `{"current_password":"nope nope nope","new_password":"` + newPW + `"}`, 403, msgIncorrectPassword},
			{"short new", `{"current_password":"` + pw + `","new_password":"short"}`, 422, ""},
			{"common new", `{"current_password":"` + pw + `","new_password":"iloveyou1"}`, 422, ""},
			{"same as current", `{"current_password":"` + pw + `","new_password":"` + pw + `"}`, 422, ""},
			{"missing field", `{"current_password":"` + pw + `"}`, 422, ""},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				res := ts.postJSON("/users/me/password", tt.body, bearer(a2)...)
				wantStatus(t, res, tt.status)
				if tt.detail != "" && res.json(t)["detail"] != tt.detail {
					t.Errorf("detail = %v, want %q", res.json(t)["detail"], tt.detail)
				}
			})
		}
		res := ts.postJSON("/users/me/password", `{"current_password":"`+pw+`","new_password":"`+newPW+`"}`, bearer(a2)...)
		wantStatus(t, res, http.StatusNoContent)
		wantStatus(t, ts.get("/users/me", bearer(a1)...), http.StatusUnauthorized)
		wantStatus(t, ts.get("/users/me", bearer(a2)...), http.StatusOK)
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}), http.StatusUnauthorized)
		ts.token("alice", newPW)
	})
}

func TestEvents(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		ts.register("bob", "bob@example.com", pw)
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {"wrong password"}}), http.StatusUnauthorized)
		b := ts.browser()
		wantStatus(t, b.login("alice@example.com", "wrong again"), http.StatusUnauthorized)
		tok := ts.token("alice", pw)
		ts.token("bob", pw)

		res := ts.get("/users/me/events", bearer(tok)...)
		wantStatus(t, res, http.StatusOK)
		var events []struct{ Time, Kind, IP, UserAgent string }
		if err := json.Unmarshal([]byte(res.Body), &events); err != nil {
			t.Fatal(err)
		}
		kinds := make([]string, len(events))
		for i, e := range events {
			kinds[i] = e.Kind
			if e.Time == "" {
				t.Errorf("event without time: %+v", e)
			}
		}
		if got, want := strings.Join(kinds, ","), "sign_in,sign_in_failed,sign_in_failed,account_created"; got != want {
			t.Errorf("events newest first = %s, want %s", got, want)
		}
	})
}

func TestEventsAtMost50(t *testing.T) {
	ts := newTestServer(t, "LOGIN_FAILURES_PER_ACCOUNT", "1000", "LOGIN_FAILURES_PER_IP", "1000")
	ts.register("alice", "alice@example.com", pw)
	for i := 0; i < 55; i++ {
		ts.postForm("/token", url.Values{"username": {"alice"}, "password": {"wrong password"}})
	}
	tok := ts.token("alice", pw)
	var events []map[string]string
	json.Unmarshal([]byte(ts.get("/users/me/events", bearer(tok)...).Body), &events)
	if len(events) != 50 {
		t.Errorf("%d events, want 50", len(events))
	}
	if len(events) > 0 && events[0]["kind"] != "sign_in" {
		t.Errorf("newest event is %v, want sign_in", events[0])
	}
}

func TestDeleteAccount(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		a1, a2 := ts.token("alice", pw), ts.token("alice", pw)
		res := ts.del("/users/me", `{"password":"wrong password"}`, bearer(a1)...)
		wantStatus(t, res, http.StatusForbidden)
		if res.json(t)["detail"] != msgIncorrectPassword {
			t.Errorf("detail = %v", res.json(t)["detail"])
		}
		wantStatus(t, ts.del("/users/me", `{}`, bearer(a1)...), http.StatusUnprocessableEntity)
		wantStatus(t, ts.del("/users/me", `{"password":"`+pw+`"}`, bearer(a1)...), http.StatusNoContent)
		wantStatus(t, ts.get("/users/me", bearer(a1)...), http.StatusUnauthorized)
		wantStatus(t, ts.get("/users/me", bearer(a2)...), http.StatusUnauthorized)
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}), http.StatusUnauthorized)
		// The username and email are free again.
		ts.register("Alice", "ALICE@example.com", "another passphrase")
	})
}

func TestProfileSelfService(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	other := ts.token("alice", pw)
	wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}, "User-Agent", "curl/8.5.0"), http.StatusOK)
	b := ts.browser()
	b.login("alice", "wrong password") // a failed attempt to show
	wantStatus(t, b.login("alice", pw), http.StatusSeeOther)

	prof := b.get("/profile")
	wantStatus(t, prof, http.StatusOK)
	for _, want := range []string{"This device", "End session", "Sign out everywhere else", "Failed sign-in", "Signed in", "Delete account", "Change password",
		"Unknown client", `<strong title="curl/8.5.0">curl 8</strong>`} {
		if !strings.Contains(prof.Body, want) {
			t.Errorf("profile lacks %q", want)
		}
	}
	oc, _ := ts.s.acct.Tokens().Verify(other)
	res := b.submit("/profile", "/profile/sessions/"+oc.SessionID+"/end", url.Values{})
	wantStatus(t, res, http.StatusSeeOther)
	wantStatus(t, ts.get("/users/me", bearer(other)...), http.StatusUnauthorized)
	wantStatus(t, b.get("/profile"), http.StatusOK)

	// Sign out everywhere else.
	o2, o3 := ts.token("alice", pw), ts.token("alice", pw)
	wantStatus(t, b.submit("/profile", "/profile/sessions/others/end", url.Values{}), http.StatusSeeOther)
	wantStatus(t, ts.get("/users/me", bearer(o2)...), http.StatusUnauthorized)
	wantStatus(t, ts.get("/users/me", bearer(o3)...), http.StatusUnauthorized)
	wantStatus(t, b.get("/profile"), http.StatusOK)

	// Change the password through the form.
	o4 := ts.token("alice", pw)
	wrong := b.submit("/profile/password", "/profile/password", url.Values{"current_password": {"nope nope"}, "new_password": {"a new passphrase"}})
	wantStatus(t, wrong, http.StatusForbidden)
	if !strings.Contains(wrong.Body, msgIncorrectPassword) {
		t.Error("wrong current password: message missing")
	}
	weak := b.submit("/profile/password", "/profile/password", url.Values{"current_password": {pw}, "new_password": {"short"}})
	wantStatus(t, weak, http.StatusUnprocessableEntity)
	ok := b.submit("/profile/password", "/profile/password", url.Values{"current_password": {pw}, "new_password": {"a new passphrase"}})
	wantStatus(t, ok, http.StatusSeeOther)
	if !strings.Contains(b.get(ok.Header.Get("Location")).Body, "Your password has been changed.") {
		t.Error("no confirmation after the password change")
	}
	wantStatus(t, ts.get("/users/me", bearer(o4)...), http.StatusUnauthorized)

	// Delete the account through the form.
	page := b.get("/profile/delete")
	if !strings.Contains(page.Body, "cannot be undone") {
		t.Error("delete page does not say what will be lost")
	}
	wantStatus(t, b.submit("/profile/delete", "/profile/delete", url.Values{"password": {"wrong"}}), http.StatusForbidden)
	del := b.submit("/profile/delete", "/profile/delete", url.Values{"password": {"a new passphrase"}})
	wantStatus(t, del, http.StatusSeeOther)
	if !clearedCookie(del.cookie(sessionCookie)) {
		t.Error("cookie not cleared after deletion")
	}
	ts.register("alice", "alice@example.com", pw)
}

// A session's last use is written to the database (at most once a minute),
// and housekeeping deletes it once expired.
func TestPruneAndTouch(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	tok := ts.token("alice", pw)
	sid := mustClaims(t, ts, tok).SessionID
	u, _ := ts.store.UserByUsernameKey(t.Context(), "alice")
	stored := func() sessionTime {
		t.Helper()
		list, err := ts.store.ListSessions(t.Context(), u.ID, sessionTime{}, sessionTime{})
		if err != nil || len(list) != 1 || list[0].ID != sid {
			t.Fatalf("stored sessions: %+v, %v", list, err)
		}
		return list[0].LastUsedAt
	}
	before := stored()
	real := ts.s.acct.Now
	ts.s.acct.Now = func() sessionTime { return real().Add(30 * 1e9) }
	wantStatus(t, ts.get("/users/me", bearer(tok)...), http.StatusOK)
	if got := stored(); !got.Equal(before) {
		t.Errorf("last use written after 30 s (%v then %v); want at most once a minute", before, got)
	}
	ts.s.acct.Now = func() sessionTime { return real().Add(2 * 60e9) }
	wantStatus(t, ts.get("/users/me", bearer(tok)...), http.StatusOK)
	if got := stored(); !got.After(before) {
		t.Errorf("stored last_used_at %v not advanced after two minutes (was %v)", got, before)
	}
	// Past the idle limit housekeeping deletes the session.
	ts.s.acct.Now = func() sessionTime { return real().Add(15 * 24 * 3600e9) }
	ts.s.housekeep(t.Context())
	if list, _ := ts.store.ListSessions(t.Context(), u.ID, sessionTime{}, sessionTime{}); len(list) != 0 {
		t.Errorf("expired session not pruned: %+v", list)
	}
}
