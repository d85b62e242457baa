package app

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"
	"github.com/pb33f/libopenapi-validator/schema_validation"

	"context"
	"fmt"
	"sync/atomic"

	"fiberauth/app/mail/mailtest"
	"fiberauth/app/oidc"
	"fiberauth/app/openapi"
)

// spec is the part of the OpenAPI document the drift tests read.
type spec struct {
	OpenAPI string                                `json:"openapi"`
	Paths   map[string]map[string]json.RawMessage `json:"paths"`
}

// httpMethods are the operation keys of an OpenAPI path item.
var httpMethods = map[string]bool{"get": true, "put": true, "post": true, "delete": true, "patch": true, "head": true, "options": true}

func loadSpec(t *testing.T) (spec, map[string][]string) {
	t.Helper()
	var sp spec
	if err := json.Unmarshal(openapi.Document, &sp); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	statuses := map[string][]string{}
	for path, ops := range sp.Paths {
		for method, raw := range ops {
			if !httpMethods[method] {
				continue // path-level parameters and the like
			}
			var op struct {
				Responses map[string]json.RawMessage `json:"responses"`
			}
			json.Unmarshal(raw, &op)
			key := strings.ToUpper(method) + " " + path
			for code := range op.Responses {
				statuses[key] = append(statuses[key], code)
			}
			sort.Strings(statuses[key])
		}
	}
	return sp, statuses
}

func TestOpenAPIIsValid31(t *testing.T) {
	doc, err := libopenapi.NewDocument(openapi.Document)
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if v := doc.GetVersion(); v != "3.1.0" {
		t.Errorf("version %q, want 3.1.0", v)
	}
	ok, errs := schema_validation.ValidateOpenAPIDocument(doc)
	for _, e := range errs {
		t.Errorf("invalid OpenAPI 3.1: %s: %s (%s)", e.Message, e.Reason, e.Context)
	}
	if !ok && len(errs) == 0 {
		t.Error("document refused without a reason")
	}
	// The validator must be able to tell: a broken copy fails.
	broken, _ := libopenapi.NewDocument(bytes.Replace(openapi.Document, []byte(`"openapi": "3.1.0"`), []byte(`"openapi": "3.1.0", "paths2": 5`), 1))
	if ok, _ := schema_validation.ValidateOpenAPIDocument(broken); ok {
		t.Error("the validator accepted a document with an unknown top-level field")
	}
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	ts := newTestServer(t)
	sp, _ := loadSpec(t)
	documented := map[string]bool{}
	for path, ops := range sp.Paths {
		for method := range ops {
			if !httpMethods[method] {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	// Every route Fiber serves (but static files) is in the route table
	// with its surface, and every API route of the table is documented.
	inTable := map[string]bool{}
	registered := map[string]bool{}
	for _, r := range ts.s.table {
		inTable[r.Method+" "+r.Path] = true
		if r.Surface != surfaceAPI {
			continue
		}
		registered[r.Method+" "+openAPIPath(r.Path)] = true
	}
	for _, r := range ts.s.App().GetRoutes(true) {
		switch r.Method {
		case http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		default:
			continue
		}
		if !strings.HasPrefix(r.Path, "/static") && !inTable[r.Method+" "+r.Path] {
			t.Errorf("route %s %s is served but not in the route table", r.Method, r.Path)
		}
	}
	for k := range registered {
		if !documented[k] {
			t.Errorf("route %s is not in openapi.json", k)
		}
	}
	for k := range documented {
		if !registered[k] {
			t.Errorf("openapi.json names %s, which is not a route", k)
		}
	}
	if len(registered) < 10 {
		t.Errorf("only %d JSON routes found: the walk is broken", len(registered))
	}
}

// openAPIPath spells Fiber's :param as OpenAPI's {param}.
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if strings.HasPrefix(part, ":") {
			parts[i] = "{" + part[1:] + "}"
		}
	}
	return strings.Join(parts, "/")
}

// provoke is a request that makes a handler answer one documented status.
type provoke func(t *testing.T, f *fixture) (*http.Request, response)

// fixture is a server with a signed-in user, for provoking answers.
type fixture struct {
	ts    *testServer
	tok   string
	admin string // a token of the admin "root"
	srv   string // a real listener, for what app.Test cannot send
	sink  *mailtest.Sink
}

// userID is the id of a user of the fixture.
func (f *fixture) userID(t *testing.T, name string) string {
	u, err := f.ts.store.UserByUsernameKey(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatInt(u.ID, 10)
}

// victim registers a fresh account for an admin action and returns its id.
func (f *fixture) victim(t *testing.T) string {
	name := fmt.Sprintf("victim%d", victims.Add(1))
	f.ts.register(name, name+"@example.com", pw)
	return f.userID(t, name)
}

var victims atomic.Int64

func (f *fixture) send(t *testing.T, method, path, ctype, body string, header ...string) (*http.Request, response) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res := f.ts.do(req)
	// A fresh request with the same body for the response validator.
	again := httptest.NewRequest(method, path, strings.NewReader(body))
	again.Header = req.Header.Clone()
	return again, res
}

const introspectionSecret = "resource-server-secret-0123456789"

// metricsSecret is the METRICS_TOKEN of the tests.
const metricsSecret = "metrics-scraper-secret-0123456789"

const (
	formType = "application/x-www-form-urlencoded"
	jsonType = "application/json"
)

// busy saturates the bcrypt pool for the duration of fn.
func busy(f *fixture, fn func()) {
	release := f.ts.s.hasher.Saturate()
	defer release()
	fn()
}

func bigBody(t *testing.T, f *fixture, path, ctype string) (*http.Request, response) {
	t.Helper()
	body := strings.Repeat("a", bodyLimit+1)
	res, err := http.Post(f.srv+path, ctype, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	return httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)), response{Response: res, Body: string(b)}
}

