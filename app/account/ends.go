package account

import (
	"strings"

	"fiberauth/db"
)

// What ends what: the one place that decides, for every sensitive change
// to an account, which of its outstanding artefacts the change voids.
// Every operation that makes such a change takes its db.Void from here
// (voids), and the store carries it out in the change's own transaction;
// no operation voids anything on its own. The README's section "What ends
// what" is this table (a test holds them to each other), and a test plays
// every change against every artefact on both engines.

// Change is a sensitive change to an account.
type Change string

// The sensitive changes.
const (
	ChangePassword          Change = "password_changed"
	ChangePasswordReset     Change = "password_reset"
	ChangeEmailVerified     Change = "email_verified"
	ChangeEmailVerifiedMail Change = "email_verified_by_mail"
	ChangeEmailDisowned     Change = "email_verified_disowning"
	ChangeEmail             Change = "email_changed"
	ChangeMFAOn             Change = "mfa_on"
	ChangeMFAOff            Change = "mfa_off"
	ChangeMFAOffByAdmin     Change = "mfa_off_by_admin"
	ChangeRecoveryCodes     Change = "recovery_codes_renewed"
	ChangeRole              Change = "role_changed"
	ChangeSessionEnded      Change = "session_ended"
	ChangeRefreshReused     Change = "refresh_reused"
	ChangeSignOutEverywhere Change = "sign_out_everywhere"
	ChangeSessionsByAdmin   Change = "sessions_ended_by_admin"
	ChangeAccountDeleted    Change = "account_deleted"
	ChangeSecondStepDone    Change = "second_step_done"
	ChangeAppRevoked        Change = "app_revoked"
	ChangeCodeReplayed      Change = "code_replayed"
	ChangePasskeyAdded      Change = "passkey_added"
	ChangePasskeyRemoved    Change = "passkey_removed"
	ChangePasskeyByAdmin    Change = "passkey_removed_by_admin"
	ChangeProviderLinked    Change = "provider_linked"
	ChangeProviderUnlinked  Change = "provider_unlinked"
)

// Ends is what a change voids. Sessions end with their refresh tokens;
// what is bound to a session (a change of address or an authenticator
// enrolment it started) ends with that session whatever the flags say.
type Ends struct {
	// Sessions: which sessions end: db.ThisSession (the one that made the
	// change, or the one named), db.OtherSessions (all but the one that
	// made the change, and the applications' sessions authorized from
	// it; all of them for a change made by an admin, the command line or a
	// mailed code), db.AllSessions, db.AppSessions (those one application
	// holds), or none. Sessions include those applications hold (their
	// tokens); an application's session authorized from an ending session
	// ends with it unless it was granted offline access.
	Sessions db.Sessions
	// ResetCode, VerifyCode and EmailChange void the mailed codes of each
	// purpose: a password reset, the verification of the current address,
	// and a pending change of address (with its code).
	ResetCode, VerifyCode, EmailChange bool
	// Enrolment voids a pending authenticator enrolment.
	Enrolment bool
	// Ceremonies voids the account's passkey ceremonies under way: a
	// passkey being added, an action being confirmed with one, a passkey
	// as the second step of a sign-in. (A username-less sign-in names no
	// account until it is answered; the account is checked as it is
	// then.)
	Ceremonies bool
	// SecondSteps voids pending second-step sign-ins (a right password
	// waiting for its code, in some browser).
	SecondSteps bool
	// Unvouched forgets the sign-ins with other providers that were linked
	// and removes the passkeys that were added before the account's
	// address was proven (an account made with an address the provider
	// did not vouch for, a passkey or a link added while the address was
	// not verified), and ends the sessions they signed in: whoever made
	// an account with someone else's address keeps no way into it once
	// the address's owner takes it with a reset by mail or disowns them.
	// The signed-in owner's proof of the address, or their word when the
	// proof comes without a session, vouches for them instead.
	Unvouched bool
	// Disown takes the password and two-factor: they were set up before
	// the address was proven, and its owner says they are not theirs.
	Disown bool
	// Cached drops the account's cached sessions and grants on every
	// instance as the change commits, so that it takes effect at once.
	Cached bool
}

// Rule is one row of the table: a change, how people call it, and what it
// ends.
type Rule struct {
	Change Change
	Label  string
	Ends
}

