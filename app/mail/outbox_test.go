package mail

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gomail "github.com/wneessen/go-mail"

	"fiberauth/db"
	"fiberauth/db/dbtest"
)

// testKey is the seal key of the tests.
var testKey = bytes.Repeat([]byte{7}, 32)

// onEngines runs fn once on a fresh SQLite file (path set) and once on a
// fresh PostgreSQL schema (when TEST_DATABASE_URL is set).
func onEngines(t *testing.T, fn func(t *testing.T, o db.Options)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, db.Options{Path: filepath.Join(t.TempDir(), "test.db")}) })
	t.Run("postgres", func(t *testing.T) { fn(t, db.Options{URL: dbtest.URL(t)}) })
}

func openStore(t *testing.T, o db.Options) *db.Store {
	t.Helper()
	s, err := db.Open(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// logBuffer collects a logger's output.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// fakeSender records what it is given; fn, when set, decides each
// attempt's outcome (it may block).
type fakeSender struct {
	mu    sync.Mutex
	got   []Message
	ids   []string
	tries int
	fn    func(ctx context.Context, m Message, try int) error
}

func (f *fakeSender) send(ctx context.Context, msg *gomail.Msg, m Message) error {
	f.mu.Lock()
	f.tries++
	try, fn := f.tries, f.fn
	f.mu.Unlock()
	if fn != nil {
		if err := fn(ctx, m, try); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.got = append(f.got, m)
	ids := msg.GetGenHeader(gomail.HeaderMessageID)
	f.ids = append(f.ids, strings.Join(ids, ","))
	return nil
}

func (f *fakeSender) attempts() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tries
}

func (f *fakeSender) sent() []Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Message(nil), f.got...)
}

// start builds an outbox on s that sends through f, closed when the test
// ends.
func start(t *testing.T, s *db.Store, f *fakeSender, log *logBuffer, cfg Config) *Outbox {
	t.Helper()
	if cfg.SealKey == nil {
		cfg.SealKey = testKey
	}
	if cfg.Backoff == 0 {
		cfg.Backoff = time.Millisecond
	}
	var w interface{ Write([]byte) (int, error) } = log
	if log == nil {
		w = &logBuffer{}
	}
	o, err := newOutbox(cfg, s, slog.New(slog.NewJSONHandler(w, nil)), nil, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close(context.Background()) })
	return o
}

func message(to, code string) Message {
	return Message{Kind: "password_reset", UserID: 42, To: to, Subject: "Reset your password",
		Text: "Code: " + code + "\n", HTML: "<p>Code: <b>" + code + "</b></p>"}
}

// temporary is a failure worth retrying; refused a 5xx refusal.
var temporary = errors.New("451 try again later")

type refused struct{}

func (refused) Error() string  { return "550 no such user" }
func (refused) ErrorCode() int { return 550 }

// TestOutboxSealed: what the database holds of a queued message says
// nothing of its content: neither the code, nor the subject, nor the
// recipient, in the row or (SQLite) anywhere in the files.
func TestOutboxSealed(t *testing.T) {
	onEngines(t, func(t *testing.T, o db.Options) {
		s := openStore(t, o)
		// A closed outbox still queues, but sends nothing: the message
		// stays in the database for the test to read.
		ob := start(t, s, &fakeSender{}, nil, Config{})
		ob.Close(context.Background())
		const code, to = "QX7K-M4PD", "carol.secret@example.org"
		if !ob.Send(message(to, code)) {
			t.Fatal("Send refused the message")
		}
		list, err := s.ListMail(context.Background())
		if err != nil || len(list) != 1 {
			t.Fatalf("outbox: %+v (%v)", list, err)
		}
		row := list[0]
		if row.Kind != "password_reset" || row.UserID != 42 || row.Attempts != 0 {
			t.Fatalf("row %+v", row)
		}
		secrets := []string{code, strings.ReplaceAll(code, "-", ""), "Reset your password", to, "carol.secret"}
		for _, secret := range secrets {
			if bytes.Contains(row.Sealed, []byte(secret)) {
				t.Errorf("the stored message holds %q in clear", secret)
			}
		}
		if o.Path != "" {
			for _, name := range []string{o.Path, o.Path + "-wal"} {
				b, err := os.ReadFile(name)
				if err != nil {
					continue
				}
				for _, secret := range secrets {
					if bytes.Contains(b, []byte(secret)) {
						t.Errorf("%s holds %q in clear", filepath.Base(name), secret)
					}
				}
			}
		}
		// Opened with the key, it is the message.
		m, id, err := ob.open(row.Kind, row.UserID, row.Sealed)
		if err != nil || m != message(to, code) || !strings.HasSuffix(id, "@"+ob.host) {
			t.Fatalf("open: %+v %q %v", m, id, err)
		}
		// Bound to its row: under another kind or account it does not open.
		if _, _, err := ob.open("verify_email", row.UserID, row.Sealed); err == nil {
			t.Error("a sealed message opened as another kind")
		}
		if _, _, err := ob.open(row.Kind, 43, row.Sealed); err == nil {
			t.Error("a sealed message opened for another account")
		}
		// Another instance sends it, whole.
		f := &fakeSender{}
		start(t, s, f, nil, Config{}).Flush()
		if got := f.sent(); len(got) != 1 || got[0] != message(to, code) || f.ids[0] != "<"+id+">" {
			t.Fatalf("sent %+v %q, want the message with Message-ID %q", got, f.ids, id)
		}
	})
}

