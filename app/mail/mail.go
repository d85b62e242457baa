// Package mail sends the service's mail through a durable outbox: Send
// stores each message, encrypted, in the database, and a dispatcher in
// every instance claims the messages that are due and hands them to an SMTP
// server (SMTP_URL), retrying temporary failures with growing waits, or,
// without a server, writes each message whole to the log so that a
// developer can follow the flows. A message queued survives a crash or a
// restart of the process that queued it (see outbox.go).
//
// Messages are built with github.com/wneessen/go-mail: plain-text and HTML
// parts, Date, Message-ID, From, To, Subject, each encoded as RFC 5322 and
// 2045 require. Nothing a user typed goes into a header but the recipient
// address, which the account core validated before (a plain address, no
// line breaks) and go-mail parses again.
package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strconv"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
)

// DefaultFrom is the sender when MAIL_FROM is not set.
const DefaultFrom = "Fiberauth <no-reply@localhost>"

// Message is one mail to one address.
type Message struct {
	// Kind names the message for the metrics and logs (one of
	// metrics.MailKinds).
	Kind string
	// UserID is the account it concerns, for the logs.
	UserID  int64
	To      string
	Subject string
	Text    string
	HTML    string
}

// Config says where and how mail goes.
type Config struct {
	// URL is SMTP_URL: smtp://user:pass@host:port (STARTTLS when the
	// server offers it) or smtps:// (TLS from the start);
	// ?insecure_skip_verify=1 accepts any certificate. Empty: messages
	// are logged, not sent.
	URL string
	// From is the sender, "Name <address>" or an address.
	From string
	// Attempts is how many times a message is tried (default 6); Backoff
	// the wait after the first failure (default 2 s), doubled after each
	// further one up to MaxBackoff (default 5 min).
	Attempts   int
	Backoff    time.Duration
	MaxBackoff time.Duration
	// Queue is how many messages may wait in the outbox, counting every
	// instance's (default 10000); beyond it Send refuses. The count is
	// the cached one of Pending, so the bound is approximate.
	Queue int
	// Timeout bounds one delivery attempt (default 30 s).
	Timeout time.Duration
	// Lease is how long a claimed message stays with the instance that
	// claimed it before another may take it (default Timeout + 30 s). It
	// must be longer than Timeout, so that a delivery still under way is
	// never taken over.
	Lease time.Duration
	// SealKey encrypts the messages at rest (AES-256-GCM): 32 bytes,
	// required. Every instance sharing the database needs the same key.
	SealKey []byte
}

// Server is a parsed SMTP_URL.
type Server struct {
	Host               string
	Port               int
	ImplicitTLS        bool
	User, Password     string
	InsecureSkipVerify bool
}

// ParseURL reads an SMTP_URL. Its errors never include the password.
func ParseURL(raw string) (Server, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Server{}, errors.New("SMTP_URL is not a URL (smtp://user:pass@host:port or smtps://...)")
	}
	var srv Server
	switch u.Scheme {
	case "smtp":
		srv.Port = 587
	case "smtps":
		srv.Port, srv.ImplicitTLS = 465, true
	default:
		return Server{}, errors.New("SMTP_URL must start with smtp:// or smtps://")
	}
	srv.Host = u.Hostname()
	if srv.Host == "" {
		return Server{}, errors.New("SMTP_URL names no host")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return Server{}, errors.New("SMTP_URL has an invalid port")
		}
		srv.Port = n
	}
	if u.User != nil {
		srv.User = u.User.Username()
		srv.Password, _ = u.User.Password()
	}
	for k, v := range u.Query() {
		switch k {
		case "insecure_skip_verify":
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return Server{}, errors.New("SMTP_URL: insecure_skip_verify must be 1 or 0")
			}
			srv.InsecureSkipVerify = b
		default:
			return Server{}, fmt.Errorf("SMTP_URL: unknown parameter %q (only insecure_skip_verify is known)", k)
		}
	}
	return srv, nil
}

// Redact returns an SMTP_URL with its password replaced, for logs.
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid)"
	}
	if u.User != nil {
		if _, ok := u.User.Password(); ok {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		}
	}
	return u.String()
}

// CheckFrom reports whether from is a usable sender.
func CheckFrom(from string) error {
	m := gomail.NewMsg()
	if err := m.From(from); err != nil {
		return fmt.Errorf("MAIL_FROM %q is not an address (\"Name <address>\" or an address)", from)
	}
	return nil
}

// sender delivers one built message.
type sender interface {
	send(ctx context.Context, msg *gomail.Msg, m Message) error
}

// permanent reports whether the server refused the message with a 5xx
// reply (a refused recipient, a refused sender), so that retrying cannot
// help. Connection problems and 4xx replies are retried.
// (*gomail.SendError carries the reply's code.)
func permanent(err error) bool {
	var se interface{ ErrorCode() int }
	if errors.As(err, &se) {
		code := se.ErrorCode()
		return code >= 500 && code < 600
	}
	return false
}

// build turns m into a mail message with both parts and every header. id
// and date are the message's own, fixed when it was queued, so that a
// message sent twice (see outbox.go) is recognisably one.
func (o *Outbox) build(m Message, id string, date time.Time) (*gomail.Msg, error) {
	if strings.ContainsAny(m.To, "\r\n") || strings.ContainsAny(m.Subject, "\r\n") {
		return nil, errors.New("a header value holds a line break")
	}
	msg := gomail.NewMsg()
	if err := msg.From(o.cfg.From); err != nil {
		return nil, err
	}
	if err := msg.To(m.To); err != nil {
		return nil, fmt.Errorf("recipient: %w", err)
	}
	msg.Subject(m.Subject)
	msg.SetDateWithValue(date)
	msg.SetMessageIDWithValue(id)
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	return msg, nil
}

// logSender writes each message whole to the log instead of sending it.
type logSender struct{ log *slog.Logger }

// Its plain-text part comes first, readable; then the message as it would
// have gone out.
func (l logSender) send(_ context.Context, msg *gomail.Msg, m Message) error {
	var b bytes.Buffer
	if _, err := msg.WriteTo(&b); err != nil {
		return err
	}
	l.log.Info("mail not sent (SMTP_URL is not set); the message follows", "to", m.To, "subject", m.Subject,
		"text", m.Text, "message", b.String())
	return nil
}

// smtpSender delivers through an SMTP server, one connection a message.
type smtpSender struct {
	srv     Server
	timeout time.Duration
}

func (s *smtpSender) send(ctx context.Context, m *gomail.Msg, _ Message) error {
	opts := []gomail.Option{
		gomail.WithPort(s.srv.Port),
		gomail.WithTimeout(s.timeout),
		gomail.WithTLSConfig(&tls.Config{ServerName: s.srv.Host, MinVersion: tls.VersionTLS12,
			InsecureSkipVerify: s.srv.InsecureSkipVerify}), //nolint:gosec // only when SMTP_URL asks for it
	}
	if s.srv.ImplicitTLS {
		opts = append(opts, gomail.WithSSL())
	} else {
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSOpportunistic))
	}
	if s.srv.User != "" {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover),
			gomail.WithUsername(s.srv.User), gomail.WithPassword(s.srv.Password))
	}
	c, err := gomail.NewClient(s.srv.Host, opts...)
	if err != nil {
		return err
	}
	return c.DialAndSendWithContext(ctx, m)
}
