package app

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// CSRF protection is a signed double-submit token: the browser holds a
// random value in an HttpOnly cookie, and every form carries an HMAC of that
// value under a server key. A cross-site page can neither read the cookie
// nor compute the HMAC, and a cookie planted by a sibling domain fails the
// HMAC. On top of that, state-changing requests whose Origin or
// Sec-Fetch-Site says they come from another site are refused outright.
const (
	csrfField  = "csrf_token"
	csrfHeader = "X-CSRF-Token"
)

var errCSRF = &Error{Status: http.StatusForbidden,
	Detail: "This form has expired or was sent from another site. Reload the page and try again."}

// csrfSign returns the token that forms must carry for a cookie value.
func (s *Server) csrfSign(value string) string {
	mac := hmac.New(sha256.New, s.csrfKey)
	mac.Write([]byte(value))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// csrfIssue makes sure the browser has a CSRF cookie and puts the matching
// form token in the request's locals for the page to render.
func (s *Server) csrfIssue(c *fiber.Ctx) error {
	v := c.Cookies(s.cookieName(c, csrfCookie))
	if !validCSRFValue(v) {
		if err := s.rotateCSRF(c); err != nil {
			return err
		}
		return c.Next()
	}
	c.Locals(csrfLocal, s.csrfSign(v))
	return c.Next()
}

// rotateCSRF gives the browser a new CSRF cookie (at sign-in and sign-out,
// so that a value planted or seen before does not carry over) and makes
// the matching form token the one pages render.
func (s *Server) rotateCSRF(c *fiber.Ctx) error {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return err
	}
	v := base64.RawURLEncoding.EncodeToString(b)
	s.setCookie(c, csrfCookie, v, 0)
	c.Locals(csrfLocal, s.csrfSign(v))
	return nil
}

func validCSRFValue(v string) bool {
	if len(v) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.DecodeString(v)
	return err == nil
}

// csrfCheck guards a form submission. On success it also provides a fresh
// form token, so that a form re-rendered after an error can be sent again.
func (s *Server) csrfCheck(c *fiber.Ctx) error {
	if err := s.csrfVerify(c, pageForm(c).get(csrfField)); err != nil {
		return err
	}
	c.Locals(csrfLocal, s.csrfSign(c.Cookies(s.cookieName(c, csrfCookie))))
	return c.Next()
}

// csrfVerify refuses a cross-site request, or one whose token does not match
// the cookie.
func (s *Server) csrfVerify(c *fiber.Ctx, sent string) error {
	if crossSite(c) {
		return errCSRF
	}
	v := c.Cookies(s.cookieName(c, csrfCookie))
	if !validCSRFValue(v) || sent == "" {
		return errCSRF
	}
	if subtle.ConstantTimeCompare([]byte(sent), []byte(s.csrfSign(v))) != 1 {
		return errCSRF
	}
	return nil
}

// crossSite reports whether the browser says the request was started by
// another site: Sec-Fetch-Site other than same-origin or none, or an Origin
// that is not this server's.
func crossSite(c *fiber.Ctx) bool {
	switch c.Get("Sec-Fetch-Site") {
	case "", "same-origin", "none":
	default:
		return true
	}
	origin := c.Get(fiber.HeaderOrigin)
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return true // includes "null"
	}
	return !strings.EqualFold(u.Host, string(c.Request().Host()))
}
