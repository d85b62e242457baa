package password

import (
	_ "embed"
	"strings"
	"unicode/utf8"
)

// MinLength is the shortest password accepted at registration, in
// characters.
const MinLength = 8

// commonList holds the 10,000 most frequent passwords of the zxcvbn-ts
// "common" dictionary (MIT licence, see common-passwords.LICENSE), most
// frequent first.
//
//go:embed common-passwords.txt
var commonList string

var common = func() map[string]struct{} {
	m := make(map[string]struct{}, 10000)
	for _, p := range strings.Split(commonList, "\n") {
		if p != "" {
			m[p] = struct{}{}
		}
	}
	return m
}()

// CommonList returns the list of common passwords, one a line, for the
// pages' live hint (the same list the server checks).
func CommonList() string { return commonList }

// IsCommon reports whether pw, ignoring case, is one of the 10,000 most
// common passwords.
func IsCommon(pw string) bool {
	_, ok := common[strings.ToLower(pw)]
	return ok
}

// Check applies the registration rules to a new password and returns a
// message for the person when it is refused, or "" when it is acceptable.
func Check(pw string) string {
	switch {
	case pw == "":
		return "Password is required."
	case utf8.RuneCountInString(pw) < MinLength:
		return "Password must be at least 8 characters long."
	case len(pw) > MaxBytes:
		return "Password must be at most 72 bytes long (bcrypt reads no further, so a longer one is refused rather than cut)."
	case IsCommon(pw):
		return "This password is one of the 10,000 most common passwords; choose another."
	}
	return ""
}
