package db

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"
)

func testPasskey(userID int64, n int) Passkey {
	return Passkey{ID: fmt.Sprintf("pk%d-%d", userID, n), UserID: userID, CredentialID: []byte(fmt.Sprintf("cred-%d-%d", userID, n)),
		PublicKey: []byte("key"), Transports: []string{"internal", "hybrid"}, AAGUID: make([]byte, 16), Attestation: "none",
		Name: fmt.Sprintf("Key %d", n), CreatedAt: time.Now()}
}

// TestPasskeyStore: passkeys stored and read back, the limit per account,
// a credential registered twice, the last way to sign in, and the
// counter's conditional write, on both engines.
func TestPasskeyStore(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		s := mustOpen(t, o)
		ctx := context.Background()
		u, err := s.CreateUser(ctx, newUser("pat"))
		if err != nil {
			t.Fatal(err)
		}
		h, err := s.UserHandle(ctx, u.ID, []byte("handle-one"))
		if err != nil || string(h) != "handle-one" {
			t.Fatalf("handle %q, %v", h, err)
		}
		if h, _ := s.UserHandle(ctx, u.ID, []byte("handle-two")); string(h) != "handle-one" {
			t.Fatalf("a second candidate replaced the handle: %q", h)
		}
		for i := 0; i < 3; i++ {
			if err := s.AddPasskey(ctx, testPasskey(u.ID, i), 3, Void{}, Event{}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.AddPasskey(ctx, testPasskey(u.ID, 3), 3, Void{}, Event{}); !errors.Is(err, ErrTooMany) {
			t.Errorf("a fourth passkey with a limit of 3: %v, want ErrTooMany", err)
		}
		other, _ := s.CreateUser(ctx, newUser("other"))
		dup := testPasskey(other.ID, 0)
		dup.CredentialID = testPasskey(u.ID, 0).CredentialID
		if err := s.AddPasskey(ctx, dup, 10, Void{}, Event{}); !errors.Is(err, ErrConflict) {
			t.Errorf("a credential registered to another account: %v, want ErrConflict", err)
		}
		list, err := s.Passkeys(ctx, u.ID)
		if err != nil || len(list) != 3 || list[0].Name != "Key 0" || len(list[0].Transports) != 2 || !list[0].LastUsedAt.IsZero() {
			t.Fatalf("passkeys: %+v, %v", list, err)
		}
		p, owner, err := s.PasskeyByCredential(ctx, list[1].CredentialID)
		if err != nil || p.ID != list[1].ID || owner.ID != u.ID || string(owner.WebAuthnID) != "handle-one" {
			t.Fatalf("by credential: %+v %+v %v", p, owner, err)
		}
		if _, _, err := s.PasskeyByCredential(ctx, []byte("nobody's")); !errors.Is(err, ErrNotFound) {
			t.Errorf("unknown credential: %v", err)
		}
		if p, err := s.RenamePasskey(ctx, u.ID, list[0].ID, "Laptop"); err != nil || p.Name != "Laptop" {
			t.Errorf("rename: %+v %v", p, err)
		}
		if _, err := s.RenamePasskey(ctx, other.ID, list[0].ID, "Mine now"); !errors.Is(err, ErrNotFound) {
			t.Errorf("renaming another account's passkey: %v", err)
		}

		// The counter: forward only, 0 stays 0 for authenticators that do
		// not count, a removed passkey is refused.
		use := PasskeyUse{ID: list[0].ID, UserID: u.ID, Count: 5, At: time.Now()}
		if err := s.UsePasskey(ctx, use); err != nil {
			t.Fatal(err)
		}
		for _, c := range []uint32{5, 4, 0} {
			use.Count = c
			if err := s.UsePasskey(ctx, use); !errors.Is(err, ErrChanged) {
				t.Errorf("counter 5 then %d: %v, want ErrChanged", c, err)
			}
		}
		zero := PasskeyUse{ID: list[1].ID, UserID: u.ID, Count: 0, At: time.Now()}
		if err := s.UsePasskey(ctx, zero); err != nil {
			t.Errorf("a counter that stays 0: %v", err)
		}

		// An account with a password may remove every passkey; without one,
		// never the last.
		hash := u.PasswordHash
		ev := func(p Passkey) Event { return Event{Kind: EventPasskeyRemoved, At: time.Now(), Detail: p.Name} }
		if _, _, err := s.RemovePasskey(ctx, u.ID, list[2].ID, &hash, Void{}, ev); err != nil {
			t.Fatal(err)
		}
		stale := "not the hash"
		if _, _, err := s.RemovePasskey(ctx, u.ID, list[1].ID, &stale, Void{}, ev); !errors.Is(err, ErrChanged) {
			t.Errorf("removal after the password changed: %v", err)
		}
		if _, _, err := s.RemovePasskey(ctx, u.ID, list[2].ID, nil, Void{}, ev); !errors.Is(err, ErrNotFound) {
			t.Errorf("removing it again: %v", err)
		}
		if err := s.UsePasskey(ctx, PasskeyUse{ID: list[2].ID, UserID: u.ID, Count: 9, At: time.Now()}); !errors.Is(err, ErrChanged) {
			t.Errorf("use of a removed passkey: %v", err)
		}

		nu := newUser("keyonly")
		nu.PasswordHash, nu.WebAuthnID = "", []byte("handle-keyonly")
		first := testPasskey(0, 0)
		first.ID, first.CredentialID = "keyonly-1", []byte("cred-keyonly-1")
		nu.Passkey = &first
		ko, err := s.CreateUser(ctx, nu)
		if err != nil {
			t.Fatal(err)
		}
		if u, _ := s.UserByID(ctx, ko.ID); !u.Passwordless || string(u.WebAuthnID) != "handle-keyonly" {
			t.Fatalf("account made with a passkey: %+v", u)
		}
		second := testPasskey(ko.ID, 2)
		if err := s.AddPasskey(ctx, second, 10, Void{}, Event{}); err != nil {
			t.Fatal(err)
		}
		// Two removals at once of the last two passkeys: one wins.
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, id := range []string{first.ID, second.ID} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, errs[i] = s.RemovePasskey(ctx, ko.ID, id, nil, Void{}, ev)
			}()
		}
		wg.Wait()
		if (errs[0] == nil) == (errs[1] == nil) || !(errors.Is(errs[0], ErrLastWay) || errors.Is(errs[1], ErrLastWay)) {
			t.Errorf("removing the last two passkeys at once: %v, %v; want one ErrLastWay", errs[0], errs[1])
		}
		if left, _ := s.Passkeys(ctx, ko.ID); len(left) != 1 {
			t.Errorf("%d passkeys left, want 1", len(left))
		}
	})
}