// throttled makes the next sign-in attempt for login from the test client
// answer 429, by failing as many times as allowed.
func throttled(t *testing.T, f *fixture, login string) {
	for i := 0; i < f.ts.s.cfg.LoginFailuresPerAccount; i++ {
		res := f.ts.postForm("/token", url.Values{"username": {login}, "password": {"wrong password"}})
		wantStatus(t, res, http.StatusUnauthorized)
	}
}

// unthrottled forgives alice's failures.
func unthrottled(t *testing.T, f *fixture) {
	u, err := f.ts.store.UserByUsernameKey(context.Background(), "alice")
	if err == nil {
		err = f.ts.s.acct.ClearLimits(context.Background(), u.ID)
	}
	if err != nil {
		t.Fatal(err)
	}
}

// adminRoutes are the admin API's routes, with a path for each, for the
// answers every one of them gives: 401 without a token, 403 for a basic
// account.
var adminRoutes = map[string]func(f *fixture, t *testing.T) string{
	"GET /admin/api/users":                  func(*fixture, *testing.T) string { return "/admin/api/users" },
	"GET /admin/api/users/{id}":             func(f *fixture, t *testing.T) string { return "/admin/api/users/" + f.userID(t, "alice") },
	"DELETE /admin/api/users/{id}":          func(f *fixture, t *testing.T) string { return "/admin/api/users/" + f.userID(t, "alice") },
	"PUT /admin/api/users/{id}/role":        func(f *fixture, t *testing.T) string { return "/admin/api/users/" + f.userID(t, "alice") + "/role" },
	"DELETE /admin/api/users/{id}/sessions": func(f *fixture, t *testing.T) string { return "/admin/api/users/" + f.userID(t, "alice") + "/sessions" },
	"DELETE /admin/api/users/{id}/sessions/{sid}": func(f *fixture, t *testing.T) string {
		return "/admin/api/users/" + f.userID(t, "alice") + "/sessions/x"
	},
	"DELETE /admin/api/users/{id}/limits": func(f *fixture, t *testing.T) string { return "/admin/api/users/" + f.userID(t, "alice") + "/limits" },
	"DELETE /admin/api/users/{id}/mfa":    func(f *fixture, t *testing.T) string { return "/admin/api/users/" + f.userID(t, "alice") + "/mfa" },
	"GET /admin/api/audit":                func(*fixture, *testing.T) string { return "/admin/api/audit" },
	"POST /register/premium-user":         func(*fixture, *testing.T) string { return "/register/premium-user" },
	"GET /welcome/premium-user":           func(*fixture, *testing.T) string { return "/welcome/premium-user" },
}

func init() {
	for key, path := range adminRoutes {
		method, _, _ := strings.Cut(key, " ")
		body, ctype := "", ""
		if method == "PUT" || method == "POST" {
			body, ctype = `{"role":"premium","username":"x1","email":"x1@example.com","password":"`+pw+`"}`, jsonType
		}
		provocations[key+" 401"] = func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, method, path(f, t), ctype, body)
		}
		provocations[key+" 403"] = func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, method, path(f, t), ctype, body, bearer(f.tok)...)
		}
	}
}

