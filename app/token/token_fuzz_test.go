package token

import (
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzVerify feeds arbitrary input to the verifier: it must never panic,
// and it must accept nothing but a token the manager signed.
func FuzzVerify(f *testing.F) {
	m := NewManager([]byte("0123456789abcdef0123456789abcdef"), 30*time.Minute, nil)
	good, _, err := m.Issue("alice", "sid-1", time.Now())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add("")
	f.Add("..")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJhbGljZSJ9.")
	f.Add(strings.Repeat("A", MaxLength+1))
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := m.Verify(raw)
		if err != nil {
			return
		}
		if raw != good {
			t.Fatalf("accepted a token that was never issued: %q -> %+v", raw, c)
		}
		if c.Subject != "alice" || c.SessionID != "sid-1" {
			t.Fatalf("claims changed: %+v", c)
		}
	})
}

func TestIssueVerifyRoundTrip(t *testing.T) {
	now := time.Now()
	m := NewManager([]byte("0123456789abcdef0123456789abcdef"), time.Minute, func() time.Time { return now })
	raw, exp, err := m.Issue("alice", "sid", now)
	if err != nil {
		t.Fatal(err)
	}
	if got := exp.Sub(now.Truncate(time.Second)); got != time.Minute {
		t.Errorf("lifetime = %v, want 1m", got)
	}
	c, err := m.Verify(raw)
	if err != nil || c.Subject != "alice" || c.SessionID != "sid" || c.Issuer != Issuer {
		t.Fatalf("verify: %+v, %v", c, err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := m.Verify(raw); err == nil {
		t.Error("expired token verified")
	}
	if _, err := m.VerifySignature(raw); err != nil {
		t.Errorf("an expired token's signature no longer verifies: %v", err)
	}
	other := NewManager([]byte("another key, another key, another"), time.Minute, nil)
	if _, err := other.VerifySignature(raw); err == nil {
		t.Error("a token verified under another key")
	}
}

// The verified-token cache stays bounded however many tokens pass through,
// and a full cache still caches the newest token.
func TestVerifiedCacheBounded(t *testing.T) {
	now := time.Now()
	m := NewManager([]byte("0123456789abcdef0123456789abcdef"), time.Hour, func() time.Time { return now })
	var last string
	for i := 0; i < maxVerified+2000; i++ {
		raw, _, err := m.Issue("alice", "sid-"+strconv.Itoa(i), now)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Verify(raw); err != nil {
			t.Fatal(err)
		}
		last = raw
	}
	if n := m.verified.Len(); n > m.verified.Capacity() {
		t.Errorf("%d cached tokens, want at most %d", n, m.verified.Capacity())
	}
	if _, ok := m.verified.Get(last); !ok {
		t.Error("the newest token was not cached by a full cache")
	}
}

// Each refusal names its reason.
func TestRefusalReasons(t *testing.T) {
	now := time.Now()
	key := []byte("0123456789abcdef0123456789abcdef")
	m := NewManager(key, time.Minute, func() time.Time { return now })
	raw, _, _ := m.Issue("alice", "sid", now)
	other := NewManager([]byte("another key, another key, another"), time.Minute, nil)
	forged, _, _ := other.Issue("alice", "sid", now)
	tests := []struct {
		name string
		raw  string
		at   time.Time
		want error
	}{
		{"garbage", "not.a.token", now, ErrMalformed},
		{"empty", "", now, ErrMalformed},
		{"other key", forged, now, ErrSignature},
		{"expired", raw, now.Add(2 * time.Minute), ErrExpired},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fresh := NewManager(key, time.Minute, func() time.Time { return tt.at })
			_, err := fresh.Verify(tt.raw)
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if r := Reason(err); !strings.HasPrefix(r, "The access token ") {
				t.Errorf("Reason = %q", r)
			}
		})
	}
	if got := Reason(ErrExpired); got != "The access token expired" {
		t.Errorf("Reason(ErrExpired) = %q", got)
	}
	// A cached token expires like a fresh one.
	if _, err := m.Verify(raw); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute)
	if _, err := m.Verify(raw); !errors.Is(err, ErrExpired) {
		t.Errorf("cached expired token: %v, want ErrExpired", err)
	}
}
