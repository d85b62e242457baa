package app

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"fiberauth/app/passkey/passkeytest"
)

// Provocations of the passkey endpoints' documented answers. Each makes
// an account of its own, so that the order they run in does not matter.

// on is the fixture's server, failing t (not the whole run).
func (f *fixture) on(t *testing.T) *testServer {
	ts := *f.ts
	ts.t = t
	return &ts
}

// pkUser is a browser signed in to a new account with a password and one
// passkey; it returns the account's name and the passkey's id too.
func (f *fixture) pkUser(t *testing.T) (*pkBrowser, string, string) {
	b := f.on(t).pkBrowser(nil)
	name := fmt.Sprintf("pk%d", victims.Add(1))
	b.register(name)
	id, _ := b.addPasskey("Key")
	return b, name, id
}

// pkOnly is a browser signed in to a new account made with a passkey.
func (f *fixture) pkOnly(t *testing.T) (*pkBrowser, string) {
	b := f.on(t).pkBrowser(nil)
	name := fmt.Sprintf("pko%d", victims.Add(1))
	wantStatus(t, b.signUp(name), http.StatusCreated)
	return b, name
}

// pkPending is a browser on the second step of a sign-in to a new account
// with a password, two-factor on and, with passkey, a passkey.
func (f *fixture) pkPending(t *testing.T, passkey bool) *pkBrowser {
	ts := f.on(t)
	b := ts.pkBrowser(nil)
	name := fmt.Sprintf("pkm%d", victims.Add(1))
	b.register(name)
	if passkey {
		b.addPasskey("Key")
	}
	ts.enrolled(t, ts.token(name, pw))
	s := ts.pkBrowser(b.auth)
	if res := s.login(name, pw); !strings.Contains(res.Body, `action="/login/mfa"`) {
		t.Fatalf("no second step: %d", res.StatusCode)
	}
	return s
}

// jsonReq is the request the validator reads the operation from.
func jsonReq(method, path, body string) *http.Request {
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", jsonType)
	return req
}

