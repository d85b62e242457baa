package app

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

const pw = "correct horse battery"

// The recipe's own tests, carried over: registering a user and registering
// an existing one, with the exact bodies.
func TestRegisterUser(t *testing.T) {
	ts := newTestServer(t)
	res := ts.postJSON("/register/user", `{"username":"alice","email":"alice@example.com","password":"correct horse battery"}`)
	wantStatus(t, res, http.StatusCreated)
	if want := `{"message":"user created","user":{"email":"alice@example.com","username":"alice"}}`; res.Body != want {
		t.Errorf("body = %s, want %s", res.Body, want)
	}

	res = ts.postJSON("/register/user", `{"username":"alice","email":"alice@example.com","password":"correct horse battery"}`)
	wantStatus(t, res, http.StatusConflict)
	if want := `{"detail":"username or email already exists"}`; res.Body != want {
		t.Errorf("body = %s, want %s", res.Body, want)
	}
}

func TestRegisterConflicts(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	tests := []struct {
		name, body string
		want       int
	}{
		{"same username other case", `{"username":"ALICE","email":"a2@example.com","password":"` + pw + `"}`, 409},
		{"same username with spaces", `{"username":"  alice ","email":"a3@example.com","password":"` + pw + `"}`, 409},
		{"same email other case", `{"username":"alice2","email":"Alice@Example.COM","password":"` + pw + `"}`, 409},
		{"both new", `{"username":"alice3","email":"a4@example.com","password":"` + pw + `"}`, 201},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := ts.postJSON("/register/user", tt.body)
			wantStatus(t, res, tt.want)
			if tt.want == 409 && res.json(t)["detail"] != msgUserExists {
				t.Errorf("detail = %v, want %q", res.json(t)["detail"], msgUserExists)
			}
		})
	}
}

func TestRegisterValidation(t *testing.T) {
	ts := newTestServer(t)
	long := strings.Repeat("a", 73)
	tests := []struct {
		name, body, field string
	}{
		{"empty body", ``, ""},
		{"not JSON", `username=alice`, ""},
		{"array", `[1,2]`, ""},
		{"trailing data", `{"username":"bob","email":"bob@example.com","password":"` + pw + `"} {}`, ""},
		{"missing username", `{"email":"bob@example.com","password":"` + pw + `"}`, "username"},
		{"missing email", `{"username":"bob","password":"` + pw + `"}`, "email"},
		{"missing password", `{"username":"bob","email":"bob@example.com"}`, "password"},
		{"number username", `{"username":5,"email":"bob@example.com","password":"` + pw + `"}`, "username"},
		{"short username", `{"username":"bo","email":"bob@example.com","password":"` + pw + `"}`, "username"},
		{"long username", `{"username":"` + strings.Repeat("b", 33) + `","email":"bob@example.com","password":"` + pw + `"}`, "username"},
		{"username with space", `{"username":"bo b","email":"bob@example.com","password":"` + pw + `"}`, "username"},
		{"username with @", `{"username":"bob@x","email":"bob@example.com","password":"` + pw + `"}`, "username"},
		{"bad email", `{"username":"bob","email":"not-an-email","password":"` + pw + `"}`, "email"},
		{"email without dotted domain", `{"username":"bob","email":"bob@localhost","password":"` + pw + `"}`, "email"},
		{"email with display name", `{"username":"bob","email":"Bob <bob@example.com>","password":"` + pw + `"}`, "email"},
		{"short password", `{"username":"bob","email":"bob@example.com","password":"short"}`, "password"},
		{"73-byte password", `{"username":"bob","email":"bob@example.com","password":"` + long + `"}`, "password"},
		{"common password", `{"username":"bob","email":"bob@example.com","password":"password1"}`, "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := ts.postJSON("/register/user", tt.body)
			wantStatus(t, res, http.StatusUnprocessableEntity)
			var body struct {
				Detail []fieldError `json:"detail"`
			}
			if err := json.Unmarshal([]byte(res.Body), &body); err != nil || len(body.Detail) == 0 {
				t.Fatalf("detail is not a list of errors: %s", res.Body)
			}
			if tt.field != "" {
				loc := body.Detail[0].Loc
				if loc[len(loc)-1] != tt.field {
					t.Errorf("error names %v, want field %q (%s)", loc, tt.field, res.Body)
				}
			}
			if body.Detail[0].Msg == "" {
				t.Errorf("empty message: %s", res.Body)
			}
		})
	}
	if tt := ts.postJSON("/register/user", `{"username":"bob","email":"bob@example.com","password":"`+long+`"}`); !strings.Contains(tt.Body, "72 bytes") {
		t.Errorf("73-byte password message does not explain the limit: %s", tt.Body)
	}
}