// TestCeremonyStore: a ceremony is taken once, not after it expired, only
// with its kind, account and session, and ends with its session and by a
// Void.
func TestCeremonyStore(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		s := mustOpen(t, o)
		ctx := context.Background()
		u, _ := s.CreateUser(ctx, newUser("cer"))
		now := time.Now()
		session(t, s, u, "sess-1", now, now.Add(time.Hour))
		put := func(c Ceremony) {
			t.Helper()
			c.State, c.ExpiresAt = []byte("state of "+c.ID), now.Add(5*time.Minute)
			if err := s.PutCeremony(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
		put(Ceremony{ID: "login-1", Kind: CeremonyLogin})
		if st, err := s.TakeCeremony(ctx, "login-1", CeremonyLogin, 0, "", now); err != nil || string(st) != "state of login-1" {
			t.Fatalf("take: %q %v", st, err)
		}
		if _, err := s.TakeCeremony(ctx, "login-1", CeremonyLogin, 0, "", now); !errors.Is(err, ErrNotFound) {
			t.Errorf("taken twice: %v", err)
		}
		put(Ceremony{ID: "login-2", Kind: CeremonyLogin})
		if _, err := s.TakeCeremony(ctx, "login-2", CeremonyLogin, 0, "", now.Add(5*time.Minute)); !errors.Is(err, ErrNotFound) {
			t.Errorf("taken when it expired: %v", err)
		}
		put(Ceremony{ID: "reg-1", Kind: CeremonyRegister, UserID: u.ID, SessionID: "sess-1"})
		for _, wrong := range []struct {
			kind    string
			user    int64
			session string
		}{{CeremonyLogin, u.ID, "sess-1"}, {CeremonyRegister, u.ID + 1, "sess-1"}, {CeremonyRegister, u.ID, "sess-2"}, {CeremonyRegister, 0, ""}} {
			if _, err := s.TakeCeremony(ctx, "reg-1", wrong.kind, wrong.user, wrong.session, now); !errors.Is(err, ErrNotFound) {
				t.Errorf("taken as %+v: %v", wrong, err)
			}
		}
		if _, err := s.Apply(ctx, u.ID, Void{Sessions: ThisSession, Session: "sess-1"}, Event{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TakeCeremony(ctx, "reg-1", CeremonyRegister, u.ID, "sess-1", now); !errors.Is(err, ErrNotFound) {
			t.Errorf("a ceremony of an ended session: %v", err)
		}
		if err := s.PutCeremony(ctx, Ceremony{ID: "reg-2", Kind: CeremonyRegister, UserID: u.ID, SessionID: "sess-1",
			State: []byte("x"), ExpiresAt: now.Add(time.Minute)}); !errors.Is(err, ErrNotFound) {
			t.Errorf("a ceremony for an ended session: %v", err)
		}
		put(Ceremony{ID: "second-1", Kind: CeremonySecond, UserID: u.ID})
		if _, err := s.Apply(ctx, u.ID, Void{Ceremonies: true}, Event{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.TakeCeremony(ctx, "second-1", CeremonySecond, u.ID, "", now); !errors.Is(err, ErrNotFound) {
			t.Errorf("a ceremony a Void ended: %v", err)
		}
		put(Ceremony{ID: "old", Kind: CeremonyLogin})
		if _, err := s.Prune(ctx, now.Add(time.Hour), now, now, now); err != nil {
			t.Fatal(err)
		}
		var n int
		s.w.QueryRow(`SELECT COUNT(*) FROM passkey_ceremonies`).Scan(&n)
		if n != 0 {
			t.Errorf("%d expired ceremonies left after pruning", n)
		}
	})
}
