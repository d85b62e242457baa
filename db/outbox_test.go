package db

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"
)

// queueMail queues n messages due at due and returns their ids.
func queueMail(t *testing.T, s *Store, n int, due time.Time) []int64 {
	t.Helper()
	var ids []int64
	for i := range n {
		id, err := s.QueueMail(context.Background(), QueuedMail{Kind: "verify_email", UserID: int64(i + 1),
			Sealed: []byte(fmt.Sprintf("sealed %d", i)), CreatedAt: due, NextAttemptAt: due})
		if err != nil {
			t.Fatalf("queue mail %d: %v", i, err)
		}
		ids = append(ids, id)
	}
	return ids
}

func claimIDs(list []QueuedMail) []int64 {
	var out []int64
	for _, m := range list {
		out = append(out, m.ID)
	}
	return out
}

// TestOutboxClaims: a message due and unclaimed goes to one claimer; while
// its lease runs nobody else gets it; after the lease another may take it,
// and then the first claim can neither delete nor give it back. A retry
// counts the attempt and waits until its time.
func TestOutboxClaims(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		ctx := context.Background()
		s := mustOpen(t, o)
		now := time.UnixMilli(time.Now().UnixMilli())
		const lease = time.Minute
		due := queueMail(t, s, 2, now)
		later := queueMail(t, s, 1, now.Add(time.Hour))[0]
		if n, newest, err := s.MailDepth(ctx); err != nil || n != 3 || newest != later {
			t.Fatalf("MailDepth = %d, %d, %v; want 3, %d", n, newest, err, later)
		}

		a, err := s.ClaimMail(ctx, "A", now, lease, 10)
		if err != nil {
			t.Fatal(err)
		}
		if got := claimIDs(a); len(got) != 2 || got[0] != due[0] || got[1] != due[1] {
			t.Fatalf("first claim took %v, want the two due %v", got, due)
		}
		if a[0].Claim.Owner != "A" || !a[0].Claim.Until.Equal(now.Add(lease)) || a[0].UserID != 1 ||
			!bytes.Equal(a[0].Sealed, []byte("sealed 0")) || a[0].Kind != "verify_email" || a[0].Attempts != 0 {
			t.Fatalf("claimed %+v", a[0])
		}
		// Leased: nobody else gets them, even a moment before the end;
		// a message queued since goes to the next claimer.
		if b, err := s.ClaimMail(ctx, "B", now.Add(lease-time.Millisecond), lease, 10); err != nil || len(b) != 0 {
			t.Fatalf("a second claim during the lease took %v (%v)", claimIDs(b), err)
		}
		fresh := queueMail(t, s, 1, now)[0]
		if b, err := s.ClaimMail(ctx, "B", now.Add(lease-time.Millisecond), lease, 10); err != nil || len(b) != 1 || b[0].ID != fresh {
			t.Fatalf("a claim during the lease took %v (%v), want only the new %d", claimIDs(b), err, fresh)
		} else if ok, err := s.DoneMail(ctx, fresh, b[0].Claim); err != nil || !ok {
			t.Fatalf("DoneMail = %v, %v", ok, err)
		}
		// A limit takes the oldest.
		b, err := s.ClaimMail(ctx, "B", now.Add(lease), lease, 1)
		if err != nil || len(b) != 1 || b[0].ID != due[0] {
			t.Fatalf("claim after the lease took %v (%v), want [%d]", claimIDs(b), err, due[0])
		}
		// A lost its claim on the first: it can neither delete it nor give
		// it back; B can.
		if ok, err := s.DoneMail(ctx, due[0], a[0].Claim); err != nil || ok {
			t.Fatalf("DoneMail with a lost claim = %v, %v; want false", ok, err)
		}
		if ok, err := s.RetryMail(ctx, due[0], a[0].Claim, 1, now); err != nil || ok {
			t.Fatalf("RetryMail with a lost claim = %v, %v; want false", ok, err)
		}
		if ok, err := s.DoneMail(ctx, due[0], b[0].Claim); err != nil || !ok {
			t.Fatalf("DoneMail with the claim = %v, %v; want true", ok, err)
		}
		// A still holds the second: a failed attempt gives it back, due
		// in ten seconds.
		if ok, err := s.RetryMail(ctx, due[1], a[1].Claim, 1, now.Add(10*time.Second)); err != nil || !ok {
			t.Fatalf("RetryMail with the claim = %v, %v; want true", ok, err)
		}
		list, err := s.ListMail(ctx)
		if err != nil || len(list) != 2 || list[0].ID != due[1] || list[0].Attempts != 1 ||
			list[0].Claim != (MailClaim{}) || !list[0].NextAttemptAt.Equal(now.Add(10*time.Second)) {
			t.Fatalf("after the retry: %+v (%v)", list, err)
		}
		if c, err := s.ClaimMail(ctx, "B", now.Add(9*time.Second), lease, 10); err != nil || len(c) != 0 {
			t.Fatalf("claimed %v before the retry was due (%v)", claimIDs(c), err)
		}
		c, err := s.ClaimMail(ctx, "A", now.Add(10*time.Second), lease, 10)
		if err != nil || len(c) != 1 || c[0].ID != due[1] || c[0].Attempts != 1 {
			t.Fatalf("claim when the retry was due: %+v (%v)", c, err)
		}
		// The same instance claiming again after its own lease ran out
		// holds a new claim; the old one is lost.
		d, err := s.ClaimMail(ctx, "A", now.Add(10*time.Second+lease), lease, 10)
		if err != nil || len(d) != 1 || d[0].Claim == c[0].Claim {
			t.Fatalf("reclaim after the lease: %+v (%v)", d, err)
		}
		if ok, _ := s.DoneMail(ctx, due[1], c[0].Claim); ok {
			t.Fatal("an expired claim of the same instance deleted the message")
		}
		if ok, err := s.DoneMail(ctx, due[1], d[0].Claim); err != nil || !ok {
			t.Fatalf("DoneMail = %v, %v", ok, err)
		}
		if n, err := s.MailLeft(ctx, due[1]); err != nil || n != 0 {
			t.Fatalf("MailLeft(%d) = %d, %v; want 0", due[1], n, err)
		}
		if n, _, err := s.MailDepth(ctx); err != nil || n != 1 {
			t.Fatalf("MailDepth = %d, %v; want the one not due", n, err)
		}
	})
}