func TestTokenByUsernameAndEmail(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	for _, login := range []string{"alice", "alice@example.com", "ALICE", " alice ", "Alice@Example.com"} {
		t.Run(login, func(t *testing.T) {
			res := ts.postForm("/token", url.Values{"username": {login}, "password": {pw}, "grant_type": {"password"}, "scope": {"basic"}})
			wantStatus(t, res, http.StatusOK)
			body := res.json(t)
			if body["scope"] != "basic" {
				t.Errorf("scope = %v, want basic", body["scope"])
			}
			if body["token_type"] != "bearer" {
				t.Errorf("token_type = %v, want bearer", body["token_type"])
			}
			if body["expires_in"] != float64(30*60) {
				t.Errorf("expires_in = %v, want 1800", body["expires_in"])
			}
			if got := res.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control = %q, want no-store", got)
			}
			if got := res.Header.Get("Pragma"); got != "no-cache" {
				t.Errorf("Pragma = %q, want no-cache", got)
			}
			tok, _ := body["access_token"].(string)
			me := ts.get("/users/me", bearer(tok)...)
			wantStatus(t, me, http.StatusOK)
			if got := me.json(t)["description"]; got != "alice authorized" {
				t.Errorf("description = %v, want %q", got, "alice authorized")
			}
		})
	}
}