var provocations = map[string]provoke{
	"GET /welcome/all-users 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/welcome/all-users", "", "", bearer(f.tok)...)
	},
	"GET /welcome/all-users 401": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/welcome/all-users", "", "")
	},
	"GET /welcome/all-users 403": func(t *testing.T, f *fixture) (*http.Request, response) {
		// A token asked for with the admin scope alone grants no "basic".
		narrow := f.ts.pairFrom(f.ts.postForm("/token", url.Values{"username": {"root"}, "password": {pw}, "scope": {"admin"}}))
		return f.send(t, "GET", "/welcome/all-users", "", "", bearer(narrow.Access)...)
	},
	"GET /welcome/premium-user 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/welcome/premium-user", "", "", bearer(f.admin)...)
	},
	"POST /register/premium-user 201": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/register/premium-user", jsonType, `{"username":"prem","email":"prem@example.com","password":"`+pw+`"}`, bearer(f.admin)...)
	},
	"POST /register/premium-user 409": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/register/premium-user", jsonType, `{"username":"alice","email":"a9@example.com","password":"`+pw+`"}`, bearer(f.admin)...)
	},
	"POST /register/premium-user 415": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/register/premium-user", "text/plain", `{}`, bearer(f.admin)...)
	},
	"POST /register/premium-user 422": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/register/premium-user", jsonType, `{"username":"p"}`, bearer(f.admin)...)
	},
	"GET /admin/api/users 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/admin/api/users?search=ali", "", "", bearer(f.admin)...)
	},
	"GET /admin/api/users/{id} 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/admin/api/users/"+f.userID(t, "alice"), "", "", bearer(f.admin)...)
	},
	"GET /admin/api/users/{id} 404": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/admin/api/users/999999", "", "", bearer(f.admin)...)
	},
	"DELETE /admin/api/users/{id} 204": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/admin/api/users/"+f.victim(t), "", "", bearer(f.admin)...)
	},
	"DELETE /admin/api/users/{id} 404": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/admin/api/users/999999", "", "", bearer(f.admin)...)
	},
	"DELETE /admin/api/users/{id} 409": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/admin/api/users/"+f.userID(t, "root"), "", "", bearer(f.admin)...)
	},
	"PUT /admin/api/users/{id}/role 204": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "PUT", "/admin/api/users/"+f.victim(t)+"/role", jsonType, `{"role":"premium"}`, bearer(f.admin)...)
	},
	"PUT /admin/api/users/{id}/role 404": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "PUT", "/admin/api/users/999999/role", jsonType, `{"role":"premium"}`, bearer(f.admin)...)
	},
	"PUT /admin/api/users/{id}/role 409": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "PUT", "/admin/api/users/"+f.userID(t, "root")+"/role", jsonType, `{"role":"basic"}`, bearer(f.admin)...)
	},
	"PUT /admin/api/users/{id}/role 415": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "PUT", "/admin/api/users/"+f.victim(t)+"/role", "text/plain", `{"role":"premium"}`, bearer(f.admin)...)
	},
	"PUT /admin/api/users/{id}/role 422": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "PUT", "/admin/api/users/"+f.victim(t)+"/role", jsonType, `{"role":"emperor"}`, bearer(f.admin)...)
	},
	"DELETE /admin/api/users/{id}/sessions 204": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/admin/api/users/"+f.victim(t)+"/sessions", "", "", bearer(f.admin)...)
	},
	"DELETE /admin/api/users/{id}/sessions 404": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/admin/api/users/999999/sessions", "", "", bearer(f.admin)...)
	},
	"DELETE /admin/api/users/{id}/sessions/{sid} 204": func(t *testing.T, f *fixture) (*http.Request, response) {
		id := f.victim(t)
		name := "victim" + strconv.FormatInt(victims.Load(), 10)
		sid := mustClaims(t, f.ts, f.ts.token(name, pw)).SessionID
		return f.send(t, "DELETE", "/admin/api/users/"+id+"/sessions/"+sid, "", "", bearer(f.admin)...)
	},
	"DELETE /admin/api/users/{id}/sessions/{sid} 404": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/admin/api/users/"+f.userID(t, "alice")+"/sessions/none", "", "", bearer(f.admin)...)
	},
	"DELETE /admin/api/users/{id}/limits 204": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/admin/api/users/"+f.userID(t, "alice")+"/limits", "", "", bearer(f.admin)...)
	},
	"DELETE /admin/api/users/{id}/limits 404": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/admin/api/users/999999/limits", "", "", bearer(f.admin)...)
	},
	"GET /admin/api/audit 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/admin/api/audit", "", "", bearer(f.admin)...)
	},
	"POST /register/user 201": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/register/user", jsonType, `{"username":"newuser","email":"new@example.com","password":"`+pw+`"}`)
	},
	"POST /register/user 409": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/register/user", jsonType, `{"username":"alice","email":"other@example.com","password":"`+pw+`"}`)
	},
	"POST /register/user 413": func(t *testing.T, f *fixture) (*http.Request, response) {
		return bigBody(t, f, "/register/user", jsonType)
	},
	"POST /register/user 422": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/register/user", jsonType, `{"username":"x"}`)
	},
	"POST /register/user 415": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/register/user", "text/plain", `{"username":"newuser2","email":"new2@example.com","password":"`+pw+`"}`)
	},
	"POST /register/user 429": func(t *testing.T, f *fixture) (*http.Request, response) {
		limited := &fixture{ts: newTestServer(t, "REGISTRATIONS_PER_IP", "1")}
		limited.ts.register("first", "first@example.com", pw)
		return limited.send(t, "POST", "/register/user", jsonType, `{"username":"newuser2","email":"new2@example.com","password":"`+pw+`"}`)
	},
	"POST /register/user 503": func(t *testing.T, f *fixture) (req *http.Request, res response) {
		busy(f, func() {
			req, res = f.send(t, "POST", "/register/user", jsonType, `{"username":"newuser3","email":"new3@example.com","password":"`+pw+`"}`)
		})
		return
	},
	"POST /token 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/token", formType, "grant_type=password&username=alice&password="+url.QueryEscape(pw))
	},
	"POST /token 400": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/token", formType, "grant_type=client_credentials&username=alice&password=x")
	},
	"POST /token 401": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/token", formType, "username=alice&password=wrong")
	},
	"POST /token 413": func(t *testing.T, f *fixture) (*http.Request, response) {
		return bigBody(t, f, "/token", formType)
	},
	"POST /token 429": func(t *testing.T, f *fixture) (*http.Request, response) {
		throttled(t, f, "locked")
		return f.send(t, "POST", "/token", formType, "username=locked&password=x")
	},
	"POST /token 503": func(t *testing.T, f *fixture) (req *http.Request, res response) {
		busy(f, func() { req, res = f.send(t, "POST", "/token", formType, "username=alice&password=x") })
		return
	},
	"POST /revoke 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/revoke", formType, "token=not-a-token")
	},
	"POST /revoke 400": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/revoke", formType, "")
	},
	"GET /users/me 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/users/me", "", "", bearer(f.tok)...)
	},
	"GET /users/me 401": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/users/me", "", "")
	},
	"DELETE /users/me 204": func(t *testing.T, f *fixture) (*http.Request, response) {
		f.ts.register("doomed", "doomed@example.com", pw)
		return f.send(t, "DELETE", "/users/me", jsonType, `{"password":"`+pw+`"}`, bearer(f.ts.token("doomed", pw))...)
	},
	"DELETE /users/me 401": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/users/me", jsonType, `{"password":"x"}`, bearer("bad")...)
	},
	"DELETE /users/me 403": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/users/me", jsonType, `{"password":"wrong"}`, bearer(f.tok)...)
	},
	"DELETE /users/me 422": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/users/me", jsonType, `{}`, bearer(f.tok)...)
	},
	"DELETE /users/me 415": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/users/me", "text/plain", `{"password":"x"}`, bearer(f.tok)...)
	},
	"DELETE /users/me 429": func(t *testing.T, f *fixture) (*http.Request, response) {
		throttled(t, f, "alice")
		defer unthrottled(t, f)
		return f.send(t, "DELETE", "/users/me", jsonType, `{"password":"x"}`, bearer(f.tok)...)
	},
	"DELETE /users/me 503": func(t *testing.T, f *fixture) (req *http.Request, res response) {
		busy(f, func() {
			req, res = f.send(t, "DELETE", "/users/me", jsonType, `{"password":"x"}`, bearer(f.tok)...)
		})
		return
	},
	"GET /users/me/sessions 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/users/me/sessions", "", "", bearer(f.tok)...)
	},
	"GET /users/me/sessions 401": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/users/me/sessions", "", "")
	},
	"DELETE /users/me/sessions 204": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/users/me/sessions", "", "", bearer(f.tok)...)
	},
	"DELETE /users/me/sessions 401": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/users/me/sessions", "", "")
	},
	"DELETE /users/me/sessions 403": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/users/me/sessions", "", "", "Cookie", sessionCookie+"="+f.tok)
	},
	"DELETE /users/me/sessions/{id} 204": func(t *testing.T, f *fixture) (*http.Request, response) {
		other := mustClaims(t, f.ts, f.ts.token("alice", pw)).SessionID
		return f.send(t, "DELETE", "/users/me/sessions/"+other, "", "", bearer(f.tok)...)
	},
	"DELETE /users/me/sessions/{id} 401": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/users/me/sessions/x", "", "")
	},
	"DELETE /users/me/sessions/{id} 403": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/users/me/sessions/x", "", "", "Cookie", sessionCookie+"="+f.tok)
	},
	"DELETE /users/me/sessions/{id} 404": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/users/me/sessions/nonexistent", "", "", bearer(f.tok)...)
	},
	"POST /users/me/password 204": func(t *testing.T, f *fixture) (*http.Request, response) {
		f.ts.register("changer", "changer@example.com", pw)
		return f.send(t, "POST", "/users/me/password", jsonType, `{"current_password":"`+pw+`","new_password":"another passphrase"}`, bearer(f.ts.token("changer", pw))...)
	},
	"POST /users/me/password 401": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/users/me/password", jsonType, `{}`)
	},
	"POST /users/me/password 403": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/users/me/password", jsonType, `{"current_password":"wrong","new_password":"another passphrase"}`, bearer(f.tok)...)
	},
	"POST /users/me/password 422": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/users/me/password", jsonType, `{"current_password":"x","new_password":"short"}`, bearer(f.tok)...)
	},
	"POST /users/me/password 415": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/users/me/password", "text/plain", `{}`, bearer(f.tok)...)
	},
	"POST /users/me/password 429": func(t *testing.T, f *fixture) (*http.Request, response) {
		throttled(t, f, "alice")
		defer unthrottled(t, f)
		return f.send(t, "POST", "/users/me/password", jsonType, `{"current_password":"x","new_password":"another passphrase"}`, bearer(f.tok)...)
	},
	"POST /users/me/password 503": func(t *testing.T, f *fixture) (req *http.Request, res response) {
		busy(f, func() {
			req, res = f.send(t, "POST", "/users/me/password", jsonType, `{"current_password":"x","new_password":"another passphrase"}`, bearer(f.tok)...)
		})
		return
	},
	"GET /users/me/events 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/users/me/events", "", "", bearer(f.tok)...)
	},
	"GET /users/me/events 401": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/users/me/events", "", "")
	},
	"GET /healthz 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/healthz", "", "")
	},
	"GET /readyz 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/readyz", "", "")
	},
	"GET /readyz 503": func(t *testing.T, f *fixture) (*http.Request, response) {
		broken := newTestServer(t)
		broken.store.Close()
		req := httptest.NewRequest(http.MethodGet, "/readyz", nil)
		return httptest.NewRequest(http.MethodGet, "/readyz", nil), broken.do(req)
	},
	"POST /introspect 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/introspect", formType, "token="+url.QueryEscape(f.tok), bearer(introspectionSecret)...)
	},
	"POST /introspect 400": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/introspect", formType, "", bearer(introspectionSecret)...)
	},
	"POST /introspect 401": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/introspect", formType, "token="+url.QueryEscape(f.tok), bearer("not the secret, not the secret")...)
	},
	"GET /metrics 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/metrics", "", "", bearer(metricsSecret)...)
	},
	"GET /metrics 401": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/metrics", "", "", bearer("not the secret, not the secret")...)
	},
	"GET /metrics 404": func(t *testing.T, f *fixture) (*http.Request, response) {
		off := f.ts.withConfig(t, func(cfg *configT) { cfg.MetricsToken = "" })
		req := httptest.NewRequest(http.MethodGet, "/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+metricsSecret)
		return httptest.NewRequest(http.MethodGet, "/metrics", nil), off.do(req)
	},
	"GET /.well-known/jwks.json 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/.well-known/jwks.json", "", "")
	},
	"GET /.well-known/oauth-authorization-server 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/.well-known/oauth-authorization-server", "", "")
	},
	"GET /openapi.json 200": func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/openapi.json", "", "")
	},
}

