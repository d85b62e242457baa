package app

import (
	"time"

	"github.com/gofiber/fiber/v2/middleware/filesystem"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"

	"fiberauth/static"
)

// routes lists every route of the service.
func (s *Server) routes() {
	a := s.app
	a.Use(requestid.New())
	a.Use(s.logRequests)
	a.Use(recover.New())
	a.Use(s.securityHeaders)

	a.Use("/static", filesystem.New(filesystem.Config{
		Root:   static.FS(),
		MaxAge: int((24 * time.Hour).Seconds()),
	}))

	// JSON API (the recipe's paths).
	a.Post("/register/user", s.apiRegister)
	a.Post("/token", s.apiToken)
	a.Post("/revoke", s.apiRevoke)
	a.Get("/healthz", s.healthz)
	a.Get("/openapi.json", s.openAPI)
	a.Get("/docs", s.docs)

	// Guards are attached per route, not with Use on a prefix, so that an
	// unknown path or method answers 404 or 405 rather than 401.
	auth := s.requireAPI
	a.Get("/users/me", auth, s.apiMe)
	a.Delete("/users/me", auth, s.apiDeleteAccount)
	a.Get("/users/me/sessions", auth, s.apiListSessions)
	a.Delete("/users/me/sessions", auth, s.apiEndOtherSessions)
	a.Delete("/users/me/sessions/:id", auth, s.apiEndSession)
	a.Post("/users/me/password", auth, s.apiChangePassword)
	a.Get("/users/me/events", auth, s.apiEvents)

	// Browser pages.
	a.Get("/", s.pageIndex)
	a.Get("/login", s.csrfIssue, s.pageLogin)
	a.Post("/login", s.csrfCheck, s.submitLogin)
	a.Get("/register", s.csrfIssue, s.pageRegister)
	a.Post("/register", s.csrfCheck, s.submitRegister)
	a.Post("/logout", s.csrfCheck, s.submitLogout)

	page := s.requirePage
	a.Get("/profile", page, s.csrfIssue, s.pageProfile)
	a.Post("/profile/sessions/others/end", page, s.csrfCheck, s.submitEndOtherSessions)
	a.Post("/profile/sessions/:id/end", page, s.csrfCheck, s.submitEndSession)
	a.Get("/profile/password", page, s.csrfIssue, s.pagePassword)
	a.Post("/profile/password", page, s.csrfCheck, s.submitPassword)
	a.Get("/profile/delete", page, s.csrfIssue, s.pageDelete)
	a.Post("/profile/delete", page, s.csrfCheck, s.submitDelete)
}