// TestOutboxConcurrentClaims: two stores on one database (two instances)
// with four claimers each claim in rounds, all eight of a round released
// at once by a gate, holding what they took, until a round finds nothing
// left: each of 200 messages is claimed exactly once.
func TestOutboxConcurrentClaims(t *testing.T) {
	engines(t, func(t *testing.T, o Options) {
		ctx := context.Background()
		stores := []*Store{mustOpen(t, o), mustOpen(t, o)}
		now := time.Now()
		const total = 200
		ids := queueMail(t, stores[0], total, now)

		claims := map[int64][]MailClaim{}
		owners := map[string]int{}
		for round := 0; ; round++ {
			gate := make(chan struct{})
			type result struct {
				batch []QueuedMail
				err   error
			}
			results := make(chan result, 8)
			for i, s := range stores {
				for w := range 4 {
					owner := fmt.Sprintf("instance%d-%d", i, w)
					go func() {
						<-gate
						batch, err := s.ClaimMail(ctx, owner, time.Now(), time.Hour, 3)
						results <- result{batch, err}
					}()
				}
			}
			close(gate)
			got := 0
			for range 8 {
				r := <-results
				if r.err != nil {
					t.Fatal(r.err)
				}
				for _, m := range r.batch {
					claims[m.ID] = append(claims[m.ID], m.Claim)
					owners[m.Claim.Owner]++
				}
				got += len(r.batch)
			}
			if got == 0 {
				t.Logf("%d rounds; messages per claimer: %v", round, owners)
				break
			}
			if round > total {
				n := 0
				for _, c := range claims {
					n += len(c)
				}
				t.Fatalf("still claiming after %d rounds: %d claims of %d distinct messages (of %d)", round, n, len(claims), total)
			}
		}
		for _, id := range ids {
			if n := len(claims[id]); n != 1 {
				t.Fatalf("message %d claimed %d times: %+v", id, n, claims[id])
			}
		}
		if len(claims) != total {
			t.Fatalf("%d messages claimed, want %d", len(claims), total)
		}
		// Each claim finishes its message; the outbox is then empty.
		for id, c := range claims {
			if ok, err := stores[int(id)%2].DoneMail(ctx, id, c[0]); err != nil || !ok {
				t.Fatalf("DoneMail(%d) = %v, %v", id, ok, err)
			}
		}
		if n, _, err := stores[1].MailDepth(ctx); err != nil || n != 0 {
			t.Fatalf("MailDepth = %d, %v; want 0", n, err)
		}
	})
}
