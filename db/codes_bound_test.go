package db

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The store spends a code only while it is bound as its purpose requires,
// whatever the caller checked before: a reset code to the address it went
// to, a change of address to the session that started it.
func TestSpentCodeStaysBound(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		s := mustOpen(t, o)
		ctx := context.Background()
		u, err := s.CreateUser(ctx, newUser("alice"))
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		session(t, s, u, "s1", now, now.Add(time.Hour))
		session(t, s, u, "s2", now, now.Add(time.Hour))
		put := func(c Code) {
			t.Helper()
			c.UserID, c.CreatedAt, c.ExpiresAt = u.ID, now, now.Add(15*time.Minute)
			if _, err := s.PutCode(ctx, c, now.Add(-time.Hour)); err != nil {
				t.Fatal(err)
			}
		}

		// A reset code mailed to the old address, then the address changes.
		put(Code{Purpose: CodeReset, Hash: "reset-1", Email: "alice@example.com", EmailKey: "alice@example.com"})
		if _, err := s.exec(ctx, s.w, `UPDATE users SET email = ?, email_key = ? WHERE id = ?`, "alice@new.example", "alice@new.example", u.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := s.ResetPassword(ctx, u.ID, "reset-1", now, 5, "new hash", Void{}, Event{Kind: EventPasswordReset, At: now}); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a reset code for the old address: err = %v, want ErrNotFound", err)
		}
		put(Code{Purpose: CodeReset, Hash: "reset-2", Email: "alice@new.example", EmailKey: "alice@new.example"})
		if _, err := s.ResetPassword(ctx, u.ID, "reset-2", now, 5, "new hash", Void{}, Event{Kind: EventPasswordReset, At: now}); err != nil {
			t.Fatalf("a reset code for the current address: %v", err)
		}

		// A change of address started by s1 is confirmed by s1 only.
		put(Code{Purpose: CodeEmailChange, Hash: "change", Email: "thief@evil.example", EmailKey: "thief@evil.example", SessionID: "s1"})
		for _, other := range []string{"s2", ""} {
			if _, _, err := s.ConfirmEmail(ctx, u.ID, CodeEmailChange, "change", other, now, 5, Void{}, Event{Kind: EventEmailChanged, At: now}); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a change of address confirmed from session %q: err = %v, want ErrNotFound", other, err)
			}
		}
		if _, _, err := s.ConfirmEmail(ctx, u.ID, CodeEmailChange, "change", "s1", now, 5, Void{}, Event{Kind: EventEmailChanged, At: now}); err != nil {
			t.Fatalf("the session that started the change: %v", err)
		}
	})
}
