// Package valid normalises and checks what people type into the service:
// usernames, email addresses and the text of any field.
package valid

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on the identifiers.
const (
	UsernameMin = 3
	// UsernameMax is below the length of an account's subject (36): no
	// username is ever a subject.
	UsernameMax = 32
	EmailMax    = 254
	// FieldMax bounds any single text field before it is looked at further.
	FieldMax = 1024
)

// Text reports a problem with raw field text: invalid UTF-8, NUL bytes or
// other control characters, or excessive length. It returns "" when the text
// is acceptable.
func Text(s string) string {
	if len(s) > FieldMax {
		return "is too long"
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	for _, r := range s {
		if r == 0 {
			return "must not contain NUL bytes"
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return "must not contain control characters"
		}
	}
	return ""
}

// Username trims s and checks the username rules. It returns the username as
// typed (trimmed), its key for lookups (lower case), and a message when it is
// refused.
func Username(s string) (name, key, problem string) {
	if p := Text(s); p != "" {
		return "", "", "Username " + p + "."
	}
	name = strings.TrimSpace(s)
	if name == "" {
		return "", "", "Username is required."
	}
	if n := len(name); n < UsernameMin || n > UsernameMax {
		return name, "", "Username must be 3 to 32 characters long."
	}
	for i := 0; i < len(name); i++ {
		if !usernameByte(name[i]) {
			return name, "", "Username may contain only letters, digits, '.', '_' and '-'."
		}
	}
	return name, strings.ToLower(name), ""
}

func usernameByte(b byte) bool {
	return b >= 'a' && b <= 'z' || b >= 'A' && b <= 'Z' || b >= '0' && b <= '9' || b == '.' || b == '_' || b == '-'
}

// Email trims s and checks that it is a plain email address (no display
// name) with a dotted domain. It returns the address as typed (trimmed), its
// key for lookups (lower case), and a message when it is refused.
func Email(s string) (addr, key, problem string) {
	if p := Text(s); p != "" {
		return "", "", "Email " + p + "."
	}
	addr = strings.TrimSpace(s)
	if addr == "" {
		return "", "", "Email is required."
	}
	if len(addr) > EmailMax {
		return addr, "", "Email must be at most 254 characters long."
	}
	parsed, err := mail.ParseAddress(addr)
	if err != nil || parsed.Address != addr || parsed.Name != "" {
		return addr, "", "Email must be a valid email address, such as name@example.com."
	}
	at := strings.LastIndexByte(addr, '@')
	local, domain := addr[:at], addr[at+1:]
	if local == "" || len(local) > 64 || !strings.Contains(domain, ".") ||
		strings.HasPrefix(domain, ".") || strings.HasSuffix(domain, ".") || strings.Contains(domain, "..") ||
		strings.ContainsAny(domain, "[]") {
		return addr, "", "Email must be a valid email address, such as name@example.com."
	}
	return addr, strings.ToLower(addr), ""
}

// LoginKey normalises what a person typed in the "username" field of a
// sign-in: like the recipe, a value containing "@" is an email address,
// anything else a username. It returns the lookup key and whether it is an
// email. The key is also what failed sign-ins are counted against.
func LoginKey(s string) (key string, isEmail bool) {
	key = strings.ToLower(strings.TrimSpace(s))
	return key, strings.Contains(key, "@")
}
