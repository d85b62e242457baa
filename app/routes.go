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

	me := a.Group("/users/me", s.requireAPI)
	me.Get("", s.apiMe)
	me.Get("/sessions", s.apiListSessions)
	me.Delete("/sessions", s.apiEndOtherSessions)
	me.Delete("/sessions/:id", s.apiEndSession)
	me.Post("/password", s.apiChangePassword)
	me.Get("/events", s.apiEvents)
	me.Delete("", s.apiDeleteAccount)

	// Browser pages.
	a.Get("/", s.pageIndex)
	a.Get("/login", s.csrfIssue, s.pageLogin)
	a.Post("/login", s.csrfCheck, s.submitLogin)
	a.Get("/register", s.csrfIssue, s.pageRegister)
	a.Post("/register", s.csrfCheck, s.submitRegister)
	a.Post("/logout", s.csrfCheck, s.submitLogout)

	profile := a.Group("/profile", s.requirePage)
	profile.Get("", s.csrfIssue, s.pageProfile)
	profile.Post("/sessions/others/end", s.csrfCheck, s.submitEndOtherSessions)
	profile.Post("/sessions/:id/end", s.csrfCheck, s.submitEndSession)
	profile.Get("/password", s.csrfIssue, s.pagePassword)
	profile.Post("/password", s.csrfCheck, s.submitPassword)
	profile.Get("/delete", s.csrfIssue, s.pageDelete)
	profile.Post("/delete", s.csrfCheck, s.submitDelete)
}
