package app

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// userID returns the id of the account called name.
func (ts *testServer) userID(name string) int64 {
	ts.t.Helper()
	u, err := ts.store.UserByUsernameKey(context.Background(), strings.ToLower(name))
	if err != nil {
		ts.t.Fatalf("user %s: %v", name, err)
	}
	return u.ID
}

// send makes a request with a JSON body (or none) and headers.
func (ts *testServer) send(method, path, body string, header ...string) response {
	ts.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return ts.do(req)
}

func wantDetail(t *testing.T, res response, status int, detail string) {
	t.Helper()
	wantStatus(t, res, status)
	if got, _ := res.json(t)["detail"].(string); got != detail {
		t.Fatalf("detail = %q, want %q (body %s)", got, detail, res.Body)
	}
}

func wantJSONList(t *testing.T, res response, want ...string) {
	t.Helper()
	wantStatus(t, res, http.StatusOK)
	var got []string
	if err := json.Unmarshal([]byte(res.Body), &got); err != nil {
		t.Fatalf("body %s: %v", res.Body, err)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("body = %q, want %q", got, want)
	}
}

// TestRoles follows the cookbook's RBAC recipe: roles as scopes, the
// welcome endpoints, premium registration for admins only, and a role
// change seen by a token issued before it.
func TestRoles(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		ts.makeAdmin("root")

		res := ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}})
		wantStatus(t, res, http.StatusOK)
		if got := res.json(t)["scope"]; got != "basic" {
			t.Fatalf("scope of a basic account's token = %v, want basic", got)
		}
		alice := res.json(t)["access_token"].(string)
		if got := ts.get("/users/me", bearer(alice)...).json(t)["role"]; got != "basic" {
			t.Fatalf("role = %v, want basic", got)
		}
		wantJSONList(t, ts.get("/welcome/all-users", bearer(alice)...), "Hello alice, welcome to your space")
		wantDetail(t, ts.get("/welcome/premium-user", bearer(alice)...), http.StatusForbidden, "User not authorized")
		wantDetail(t, ts.get("/welcome/all-users"), http.StatusUnauthorized, "Not authenticated")

		// More scope than the role allows is refused; asking for less is not.
		res = ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}, "scope": {"basic premium"}})
		wantOAuthError(t, res, http.StatusBadRequest, "invalid_scope")

		res = ts.postForm("/token", url.Values{"username": {"root"}, "password": {pw}})
		if got := res.json(t)["scope"]; got != "basic premium admin" {
			t.Fatalf("scope of an admin's token = %v, want all three", got)
		}
		root := res.json(t)["access_token"].(string)

		// Premium registration is for admins.
		premium := `{"username": "paula", "email": "paula@example.com", "password": "` + pw + `"}`
		wantDetail(t, ts.postJSON("/register/premium-user", premium), http.StatusUnauthorized, "Not authenticated")
		wantDetail(t, ts.postJSON("/register/premium-user", premium, bearer(alice)...), http.StatusForbidden, "User not authorized")
		wantStatus(t, ts.postJSON("/register/premium-user", premium, bearer(root)...), http.StatusCreated)
		paula := ts.token("paula", pw)
		wantJSONList(t, ts.get("/welcome/premium-user", bearer(paula)...), "Hello paula, welcome to your premium space")

		// A role given is the account's at once; a token issued before it
		// still allows only what its own scope says (authorization is the
		// intersection of role, session and token), and the next token
		// of the same session carries the new role.
		path := fmt.Sprintf("/admin/api/users/%d/role", ts.userID("alice"))
		aliceRefresh := ts.signIn("alice").Refresh
		wantStatus(t, ts.send("PUT", path, `{"role": "premium"}`, bearer(root)...), http.StatusNoContent)
		if got := ts.get("/users/me", bearer(alice)...).json(t)["role"]; got != "premium" {
			t.Fatalf("role after the change = %v, want premium", got)
		}
		wantDetail(t, ts.get("/welcome/premium-user", bearer(alice)...), http.StatusForbidden, "User not authorized")
		upgraded := ts.pairFrom(ts.refresh(aliceRefresh))
		if upgraded.Scope != "basic premium" {
			t.Fatalf("scope of the token refreshed after the change = %q, want basic premium", upgraded.Scope)
		}
		wantJSONList(t, ts.get("/welcome/premium-user", bearer(upgraded.Access)...), "Hello alice, welcome to your premium space")
		alice = upgraded.Access

		// A token asked for with less scope keeps less, whatever the role.
		res = ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}, "scope": {"basic"}})
		wantStatus(t, res, http.StatusOK)
		narrow := res.json(t)["access_token"].(string)
		if got := res.json(t)["scope"]; got != "basic" {
			t.Fatalf("scope asked for basic = %v", got)
		}
		wantDetail(t, ts.get("/welcome/premium-user", bearer(narrow)...), http.StatusForbidden, "User not authorized")

		wantStatus(t, ts.send("PUT", path, `{"role": "basic"}`, bearer(root)...), http.StatusNoContent)
		wantDetail(t, ts.get("/welcome/premium-user", bearer(alice)...), http.StatusForbidden, "User not authorized")
		wantDetail(t, ts.get("/admin/api/users", bearer(alice)...), http.StatusForbidden, "User not authorized")
	})
}

