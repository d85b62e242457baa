package app

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/account"
)

type localKey int

const (
	principalKey localKey = iota
	routeKey
	requestIDKey
	csrfLocal
	appsKey
	// pendingLocal is the account of a second step begun by this very
	// request (its cookie is in the answer, not the request).
	pendingLocal
)

// currentUser returns the request's principal, set by requireAPI or
// requirePage.
func currentUser(c *fiber.Ctx) *account.Principal {
	p, _ := c.Locals(principalKey).(*account.Principal)
	return p
}

// requestState is what the envelope keeps for one request, in one
// allocation: its id and its context.
type requestState struct {
	ctx requestContext
	id  [64]byte
	n   int // length of id
}

// requestID returns the request's id, set by the envelope.
func requestID(c *fiber.Ctx) string {
	if st, ok := c.Locals(requestIDKey).(*requestState); ok {
		return string(st.id[:st.n])
	}
	return ""
}

// Names and values of the headers every answer carries, ready for
// fasthttp (already in canonical form).
var (
	hdrRequestID     = []byte("X-Request-Id")
	hdrAuthorization = []byte(fiber.HeaderAuthorization)
	hdrCacheCtl      = []byte(fiber.HeaderCacheControl)
	valNoStore       = []byte("no-store")
	hdrHSTS          = []byte("Strict-Transport-Security")
	valHSTS          = []byte("max-age=31536000")
	securityFixed    = [][2][]byte{
		{[]byte("Content-Security-Policy"), []byte(cspPages)},
		{[]byte("X-Content-Type-Options"), []byte("nosniff")},
		{[]byte("X-Frame-Options"), []byte("DENY")},
		{[]byte("Referrer-Policy"), []byte("same-origin")},
		{[]byte("Cross-Origin-Opener-Policy"), []byte("same-origin")},
		{[]byte("Permissions-Policy"), []byte("camera=(), microphone=(), geolocation=()")},
	}
	staticPrefix = []byte("/static/")
)

// linePool holds the buffers request lines are written in.
var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// envelope is the first handler of every request, and all it costs when a
// request needs nothing else:
//   - an id, sent back in X-Request-Id and written in its log line. A
//     client's own X-Request-Id is kept when it is a short token of safe
//     characters (so that a proxy's id carries through); anything else is
//     replaced, so that no client can put arbitrary text in the logs;
//   - the security headers every answer carries;
//   - a deadline for its work: store and hashing calls take their context
//     from c.UserContext(). It does not derive from the server's context,
//     so that a graceful shutdown lets requests in flight finish;
//   - a panic becomes an error answer;
//   - errors are answered by the error handler, then the request is
//     counted in the metrics and logged in one line.
func (s *Server) envelope(c *fiber.Ctx) error {
	start := time.Now()
	st := &requestState{}
	st.ctx.deadline = start.Add(requestTimeout)
	if id := c.Request().Header.PeekBytes(hdrRequestID); safeRequestID(id) {
		st.n = copy(st.id[:], id)
	} else {
		st.n = newRequestID(&st.id)
	}
	c.Locals(requestIDKey, st)
	h := &c.Response().Header
	h.SetCanonical(hdrRequestID, st.id[:st.n])
	for _, kv := range securityFixed {
		h.SetCanonical(kv[0], kv[1])
	}
	if s.secure(c) {
		h.SetCanonical(hdrHSTS, valHSTS)
	}
	if !bytes.HasPrefix(c.Request().URI().Path(), staticPrefix) {
		h.SetCanonical(hdrCacheCtl, valNoStore)
	}
	c.SetUserContext(&st.ctx)

	err := nextRecovered(c)
	st.ctx.stop()
	if err != nil {
		if herr := s.app.ErrorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	status := c.Response().StatusCode()
	elapsed := time.Since(start)
	route := routePattern(c)
	s.metrics.Request(route, c.Method(), status, elapsed)
	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	if s.log.Enabled(context.Background(), level) {
		s.logRequest(c, &requestLine{Time: start.Add(elapsed), Level: level, ID: st.id[:st.n], Method: c.Method(),
			Route: route, Path: c.Path(), Status: status, Duration: elapsed})
	}
	return nil
}

// nextRecovered runs the rest of the chain; a panic there is returned as
// an error.
func nextRecovered(c *fiber.Ctx) (err error) {
	defer func() {
		if r := recover(); r != nil {
			var ok bool
			if err, ok = r.(error); !ok {
				err = fmt.Errorf("%v", r)
			}
		}
	}()
	return c.Next()
}

// logRequest writes the request's line: straight into the log's batch of
// request lines when the log is JSON made by newLogger, else through slog.
func (s *Server) logRequest(c *fiber.Ctx, r *requestLine) {
	if p := currentUser(c); p != nil {
		r.UserID = p.User.ID
	}
	if s.logSink == nil {
		r.IP = s.clientIP(c)
		logRequestSlow(s.log, r)
		return
	}
	if len(s.cfg.TrustedProxies) == 0 {
		r.Addr = remoteAddr(c)
	} else {
		r.IP = s.clientIP(c)
	}
	buf := linePool.Get().(*[]byte)
	*buf = appendRequestLine((*buf)[:0], r)
	s.logSink.request(*buf)
	linePool.Put(buf)
}

// newRequestID writes a new id in id: 24 hexadecimal digits of the
// runtime's fast random source (an id tells requests apart in the logs; it
// is no secret).
func newRequestID(id *[64]byte) int {
	a, b := rand.Uint64(), rand.Uint32()
	for i := 0; i < 16; i++ {
		id[i] = hexDigits[a>>(60-4*i)&0xf]
	}
	for i := 0; i < 8; i++ {
		id[16+i] = hexDigits[b>>(28-4*i)&0xf]
	}
	return 24
}

// safeRequestID accepts 1 to 64 letters, digits, '-', '_', '.' and ':'.
func safeRequestID(id []byte) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for _, b := range id {
		if !(b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '-' || b == '_' || b == '.' || b == ':') {
			return false
		}
	}
	return true
}

