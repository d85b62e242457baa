package valid

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestUsername(t *testing.T) {
	tests := []struct {
		in, name, key string
		ok            bool
	}{
		{"alice", "alice", "alice", true},
		{"  Alice ", "Alice", "alice", true},
		{"a.b_c-d9", "a.b_c-d9", "a.b_c-d9", true},
		{"ab", "", "", false},
		{strings.Repeat("a", 33), "", "", false},
		{"al ice", "", "", false},
		{"alice@x", "", "", false},
		{"álice", "", "", false},
		{"ali\x00ce", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			name, key, problem := Username(tt.in)
			if (problem == "") != tt.ok {
				t.Fatalf("Username(%q) problem = %q, want ok=%v", tt.in, problem, tt.ok)
			}
			if tt.ok && (name != tt.name || key != tt.key) {
				t.Errorf("Username(%q) = %q, %q; want %q, %q", tt.in, name, key, tt.name, tt.key)
			}
		})
	}
}

func TestEmail(t *testing.T) {
	tests := []struct {
		in  string
		key string
		ok  bool
	}{
		{"alice@example.com", "alice@example.com", true},
		{" Alice@Example.COM ", "alice@example.com", true},
		{"a.b+tag@sub.example.org", "a.b+tag@sub.example.org", true},
		{"alice", "", false},
		{"alice@localhost", "", false},
		{"alice@example.", "", false},
		{"alice@.example.com", "", false},
		{"alice@exa..mple.com", "", false},
		{"Alice <alice@example.com>", "", false},
		{"@example.com", "", false},
		{"alice@[127.0.0.1]", "", false},
		{"al\nice@example.com", "", false},
		{strings.Repeat("a", 250) + "@example.com", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, key, problem := Email(tt.in)
			if (problem == "") != tt.ok {
				t.Fatalf("Email(%q) problem = %q, want ok=%v", tt.in, problem, tt.ok)
			}
			if tt.ok && key != tt.key {
				t.Errorf("Email(%q) key = %q, want %q", tt.in, key, tt.key)
			}
		})
	}
}

func TestText(t *testing.T) {
	for _, bad := range []string{"a\x00b", "a\x07", "\xff", "a\u2028b", "tab\there", strings.Repeat("a", FieldMax+1)} {
		if Text(bad) == "" {
			t.Errorf("Text(%q) accepted", bad)
		}
	}
	for _, good := range []string{"", "alice", "pässwörd ✓", "with space"} {
		if p := Text(good); p != "" {
			t.Errorf("Text(%q) = %q, want accepted", good, p)
		}
	}
}

// FuzzNormalise checks the invariants of name normalisation: an accepted
// username or email is clean text, its key is its lower-case form, and
// normalising it again changes nothing.
func FuzzNormalise(f *testing.F) {
	for _, s := range []string{"alice", " Alice ", "a@b.co", "Alice@Example.COM", "\xff", "a\x00", "ǅ@x.io", "K@example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if name, key, problem := Username(s); problem == "" {
			if !utf8.ValidString(name) || Text(name) != "" || name != strings.TrimSpace(name) {
				t.Fatalf("Username(%q) accepted unclean %q", s, name)
			}
			if key != strings.ToLower(name) {
				t.Fatalf("Username(%q) key %q", s, key)
			}
			if n2, k2, p2 := Username(name); p2 != "" || n2 != name || k2 != key {
				t.Fatalf("Username not idempotent on %q", name)
			}
			if lk, isEmail := LoginKey(s); isEmail || lk != key {
				t.Fatalf("LoginKey(%q) = %q, %v; want the username key %q", s, lk, isEmail, key)
			}
		}
		if addr, key, problem := Email(s); problem == "" {
			if Text(addr) != "" || addr != strings.TrimSpace(addr) || !strings.Contains(addr, "@") {
				t.Fatalf("Email(%q) accepted %q", s, addr)
			}
			if key != strings.ToLower(addr) {
				t.Fatalf("Email(%q) key %q", s, key)
			}
			if a2, k2, p2 := Email(addr); p2 != "" || a2 != addr || k2 != key {
				t.Fatalf("Email not idempotent on %q", addr)
			}
			if lk, isEmail := LoginKey(s); !isEmail || lk != key {
				t.Fatalf("LoginKey(%q) = %q, %v; want the email key %q", s, lk, isEmail, key)
			}
		}
	})
}
