package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fiberauth/app/mail/mailtest"
	"fiberauth/db"
)

// TestMailSurvivesKill: mail queued while the mail server refuses it is
// in the database, sealed, when the server process is killed with
// SIGKILL; the process started again on the same file sends it, once,
// when the mail server takes it.
func TestMailSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: run without -short")
	}
	sink := mailtest.Start(t)
	sink.Refuse(1000)
	path := filepath.Join(t.TempDir(), "app.db")
	env := baseEnv(path, "SMTP_URL="+sink.URL())
	p := start(t, env)
	const user, addr = "mallory", "mallory@example.com"
	if st, err := register(p.base, user, password); err != nil || st != 201 {
		t.Fatalf("register: %d %v", st, err)
	}
	// The verification mail was tried, refused, and given back to the
	// queue for a later attempt.
	p.waitLog(t, "mail delivery failed; will retry")
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	tried := sink.Attempts()
	if tried == 0 || len(sink.Messages()) != 0 {
		t.Fatalf("before the kill: %d attempts, %d messages accepted; want some refused, none accepted", tried, len(sink.Messages()))
	}
	// What a thief of the database would have: the files as the kill
	// left them.
	var files []byte
	for _, name := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(name)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		files = append(files, b...)
	}

	sink.Refuse(0)
	p = start(t, env)
	m := sink.WaitFor(t, addr, 1)
	if m.Header.Get("Subject") != "Confirm your email address" || m.Code() == "" {
		t.Fatalf("the mail after the restart: %q, code %q", m.Header.Get("Subject"), m.Code())
	}
	p.waitLog(t, `msg="mail sent"`)
	if _, err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("stop: %v\n%s", err, p.log())
	}
	if n := len(sink.To(addr)); n != 1 || sink.Attempts() != tried+1 {
		t.Fatalf("%d messages to %s in %d attempts (%d before the restart); want 1 after one more", n, addr, sink.Attempts(), tried)
	}
	if strings.Contains(p.log(), "mail remains queued") {
		t.Errorf("mail still queued after the restart:\n%s", p.log())
	}
	s, err := db.Open(context.Background(), db.Options{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, _, err := s.MailDepth(context.Background()); err != nil || n != 0 {
		t.Fatalf("%d messages still in the outbox (%v)", n, err)
	}

	// The queued message could not be read from the database.
	code := m.Code()
	for _, secret := range []string{code, strings.ReplaceAll(code, "-", ""), "Confirm your email address"} {
		if bytes.Contains(files, []byte(secret)) {
			t.Errorf("the database files hold %q in clear", secret)
		}
	}
}

// waitLog waits up to 20 seconds for a log line holding s.
func (p *proc) waitLog(t *testing.T, s string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(p.log(), s) {
		select {
		case <-p.done:
			t.Fatalf("the server exited before logging %q: %v\n%s", s, p.err, p.log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log after 20 s:\n%s", s, p.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
