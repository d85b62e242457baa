package account

import (
	"strings"

	"fiberauth/db"
)

// Roles, in increasing order of what they may do.
var Roles = []string{db.RoleBasic, db.RolePremium, db.RoleAdmin}

// ValidRole reports whether r is a role.
func ValidRole(r string) bool { return contains(Roles, r) }

// RoleScopes are the scopes (RFC 6749 §3.3) a role allows: each role
// includes the ones below it.
func RoleScopes(role string) []string {
	for i, r := range Roles {
		if r == role {
			return Roles[:i+1]
		}
	}
	return nil
}

// Effective is the scope a session grants now: what its role allows,
// narrowed to what the client asked for at sign-in (sessionScope) when it
// asked for anything. A role change takes effect at once.
func Effective(role, sessionScope string) string {
	allowed := RoleScopes(role)
	if strings.TrimSpace(sessionScope) == "" {
		return strings.Join(allowed, " ")
	}
	var out []string
	for _, sc := range strings.Fields(sessionScope) {
		if contains(allowed, sc) {
			out = append(out, sc)
		}
	}
	return strings.Join(out, " ")
}

// Allows reports whether an account of role, in a session granted
// sessionScope, may use what needs the scope want. Sessions are checked on
// every request, so a role change takes effect on the next one.
func Allows(role, sessionScope, want string) bool {
	return contains(strings.Fields(Effective(role, sessionScope)), want)
}

// grantScope checks the scope asked for at sign-in against the role and
// returns what the session keeps of it ("" for everything the role allows);
// ok is false when more was asked for than the role allows.
func grantScope(role, requested string) (string, bool) {
	if strings.TrimSpace(requested) == "" {
		return "", true
	}
	if !ScopeWithin(requested, strings.Join(RoleScopes(role), " ")) {
		return "", false
	}
	return NormalizeScope(requested), true
}