// Every status the document lists is provoked from the real handler, and
// each answer is checked against the documented response schema.
func TestOpenAPIStatusesAreReal(t *testing.T) {
	_, statuses := loadSpec(t)
	doc, err := libopenapi.NewDocument(openapi.Document)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	sink := mailtest.Start(t)
	ts := newTestServer(t, append([]string{"INTROSPECTION_TOKENS", introspectionSecret, "METRICS_TOKEN", metricsSecret, "SMTP_URL", sink.URL(),
		// Many provocations fail on purpose from the one test address; only
		// the per-account limits are meant to answer 429 here.
		"LOGIN_FAILURES_PER_IP", "1000000"}, passkeyEnv...)...)
	ts.register("alice", "alice@example.com", pw)
	f := &fixture{ts: ts, tok: ts.token("alice", pw), sink: sink}
	ts.makeAdmin("root")
	f.admin = ts.token("root", pw)
	ln := startTestListener(t)
	f.srv = ln
	for key, codes := range statuses {
		for _, code := range codes {
			name := key + " " + code
			t.Run(name, func(t *testing.T) {
				p, ok := provocations[name]
				if !ok {
					t.Fatalf("openapi.json documents %s but no test provokes it", name)
				}
				// Each provocation starts with alice's failures forgiven.
				unthrottled(t, f)
				req, res := p(t, f)
				want, _ := strconv.Atoi(code)
				wantStatus(t, res, want)
				if res.StatusCode == http.StatusRequestEntityTooLarge {
					return // answered before routing; its body is the generic error shape
				}
				res.Response.Body = io.NopCloser(strings.NewReader(res.Body))
				if ok, verrs := v.ValidateHttpResponse(req, res.Response); !ok {
					for _, e := range verrs {
						t.Errorf("response does not match the document: %s: %s", e.Message, e.Reason)
					}
				}
			})
		}
	}
	for name := range provocations {
		parts := strings.SplitN(name, " ", 3)
		found := false
		for _, c := range statuses[parts[0]+" "+parts[1]] {
			found = found || c == parts[2]
		}
		if !found {
			t.Errorf("the tests provoke %s, which openapi.json does not document", name)
		}
	}
}

