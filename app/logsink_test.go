package app

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"fiberauth/db"
)

// awkward are strings every JSON writer must escape or keep with care.
var awkward = []string{
	"", "alice", `quote" and \backslash`, "<script>&amp;</script>", "tab\tnew\nline\rcr", "\b\f\x00\x01\x1f\x7f",
	"caf\u00e9 \u65e5\u672c", "line\u2028sep\u2029para", "bad \xff\xfe utf-8 \xc3", "emoji \U0001F600", "/users/%2e%2e/me",
}

// randomString is a short string of bytes drawn from the awkward ones and
// a few others.
func randomString(r *rand.Rand) string {
	var b strings.Builder
	for n := r.IntN(12); n > 0; n-- {
		switch r.IntN(4) {
		case 0:
			b.WriteByte(byte(r.IntN(256)))
		case 1:
			b.WriteString(awkward[r.IntN(len(awkward))])
		default:
			b.WriteByte(byte('a' + r.IntN(26)))
		}
	}
	return b.String()
}

// GET /users/me is written without reflection: byte for byte what
// encoding/json writes for meJSON.
func TestAppendMeMatchesEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	users := []db.User{{Username: "alice", Email: "alice@example.com", Role: "basic", CreatedAt: time.Unix(1700000000, 123)}}
	for _, s := range awkward {
		users = append(users, db.User{Username: s, Email: s, Role: s, EmailVerified: true, MFAEnabled: true,
			CreatedAt: time.Date(2026, 12, 5, 7, 0, 0, 0, time.FixedZone("x", 3600))})
	}
	for i := 0; i < 2000; i++ {
		users = append(users, db.User{Username: randomString(r), Email: randomString(r), Role: randomString(r),
			EmailVerified: r.IntN(2) == 0, MFAEnabled: r.IntN(2) == 0, CreatedAt: time.Unix(r.Int64N(4e9), 0)})
	}
	for _, u := range users {
		want, err := json.Marshal(meJSON{Description: u.Username + " authorized", Username: u.Username, Email: u.Email,
			CreatedAt: u.CreatedAt.UTC().Format(time.RFC3339), Role: u.Role, EmailVerified: u.EmailVerified, MFAEnabled: u.MFAEnabled})
		if err != nil {
			t.Fatal(err)
		}
		if got := appendMe(nil, u); !bytes.Equal(got, want) {
			t.Fatalf("user %+q:\n got %s\nwant %s", u.Username, got, want)
		}
	}
}

// A request line written into the batch is byte for byte what slog's JSON
// handler writes for the same record.
func TestRequestLineMatchesSlog(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	lines := []requestLine{
		{Level: slog.LevelInfo, ID: []byte("0123456789abcdef01234567"), Method: "GET", Route: "/users/me", Path: "/users/me",
			Status: 200, Duration: 4321 * time.Nanosecond, Addr: netip.MustParseAddr("127.0.0.1"), UserID: 7},
		{Level: slog.LevelError, ID: []byte("x"), Method: "POST", Route: "other", Path: "/", Status: 500,
			Duration: 3 * time.Second, Addr: netip.MustParseAddr("2001:db8::1")},
		{Level: slog.LevelInfo, ID: []byte("proxy-id"), Method: "GET", Route: "other", Path: "/x", Status: 404, IP: "203.0.113.9"},
	}
	for _, s := range awkward {
		lines = append(lines, requestLine{Level: slog.LevelInfo, ID: []byte(s), Method: s, Route: s, Path: s, Status: 404, IP: s})
	}
	for i := 0; i < 2000; i++ {
		lines = append(lines, requestLine{Level: slog.LevelInfo, ID: []byte(randomString(r)), Method: randomString(r),
			Route: randomString(r), Path: randomString(r), Status: 100 + r.IntN(500), Duration: time.Duration(r.Int64()),
			IP: randomString(r), UserID: r.Int64N(3)})
	}
	for _, l := range lines {
		l.Time = time.Date(2026, 12, 5, 7, 30, r.IntN(60), r.IntN(1e9), time.UTC)
		var want bytes.Buffer
		slog.New(slog.NewJSONHandler(&want, nil)).Handler().Handle(t.Context(), slowRecord(&l))
		if got := appendRequestLine(nil, &l); !bytes.Equal(got, want.Bytes()) {
			t.Fatalf("line %+q:\n got %s\nwant %s", l.Path, got, want.Bytes())
		}
	}
}

// slowRecord is the slog record logRequestSlow writes for l.
func slowRecord(l *requestLine) slog.Record {
	rec := slog.NewRecord(l.Time, l.Level, "request", 0)
	ip := l.IP
	if ip == "" && l.Addr.IsValid() {
		ip = l.Addr.String()
	}
	rec.AddAttrs(slog.String("request_id", string(l.ID)), slog.String("method", l.Method), slog.String("route", l.Route),
		slog.String("path", l.Path), slog.Int("status", l.Status), slog.Duration("duration", l.Duration), slog.String("ip", ip))
	if l.UserID != 0 {
		rec.AddAttrs(slog.Int64("user_id", l.UserID))
	}
	return rec
}

// Request lines wait in the batch for a moment; any other line is written
// after them at once, so the order of lines is the order of events.
func TestLogSinkOrder(t *testing.T) {
	var out syncBuffer
	sink := newLogSink(&out)
	sink.request([]byte("first request\n"))
	sink.request([]byte("second request\n"))
	if out.String() != "" {
		t.Fatalf("request lines written at once: %q", out.String())
	}
	sink.Write([]byte("a warning\n"))
	if want := "first request\nsecond request\na warning\n"; out.String() != want {
		t.Fatalf("log = %q, want %q", out.String(), want)
	}
	sink.request([]byte("third request\n"))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.HasSuffix(out.String(), "third request\n") {
		if time.Now().After(deadline) {
			t.Fatalf("a waiting request line was never written: %q", out.String())
		}
		time.Sleep(requestLogDelay / 5)
	}
	// A full batch is written without waiting.
	line := []byte(strings.Repeat("x", 1023) + "\n")
	before := len(out.String())
	for i := 0; i < requestLogBatch/len(line); i++ {
		sink.request(line)
	}
	if len(out.String())-before < requestLogBatch {
		t.Fatalf("a full batch waits: %d bytes written of %d", len(out.String())-before, requestLogBatch)
	}
}
