// Package mail sends the service's mail: a small in-memory queue whose
// workers hand each message to an SMTP server (SMTP_URL), retrying
// temporary failures with growing waits, or, without a server, write each
// message whole to the log so that a developer can follow the flows.
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
	"sync"
	"time"

	gomail "github.com/wneessen/go-mail"

	"fiberauth/app/metrics"
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
	// Queue is how many messages may wait (default 1000).
	Queue int
	// Timeout bounds one delivery attempt (default 30 s).
	Timeout time.Duration
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

// Outbox queues messages and sends them in the background.
type Outbox struct {
	cfg     Config
	send    sender
	log     *slog.Logger
	metrics *metrics.Metrics

	queue chan Message
	stop  context.Context
	halt  context.CancelFunc
	wg    sync.WaitGroup

	mu      sync.Mutex
	pending int
	idle    *sync.Cond
	closed  bool
}

// New returns a running Outbox. m may be nil.
func New(cfg Config, log *slog.Logger, m *metrics.Metrics) (*Outbox, error) {
	if cfg.From == "" {
		cfg.From = DefaultFrom
	}
	if err := CheckFrom(cfg.From); err != nil {
		return nil, err
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 6
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 2 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 5 * time.Minute
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 1000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	o := &Outbox{cfg: cfg, log: log, metrics: m, queue: make(chan Message, cfg.Queue)}
	o.idle = sync.NewCond(&o.mu)
	if cfg.URL == "" {
		o.send = logSender{log: log}
	} else {
		srv, err := ParseURL(cfg.URL)
		if err != nil {
			return nil, err
		}
		o.send = &smtpSender{srv: srv, timeout: cfg.Timeout}
	}
	o.stop, o.halt = context.WithCancel(context.Background())
	// Two workers: a slow server does not hold every message behind one.
	for range 2 {
		o.wg.Add(1)
		go o.work()
	}
	return o, nil
}

// Logs reports whether messages are logged rather than sent.
func (o *Outbox) Logs() bool { _, ok := o.send.(logSender); return ok }

// Send queues m and returns at once. It returns false, and logs why, when
// the queue is full or closed.
func (o *Outbox) Send(m Message) bool {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		o.log.Error("mail not queued: shutting down", "kind", m.Kind, "user_id", m.UserID)
		return false
	}
	select {
	case o.queue <- m:
		o.pending++
		o.mu.Unlock()
		return true
	default:
		o.mu.Unlock()
		o.log.Error("mail not queued: the queue is full", "kind", m.Kind, "user_id", m.UserID)
		o.metrics.Mail(m.Kind, "failed")
		return false
	}
}

// Pending is how many messages are queued or being sent.
func (o *Outbox) Pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pending
}

// Flush waits until every message queued so far is sent or given up.
func (o *Outbox) Flush() {
	o.mu.Lock()
	for o.pending > 0 {
		o.idle.Wait()
	}
	o.mu.Unlock()
}

// Close stops taking messages and waits, until ctx ends, for the queued
// ones to be sent; retries stop waiting at once. What is still queued when
// ctx ends is logged as not sent.
func (o *Outbox) Close(ctx context.Context) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	close(o.queue)
	o.mu.Unlock()
	done := make(chan struct{})
	go func() { o.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		o.halt()
		<-done
	}
	o.halt()
}

func (o *Outbox) work() {
	defer o.wg.Done()
	for m := range o.queue {
		o.deliver(m)
		o.mu.Lock()
		o.pending--
		if o.pending == 0 {
			o.idle.Broadcast()
		}
		o.mu.Unlock()
	}
}

// deliver tries m until it is sent, fails for good, or attempts run out.
func (o *Outbox) deliver(m Message) {
	o.mu.Lock()
	wait := o.cfg.Backoff
	o.mu.Unlock()
	for attempt := 1; ; attempt++ {
		if o.stop.Err() != nil {
			o.metrics.Mail(m.Kind, "failed")
			o.log.Error("mail not sent: shutting down", "kind", m.Kind, "user_id", m.UserID)
			return
		}
		msg, err := o.build(m)
		if err != nil {
			o.metrics.Mail(m.Kind, "failed")
			o.log.Error("mail not sent", "kind", m.Kind, "user_id", m.UserID, "error", err.Error())
			return
		}
		ctx, cancel := context.WithTimeout(o.stop, o.cfg.Timeout)
		err = o.send.send(ctx, msg, m)
		cancel()
		if err == nil {
			o.metrics.Mail(m.Kind, "sent")
			o.log.Info("mail sent", "kind", m.Kind, "user_id", m.UserID, "attempt", attempt)
			return
		}
		if attempt >= o.cfg.Attempts || permanent(err) {
			o.metrics.Mail(m.Kind, "failed")
			o.log.Error("mail not sent", "kind", m.Kind, "user_id", m.UserID, "attempts", attempt, "error", err.Error())
			return
		}
		o.metrics.Mail(m.Kind, "retried")
		o.log.Warn("mail delivery failed; will retry", "kind", m.Kind, "user_id", m.UserID, "attempt", attempt,
			"retry_in", wait.String(), "error", err.Error())
		select {
		case <-time.After(wait):
		case <-o.stop.Done():
		}
		wait = min(2*wait, o.cfg.MaxBackoff)
	}
}

// permanent reports whether the server refused the message with a 5xx
// reply (a refused recipient, a refused sender), so that retrying cannot
// help. Connection problems and 4xx replies are retried.
func permanent(err error) bool {
	var se *gomail.SendError
	if errors.As(err, &se) {
		code := se.ErrorCode()
		return code >= 500 && code < 600
	}
	return false
}

// build turns m into a mail message with both parts and every header.
func (o *Outbox) build(m Message) (*gomail.Msg, error) {
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
	msg.SetDate()
	msg.SetMessageID()
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

// SetBackoff changes the wait after a first failed attempt (tests make it
// short).
func (o *Outbox) SetBackoff(d time.Duration) {
	o.mu.Lock()
	o.cfg.Backoff = d
	o.mu.Unlock()
}