// Table is what ends what.
var Table = []Rule{
	{ChangePassword, "Password changed (or set where there was none)", Ends{Sessions: db.OtherSessions, ResetCode: true, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Cached: true}},
	{ChangePasswordReset, "Password reset with a mailed code", Ends{Sessions: db.AllSessions, ResetCode: true, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Unvouched: true, Cached: true}},
	{ChangeEmailVerified, "Email address verified (signed in)", Ends{VerifyCode: true, Cached: true}},
	{ChangeEmailVerifiedMail, "Email address verified from the mail, not signed in (what was set up before, shown to the address's owner, is theirs)", Ends{VerifyCode: true, Cached: true}},
	{ChangeEmailDisowned, "Email address verified from the mail, not signed in, its owner disowning what was set up before", Ends{Sessions: db.AllSessions, ResetCode: true, VerifyCode: true, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Unvouched: true, Disown: true, Cached: true}},
	{ChangeEmail, "Email address changed", Ends{ResetCode: true, VerifyCode: true, EmailChange: true, Cached: true}},
	{ChangeMFAOn, "Two-factor turned on", Ends{Sessions: db.OtherSessions, Enrolment: true, Ceremonies: true, SecondSteps: true, Cached: true}},
	{ChangeMFAOff, "Two-factor turned off", Ends{ResetCode: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Cached: true}},
	{ChangeMFAOffByAdmin, "Two-factor turned off by an admin", Ends{Sessions: db.AllSessions, ResetCode: true, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Cached: true}},
	{ChangeRecoveryCodes, "Recovery codes renewed", Ends{SecondSteps: true, Cached: true}},
	{ChangeRole, "Role changed", Ends{Cached: true}},
	{ChangeSessionEnded, "One session ended (sign-out, revocation, its owner or an admin)", Ends{Sessions: db.ThisSession, Cached: true}},
	{ChangeRefreshReused, "Spent refresh token presented again", Ends{Sessions: db.ThisSession, Cached: true}},
	{ChangeSignOutEverywhere, "Signed out everywhere else", Ends{Sessions: db.OtherSessions, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Cached: true}},
	{ChangeSessionsByAdmin, "Every session ended by an admin", Ends{Sessions: db.AllSessions, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Cached: true}},
	{ChangeAccountDeleted, "Account deleted", Ends{Sessions: db.AllSessions, ResetCode: true, VerifyCode: true, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Unvouched: true, Cached: true}},
	{ChangePasskeyAdded, "Passkey added", Ends{}},
	{ChangePasskeyRemoved, "Passkey removed", Ends{Sessions: db.OtherSessions, Ceremonies: true, Cached: true}},
	{ChangePasskeyByAdmin, "Passkey removed by an admin", Ends{Sessions: db.AllSessions, EmailChange: true, Enrolment: true, Ceremonies: true, SecondSteps: true, Cached: true}},
	{ChangeSecondStepDone, "Signed in at the login page's second step", Ends{SecondSteps: true, Cached: true}},
	{ChangeAppRevoked, "An application's access revoked", Ends{Sessions: db.AppSessions, Cached: true}},
	{ChangeCodeReplayed, "Authorization code presented again", Ends{Sessions: db.ThisSession, Cached: true}},
	{ChangeProviderLinked, "Sign-in provider linked", Ends{}},
	{ChangeProviderUnlinked, "Sign-in provider unlinked", Ends{Sessions: db.OtherSessions, Ceremonies: true, Cached: true}},
}

// EndsOf returns the row of a change; it panics for a change that is not
// in the table (a bug).
func EndsOf(ch Change) Ends {
	for _, r := range Table {
		if r.Change == ch {
			return r.Ends
		}
	}
	panic("account: change " + string(ch) + " is not in the table of what ends what")
}

// Voids is what ch voids, as the store carries it out (see voids): for the
// protocol engines beside the core (the OpenID Connect provider).
func Voids(ch Change, session string) db.Void { return voids(ch, session) }

// voids is what ch voids, as the store carries it out; session is the
// session that made the change (or the one named), "" for a change made by
// an admin, the command line or a mailed code.
func voids(ch Change, session string) db.Void {
	e := EndsOf(ch)
	v := db.Void{Sessions: e.Sessions, Session: session, Enrolment: e.Enrolment, Ceremonies: e.Ceremonies, SecondSteps: e.SecondSteps,
		Unvouched: e.Unvouched, Disown: e.Disown, Cached: e.Cached}
	if e.ResetCode {
		v.Codes = append(v.Codes, db.CodeReset)
	}
	if e.VerifyCode {
		v.Codes = append(v.Codes, db.CodeVerify)
	}
	if e.EmailChange {
		v.Codes = append(v.Codes, db.CodeEmailChange)
	}
	return v
}

// TableMarkdown renders the table for the README.
func TableMarkdown() string {
	var b strings.Builder
	b.WriteString("| Change | Sessions | Reset code | Verification code | Pending change of address | Pending authenticator set-up | Pending passkey ceremony | Pending second step | Passkeys and provider sign-ins added before the address was proven | Password and two-factor | Cached sessions and grants |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	mark := func(on bool) string {
		if on {
			return "ends"
		}
		return "–"
	}
	for _, r := range Table {
		sessions := map[db.Sessions]string{db.KeepSessions: "–", db.ThisSession: "that one", db.OtherSessions: "all others",
			db.AllSessions: "all", db.AppSessions: "the application's"}[r.Sessions]
		b.WriteString("| " + r.Label + " | " + sessions + " | " + mark(r.ResetCode) + " | " + mark(r.VerifyCode) + " | " +
			mark(r.EmailChange) + " | " + mark(r.Enrolment) + " | " + mark(r.Ceremonies) + " | " + mark(r.SecondSteps) + " | " + mark(r.Unvouched) + " | " + mark(r.Disown) + " | " +
			map[bool]string{true: "dropped", false: "–"}[r.Cached] + " |\n")
	}
	return b.String()
}