// remoteAddr is the address of the request's peer.
func remoteAddr(c *fiber.Ctx) netip.Addr {
	addr, _ := netip.AddrFromSlice(c.Context().RemoteIP())
	return addr.Unmap()
}

// routePattern is the pattern of the route a request matched, never its
// raw path: "/static/*" for assets and "other" for unknown paths.
func routePattern(c *fiber.Ctx) string {
	if r := routeOf(c); r != nil {
		return r.Path
	}
	if strings.HasPrefix(c.Path(), "/static/") {
		return "/static/*"
	}
	return "other"
}

// Content-Security-Policy of the application's pages: only its own scripts,
// styles and images; no plugins, framing or foreign form targets.
const cspPages = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// credentials returns the raw token of a request: the Authorization header
// first, then the session cookie. present is false when neither was sent.
//
// A token from the Authorization header is not copied: raw is good only
// until the request ends (the token cache copies the tokens it keeps).
func (s *Server) credentials(c *fiber.Ctx) (raw string, viaCookie, present bool) {
	if b := c.Request().Header.PeekBytes(hdrAuthorization); len(b) > 0 {
		h := unsafe.String(unsafe.SliceData(b), len(b))
		scheme, rest, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "bearer") {
			return "", false, false
		}
		return strings.TrimSpace(rest), false, true
	}
	if v := c.Cookies(s.cookieName(c, sessionCookie)); v != "" {
		return v, true, true
	}
	return "", false, false
}

// authenticate checks the request's token and its session. It returns
// errNotAuthenticated when no credentials were sent, and the core's error
// for a refused token.
func (s *Server) authenticate(c *fiber.Ctx) (*account.Principal, bool, error) {
	raw, viaCookie, present := s.credentials(c)
	if !present {
		return nil, false, errNotAuthenticated
	}
	p, err := s.acct.Authenticate(c.UserContext(), raw)
	return p, viaCookie, err
}

// allowApps marks a route where tokens issued to applications (OpenID
// Connect clients) are accepted: /userinfo and the APIs their scopes are
// for; everywhere else such a token is refused.
func (s *Server) allowApps(c *fiber.Ctx) error {
	c.Locals(appsKey, true)
	return c.Next()
}

// errAppToken refuses an application's token on an account endpoint.
var errAppToken = &Error{Status: http.StatusForbidden, Detail: "This access token was issued to an application: it is good for /userinfo and the APIs its scopes allow, not for the account's own endpoints",
	Headers: map[string]string{"WWW-Authenticate": `Bearer error="insufficient_scope"`}}