// TestAdminAPI drives every admin action over JSON and checks what each
// leaves behind: on the account, in its activity and in the audit list.
func TestAdminAPI(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.makeAdmin("root")
		for i := range 54 {
			ts.register(fmt.Sprintf("user%02d", i), fmt.Sprintf("u%02d@example.org", i), pw)
		}
		ts.register("alice", "alice@wonderland.example", pw)
		root := ts.token("root", pw)
		alice := ts.token("alice", pw)
		id := ts.userID("alice")
		user := fmt.Sprintf("/admin/api/users/%d", id)

		wantDetail(t, ts.get("/admin/api/users"), http.StatusUnauthorized, "Not authenticated")
		wantDetail(t, ts.get("/admin/api/users", bearer(alice)...), http.StatusForbidden, "User not authorized")

		var list struct {
			Users []adminUserJSON `json:"users"`
			Total int             `json:"total"`
		}
		res := ts.get("/admin/api/users", bearer(root)...)
		wantStatus(t, res, http.StatusOK)
		json.Unmarshal([]byte(res.Body), &list)
		if list.Total != 56 || len(list.Users) != 50 {
			t.Fatalf("first page: total %d, %d users; want 56 and 50", list.Total, len(list.Users))
		}
		res = ts.get("/admin/api/users?page=2", bearer(root)...)
		json.Unmarshal([]byte(res.Body), &list)
		if len(list.Users) != 6 {
			t.Fatalf("second page: %d users, want 6", len(list.Users))
		}
		res = ts.get("/admin/api/users?search=WONDER", bearer(root)...)
		json.Unmarshal([]byte(res.Body), &list)
		if list.Total != 1 || list.Users[0].Username != "alice" || list.Users[0].Role != "basic" {
			t.Fatalf("search by email: %s", res.Body)
		}
		res = ts.get("/admin/api/users?search=%25", bearer(root)...)
		json.Unmarshal([]byte(res.Body), &list)
		if list.Total != 0 {
			t.Fatalf("a search for %%, which no name holds, found %d", list.Total)
		}

		res = ts.get(user, bearer(root)...)
		wantStatus(t, res, http.StatusOK)
		var detail struct {
			User     adminUserJSON `json:"user"`
			Sessions []sessionJSON `json:"sessions"`
		}
		json.Unmarshal([]byte(res.Body), &detail)
		if detail.User.Username != "alice" || len(detail.Sessions) != 1 || detail.User.LastSignInAt == "" {
			t.Fatalf("user detail: %s", res.Body)
		}
		wantDetail(t, ts.get("/admin/api/users/999999", bearer(root)...), http.StatusNotFound, "User not found")
		wantDetail(t, ts.get("/admin/api/users/abc", bearer(root)...), http.StatusNotFound, "User not found")
		wantStatus(t, ts.send("PUT", user+"/role", `{"role": "owner"}`, bearer(root)...), http.StatusUnprocessableEntity)
		wantStatus(t, ts.send("PUT", user+"/role", `{}`, bearer(root)...), http.StatusUnprocessableEntity)

		// End one session, then all.
		wantStatus(t, ts.send("DELETE", user+"/sessions/"+detail.Sessions[0].ID, "", bearer(root)...), http.StatusNoContent)
		wantStatus(t, ts.get("/users/me", bearer(alice)...), http.StatusUnauthorized)
		wantStatus(t, ts.send("DELETE", user+"/sessions/"+detail.Sessions[0].ID, "", bearer(root)...), http.StatusNotFound)
		alice = ts.token("alice", pw)
		wantStatus(t, ts.send("DELETE", user+"/sessions", "", bearer(root)...), http.StatusNoContent)
		wantStatus(t, ts.get("/users/me", bearer(alice)...), http.StatusUnauthorized)

		// A locked-out account can try again at once once its limits are
		// cleared.
		for range 5 {
			ts.postForm("/token", url.Values{"username": {"alice"}, "password": {"wrong password"}})
		}
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}), http.StatusTooManyRequests)
		wantStatus(t, ts.send("DELETE", user+"/limits", "", bearer(root)...), http.StatusNoContent)
		alice = ts.token("alice", pw)

		wantStatus(t, ts.send("PUT", user+"/role", `{"role": "premium"}`, bearer(root)...), http.StatusNoContent)

		// Every action is on the account's activity, named, and in the
		// audit list.
		res = ts.get("/users/me/events", bearer(alice)...)
		for _, want := range []string{"Role changed to premium by admin root", "Every session ended by admin root",
			"A session ended by admin root", "Sign-in limits cleared by admin root"} {
			if !strings.Contains(res.Body, want) {
				t.Errorf("alice's activity lacks %q: %s", want, res.Body)
			}
		}
		var audit struct {
			Entries []auditJSON `json:"entries"`
			Total   int         `json:"total"`
		}
		res = ts.get("/admin/api/audit", bearer(root)...)
		wantStatus(t, res, http.StatusOK)
		json.Unmarshal([]byte(res.Body), &audit)
		// The oldest entry is root's own promotion, from the command line.
		if n := len(audit.Entries); n == 0 || audit.Entries[n-1].Admin != "the command line" || audit.Entries[n-1].Target != "root" {
			t.Fatalf("audit list should end with root's promotion: %s", res.Body)
		}
		audit.Entries = audit.Entries[:len(audit.Entries)-1]
		var actions []string
		for _, e := range audit.Entries {
			if e.Admin != "root" || e.Target != "alice" {
				t.Errorf("audit entry %+v: want admin root, target alice", e)
			}
			actions = append(actions, e.Action)
		}
		if got := strings.Join(actions, " "); got != "set_role clear_limits end_sessions end_session" {
			t.Fatalf("audit actions, newest first = %q", got)
		}
		if audit.Entries[0].Detail != "from basic to premium" {
			t.Fatalf("audit detail = %q", audit.Entries[0].Detail)
		}

		wantStatus(t, ts.send("DELETE", user, "", bearer(root)...), http.StatusNoContent)
		wantStatus(t, ts.get("/users/me", bearer(alice)...), http.StatusUnauthorized)
		wantStatus(t, ts.get(user, bearer(root)...), http.StatusNotFound)
		wantStatus(t, ts.send("DELETE", user, "", bearer(root)...), http.StatusNotFound)
	})
}