func init() {
	const cross = "Sec-Fetch-Site"
	cookieNoToken := func(f *fixture) []string { return []string{"Cookie", sessionCookie + "=" + f.tok} }
	someCredential := answer([]byte(`{"id":"AAAA","rawId":"AAAA","type":"public-key","response":{}}`))
	add := map[string]provoke{
		"GET /users/me/passkeys 200": func(t *testing.T, f *fixture) (*http.Request, response) {
			b, _, _ := f.pkUser(t)
			return jsonReq("GET", "/users/me/passkeys", ""), b.get("/users/me/passkeys")
		},
		"GET /users/me/passkeys 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "GET", "/users/me/passkeys", "", "")
		},
		"POST /users/me/passkeys/options 200": func(t *testing.T, f *fixture) (*http.Request, response) {
			b := f.on(t).pkBrowser(nil)
			b.register(fmt.Sprintf("pk%d", victims.Add(1)))
			return jsonReq("POST", "/users/me/passkeys/options", ""), b.call("POST", "/users/me/passkeys/options", "")
		},
		"POST /users/me/passkeys/options 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/passkeys/options", "", "")
		},
		"POST /users/me/passkeys/options 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/passkeys/options", "", "", cookieNoToken(f)...)
		},
		"POST /users/me/passkeys/options 409": func(t *testing.T, f *fixture) (*http.Request, response) {
			b, _, _ := f.pkUser(t)
			for i := 1; i < 10; i++ {
				b.auth = passkeytest.New(pkOrigin)
				b.addPasskey(fmt.Sprintf("Key %d", i))
			}
			return jsonReq("POST", "/users/me/passkeys/options", ""), b.call("POST", "/users/me/passkeys/options", "")
		},
		"POST /users/me/passkeys 201": func(t *testing.T, f *fixture) (*http.Request, response) {
			b := f.on(t).pkBrowser(nil)
			b.register(fmt.Sprintf("pk%d", victims.Add(1)))
			cred, _, _ := b.auth.Create(b.options("/users/me/passkeys/options", ""))
			body := answer(cred, "name", "Laptop")
			return jsonReq("POST", "/users/me/passkeys", body), b.call("POST", "/users/me/passkeys", body)
		},
		"POST /users/me/passkeys 400": func(t *testing.T, f *fixture) (*http.Request, response) {
			b := f.on(t).pkBrowser(nil)
			b.register(fmt.Sprintf("pk%d", victims.Add(1)))
			return jsonReq("POST", "/users/me/passkeys", someCredential), b.call("POST", "/users/me/passkeys", someCredential)
		},
		"POST /users/me/passkeys 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/passkeys", jsonType, someCredential)
		},
		"POST /users/me/passkeys 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/passkeys", jsonType, someCredential, cookieNoToken(f)...)
		},
		"POST /users/me/passkeys 409": func(t *testing.T, f *fixture) (*http.Request, response) {
			// A ceremony begun at 9 passkeys, finished after a tenth.
			b, _, _ := f.pkUser(t)
			for i := 1; i < 9; i++ {
				b.auth = passkeytest.New(pkOrigin)
				b.addPasskey(fmt.Sprintf("Key %d", i))
			}
			b.auth = passkeytest.New(pkOrigin)
			cred, _, _ := b.auth.Create(b.options("/users/me/passkeys/options", ""))
			first := b.cookies[ceremonyCookie]
			b.auth = passkeytest.New(pkOrigin)
			b.addPasskey("The tenth")
			b.cookies[ceremonyCookie] = first
			body := answer(cred)
			return jsonReq("POST", "/users/me/passkeys", body), b.call("POST", "/users/me/passkeys", body)
		},
		"POST /users/me/passkeys 415": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/passkeys", "text/plain", someCredential, bearer(f.tok)...)
		},
		"POST /users/me/passkeys 422": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/passkeys", jsonType, `{}`, bearer(f.tok)...)
		},
		"POST /users/me/passkeys/confirm/options 200": func(t *testing.T, f *fixture) (*http.Request, response) {
			b, _ := f.pkOnly(t)
			return jsonReq("POST", "/users/me/passkeys/confirm/options", ""), b.call("POST", "/users/me/passkeys/confirm/options", "")
		},
		"POST /users/me/passkeys/confirm/options 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/passkeys/confirm/options", "", "")
		},
		"POST /users/me/passkeys/confirm/options 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/passkeys/confirm/options", "", "", cookieNoToken(f)...)
		},
		"POST /users/me/passkeys/confirm/options 404": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/passkeys/confirm/options", "", "", bearer(f.tok)...)
		},
		"PATCH /users/me/passkeys/{id} 200": func(t *testing.T, f *fixture) (*http.Request, response) {
			b, _, id := f.pkUser(t)
			return jsonReq("PATCH", "/users/me/passkeys/"+id, `{"name":"Desk"}`), b.call("PATCH", "/users/me/passkeys/"+id, `{"name":"Desk"}`)
		},
		"PATCH /users/me/passkeys/{id} 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "PATCH", "/users/me/passkeys/x", jsonType, `{"name":"Desk"}`)
		},
		"PATCH /users/me/passkeys/{id} 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "PATCH", "/users/me/passkeys/x", jsonType, `{"name":"Desk"}`, cookieNoToken(f)...)
		},
		"PATCH /users/me/passkeys/{id} 404": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "PATCH", "/users/me/passkeys/none", jsonType, `{"name":"Desk"}`, bearer(f.tok)...)
		},
		"PATCH /users/me/passkeys/{id} 415": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "PATCH", "/users/me/passkeys/x", "text/plain", `{"name":"Desk"}`, bearer(f.tok)...)
		},
		"PATCH /users/me/passkeys/{id} 422": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "PATCH", "/users/me/passkeys/x", jsonType, `{}`, bearer(f.tok)...)
		},
		"DELETE /users/me/passkeys/{id} 204": func(t *testing.T, f *fixture) (*http.Request, response) {
			b, _, id := f.pkUser(t)
			body := `{"password":"` + pw + `"}`
			return jsonReq("DELETE", "/users/me/passkeys/"+id, body), b.call("DELETE", "/users/me/passkeys/"+id, body)
		},
		"DELETE /users/me/passkeys/{id} 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/users/me/passkeys/x", jsonType, `{"password":"x"}`)
		},
		"DELETE /users/me/passkeys/{id} 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			b, _, id := f.pkUser(t)
			return jsonReq("DELETE", "/users/me/passkeys/"+id, `{"password":"wrong"}`), b.call("DELETE", "/users/me/passkeys/"+id, `{"password":"wrong"}`)
		},
		"DELETE /users/me/passkeys/{id} 404": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/users/me/passkeys/none", jsonType, `{"password":"`+pw+`"}`, bearer(f.tok)...)
		},
		"DELETE /users/me/passkeys/{id} 409": func(t *testing.T, f *fixture) (*http.Request, response) {
			b, _ := f.pkOnly(t)
			id := b.passkeys()[0]["id"].(string)
			return jsonReq("DELETE", "/users/me/passkeys/"+id, `{}`), b.call("DELETE", "/users/me/passkeys/"+id, `{}`)
		},
		"DELETE /users/me/passkeys/{id} 415": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/users/me/passkeys/x", "text/plain", `{"password":"x"}`, bearer(f.tok)...)
		},
		"DELETE /users/me/passkeys/{id} 422": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/users/me/passkeys/x", jsonType, `{}`, bearer(f.tok)...)
		},
		"DELETE /users/me/passkeys/{id} 429": func(t *testing.T, f *fixture) (*http.Request, response) {
			b, name, id := f.pkUser(t)
			throttled(t, f, name)
			return jsonReq("DELETE", "/users/me/passkeys/"+id, `{"password":"x"}`), b.call("DELETE", "/users/me/passkeys/"+id, `{"password":"x"}`)
		},
		"POST /passkeys/login/options 200": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/passkeys/login/options", "", "")
		},
		"POST /passkeys/login/options 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/passkeys/login/options", "", "", cross, "cross-site")
		},
		"POST /passkeys/login/options 429": func(t *testing.T, f *fixture) (*http.Request, response) {
			limited := &fixture{ts: newTestServer(t, append([]string{"PASSKEY_CEREMONIES_PER_IP", "1"}, passkeyEnv...)...)}
			limited.send(t, "POST", "/passkeys/login/options", "", "")
			return limited.send(t, "POST", "/passkeys/login/options", "", "")
		},
		"POST /passkeys/login 200": func(t *testing.T, f *fixture) (*http.Request, response) {
			b, _, _ := f.pkUser(t)
			return jsonReq("POST", "/passkeys/login", ""), f.on(t).pkBrowser(b.auth).signIn("/profile")
		},
		"POST /passkeys/login 400": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/passkeys/login", jsonType, someCredential)
		},
		"POST /passkeys/login 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			b, _, _ := f.pkUser(t)
			return jsonReq("POST", "/passkeys/login", ""), f.on(t).pkBrowser(b.auth).signIn("", passkeytest.Tamper{BadSignature: true})
		},
		"POST /passkeys/login 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/passkeys/login", jsonType, someCredential, cross, "cross-site")
		},
		"POST /passkeys/login 415": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/passkeys/login", "text/plain", someCredential)
		},
		"POST /passkeys/login 422": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/passkeys/login", jsonType, `{}`)
		},
		"POST /passkeys/login 429": func(t *testing.T, f *fixture) (*http.Request, response) {
			b, name, _ := f.pkUser(t)
			throttled(t, f, name)
			return jsonReq("POST", "/passkeys/login", ""), f.on(t).pkBrowser(b.auth).signIn("")
		},
		"POST /register/passkey/options 200": func(t *testing.T, f *fixture) (*http.Request, response) {
			body := fmt.Sprintf(`{"username":"new%d","email":"new%d@example.com"}`, victims.Add(1), victims.Load())
			return f.send(t, "POST", "/register/passkey/options", jsonType, body)
		},
		"POST /register/passkey/options 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/register/passkey/options", jsonType, `{"username":"x1","email":"x1@example.com"}`, cross, "cross-site")
		},
		"POST /register/passkey/options 409": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/register/passkey/options", jsonType, `{"username":"alice","email":"x2@example.com"}`)
		},
		"POST /register/passkey/options 415": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/register/passkey/options", "text/plain", `{}`)
		},
		"POST /register/passkey/options 422": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/register/passkey/options", jsonType, `{"username":"x3"}`)
		},
		"POST /register/passkey/options 429": func(t *testing.T, f *fixture) (*http.Request, response) {
			limited := &fixture{ts: newTestServer(t, append([]string{"REGISTRATIONS_PER_IP", "1"}, passkeyEnv...)...)}
			limited.ts.register("first", "first@example.com", pw)
			return limited.send(t, "POST", "/register/passkey/options", jsonType, `{"username":"second","email":"second@example.com"}`)
		},
		"POST /register/passkey 201": func(t *testing.T, f *fixture) (*http.Request, response) {
			return jsonReq("POST", "/register/passkey", ""), f.on(t).pkBrowser(nil).signUp(fmt.Sprintf("pkn%d", victims.Add(1)))
		},
		"POST /register/passkey 400": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/register/passkey", jsonType, someCredential)
		},
		"POST /register/passkey 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/register/passkey", jsonType, someCredential, cross, "cross-site")
		},
		"POST /register/passkey 409": func(t *testing.T, f *fixture) (*http.Request, response) {
			// The name was taken between the options and the answer.
			ts := f.on(t)
			b := ts.pkBrowser(nil)
			name := fmt.Sprintf("pkr%d", victims.Add(1))
			cred, _, _ := b.auth.Create(b.options("/register/passkey/options", `{"username":"`+name+`","email":"`+name+`@example.com"}`))
			ts.register(name, name+"@elsewhere.example.com", pw)
			return jsonReq("POST", "/register/passkey", ""), b.call("POST", "/register/passkey", answer(cred))
		},
		"POST /register/passkey 415": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/register/passkey", "text/plain", someCredential)
		},
		"POST /register/passkey 422": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/register/passkey", jsonType, `{"credential":[]}`)
		},
		"POST /register/passkey 429": func(t *testing.T, f *fixture) (*http.Request, response) {
			limited := newTestServer(t, append([]string{"REGISTRATIONS_PER_IP", "1"}, passkeyEnv...)...)
			b := limited.pkBrowser(nil)
			cred, _, _ := b.auth.Create(b.options("/register/passkey/options", `{"username":"second","email":"second@example.com"}`))
			limited.register("first", "first@example.com", pw)
			return jsonReq("POST", "/register/passkey", ""), b.call("POST", "/register/passkey", answer(cred))
		},
		"POST /login/mfa/passkey/options 200": func(t *testing.T, f *fixture) (*http.Request, response) {
			s := f.pkPending(t, true)
			return jsonReq("POST", "/login/mfa/passkey/options", ""), s.call("POST", "/login/mfa/passkey/options", "")
		},
		"POST /login/mfa/passkey/options 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/login/mfa/passkey/options", "", "")
		},
		"POST /login/mfa/passkey/options 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/login/mfa/passkey/options", "", "", cross, "cross-site")
		},
		"POST /login/mfa/passkey/options 404": func(t *testing.T, f *fixture) (*http.Request, response) {
			s := f.pkPending(t, false)
			return jsonReq("POST", "/login/mfa/passkey/options", ""), s.call("POST", "/login/mfa/passkey/options", "")
		},
		"POST /login/mfa/passkey 200": func(t *testing.T, f *fixture) (*http.Request, response) {
			s := f.pkPending(t, true)
			cred, _ := s.auth.Get(s.options("/login/mfa/passkey/options", ""))
			return jsonReq("POST", "/login/mfa/passkey", ""), s.call("POST", "/login/mfa/passkey", answer(cred))
		},
		"POST /login/mfa/passkey 400": func(t *testing.T, f *fixture) (*http.Request, response) {
			s := f.pkPending(t, true)
			return jsonReq("POST", "/login/mfa/passkey", ""), s.call("POST", "/login/mfa/passkey", someCredential)
		},
		"POST /login/mfa/passkey 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/login/mfa/passkey", jsonType, someCredential)
		},
		"POST /login/mfa/passkey 415": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/login/mfa/passkey", "text/plain", someCredential)
		},
		"POST /login/mfa/passkey 422": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/login/mfa/passkey", jsonType, `{}`)
		},
		"DELETE /admin/api/users/{id}/passkeys/{pid} 204": func(t *testing.T, f *fixture) (*http.Request, response) {
			_, name, id := f.pkUser(t)
			return f.send(t, "DELETE", "/admin/api/users/"+f.userID(t, name)+"/passkeys/"+id, "", "", bearer(f.admin)...)
		},
		"DELETE /admin/api/users/{id}/passkeys/{pid} 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/admin/api/users/"+f.userID(t, "alice")+"/passkeys/x", "", "")
		},
		"DELETE /admin/api/users/{id}/passkeys/{pid} 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/admin/api/users/"+f.userID(t, "alice")+"/passkeys/x", "", "", bearer(f.tok)...)
		},
		"DELETE /admin/api/users/{id}/passkeys/{pid} 404": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/admin/api/users/"+f.userID(t, "alice")+"/passkeys/none", "", "", bearer(f.admin)...)
		},
		"DELETE /admin/api/users/{id}/passkeys/{pid} 409": func(t *testing.T, f *fixture) (*http.Request, response) {
			b, name := f.pkOnly(t)
			id := b.passkeys()[0]["id"].(string)
			return f.send(t, "DELETE", "/admin/api/users/"+f.userID(t, name)+"/passkeys/"+id, "", "", bearer(f.admin)...)
		},
	}
	for k, v := range add {
		provocations[k] = v
	}
}
