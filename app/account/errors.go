package account

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an account error. Each surface (the JSON API, the pages)
// maps codes to a status and wording in one place.
type Code string

// Error codes.
const (
	// EConflict: the username or email is taken, or the change would
	// leave the service without an admin.
	EConflict Code = "conflict"
	// EInvalid: input breaks a rule; Fields says which.
	EInvalid Code = "invalid"
	// EUnauthorized: the credentials or the token are not accepted.
	EUnauthorized Code = "unauthorized"
	// EForbidden: a signed-in caller failed the confirmation an action
	// needs (the current password).
	EForbidden Code = "forbidden"
	// EThrottled: too many attempts; RetryAfter says how long to wait.
	EThrottled Code = "throttled"
	// EBusy: every password worker is busy; retry in a moment.
	EBusy Code = "busy"
	// ENotFound: the thing named does not exist (for this caller).
	ENotFound Code = "not_found"
	// EUnavailable: the database cannot be reached; retry later.
	EUnavailable Code = "unavailable"
	// EBadCode: a one-time code is wrong, spent, expired or void.
	EBadCode Code = "bad_code"
	// EUnverified: the account's email address must be verified first.
	EUnverified Code = "unverified"
	// EMFARequired: the account has two-factor on and no code was given.
	EMFARequired Code = "mfa_required"
	// EBadOTP: the authenticator or recovery code is wrong or used.
	EBadOTP Code = "bad_otp"
	// ECeremony: the passkey ceremony answered is not under way: it
	// expired, was answered already, was begun in another browser, or a
	// change ended it.
	ECeremony Code = "ceremony"
	// EInternal: anything else; the cause is logged, not shown.
	EInternal Code = "internal"
)

// Error is the one error type the core returns.
type Error struct {
	Code Code
	// Message is meant for a person and safe to show.
	Message string
	// Fields lists the fields at fault for EInvalid, and the taken field
	// for EConflict.
	Fields []FieldError
	// Reason says more about an EUnauthorized token ("The access token
	// expired"); it is safe to show.
	Reason string
	// RetryAfter is how long to wait (EThrottled, EBusy, EUnavailable).
	RetryAfter time.Duration
	// Failures counts, for a refused sign-in, the failed attempts for
	// this account from this client within the window; past Limit of
	// them, sign-in from here pauses.
	Failures, Limit int
	// Err is the cause of an internal error.
	Err error
}

// FieldError is a problem with one input field.
type FieldError struct {
	Field   string
	Message string
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Message)
}

func (e *Error) Unwrap() error { return e.Err }

// ErrorCode returns the code of err: "" for nil, EInternal for an error
// that is not an *Error.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// Messages shown to people, some kept exactly as the recipe writes them.
const (
	MsgIncorrectCredentials = "Incorrect username or password"
	MsgIncorrectPassword    = "Incorrect password"
	MsgUserExists           = "username or email already exists"
	MsgSessionNotFound      = "Session not found"
	MsgUserNotFound         = "User not found"
	MsgNotAuthorized        = "User not authorized"
	MsgBusy                 = "The service is busy. Try again in a moment."
	MsgUnavailable          = "The service is temporarily unavailable. Try again in a moment."
)

func internal(err error) *Error {
	return &Error{Code: EInternal, Message: "Internal Server Error", Err: err}
}

func invalid(fields ...FieldError) *Error {
	msg := "Invalid input"
	if len(fields) > 0 {
		msg = fields[0].Message
	}
	return &Error{Code: EInvalid, Message: msg, Fields: fields}
}

// throttled words a wait for a person: "Too many attempts. Try again in 30
// seconds."
func throttled(wait time.Duration) *Error {
	return &Error{Code: EThrottled, Message: "Too many attempts. Try again in " + WaitWords(wait) + ".", RetryAfter: wait}
}

// WaitWords says a wait in words, rounded up: "30 seconds", "2 minutes".
func WaitWords(d time.Duration) string {
	s := int((d + time.Second - 1) / time.Second)
	switch {
	case s <= 1:
		return "1 second"
	case s < 120:
		return fmt.Sprintf("%d seconds", s)
	}
	m := (s + 59) / 60
	return fmt.Sprintf("%d minutes", m)
}
