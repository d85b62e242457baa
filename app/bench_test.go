package app

import (
	"context"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/golang-jwt/jwt/v5"
	"github.com/valyala/fasthttp"

	"fiberauth/app/passkey/passkeytest"
	"fiberauth/app/token"
)

// The benchmarks drive the app's fasthttp handler directly, without a
// network, so that each result is the server's own cost per request. Read
// them as ratios to BenchmarkBareFiber, measured in the same run:
//
//	go test ./app -run '^$' -bench . -benchmem

var benchRemote = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}

// serve runs one request through h per iteration and checks its status.
func serve(b *testing.B, h fasthttp.RequestHandler, method, uri string, want int, header ...string) {
	b.Helper()
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	var ctx fasthttp.RequestCtx
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ctx.Init(&req, benchRemote, nil)
		h(&ctx)
		if got := ctx.Response.StatusCode(); got != want {
			b.Fatalf("%s %s: status %d, want %d: %s", method, uri, got, want, ctx.Response.Body())
		}
	}
}

// BenchmarkBareFiber is the baseline: a Fiber app with one plain-text route.
func BenchmarkBareFiber(b *testing.B) {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Get("/", func(c *fiber.Ctx) error { return c.SendString("Hello, World!") })
	serve(b, app.Handler(), "GET", "/", 200)
}

// benchServer is a test server with one user and a token.
func benchServer(b *testing.B) (*testServer, string) {
	b.Helper()
	ts := newTestServer(b)
	ts.register("alice", "alice@example.com", pw)
	return ts, ts.token("alice", pw)
}

func BenchmarkTokenVerify(b *testing.B) {
	ts, tok := benchServer(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := ts.s.acct.Tokens().Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSessionLookup(b *testing.B) {
	ts, tok := benchServer(b)
	sid := mustClaims(b, ts, tok).SessionID
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := ts.store.SessionWithUser(ctx, sid); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAuthMiddleware is the authentication middleware alone, in front
// of a handler that answers 204.
func BenchmarkAuthMiddleware(b *testing.B) {
	ts, tok := benchServer(b)
	ts.s.App().Get("/bench/auth", ts.s.requireAPI, func(c *fiber.Ctx) error { return c.SendStatus(204) })
	serve(b, ts.s.App().Handler(), "GET", "/bench/auth", 204, "Authorization", "Bearer "+tok)
}

func BenchmarkUsersMe(b *testing.B) {
	ts, tok := benchServer(b)
	serve(b, ts.s.App().Handler(), "GET", "/users/me", 200, "Authorization", "Bearer "+tok)
}

func BenchmarkRenderLogin(b *testing.B) {
	ts, _ := benchServer(b)
	serve(b, ts.s.App().Handler(), "GET", "/login", 200)
}

func BenchmarkRenderProfile(b *testing.B) {
	ts, tok := benchServer(b)
	serve(b, ts.s.App().Handler(), "GET", "/profile", 200, "Cookie", sessionCookie+"="+tok)
}

// BenchmarkUsersMeParallel is GET /users/me from as many goroutines as
// GOMAXPROCS, to show the read path has no global lock.
func BenchmarkUsersMeParallel(b *testing.B) {
	ts, tok := benchServer(b)
	h := ts.s.App().Handler()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var req fasthttp.Request
		req.Header.SetMethod("GET")
		req.SetRequestURI("/users/me")
		req.Header.Set("Authorization", "Bearer "+tok)
		var ctx fasthttp.RequestCtx
		for pb.Next() {
			ctx.Init(&req, benchRemote, nil)
			h(&ctx)
			if ctx.Response.StatusCode() != 200 {
				b.Errorf("status %d", ctx.Response.StatusCode())
				return
			}
		}
	})
}

// BenchmarkTokenVerifyCold verifies tokens the manager has not seen:
// an Ed25519 signature, JSON decoding and claim checks, without the
// verified-token cache's help.
func BenchmarkTokenVerifyCold(b *testing.B) {
	ts, _ := benchServer(b)
	m := ts.s.acct.Tokens()
	toks := make([]string, b.N)
	for i := range toks {
		toks[i], _, _ = m.Issue(token.Grant{Subject: "alice", SessionID: "sid-" + strconv.Itoa(i)}, time.Now())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Verify(toks[i]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUsersMeHS256 is BenchmarkUsersMe with a token of the earlier
// release (HS256 with the secret), to compare with EdDSA tokens in one run:
// with the verified-token cache, the signature's cost is paid once.
func BenchmarkUsersMeHS256(b *testing.B) {
	ts := newTestServer(b, "SECRET_KEY", testKey)
	ts.register("alice", "alice@example.com", pw)
	c, err := ts.s.acct.Tokens().Verify(ts.token("alice", pw))
	if err != nil {
		b.Fatal(err)
	}
	legacy := *c
	legacy.Issuer = token.LegacyIssuer
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, legacy).SignedString([]byte(testKey))
	if err != nil {
		b.Fatal(err)
	}
	serve(b, ts.s.App().Handler(), "GET", "/users/me", 200, "Authorization", "Bearer "+tok)
}

// Sign-ins per second: a password sign-in (POST /token) and a passkey
// sign-in (POST /passkeys/login/options, then POST /passkeys/login with
// the authenticator's answer) through the app's handler, on SQLite. The
// passkey path is the whole verification: the challenge stored and taken
// once, the assertion's origin, relying party, challenge, flags and ES256
// signature checked, the counter written with the new session. The
// authenticator's own work (signing) is left out of the time.

// handle runs one request through h and returns its response.
func handle(h fasthttp.RequestHandler, method, uri, body string, header ...string) *fasthttp.Response {
	var ctx fasthttp.RequestCtx
	var req fasthttp.Request
	req.Header.SetMethod(method)
	req.SetRequestURI(uri)
	req.SetBodyString(body)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	ctx.Init(&req, benchRemote, nil)
	h(&ctx)
	res := &fasthttp.Response{}
	ctx.Response.CopyTo(res)
	return res
}

// signInsPerSecond reports the rate of b's iterations.
func signInsPerSecond(b *testing.B) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "sign-ins/s")
}

func benchPasswordSignIn(b *testing.B, cost string) {
	ts := newTestServer(b, "BCRYPT_COST", cost)
	ts.register("alice", "alice@example.com", pw)
	h := ts.s.App().Handler()
	body := "username=alice&password=" + url.QueryEscape(pw)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := handle(h, "POST", "/token", body, "Content-Type", "application/x-www-form-urlencoded")
		if res.StatusCode() != 200 {
			b.Fatalf("status %d: %s", res.StatusCode(), res.Body())
		}
	}
	signInsPerSecond(b)
}

