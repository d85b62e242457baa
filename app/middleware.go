package app

import (
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"fiberauth/db"
)

// cookieName is the session cookie holding the access token.
const cookieName = "access_token"

// touchEvery is how often, at most, a session's last_used_at is written.
const touchEvery = time.Minute

type localKey int

const principalKey localKey = iota

// principal is the authenticated caller of a request.
type principal struct {
	User    db.User
	Session db.Session
	// ViaCookie is true when the credentials came from the cookie (a
	// browser), false for an Authorization header.
	ViaCookie bool
}

// currentUser returns the request's principal, set by requireAPI or
// requirePage.
func currentUser(c *fiber.Ctx) *principal {
	p, _ := c.Locals(principalKey).(*principal)
	return p
}

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals("requestid").(string)
	return id
}

// logRequests logs one line per request.
func (s *Server) logRequests(c *fiber.Ctx) error {
	start := time.Now()
	err := c.Next()
	if err != nil {
		if herr := s.app.ErrorHandler(c, err); herr != nil {
			_ = c.SendStatus(fiber.StatusInternalServerError)
		}
	}
	status := c.Response().StatusCode()
	level := slog.LevelDebug
	if status >= 500 {
		level = slog.LevelWarn
	} else if status >= 400 {
		level = slog.LevelInfo
	}
	if s.log.Enabled(c.UserContext(), level) {
		s.log.Log(c.UserContext(), level, "request",
			slog.String("request_id", requestID(c)),
			slog.String("method", c.Method()),
			slog.String("path", c.Path()),
			slog.Int("status", status),
			slog.Duration("duration", time.Since(start)),
			slog.String("ip", s.clientIP(c)))
	}
	return nil
}

// Content-Security-Policy of the application's pages: only its own scripts,
// styles and images; no plugins, framing or foreign form targets.
const cspPages = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// securityHeaders sets the headers every response carries.
func (s *Server) securityHeaders(c *fiber.Ctx) error {
	h := &c.Response().Header
	h.Set("Content-Security-Policy", cspPages)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
	if s.secure(c) {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if !strings.HasPrefix(c.Path(), "/static/") {
		h.Set(fiber.HeaderCacheControl, "no-store")
	}
	return c.Next()
}

// credentials returns the raw token of a request: the Authorization header
// first, then the cookie. present is false when neither was sent.
func credentials(c *fiber.Ctx) (raw string, viaCookie, present bool) {
	if h := c.Get(fiber.HeaderAuthorization); h != "" {
		scheme, rest, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "bearer") {
			return "", false, false
		}
		return strings.TrimSpace(rest), false, true
	}
	if v := c.Cookies(cookieName); v != "" {
		return v, true, true
	}
	return "", false, false
}

// authenticate checks the request's token and its session. It returns
// errNotAuthenticated when no credentials were sent and errNotAuthorized for
// any token that must be refused.
func (s *Server) authenticate(c *fiber.Ctx) (*principal, error) {
	raw, viaCookie, present := credentials(c)
	if !present {
		return nil, errNotAuthenticated
	}
	claims, err := s.tokens.Verify(raw)
	if err != nil {
		return nil, errNotAuthorized
	}
	se, u, err := s.store.SessionWithUser(c.UserContext(), claims.SessionID)
	if errors.Is(err, db.ErrNotFound) {
		return nil, errNotAuthorized
	}
	if err != nil {
		return nil, err
	}
	now := s.now()
	if !now.Before(se.ExpiresAt) || u.Username != claims.Subject {
		return nil, errNotAuthorized
	}
	if now.Sub(se.LastUsedAt) >= touchEvery {
		if err := s.store.TouchSession(c.UserContext(), se.ID, now); err != nil {
			s.log.Warn("touch session", slog.String("error", err.Error()))
		} else {
			se.LastUsedAt = time.Unix(now.Unix(), 0)
		}
	}
	return &principal{User: u, Session: se, ViaCookie: viaCookie}, nil
}

// requireAPI guards the JSON API. A cookie-authenticated request that
// changes state must also pass the CSRF checks; a bearer header carries no
// ambient credentials and needs none.
func (s *Server) requireAPI(c *fiber.Ctx) error {
	p, err := s.authenticate(c)
	if err != nil {
		return err
	}
	if p.ViaCookie && !safeMethod(c.Method()) {
		if err := s.csrfVerify(c, c.Get(csrfHeader)); err != nil {
			return err
		}
	}
	c.Locals(principalKey, p)
	return c.Next()
}

// requirePage guards browser pages: without a valid session the person is
// sent to the login page, and a stale cookie is cleared on the way.
func (s *Server) requirePage(c *fiber.Ctx) error {
	p, err := s.authenticate(c)
	if err != nil {
		var e *Error
		if !errors.As(err, &e) {
			return err
		}
		if c.Cookies(cookieName) != "" {
			s.clearSessionCookie(c)
		}
		next := "/profile"
		if c.Method() == fiber.MethodGet {
			next = c.OriginalURL()
		}
		return c.Redirect("/login?next="+queryEscape(next), fiber.StatusSeeOther)
	}
	c.Locals(principalKey, p)
	return c.Next()
}

func safeMethod(m string) bool {
	return m == fiber.MethodGet || m == fiber.MethodHead || m == fiber.MethodOptions
}

// secure tells whether cookies must carry the Secure attribute.
func (s *Server) secure(c *fiber.Ctx) bool {
	switch s.cfg.CookieSecure {
	case "true":
		return true
	case "false":
		return false
	}
	return c.Protocol() == "https"
}

// setSessionCookie stores the token in the browser.
func (s *Server) setSessionCookie(c *fiber.Ctx, raw string) {
	c.Cookie(&fiber.Cookie{
		Name:     cookieName,
		Value:    raw,
		Path:     "/",
		MaxAge:   int(s.tokens.Lifetime().Seconds()),
		Secure:   s.secure(c),
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode,
	})
}

// clearSessionCookie removes the cookie, repeating the attributes it was
// set with so that every browser matches it.
func (s *Server) clearSessionCookie(c *fiber.Ctx) {
	c.Cookie(&fiber.Cookie{
		Name:     cookieName,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		Expires:  time.Unix(0, 0),
		Secure:   s.secure(c),
		HTTPOnly: true,
		SameSite: fiber.CookieSameSiteLaxMode,
	})
}

// clientIP is the connection's address, or, when the connection comes from
// a trusted proxy, the nearest address in X-Forwarded-For that is not itself
// a trusted proxy. Without TRUSTED_PROXIES the headers are ignored.
func (s *Server) clientIP(c *fiber.Ctx) string {
	remote := c.Context().RemoteIP()
	addr, ok := netip.AddrFromSlice(remote)
	if !ok {
		return remote.String()
	}
	addr = addr.Unmap()
	if len(s.cfg.TrustedProxies) == 0 || !s.trusted(addr) {
		return addr.String()
	}
	hops := strings.Split(c.Get(fiber.HeaderXForwardedFor), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break
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
	ua := strings.ToValidUTF8(c.Get(fiber.HeaderUserAgent), "")
	ua = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, ua)
	if len(ua) > 256 {
		ua = ua[:256]
		for !utf8.ValidString(ua) {
			ua = ua[:len(ua)-1]
		}
	}
	return ua
}