// TestOutboxUnreadable: a message sealed under another key (the service
// secret changed) is given up, logged and deleted, not retried for ever.
func TestOutboxUnreadable(t *testing.T) {
	s := openStore(t, db.Options{Path: filepath.Join(t.TempDir(), "test.db")})
	var log logBuffer
	old := start(t, s, &fakeSender{fn: func(context.Context, Message, int) error { return temporary }}, nil,
		Config{Backoff: 500 * time.Millisecond})
	if !old.Send(message("dave@example.com", "AAAA-BBBB")) {
		t.Fatal("Send refused")
	}
	waitFor(t, func() bool {
		list, _ := s.ListMail(context.Background())
		return len(list) == 1 && list[0].Attempts == 1 && list[0].Claim == (db.MailClaim{})
	})
	old.Close(context.Background())
	f := &fakeSender{}
	ob := start(t, s, f, &log, Config{SealKey: bytes.Repeat([]byte{8}, 32)})
	ob.Flush()
	if n := len(f.sent()); n != 0 {
		t.Fatalf("%d messages sent", n)
	}
	if !strings.Contains(log.String(), "cannot be read") {
		t.Fatalf("not logged:\n%s", log.String())
	}
	if n, _, _ := s.MailDepth(context.Background()); n != 0 {
		t.Fatalf("%d messages left", n)
	}
}

// TestOutboxRetriesSurviveRestart: a message that failed is given back
// with its count of attempts; an outbox started later on the same
// database sends it, counting on from there, and gives up at once a
// message refused for good.
func TestOutboxRetriesSurviveRestart(t *testing.T) {
	onEngines(t, func(t *testing.T, o db.Options) {
		s := openStore(t, o)
		ctx := context.Background()
		var log1 logBuffer
		first := start(t, s, &fakeSender{fn: func(context.Context, Message, int) error { return temporary }}, &log1,
			Config{Backoff: time.Second, Attempts: 3})
		first.Send(message("erin@example.com", "CCCC-DDDD"))
		first.Send(message("frank@example.com", "EEEE-FFFF"))
		// Both fail once and wait a second for their second attempt; the
		// process stops meanwhile.
		waitFor(t, func() bool {
			list, _ := s.ListMail(ctx)
			return len(list) == 2 && list[0].Attempts == 1 && list[1].Attempts == 1 &&
				list[0].Claim == (db.MailClaim{}) && list[1].Claim == (db.MailClaim{})
		})
		first.Close(ctx)
		if !strings.Contains(log1.String(), "mail remains queued") {
			t.Errorf("Close does not say that mail remains queued:\n%s", log1.String())
		}
		var log2 logBuffer
		f := &fakeSender{fn: func(_ context.Context, m Message, _ int) error {
			if m.To == "frank@example.com" {
				return refused{}
			}
			return nil
		}}
		second := start(t, s, f, &log2, Config{Attempts: 3})
		second.Flush()
		if got := f.sent(); len(got) != 1 || got[0].To != "erin@example.com" {
			t.Fatalf("sent %+v", got)
		}
		out := log2.String()
		if !strings.Contains(out, `"msg":"mail sent"`) || !strings.Contains(out, `"msg":"mail not sent"`) ||
			!strings.Contains(out, "550 no such user") {
			t.Fatalf("log:\n%s", out)
		}
		if !strings.Contains(out, `"msg":"mail sent","kind":"password_reset","user_id":42,"id":1,"attempt":2`) {
			t.Errorf("the attempt count did not carry over:\n%s", out)
		}
		if n, _, _ := s.MailDepth(ctx); n != 0 || second.Pending() != 0 {
			t.Fatalf("%d messages left (Pending %d)", n, second.Pending())
		}
	})
}