func TestTokenErrors(t *testing.T) {
	ts := newTestServer(t, "LOGIN_FAILURES_PER_ACCOUNT", "100", "LOGIN_FAILURES_PER_IP", "1000")
	ts.register("alice", "alice@example.com", pw)
	const badCreds = `{"detail":"Incorrect username or password","error":"invalid_grant"}`
	tests := []struct {
		name     string
		form     url.Values
		status   int
		body     string
		errorKey string
	}{
		{"unknown user", url.Values{"username": {"nobody"}, "password": {pw}}, 401, badCreds, ""},
		{"unknown email", url.Values{"username": {"nobody@example.com"}, "password": {pw}}, 401, badCreds, ""},
		{"wrong password", url.Values{"username": {"alice"}, "password": {"wrong password"}}, 401, badCreds, ""},
		{"password differs in case", url.Values{"username": {"alice"}, "password": {strings.ToUpper(pw)}}, 401, badCreds, ""},
		{"missing username", url.Values{"password": {pw}}, 400, "", "invalid_request"},
		{"empty password", url.Values{"username": {"alice"}, "password": {""}}, 400, "", "invalid_request"},
		{"client_credentials grant", url.Values{"username": {"alice"}, "password": {pw}, "grant_type": {"client_credentials"}}, 400, "", "unsupported_grant_type"},
		{"empty grant", url.Values{"username": {"alice"}, "password": {pw}, "grant_type": {""}}, 400, "", "unsupported_grant_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := ts.postForm("/token", tt.form)
			wantStatus(t, res, tt.status)
			if tt.body != "" && res.Body != tt.body {
				t.Errorf("body = %s, want %s", res.Body, tt.body)
			}
			if tt.errorKey != "" && res.json(t)["error"] != tt.errorKey {
				t.Errorf("error = %v, want %q", res.json(t)["error"], tt.errorKey)
			}
			if tt.status == 401 && res.Header.Get("WWW-Authenticate") != "Bearer" {
				t.Errorf("WWW-Authenticate = %q, want Bearer", res.Header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("JSON body", func(t *testing.T) {
		res := ts.postJSON("/token", `{"username":"alice","password":"`+pw+`"}`)
		wantStatus(t, res, http.StatusBadRequest)
		if res.json(t)["error"] != "invalid_request" {
			t.Errorf("body = %s", res.Body)
		}
	})
}

func TestUsersMeAuthentication(t *testing.T) {
	ts := newTestServer(t)
	ts.register("alice", "alice@example.com", pw)
	tok := ts.token("alice", pw)
	const invalid = `Bearer error="invalid_token", error_description="The access token is malformed"`
	tests := []struct {
		name      string
		header    string
		status    int
		detail    string
		challenge string
	}{
		{"no credentials", "", 401, msgNotAuthenticated, "Bearer"},
		{"basic scheme", "Basic YWxpY2U6eA==", 401, msgNotAuthenticated, "Bearer"},
		{"bearer lower case", "bearer " + tok, 200, "", ""},
		{"BEARER upper case", "BEARER " + tok, 200, "", ""},
		{"empty bearer", "Bearer ", 401, msgNotAuthorized, invalid},
		{"garbage", "Bearer not.a.token", 401, msgNotAuthorized, invalid},
		{"truncated", "Bearer " + tok[:len(tok)-5], 401, msgNotAuthorized, invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h []string
			if tt.header != "" {
				h = []string{"Authorization", tt.header}
			}
			res := ts.get("/users/me", h...)
			wantStatus(t, res, tt.status)
			if tt.status != 401 {
				return
			}
			if got := res.json(t)["detail"]; got != tt.detail {
				t.Errorf("detail = %v, want %q", got, tt.detail)
			}
			if got := res.Header.Get("WWW-Authenticate"); got != tt.challenge {
				t.Errorf("WWW-Authenticate = %q, want %q", got, tt.challenge)
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)
		ts.register("alice", "alice@example.com", pw)
		tok := ts.token("alice", pw)
		other := ts.token("alice", pw)

		res := ts.postForm("/revoke", url.Values{"token": {tok}})
		wantStatus(t, res, http.StatusOK)
		wantStatus(t, ts.get("/users/me", bearer(tok)...), http.StatusUnauthorized)
		// Another session of the same user is untouched.
		wantStatus(t, ts.get("/users/me", bearer(other)...), http.StatusOK)

		// Revoking again, or revoking garbage, still answers 200 with the same body.
		again := ts.postForm("/revoke", url.Values{"token": {tok}})
		wantStatus(t, again, http.StatusOK)
		garbage := ts.postForm("/revoke", url.Values{"token": {"garbage"}, "token_type_hint": {"access_token"}})
		wantStatus(t, garbage, http.StatusOK)
		if again.Body != res.Body || garbage.Body != res.Body {
			t.Errorf("bodies differ: %q, %q, %q", res.Body, again.Body, garbage.Body)
		}
		wantStatus(t, ts.postForm("/revoke", url.Values{}), http.StatusBadRequest)
	})
}

// /healthz is a liveness check: it answers while the process serves, even
// when the database does not (that is /readyz's to say).
func TestHealthz(t *testing.T) {
	ts := newTestServer(t)
	res := ts.get("/healthz")
	wantStatus(t, res, http.StatusOK)
	if res.Body != `{"status":"ok"}` {
		t.Errorf("body = %s", res.Body)
	}
	ts.store.Close()
	wantStatus(t, ts.get("/healthz"), http.StatusOK)
}

func TestUnknownRouteJSON(t *testing.T) {
	ts := newTestServer(t)
	res := ts.get("/nope")
	wantStatus(t, res, http.StatusNotFound)
	if res.Body != `{"detail":"Not Found"}` {
		t.Errorf("body = %s", res.Body)
	}
	html := ts.get("/nope", "Accept", "text/html")
	wantStatus(t, html, http.StatusNotFound)
	if !strings.Contains(html.Body, "Page not found") {
		t.Errorf("HTML 404 page missing its heading: %.300s", html.Body)
	}
	req := httptest.NewRequest(http.MethodPut, "/users/me", nil)
	wantStatus(t, ts.do(req), http.StatusMethodNotAllowed)
}

func TestPanicIsA500WithRequestID(t *testing.T) {
	ts := newTestServer(t)
	ts.s.App().Get("/boom", func(c *fiberCtx) error { panic("secret internal detail") })
	res := ts.get("/boom")
	wantStatus(t, res, http.StatusInternalServerError)
	if strings.Contains(res.Body, "secret") {
		t.Errorf("internal detail leaked: %s", res.Body)
	}
	if id, _ := res.json(t)["request_id"].(string); id == "" || id != res.Header.Get("X-Request-Id") {
		t.Errorf("request_id = %q, header %q", id, res.Header.Get("X-Request-Id"))
	}
}