// TestLastAdmin: no way, through the API, a page or the account's own
// deletion, leaves the service without an admin.
func TestLastAdmin(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.makeAdmin("root")
		root := ts.token("root", pw)
		self := fmt.Sprintf("/admin/api/users/%d", ts.userID("root"))
		const msg = "The last admin cannot be removed or lose the role: make another account admin first."

		wantDetail(t, ts.send("PUT", self+"/role", `{"role": "premium"}`, bearer(root)...), http.StatusConflict, msg)
		wantDetail(t, ts.send("DELETE", self, "", bearer(root)...), http.StatusConflict, msg)
		wantDetail(t, ts.send("DELETE", "/users/me", `{"password": "`+pw+`"}`, bearer(root)...), http.StatusConflict, msg)
		b := ts.browser()
		b.login("root", pw)
		res := b.submit("/profile/delete", "/profile/delete", url.Values{"password": {pw}})
		if res.StatusCode != http.StatusConflict || !strings.Contains(res.Body, "The last admin cannot be removed") {
			t.Fatalf("deleting the last admin from the profile: status %d, body %s", res.StatusCode, res.Body)
		}
		if got := ts.get("/users/me", bearer(root)...).json(t)["role"]; got != "admin" {
			t.Fatalf("the last admin's role = %v", got)
		}

		// With a second admin, either may go.
		ts.makeAdmin("second")
		wantStatus(t, ts.send("PUT", self+"/role", `{"role": "basic"}`, bearer(root)...), http.StatusNoContent)
		wantStatus(t, ts.get("/admin/api/users", bearer(root)...), http.StatusForbidden)
	})
}