// requireAPI guards the JSON API. A cookie-authenticated request that
// changes state must also pass the CSRF checks; a bearer header carries no
// ambient credentials and needs none.
func (s *Server) requireAPI(c *fiber.Ctx) error {
	p, viaCookie, err := s.authenticate(c)
	if err != nil {
		return err
	}
	if p.Session.ClientID != "" && c.Locals(appsKey) == nil {
		return errAppToken
	}
	if viaCookie && !safeMethod(c.Method()) {
		if err := s.csrfVerify(c, c.Get(csrfHeader)); err != nil {
			return errCSRFHeader
		}
	}
	if viaCookie {
		s.slide(c, p)
	}
	c.Locals(principalKey, p)
	return c.Next()
}

// slide keeps an active browser signed in: past half its life, or once the
// account's role changed since it was issued, the access token in the
// cookie is replaced by a new one for the same session, which this request
// already uses. The session's own idle and absolute limits still apply.
func (s *Server) slide(c *fiber.Ctx, p *account.Principal) {
	if s.acct.Now().Before(p.IssuedAt.Add(p.ExpiresAt.Sub(p.IssuedAt)/2)) && !p.Stale() {
		return
	}
	raw, err := s.acct.Renew(p)
	if err != nil {
		s.log.Warn("session cookie not renewed", slog.String("error", err.Error()))
		return
	}
	s.setCookie(c, sessionCookie, raw, s.acct.Tokens().Lifetime())
}

// requirePage guards browser pages: without a valid session the person is
// sent to the login page, and a stale cookie is cleared on the way.
func (s *Server) requirePage(c *fiber.Ctx) error {
	p, viaCookie, err := s.authenticate(c)
	if err == nil && p.Session.ClientID != "" {
		// An application's token is no browser session.
		err = errNotAuthenticated
	}
	if err == nil && viaCookie {
		s.slide(c, p)
	}
	if err != nil {
		if err != errNotAuthenticated && account.ErrorCode(err) != account.EUnauthorized {
			return err // the database is away: an error page, not the login form
		}
		expired := ""
		if c.Cookies(s.cookieName(c, sessionCookie)) != "" {
			// A session cookie that no longer works: say so on the login
			// page.
			s.clearCookie(c, sessionCookie)
			expired = "&done=expired"
		}
		next := "/profile"
		if c.Method() == fiber.MethodGet {
			next = c.OriginalURL()
		}
		return c.Redirect("/login?next="+queryEscape(next)+expired, fiber.StatusSeeOther)
	}
	c.Locals(principalKey, p)
	return c.Next()
}

// signedIn returns the principal when the request carries a valid session.
func (s *Server) signedIn(c *fiber.Ctx) *account.Principal {
	p, _, err := s.authenticate(c)
	if err != nil || p.Session.ClientID != "" {
		return nil
	}
	return p
}

// errNoRight is a valid token without the right a route needs.
var errNoRight = &Error{Status: http.StatusForbidden, Detail: msgNotAuthorized}

// requireRole lets through callers whose token allows scope now: the
// intersection of the account's current role, the session's grant and the
// token's own scope (account.Granted). It follows requireAPI or
// requirePage; the role checks of every route are here.
func (s *Server) requireRole(scope string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		p := currentUser(c)
		if p == nil || !p.Allows(scope) {
			return errNoRight
		}
		return c.Next()
	}
}

func safeMethod(m string) bool {
	return m == fiber.MethodGet || m == fiber.MethodHead || m == fiber.MethodOptions
}

// client describes the request's client to the core.
func (s *Server) client(c *fiber.Ctx, browser bool) account.Client {
	cl := account.Client{Addr: s.clientIP(c), UserAgent: userAgent(c), Browser: browser}
	if browser {
		cl.Device = s.deviceID(c)
	}
	return cl
}

// Cookies. Over HTTPS their names carry the __Host- prefix, which browsers
// accept only with Secure, Path=/ and no Domain: no subdomain and no plain-
// HTTP page can set or shadow them.
const (
	sessionCookie = "access_token"
	csrfCookie    = "csrf_token"
	deviceCookie  = "device"
	// deviceLifetime is how long a browser keeps its device cookie (the
	// longest browsers allow).
	deviceLifetime = 400 * 24 * time.Hour
)

// secure tells whether cookies must carry the Secure attribute.
func (s *Server) secure(c *fiber.Ctx) bool {
	switch s.cfg.CookieSecure {
	case "true":
		return true
	case "false":
		return false
	}
	if c.Context().IsTLS() {
		return true
	}
	if len(s.cfg.TrustedProxies) == 0 {
		return false // no proxy says the scheme
	}
	return c.Protocol() == "https"
}

