// Package mailtest is a real SMTP server for tests (github.com/emersion/
// go-smtp): it keeps every message it accepts, parsed, and can be told to
// refuse deliveries or to go away, so that tests see what the service
// really puts on the wire.
package mailtest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one accepted message.
type Message struct {
	From   string
	To     []string
	Raw    []byte
	Header mail.Header
	// Text and HTML are the decoded parts.
	Text, HTML string
}

// codeLine is how a one-time code stands in a message's plain-text part.
var codeLine = regexp.MustCompile(`(?m)^Code: ([0-9A-Z]{4}-[0-9A-Z]{4})\r?$`)

// Code returns the one-time code of the message, or "".
func (m Message) Code() string {
	if s := codeLine.FindStringSubmatch(m.Text); s != nil {
		return s[1]
	}
	return ""
}

// Link returns the first http(s) link of the plain-text part, or "".
func (m Message) Link() string {
	return regexp.MustCompile(`https?://\S+`).FindString(m.Text)
}

// Sink is a running SMTP server.
type Sink struct {
	srv  *smtp.Server
	ln   net.Listener
	Addr string

	mu       sync.Mutex
	msgs     []Message
	refuse   int // deliveries still to refuse with a temporary error
	attempts int // DATA commands seen, refused or not
}

// Start starts a sink on a free local port; it stops with the test.
func Start(t testing.TB) *Sink {
	t.Helper()
	s := &Sink{}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(*smtp.Conn) (smtp.Session, error) { return &session{sink: s}, nil }))
	s.srv.Domain = "localhost"
	s.srv.ReadTimeout = 10 * time.Second
	s.srv.WriteTimeout = 10 * time.Second
	s.srv.MaxMessageBytes = 1 << 20
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.ln, s.Addr = ln, ln.Addr().String()
	go s.srv.Serve(ln)
	t.Cleanup(func() { s.srv.Close() })
	return s
}

// URL is the SMTP_URL of the sink.
func (s *Sink) URL() string { return "smtp://" + s.Addr }

// Refuse makes the next n deliveries fail with a temporary (451) error.
func (s *Sink) Refuse(n int) {
	s.mu.Lock()
	s.refuse = n
	s.mu.Unlock()
}

// Attempts is how many messages were offered (DATA), accepted or not.
func (s *Sink) Attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts
}

// Messages returns the messages accepted so far.
func (s *Sink) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// To returns the messages accepted for address to, oldest first.
func (s *Sink) To(to string) []Message {
	var out []Message
	for _, m := range s.Messages() {
		for _, r := range m.To {
			if strings.EqualFold(r, to) {
				out = append(out, m)
				break
			}
		}
	}
	return out
}

// Last returns the newest message to address to; the test fails if there
// is none.
func (s *Sink) Last(t testing.TB, to string) Message {
	t.Helper()
	list := s.To(to)
	if len(list) == 0 {
		t.Fatalf("no mail to %s (%d messages in all)", to, len(s.Messages()))
	}
	return list[len(list)-1]
}

type session struct {
	sink *Sink
	from string
	to   []string
}

func (x *session) Reset()        { x.from, x.to = "", nil }
func (x *session) Logout() error { return nil }

func (x *session) Mail(from string, _ *smtp.MailOptions) error {
	x.from = from
	return nil
}

func (x *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	x.to = append(x.to, to)
	return nil
}

func (x *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s := x.sink
	s.mu.Lock()
	defer s.mu.Unlock()
	s.attempts++
	if s.refuse > 0 {
		s.refuse--
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	m, err := parse(raw)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "unreadable: " + err.Error()}
	}
	m.From, m.To = x.from, x.to
	s.msgs = append(s.msgs, m)
	return nil
}

// parse reads a message and decodes its text and HTML parts.
func parse(raw []byte) (Message, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Message{}, err
	}
	m := Message{Raw: raw, Header: msg.Header}
	if err := m.readPart(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body); err != nil {
		return Message{}, err
	}
	return m, nil
}

func (m *Message) readPart(ctype, encoding string, body io.Reader) error {
	media, params, err := mime.ParseMediaType(ctype)
	if err != nil {
		return err
	}
	if strings.HasPrefix(media, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			if err := m.readPart(p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p); err != nil {
				return err
			}
		}
	}
	var r io.Reader = body
	switch strings.ToLower(encoding) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = newBase64(body)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	switch media {
	case "text/plain":
		m.Text = string(b)
	case "text/html":
		m.HTML = string(b)
	}
	return nil
}

// newBase64 decodes a base64 body whose lines are broken.
func newBase64(r io.Reader) io.Reader {
	b, err := io.ReadAll(r)
	if err != nil {
		return errReader{err}
	}
	clean := strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == ' ' {
			return -1
		}
		return r
	}, string(b))
	out, err := base64.StdEncoding.DecodeString(clean)
	if err != nil {
		return errReader{err}
	}
	return bytes.NewReader(out)
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// WaitFor waits up to 10 seconds until n messages to addr have arrived (for
// a service in another goroutine or process, whose queue the test cannot
// flush) and returns the n-th.
func (s *Sink) WaitFor(t testing.TB, addr string, n int) Message {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if list := s.To(addr); len(list) >= n {
			return list[n-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 10 s, %d messages to %s, want %d", len(s.To(addr)), addr, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