func TestDocsPage(t *testing.T) {
	ts := newTestServer(t)
	res := ts.get("/docs")
	wantStatus(t, res, http.StatusOK)
	for _, want := range []string{"/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/js/docs.js", `id="swagger-ui"`} {
		if !strings.Contains(res.Body, want) {
			t.Errorf("docs page lacks %q", want)
		}
	}
	if hasInlineScript(res.Body) {
		t.Error("docs page has an inline script")
	}
	for _, asset := range []string{"/static/vendor/swagger-ui/swagger-ui-bundle.js", "/static/vendor/swagger-ui/swagger-ui.css", "/static/js/docs.js"} {
		wantStatus(t, ts.get(asset), http.StatusOK)
	}
	spec := ts.get("/openapi.json")
	wantStatus(t, spec, http.StatusOK)
	if !strings.HasPrefix(spec.Header.Get("Content-Type"), "application/json") {
		t.Errorf("openapi.json Content-Type = %q", spec.Header.Get("Content-Type"))
	}
}

// The OpenID Connect provider's API.
func init() {
	// appToken signs alice in to a first-party application and returns its
	// access token (scope openid, or none of the provider's scopes).
	appToken := func(t *testing.T, f *fixture, scope string) string {
		t.Helper()
		redirect := "http://127.0.0.1:9/cb"
		id, secret := f.ts.client(t, oidc.ClientInput{RedirectURIs: []string{redirect}, FirstParty: true,
			Scopes: []string{"openid", "profile", "basic"}})
		res := f.ts.get("/authorize?"+url.Values{"response_type": {"code"}, "client_id": {id}, "redirect_uri": {redirect},
			"scope": {scope}}.Encode(), bearer(f.tok)...)
		loc, _ := url.Parse(res.Header.Get("Location"))
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(url.Values{"grant_type": {"authorization_code"},
			"code": {loc.Query().Get("code")}, "redirect_uri": {redirect}}.Encode()))
		req.Header.Set("Content-Type", formType)
		req.SetBasicAuth(id, secret)
		out := f.ts.do(req)
		wantStatus(t, out, http.StatusOK)
		return out.json(t)["access_token"].(string)
	}
	for _, method := range []string{"GET", "POST"} {
		provocations[method+" /userinfo 200"] = func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, method, "/userinfo", "", "", bearer(appToken(t, f, "openid profile"))...)
		}
		provocations[method+" /userinfo 401"] = func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, method, "/userinfo", "", "")
		}
		provocations[method+" /userinfo 403"] = func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, method, "/userinfo", "", "", bearer(appToken(t, f, "basic"))...)
		}
	}
	provocations["GET /.well-known/openid-configuration 200"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/.well-known/openid-configuration", "", "")
	}
	provocations["GET /users/me/apps 200"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		appToken(t, f, "openid")
		return f.send(t, "GET", "/users/me/apps", "", "", bearer(f.tok)...)
	}
	provocations["GET /users/me/apps 401"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "GET", "/users/me/apps", "", "")
	}
	provocations["DELETE /users/me/apps/{id} 204"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		access := appToken(t, f, "openid")
		return f.send(t, "DELETE", "/users/me/apps/"+mustClaims(t, f.ts, access).ClientID, "", "", bearer(f.tok)...)
	}
	provocations["DELETE /users/me/apps/{id} 401"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/users/me/apps/x", "", "")
	}
	provocations["DELETE /users/me/apps/{id} 404"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/users/me/apps/no-such-app", "", "", bearer(f.tok)...)
	}
	clientBody := `{"name":"Acme","redirect_uris":["https://acme.example/cb"]}`
	newClient := func(t *testing.T, f *fixture, public bool) string {
		id, _ := f.ts.client(t, oidc.ClientInput{RedirectURIs: []string{"https://acme.example/cb"}, Public: public})
		return id
	}
	for key, path := range map[string]func(f *fixture, t *testing.T) string{
		"GET /admin/api/clients":  func(*fixture, *testing.T) string { return "/admin/api/clients" },
		"POST /admin/api/clients": func(*fixture, *testing.T) string { return "/admin/api/clients" },
		"POST /admin/api/clients/{id}/secret": func(f *fixture, t *testing.T) string {
			return "/admin/api/clients/" + newClient(t, f, false) + "/secret"
		},
		"DELETE /admin/api/clients/{id}": func(f *fixture, t *testing.T) string { return "/admin/api/clients/" + newClient(t, f, false) },
	} {
		method, _, _ := strings.Cut(key, " ")
		body, ctype := "", ""
		if method == "POST" {
			body, ctype = clientBody, jsonType
		}
		provocations[key+" 401"] = func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, method, path(f, t), ctype, body)
		}
		provocations[key+" 403"] = func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, method, path(f, t), ctype, body, bearer(f.tok)...)
		}
	}
	provocations["GET /admin/api/clients 200"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		newClient(t, f, true)
		return f.send(t, "GET", "/admin/api/clients", "", "", bearer(f.admin)...)
	}
	provocations["POST /admin/api/clients 201"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/admin/api/clients", jsonType, clientBody, bearer(f.admin)...)
	}
	provocations["POST /admin/api/clients 415"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/admin/api/clients", "text/plain", clientBody, bearer(f.admin)...)
	}
	provocations["POST /admin/api/clients 422"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/admin/api/clients", jsonType, `{"name":"Acme","redirect_uris":["http://evil.example/cb"]}`, bearer(f.admin)...)
	}
	provocations["POST /admin/api/clients/{id}/secret 200"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/admin/api/clients/"+newClient(t, f, false)+"/secret", "", "", bearer(f.admin)...)
	}
	provocations["POST /admin/api/clients/{id}/secret 404"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/admin/api/clients/no-such-app/secret", "", "", bearer(f.admin)...)
	}
	provocations["POST /admin/api/clients/{id}/secret 409"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "POST", "/admin/api/clients/"+newClient(t, f, true)+"/secret", "", "", bearer(f.admin)...)
	}
	provocations["DELETE /admin/api/clients/{id} 204"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/admin/api/clients/"+newClient(t, f, false), "", "", bearer(f.admin)...)
	}
	provocations["DELETE /admin/api/clients/{id} 404"] = func(t *testing.T, f *fixture) (*http.Request, response) {
		return f.send(t, "DELETE", "/admin/api/clients/no-such-app", "", "", bearer(f.admin)...)
	}
}
