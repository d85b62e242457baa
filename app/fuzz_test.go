package app

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzSafeNext: whatever comes in, what comes out is "" or a path on this
// site that no browser can read as another host.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/profile", "//evil", "/\\evil", "https://evil", "/\t/evil", "/%2F/evil", "/a?b=c#d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := safeNext(s)
		if out == "" {
			return
		}
		if out != s || out[0] != '/' || strings.HasPrefix(out, "//") || strings.ContainsAny(out, "\\\t\r\n ") {
			t.Fatalf("safeNext(%q) = %q", s, out)
		}
		u, err := http.NewRequest(http.MethodGet, "http://site.example"+out, nil)
		if err != nil || u.URL.Host != "site.example" {
			t.Fatalf("safeNext(%q) = %q resolves off-site", s, out)
		}
	})
}

// FuzzRegisterJSON posts arbitrary bodies to the real registration
// endpoint: the answer is always a deliberate status, never a 5xx.
func FuzzRegisterJSON(f *testing.F) {
	ts := newTestServer(f, "REGISTRATIONS_PER_IP", "100000000")
	for _, s := range []string{
		`{"username":"alice","email":"alice@example.com","password":"correct horse battery"}`,
		`{"username":1}`, `[]`, `null`, `{"username":"a\u0000"}`, "{\"username\":\"\xff\"}", `{`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/register/user", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := ts.s.App().Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		switch res.StatusCode {
		case 201, 409, 422, 429:
		default:
			t.Fatalf("body %q: status %d", body, res.StatusCode)
		}
	})
}

// FuzzTokenForm posts arbitrary form bodies to the real token endpoint.
func FuzzTokenForm(f *testing.F) {
	ts := newTestServer(f, "LOGIN_FAILURES_PER_ACCOUNT", "1000000", "LOGIN_FAILURES_PER_IP", "100000000")
	for _, s := range []string{"username=alice&password=x", "grant_type=x", "username=%ff&password=%00", "&&==", "username=a@b&password=" + strings.Repeat("p", 80)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest(http.MethodPost, "/token", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		res, err := ts.s.App().Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		switch res.StatusCode {
		case 400, 401, 429:
		default:
			t.Fatalf("body %q: status %d", body, res.StatusCode)
		}
	})
}