// BenchmarkSignInPassword is a password sign-in at the default bcrypt
// cost (12): the baseline.
func BenchmarkSignInPassword(b *testing.B) { benchPasswordSignIn(b, "12") }

// BenchmarkSignInPasswordCost4 is the same at the tests' cost (4): the
// service's own work around bcrypt.
func BenchmarkSignInPasswordCost4(b *testing.B) { benchPasswordSignIn(b, "4") }

// BenchmarkSignInPasskey is a username-less passkey sign-in.
func BenchmarkSignInPasskey(b *testing.B) {
	ts := newTestServer(b, passkeyEnv...)
	pb := &pkBrowser{browser: ts.browser(), auth: passkeytest.New(pkOrigin)}
	pb.register("alice")
	pb.addPasskey("Laptop")
	h := ts.s.App().Handler()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := handle(h, "POST", "/passkeys/login/options", "")
		if res.StatusCode() != 200 {
			b.Fatalf("options: status %d: %s", res.StatusCode(), res.Body())
		}
		cookie := string(res.Header.PeekCookie(ceremonyCookie))
		value := strings.TrimPrefix(strings.Split(cookie, ";")[0], ceremonyCookie+"=")
		b.StopTimer()
		cred, err := pb.auth.Get(res.Body())
		if err != nil {
			b.Fatal(err)
		}
		body := answer(cred)
		b.StartTimer()
		res = handle(h, "POST", "/passkeys/login", body, "Content-Type", "application/json", "Cookie", ceremonyCookie+"="+value)
		if res.StatusCode() != 200 {
			b.Fatalf("sign-in: status %d: %s", res.StatusCode(), res.Body())
		}
	}
	signInsPerSecond(b)
}