// TestOutboxGivesUp: temporary failures are retried until the attempts
// are spent, then the message is logged and deleted; Flush waits for it.
func TestOutboxGivesUp(t *testing.T) {
	s := openStore(t, db.Options{Path: filepath.Join(t.TempDir(), "test.db")})
	var log logBuffer
	f := &fakeSender{fn: func(context.Context, Message, int) error { return temporary }}
	ob := start(t, s, f, &log, Config{Attempts: 4})
	ob.Send(message("gina@example.com", "GGGG-HHHH"))
	ob.Flush()
	if n := f.attempts(); n != 4 {
		t.Fatalf("%d attempts, want 4", n)
	}
	if n := strings.Count(log.String(), "will retry"); n != 3 {
		t.Fatalf("%d retries logged, want 3:\n%s", n, log.String())
	}
	if !strings.Contains(log.String(), `"msg":"mail not sent","kind":"password_reset","user_id":42`) {
		t.Fatalf("the last failure is not logged:\n%s", log.String())
	}
	if n, _, _ := s.MailDepth(context.Background()); n != 0 {
		t.Fatalf("%d messages left", n)
	}
}

// TestOutboxTwoInstances: two outboxes on one database, each queuing half
// of 200 messages, deliver each exactly once between them.
func TestOutboxTwoInstances(t *testing.T) {
	onEngines(t, func(t *testing.T, o db.Options) {
		s1, s2 := openStore(t, o), openStore(t, o)
		f1, f2 := &fakeSender{}, &fakeSender{}
		a, b := start(t, s1, f1, nil, Config{}), start(t, s2, f2, nil, Config{})
		const total = 200
		var wg sync.WaitGroup
		for i := range total {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ob := a
				if i%2 == 1 {
					ob = b
				}
				if !ob.Send(message(fmt.Sprintf("user%d@example.com", i), "ABCD-EFGH")) {
					t.Errorf("message %d refused", i)
				}
			}()
		}
		wg.Wait()
		a.Flush()
		b.Flush()
		seen := map[string]int{}
		for _, m := range append(f1.sent(), f2.sent()...) {
			seen[m.To]++
		}
		for i := range total {
			if n := seen[fmt.Sprintf("user%d@example.com", i)]; n != 1 {
				t.Fatalf("message %d sent %d times", i, n)
			}
		}
		t.Logf("instance A sent %d, B %d", len(f1.sent()), len(f2.sent()))
	})
}

// TestOutboxLeaseTakeover: an instance that dies after the mail server
// accepted a message, before deleting it, leaves it claimed; once the
// lease runs out another instance sends it again, under the same
// Message-ID (the one point of at least once), and the late instance's
// delete changes nothing.
func TestOutboxLeaseTakeover(t *testing.T) {
	s := openStore(t, db.Options{Path: filepath.Join(t.TempDir(), "test.db")})
	accepted := make(chan struct{})
	hang := make(chan struct{})
	dead := &fakeSender{fn: func(context.Context, Message, int) error {
		close(accepted)
		<-hang // "killed": never reports back while the lease runs
		return nil
	}}
	cfg := Config{Timeout: 50 * time.Millisecond, Lease: 300 * time.Millisecond}
	var deadLog logBuffer
	a := start(t, s, dead, &deadLog, cfg)
	a.Send(message("hank@example.com", "JJJJ-KKKK"))
	<-accepted
	// The instance claims no more (as if dead) and its delivery never
	// reports back while the lease runs.
	closed := make(chan struct{})
	go func() { a.Close(context.Background()); close(closed) }()
	f := &fakeSender{}
	b := start(t, s, f, nil, cfg)
	b.Flush() // waits for the lease to run out, then for b's delivery
	if got := f.sent(); len(got) != 1 || got[0].To != "hank@example.com" {
		t.Fatalf("the other instance sent %+v", got)
	}
	close(hang)
	<-closed
	if got := dead.sent(); len(got) != 1 || dead.ids[0] != f.ids[0] || f.ids[0] == "" {
		t.Fatalf("Message-IDs %q and %q, want one", dead.ids, f.ids)
	}
	if !strings.Contains(deadLog.String(), "after its lease ran out") {
		t.Fatalf("the late instance does not say its claim was lost:\n%s", deadLog.String())
	}
	if n, _, _ := s.MailDepth(context.Background()); n != 0 {
		t.Fatalf("%d messages left", n)
	}
}

