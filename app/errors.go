package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/throttle"
)

// Error is an error with an HTTP status and a message meant for the client.
// Handlers return it; the error handler turns it into JSON for API clients
// or an HTML page for browsers. Any other error is an internal error: it is
// logged with the request id and the client sees a generic message.
type Error struct {
	Status int
	// Detail is the JSON "detail" value: a string, or a list of
	// validation problems in FastAPI's shape.
	Detail any
	// Body, when set, replaces the whole JSON body (OAuth2 error shapes).
	Body any
	// Headers are added to the response.
	Headers map[string]string
	// conflict names the taken field of a 409 at registration.
	conflict conflictField
}

func (e *Error) Error() string { return fmt.Sprintf("%d: %v", e.Status, e.Detail) }

// fieldError is one entry of a 422 "detail" list, as FastAPI writes it.
type fieldError struct {
	Type string   `json:"type"`
	Loc  []string `json:"loc"`
	Msg  string   `json:"msg"`
}

func errDetail(status int, detail string) *Error { return &Error{Status: status, Detail: detail} }

// Messages kept exactly as the recipe writes them.
const (
	msgIncorrectCredentials = "Incorrect username or password"
	msgNotAuthenticated     = "Not authenticated"
	msgNotAuthorized        = "User not authorized"
	msgUserExists           = "username or email already exists"
	msgIncorrectPassword    = "Incorrect password"
	msgTooManyAttempts      = "Too many attempts. Try again later."
	msgBusy                 = "The service is busy. Try again in a moment."
)

var (
	errNotAuthenticated = &Error{Status: http.StatusUnauthorized, Detail: msgNotAuthenticated,
		Headers: map[string]string{"WWW-Authenticate": "Bearer"}}
	errNotAuthorized = &Error{Status: http.StatusUnauthorized, Detail: msgNotAuthorized,
		Headers: map[string]string{"WWW-Authenticate": `Bearer error="invalid_token"`}}
	errBusy = &Error{Status: http.StatusServiceUnavailable, Detail: msgBusy,
		Headers: map[string]string{"Retry-After": "1"}}
)

func errThrottled(wait time.Duration) *Error {
	return &Error{Status: http.StatusTooManyRequests, Detail: msgTooManyAttempts,
		Headers: map[string]string{"Retry-After": strconv.Itoa(throttle.RetryAfterSeconds(wait))}}
}

func errValidation(problems ...fieldError) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Detail: problems}
}

// oauthError is an RFC 6749 §5.2 error body.
func oauthError(status int, code, description string) *Error {
	body := fiber.Map{"error": code}
	if description != "" {
		body["error_description"] = description
		body["detail"] = description
	}
	return &Error{Status: status, Body: body, Detail: description}
}

// isAPI tells whether a request is answered in JSON (API clients) or HTML
// (browser pages).
func isAPI(c *fiber.Ctx) bool {
	p := c.Path()
	switch {
	case p == "/" || p == "/login" || p == "/register" || p == "/logout" || p == "/docs":
		return false
	case strings.HasPrefix(p, "/profile") || strings.HasPrefix(p, "/static/"):
		return false
	case p == "/token" || p == "/revoke" || p == "/healthz" || p == "/openapi.json" ||
		strings.HasPrefix(p, "/register/") || strings.HasPrefix(p, "/users"):
		return true
	}
	// Unknown paths: answer in HTML only to clients that ask for it.
	return !strings.Contains(c.Get(fiber.HeaderAccept), "text/html")
}

// handleError is the app's single error handler.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	var e *Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &e):
	case errors.As(err, &fe):
		// Fiber's own errors (404, 405, 413, 431, malformed requests):
		// keep the status, never the message, which may carry internals.
		e = &Error{Status: fe.Code, Detail: http.StatusText(fe.Code)}
		if fe.Code == fiber.StatusNotFound {
			e.Detail = "Not Found"
		}
		if e.Detail == "" {
			e.Detail = "Bad Request"
		}
	default:
		e = &Error{Status: http.StatusInternalServerError, Detail: "Internal Server Error"}
	}
	rid := requestID(c)
	if e.Status >= 500 && e != errBusy {
		s.log.Error("request failed", slog.String("request_id", rid), slog.String("method", c.Method()),
			slog.String("path", c.Path()), slog.Int("status", e.Status), slog.String("error", err.Error()))
	}
	for k, v := range e.Headers {
		c.Set(k, v)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	// A 431 is raised before the request line and headers have been read, so
	// neither the path nor Accept can say who is asking: answer in JSON,
	// which API clients parse and a browser still shows as readable text.
	if isAPI(c) || e.Status == fiber.StatusRequestHeaderFieldsTooLarge {
		if e.Body != nil {
			return c.Status(e.Status).JSON(e.Body)
		}
		body := fiber.Map{"detail": e.Detail}
		if e.Status >= 500 {
			body["request_id"] = rid
		}
		return c.Status(e.Status).JSON(body)
	}
	msg, _ := e.Detail.(string)
	if list, ok := e.Detail.([]fieldError); ok && len(list) > 0 {
		msg = list[0].Msg
	}
	return s.renderErrorPage(c, e.Status, msg, rid)
}
