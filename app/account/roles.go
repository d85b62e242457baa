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
// asked for anything. A role change takes effect at once. Scopes that are
// not roles (OpenID Connect's openid, profile, email, offline_access,
// granted to an application) are the session's whatever the role.
func Effective(role, sessionScope string) string {
	allowed := RoleScopes(role)
	if strings.TrimSpace(sessionScope) == "" {
		return strings.Join(allowed, " ")
	}
	var out []string
	for _, sc := range strings.Fields(sessionScope) {
		if contains(allowed, sc) || !ValidRole(sc) {
			out = append(out, sc)
		}
	}
	return strings.Join(out, " ")
}

// Granted is what a token allows now: the intersection of what the
// account's current role allows, what its session was granted
// (sessionScope) and the token's own scope claim (tokenScope), which a
// client may have narrowed at a refresh. An empty claim narrows nothing
// (tokens issued before scopes existed carry none). Every check of a
// scope goes through it: the routes' role checks and introspection.
func Granted(role, sessionScope, tokenScope string) string {
	granted := Effective(role, sessionScope)
	if strings.TrimSpace(tokenScope) == "" {
		return granted
	}
	claimed := strings.Fields(tokenScope)
	var out []string
	for _, sc := range strings.Fields(granted) {
		if contains(claimed, sc) {
			out = append(out, sc)
		}
	}
	return strings.Join(out, " ")
}

// Allows reports whether the caller may use what needs the scope want:
// want must be in Granted. Sessions are checked on every request, so a
// role taken away takes effect on the next one.
func (p *Principal) Allows(want string) bool {
	return contains(strings.Fields(p.Granted()), want)
}

// Granted is what the caller's token allows now (see Granted).
func (p *Principal) Granted() string {
	return Granted(p.User.Role, p.Session.Scope, p.Scope)
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