// TestOutboxClose: Close lets the delivery under way finish, claims
// nothing more, and leaves the rest queued.
func TestOutboxClose(t *testing.T) {
	s := openStore(t, db.Options{Path: filepath.Join(t.TempDir(), "test.db")})
	started := make(chan struct{}, 10)
	release := make(chan struct{})
	f := &fakeSender{fn: func(context.Context, Message, int) error {
		started <- struct{}{}
		<-release
		return nil
	}}
	ob := start(t, s, f, nil, Config{})
	for i := range 5 {
		ob.Send(message(fmt.Sprintf("ivan%d@example.com", i), "LLLL-MMMM"))
	}
	<-started
	<-started // both senders busy
	closed := make(chan struct{})
	go func() { ob.Close(context.Background()); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned with deliveries under way")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	<-closed
	if n := len(f.sent()); n != 2 {
		t.Fatalf("%d sent, want the 2 under way", n)
	}
	if n, _, _ := s.MailDepth(context.Background()); n != 3 {
		t.Fatalf("%d left, want 3", n)
	}
}

// TestOutboxCloseCutsShort: when Close's time is up the deliveries under
// way are cut short and their messages given back at once, the attempt
// not counted, for the next start.
func TestOutboxCloseCutsShort(t *testing.T) {
	s := openStore(t, db.Options{Path: filepath.Join(t.TempDir(), "test.db")})
	started := make(chan struct{}, 1)
	f := &fakeSender{fn: func(ctx context.Context, _ Message, _ int) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}}
	ob := start(t, s, f, nil, Config{})
	ob.Send(message("judy@example.com", "NNNN-PPPP"))
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	ob.Close(ctx)
	list, err := s.ListMail(context.Background())
	if err != nil || len(list) != 1 || list[0].Attempts != 0 || list[0].Claim != (db.MailClaim{}) {
		t.Fatalf("after Close: %+v (%v)", list, err)
	}
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestPendingIsNotOverwrittenByAnOlderCount: a count of the queue read
// before this instance sent a message is not stored over the count that
// message's removal left (Pending would say 1 with nothing queued).
func TestPendingIsNotOverwrittenByAnOlderCount(t *testing.T) {
	s := openStore(t, db.Options{Path: filepath.Join(t.TempDir(), "test.db")})
	read := make(chan struct{})
	release := make(chan struct{})
	done := make(chan struct{})
	// The message is sent only once the count (1) has been read.
	f := &fakeSender{fn: func(context.Context, Message, int) error { <-read; return nil }}
	o := start(t, s, f, nil, Config{})
	if !o.Send(Message{Kind: "password_reset", UserID: 1, To: "a@example.com", Subject: "s", Text: "t"}) {
		t.Fatal("not queued")
	}
	// A refresh reads the count (1) and is held before storing it; the
	// message is sent and removed meanwhile.
	go func() {
		defer close(done)
		o.refreshDepthWith(func() {
			close(read)
			<-release
		})
	}()
	<-read
	waitFor(t, func() bool { n, _, _ := s.MailDepth(context.Background()); return n == 0 && len(f.sent()) == 1 })
	waitFor(t, func() bool { return o.Pending() == 0 })
	close(release)
	<-done
	if got := o.Pending(); got != 0 {
		t.Fatalf("Pending %d with nothing queued", got)
	}
}