// TestAdminPages: the admin area's pages and forms, their guards and CSRF.
func TestAdminPages(t *testing.T) {
	ts := newTestServer(t)
	ts.makeAdmin("root")
	ts.register("alice", "alice@example.com", pw)
	ts.register("bob", "bob@example.com", pw)
	alice := ts.token("alice", pw)
	user := fmt.Sprintf("/admin/users/%d", ts.userID("alice"))

	anon := ts.browser()
	res := anon.get("/admin")
	if res.StatusCode != http.StatusSeeOther || !strings.HasPrefix(res.Header.Get("Location"), "/login") {
		t.Fatalf("/admin without a session: status %d, Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	basic := ts.browser()
	basic.login("bob", pw)
	res = basic.get("/admin")
	if res.StatusCode != http.StatusForbidden || !strings.Contains(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("/admin for a basic account: status %d, type %q", res.StatusCode, res.Header.Get("Content-Type"))
	}

	b := ts.browser()
	b.login("root", pw)
	res = b.get("/admin?search=ALI")
	wantStatus(t, res, http.StatusOK)
	if !strings.Contains(res.Body, `href="`+user+`"`) || strings.Contains(res.Body, "bob@example.com") {
		t.Fatalf("search for ALI should list alice only: %s", res.Body)
	}

	// A form without its CSRF token is refused and changes nothing.
	req := httptest.NewRequest("POST", user+"/role", strings.NewReader("role=admin"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	wantStatus(t, b.send(req), http.StatusForbidden)

	res = b.submit(user, user+"/role", url.Values{"role": {"premium"}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != user+"?done=role" {
		t.Fatalf("role form: status %d, Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	res = b.get(user + "?done=role")
	if !strings.Contains(res.Body, `<dd id="role">premium</dd>`) || !strings.Contains(res.Body, "The role has been changed.") ||
		!strings.Contains(res.Body, "Role changed to premium by admin root") {
		t.Fatalf("user page after the role change: %s", res.Body)
	}
	res = b.submit(user, user+"/role", url.Values{"role": {"owner"}})
	if res.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(res.Body, "Role must be basic, premium or admin.") {
		t.Fatalf("an unknown role: status %d, body %s", res.StatusCode, res.Body)
	}

	res = b.submit(user, user+"/sessions/end", url.Values{})
	wantStatus(t, res, http.StatusSeeOther)
	wantStatus(t, ts.get("/users/me", bearer(alice)...), http.StatusUnauthorized)
	if !strings.Contains(b.get(user).Body, "No live sessions.") {
		t.Fatal("the user page still lists sessions after ending them all")
	}

	res = b.get("/admin/audit")
	wantStatus(t, res, http.StatusOK)
	for _, want := range []string{"Ended every session", "Changed the role", "from basic to premium"} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("audit page lacks %q", want)
		}
	}
	res = b.submit(user, user+"/delete", url.Values{})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin?done=deleted" {
		t.Fatalf("delete form: status %d, Location %q", res.StatusCode, res.Header.Get("Location"))
	}
	wantStatus(t, b.get(user), http.StatusNotFound)
}