// cookieName is the name of cookie base for this request.
func (s *Server) cookieName(c *fiber.Ctx, base string) string {
	if s.secure(c) {
		return "__Host-" + base
	}
	return base
}

// setCookie stores a cookie for the whole site: HttpOnly, SameSite=Lax,
// Secure over HTTPS.
func (s *Server) setCookie(c *fiber.Ctx, base, value string, maxAge time.Duration) {
	c.Cookie(&fiber.Cookie{
		Name:     s.cookieName(c, base),
		Value:    value,
		Path:     "/",
		MaxAge:   int(maxAge.Seconds()),
		Secure:   s.secure(c),
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode,
	})
}

// clearCookie removes a cookie, repeating the attributes it was set with so
// that every browser matches it.
func (s *Server) clearCookie(c *fiber.Ctx, base string) {
	c.Cookie(&fiber.Cookie{
		Name:     s.cookieName(c, base),
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		Expires:  time.Unix(0, 0),
		Secure:   s.secure(c),
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode,
	})
}

// setSession stores a browser's session: the access token, the device
// cookie, and a fresh CSRF cookie (a token planted before sign-in is not
// carried into the session).
func (s *Server) setSession(c *fiber.Ctx, g account.Grant) error {
	s.setCookie(c, sessionCookie, g.AccessToken, s.acct.Tokens().Lifetime())
	if g.Device != "" && s.deviceID(c) != g.Device {
		s.setCookie(c, deviceCookie, g.Device+"."+s.deviceMAC(g.Device), deviceLifetime)
	}
	return s.rotateCSRF(c)
}

// endSession clears a browser's session cookie and rotates its CSRF cookie.
func (s *Server) endSession(c *fiber.Ctx) error {
	s.clearCookie(c, sessionCookie)
	return s.rotateCSRF(c)
}

// deviceID returns the browser's device id when its cookie carries a valid
// signature, else "".
func (s *Server) deviceID(c *fiber.Ctx) string {
	v := c.Cookies(s.cookieName(c, deviceCookie))
	id, mac, ok := strings.Cut(v, ".")
	if !ok || len(id) != 22 || !hmac.Equal([]byte(mac), []byte(s.deviceMAC(id))) {
		return ""
	}
	return id
}

func (s *Server) deviceMAC(id string) string {
	m := hmac.New(sha256.New, s.deviceKey)
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// clientIP is the connection's address or, when the connection comes from
// a trusted proxy, the rightmost address in X-Forwarded-For (all its header
// lines, in order) that is not itself a trusted proxy. A hop that is not an
// address is taken as the client: it was written by whoever is untrusted.
// Without TRUSTED_PROXIES the headers are ignored.
func (s *Server) clientIP(c *fiber.Ctx) string {
	if len(s.cfg.TrustedProxies) == 0 {
		return remoteAddr(c).String()
	}
	remote := c.Context().RemoteIP()
	addr, ok := netip.AddrFromSlice(remote)
	if !ok {
		return remote.String()
	}
	addr = addr.Unmap()
	if len(s.cfg.TrustedProxies) == 0 || !s.trusted(addr) {
		return addr.String()
	}
	var hops []string
	for _, line := range c.Request().Header.PeekAll(fiber.HeaderXForwardedFor) {
		for _, h := range strings.Split(string(line), ",") {
			if h = strings.TrimSpace(h); h != "" {
				hops = append(hops, h)
			}
		}
	}
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(hops[i])
		if err != nil {
			return printable(hops[i], 64)
		}
		hop = hop.Unmap()
		if !s.trusted(hop) {
			return hop.String()
		}
		addr = hop
	}
	return addr.String()
}

func (s *Server) trusted(a netip.Addr) bool {
	for _, p := range s.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// userAgent returns the request's User-Agent, made safe to store and show.
func userAgent(c *fiber.Ctx) string {
	return printable(c.Get(fiber.HeaderUserAgent), 256)
}

// printable drops invalid UTF-8 and control characters from s and cuts it
// to at most n bytes.
func printable(s string, n int) string {
	s = strings.ToValidUTF8(s, "")
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		s = s[:n]
		for !utf8.ValidString(s) {
			s = s[:len(s)-1]
		}
	}
	return s
}
