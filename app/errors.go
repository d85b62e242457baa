package app

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/account"
	"fiberauth/app/throttle"
)

// Error is an answer the HTTP layer decides itself: malformed requests,
// OAuth error bodies, missing credentials. Handlers return it, or the
// core's *account.Error, which apiError maps; the error handler turns
// either into JSON for API clients or an HTML page for browsers. Any other
// error is an internal error: it is logged with the request id and the
// client sees a generic message.
type Error struct {
	Status int
	// Detail is the JSON "detail" value: a string, or a list of
	// validation problems in FastAPI's shape.
	Detail any
	// Body, when set, replaces the whole JSON body (OAuth2 error shapes).
	Body any
	// Headers are added to the response.
	Headers map[string]string
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
	msgIncorrectCredentials = account.MsgIncorrectCredentials
	msgNotAuthenticated     = "Not authenticated"
	msgNotAuthorized        = account.MsgNotAuthorized
	msgUserExists           = account.MsgUserExists
	msgIncorrectPassword    = account.MsgIncorrectPassword
)

var (
	errNotAuthenticated = &Error{Status: http.StatusUnauthorized, Detail: msgNotAuthenticated,
		Headers: map[string]string{"WWW-Authenticate": "Bearer"}}
	errCSRFHeader = &Error{Status: http.StatusForbidden, Detail: "Missing or invalid X-CSRF-Token header"}
	errNotJSON    = &Error{Status: http.StatusUnsupportedMediaType, Detail: "Content-Type must be application/json"}
)

func errValidation(problems ...fieldError) *Error {
	return &Error{Status: http.StatusUnprocessableEntity, Detail: problems}
}

// oauthError is an RFC 6749 §5.2 error body, with the description also as
// "detail" for clients written against the recipe.
func oauthError(status int, code, description string) *Error {
	return &Error{Status: status, Detail: description,
		Body: fiber.Map{"error": code, "error_description": description, "detail": description}}
}

func retryAfter(d time.Duration) map[string]string {
	return map[string]string{"Retry-After": strconv.Itoa(throttle.RetryAfterSeconds(d))}
}

// apiError maps an error of the core to the JSON API's answer: the one
// place where codes become statuses for API clients. It returns nil for an
// internal error.
func apiError(err error) *Error {
	var e *account.Error
	if !errors.As(err, &e) {
		return nil
	}
	switch e.Code {
	case account.EInvalid:
		list := make([]fieldError, 0, len(e.Fields))
		for _, f := range e.Fields {
			list = append(list, fieldError{Type: "value_error", Loc: []string{"body", f.Field}, Msg: f.Message})
		}
		return errValidation(list...)
	case account.EConflict:
		return &Error{Status: http.StatusConflict, Detail: e.Message}
	case account.EUnauthorized:
		challenge := `Bearer error="invalid_token"`
		if e.Reason != "" {
			challenge += `, error_description="` + e.Reason + `"`
		}
		return &Error{Status: http.StatusUnauthorized, Detail: e.Message, Headers: map[string]string{"WWW-Authenticate": challenge}}
	case account.EForbidden:
		return &Error{Status: http.StatusForbidden, Detail: e.Message}
	case account.EThrottled:
		return &Error{Status: http.StatusTooManyRequests, Detail: e.Message, Headers: retryAfter(e.RetryAfter)}
	case account.EBusy, account.EUnavailable:
		return &Error{Status: http.StatusServiceUnavailable, Detail: e.Message, Headers: retryAfter(e.RetryAfter)}
	case account.ENotFound:
		return &Error{Status: http.StatusNotFound, Detail: e.Message}
	case account.EBadCode:
		return &Error{Status: http.StatusBadRequest, Detail: e.Message}
	case account.EMFARequired, account.EBadOTP:
		// A sensitive action's confirmation (step-up); /token answers
		// these in OAuth's words itself.
		return &Error{Status: http.StatusForbidden, Detail: e.Message}
	case account.EUnverified:
		return oauthError(http.StatusBadRequest, "invalid_grant", e.Message)
	case account.ECeremony:
		return &Error{Status: http.StatusBadRequest, Detail: e.Message}
	}
	return nil
}

// pageError maps an error of the core to what a form shows in place: the
// one place where codes become statuses and words for people. ok is false
// for an internal error, which the error handler shows as a 500 page.
func pageError(c *fiber.Ctx, err error) (status int, msg string, fields map[string]string, ok bool) {
	var e *account.Error
	if !errors.As(err, &e) {
		return 0, "", nil, false
	}
	fields = map[string]string{}
	for _, f := range e.Fields {
		fields[f.Field] = f.Message
	}
	switch e.Code {
	case account.EInvalid:
		if len(e.Fields) == 1 && (e.Fields[0].Field == "passkey" || e.Fields[0].Field == "credential" || e.Fields[0].Field == "name") {
			// Fields no form shows as such: the message is the banner.
			return http.StatusUnprocessableEntity, e.Fields[0].Message, fields, true
		}
		return http.StatusUnprocessableEntity, "Please correct the fields marked below.", fields, true
	case account.EConflict:
		msg := e.Message
		switch {
		case len(e.Fields) > 0:
			msg = e.Fields[0].Message
		case msg == account.MsgUserExists:
			msg = "That username or email address is already registered."
		}
		return http.StatusConflict, msg, fields, true
	case account.EUnauthorized:
		return http.StatusUnauthorized, msgIncorrectCredentials + ".", fields, true
	case account.EForbidden:
		return http.StatusForbidden, e.Message + ".", fields, true
	case account.EThrottled:
		for k, v := range retryAfter(e.RetryAfter) {
			c.Set(k, v)
		}
		return http.StatusTooManyRequests, e.Message, fields, true
	case account.EBusy, account.EUnavailable:
		for k, v := range retryAfter(e.RetryAfter) {
			c.Set(k, v)
		}
		return http.StatusServiceUnavailable, e.Message, fields, true
	case account.EBadCode:
		return http.StatusBadRequest, "That code is wrong or has expired. Check it, or ask for a new one.", fields, true
	case account.ECeremony:
		return http.StatusBadRequest, e.Message, fields, true
	case account.EMFARequired:
		return http.StatusForbidden, "Enter a code from your authenticator app.", fields, true
	case account.EBadOTP:
		return http.StatusForbidden, "That code is wrong or was used already. Enter the current code from your authenticator app, or a recovery code.", fields, true
	case account.ENotFound:
		if e.Message == account.MsgSessionNotFound {
			return http.StatusNotFound, "That session does not exist or has already ended.", fields, true
		}
		return http.StatusNotFound, e.Message + ".", fields, true
	}
	return 0, "", nil, false
}

// handleError is the app's single error handler.
func (s *Server) handleError(c *fiber.Ctx, err error) error {
	var e *Error
	var fe *fiber.Error
	switch {
	case errors.As(err, &e):
	case apiError(err) != nil:
		e = apiError(err)
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
	if e.Status >= 500 && account.ErrorCode(err) != account.EBusy {
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
	if answersJSON(c) || e.Status == fiber.StatusRequestHeaderFieldsTooLarge {
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
