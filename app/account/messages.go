package account

import (
	"bytes"
	htmltemplate "html/template"
	"net/url"
	"strings"
	texttemplate "text/template"

	"fiberauth/app/mail"
	"fiberauth/db"
)

// The mail the service sends. Each message has a plain-text part, where a
// one-time code stands on a line of its own starting "Code: ", followed by
// the link, and an HTML part saying the same. Links open a page with the
// code filled in and a button: opening one (as mail scanners and link
// previews do) changes nothing.

type mailData struct {
	Username string
	Code     string
	Link     string
	Minutes  int
	Email    string
	NewEmail string
	Site     string
	Change   bool
	// Added is the way into the account that was added ("a passkey named
	// ...").
	Added string
}

var mailText = texttemplate.Must(texttemplate.New("").Parse(`
{{define "verify"}}Hello {{.Username}},

{{if .Change}}To make {{.Email}} the email address of your account, enter this code on your profile page:{{else}}To confirm your email address, enter this code on your profile page:{{end}}

Code: {{.Code}}

Or open this link and press the button:
{{.Link}}

The code is valid for {{.Minutes}} minutes. If you did not ask for it, ignore this message.
{{end}}
{{define "reset"}}Hello {{.Username}},

Someone, probably you, asked to reset the password of your account. To choose a new password, enter this code on the reset page:

Code: {{.Code}}

Or open this link:
{{.Link}}

The code is valid for {{.Minutes}} minutes. If you did not ask for it, ignore this message: your password stays as it is.
{{end}}
{{define "password_changed"}}Hello {{.Username}},

Your password was changed, and every session of your account was signed out.

If this wasn't you, reset your password now at {{.Link}} and check the activity on your profile page.
{{end}}
{{define "email_changed"}}Hello {{.Username}},

The email address of your account was changed from {{.Email}} to {{.NewEmail}}. Mail about your account now goes there.

If this wasn't you, reset your password now at {{.Link}} and contact the service's operator.
{{end}}
{{define "sign_in_added"}}Hello {{.Username}},

{{.Added}} was added to your account: it can now be used to sign in.

If this wasn't you, sign in, remove it on your profile page ({{.Link}}) and sign out everywhere else; if you cannot sign in, reset your password.
{{end}}
`))

var mailHTML = htmltemplate.Must(htmltemplate.New("").Parse(`
{{define "top"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{{.Site}}</title></head><body style="font-family:sans-serif;line-height:1.5;max-width:36em">{{end}}
{{define "bottom"}}</body></html>{{end}}
{{define "code"}}<p style="font-size:1.5em;font-family:monospace;letter-spacing:.1em"><strong>{{.Code}}</strong></p>{{end}}
{{define "verify"}}{{template "top" .}}<p>Hello {{.Username}},</p>
<p>{{if .Change}}To make {{.Email}} the email address of your account, enter this code on your profile page:{{else}}To confirm your email address, enter this code on your profile page:{{end}}</p>
{{template "code" .}}
<p>Or <a href="{{.Link}}">open this page</a> and press the button.</p>
<p>The code is valid for {{.Minutes}} minutes. If you did not ask for it, ignore this message.</p>{{template "bottom" .}}{{end}}
{{define "reset"}}{{template "top" .}}<p>Hello {{.Username}},</p>
<p>Someone, probably you, asked to reset the password of your account. To choose a new password, enter this code on the reset page:</p>
{{template "code" .}}
<p>Or <a href="{{.Link}}">open the reset page</a>.</p>
<p>The code is valid for {{.Minutes}} minutes. If you did not ask for it, ignore this message: your password stays as it is.</p>{{template "bottom" .}}{{end}}
{{define "password_changed"}}{{template "top" .}}<p>Hello {{.Username}},</p>
<p>Your password was changed, and every session of your account was signed out.</p>
<p>If this wasn't you, <a href="{{.Link}}">reset your password now</a> and check the activity on your profile page.</p>{{template "bottom" .}}{{end}}
{{define "email_changed"}}{{template "top" .}}<p>Hello {{.Username}},</p>
<p>The email address of your account was changed from {{.Email}} to {{.NewEmail}}. Mail about your account now goes there.</p>
<p>If this wasn't you, <a href="{{.Link}}">reset your password now</a> and contact the service's operator.</p>{{template "bottom" .}}{{end}}
{{define "sign_in_added"}}{{template "top" .}}<p>Hello {{.Username}},</p>
<p>{{.Added}} was added to your account: it can now be used to sign in.</p>
<p>If this wasn't you, sign in, remove it on <a href="{{.Link}}">your profile page</a> and sign out everywhere else; if you cannot sign in, reset your password.</p>{{template "bottom" .}}{{end}}
`))

// message renders both parts of a message of template name.
func (s *Service) message(kind, name, to, subject string, userID int64, d mailData) mail.Message {
	d.Site = "Fiberauth"
	d.Minutes = int(s.cfg.CodeLifetime.Minutes())
	var text, html bytes.Buffer
	if err := mailText.ExecuteTemplate(&text, name, d); err != nil {
		panic(err) // the templates are fixed; a failure is a bug
	}
	if err := mailHTML.ExecuteTemplate(&html, name, d); err != nil {
		panic(err)
	}
	return mail.Message{Kind: kind, UserID: userID, To: to, Subject: subject,
		Text: strings.TrimLeft(text.String(), "\n"), HTML: strings.TrimSpace(html.String())}
}

// link is an absolute URL of a page with query parameters.
func (s *Service) link(path string, q url.Values) string {
	u := strings.TrimRight(s.cfg.PublicURL, "/") + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	return u
}

func (s *Service) verifyMessage(u db.User, email, code string, change bool) mail.Message {
	subject := "Confirm your email address"
	if change {
		subject = "Confirm your new email address"
	}
	return s.message(KindVerify, "verify", email, subject, u.ID, mailData{Username: u.Username, Code: code, Email: email,
		Change: change, Link: s.link("/email/verify", url.Values{"login": {u.Username}, "code": {code}})})
}

func (s *Service) resetMessage(u db.User, code string) mail.Message {
	return s.message(KindReset, "reset", u.Email, "Reset your password", u.ID, mailData{Username: u.Username, Code: code,
		Link: s.link("/password/reset", url.Values{"login": {u.Username}, "code": {code}})})
}

func (s *Service) passwordChangedMessage(u db.User) mail.Message {
	return s.message(KindPasswordChanged, "password_changed", u.Email, "Your password was changed", u.ID,
		mailData{Username: u.Username, Link: s.link("/password/forgot", nil)})
}

func (s *Service) emailChangedMessage(before db.User, newEmail string) mail.Message {
	return s.message(KindEmailChanged, "email_changed", before.Email, "Your email address was changed", before.ID,
		mailData{Username: before.Username, Email: before.Email, NewEmail: newEmail, Link: s.link("/password/forgot", nil)})
}

// signInAddedMessage tells the account's owner of a new way in (what, a
// sentence's subject: "A passkey named “Laptop”").
func (s *Service) signInAddedMessage(u db.User, what, subject string) mail.Message {
	return s.message(KindSignInAdded, "sign_in_added", u.Email, subject, u.ID,
		mailData{Username: u.Username, Added: what, Link: s.link("/profile", nil)})
}
