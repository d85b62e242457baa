package password

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestVerify(t *testing.T) {
	h, err := NewHasher(4, 2, 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hash, err := h.Hash(ctx, "correct horse")
	if err != nil {
		t.Fatal(err)
	}
	exact := strings.Repeat("p", MaxBytes)
	hash72, _ := h.Hash(ctx, exact)
	tests := []struct {
		name, hash, pw string
		want           error
	}{
		{"match", hash, "correct horse", nil},
		{"mismatch", hash, "correct horsE", ErrMismatch},
		{"unknown user", "", "correct horse", ErrMismatch},
		{"72 bytes match", hash72, exact, nil},
		{"73 bytes never match", hash72, exact + "p", ErrMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.Verify(ctx, tt.hash, tt.pw); !errors.Is(err, tt.want) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	if _, err := h.Hash(ctx, exact+"p"); err == nil {
		t.Error("hashing a 73-byte password succeeded")
	}
	if h.NeedsRehash(hash) {
		t.Error("a hash of the configured cost needs a rehash")
	}
	h5, _ := NewHasher(5, 1, 1)
	if !h5.NeedsRehash(hash) {
		t.Error("a cost-4 hash does not need a rehash at cost 5")
	}
}

// With every worker busy and the queue full, further callers are shed at
// once with ErrBusy instead of piling up.
func TestBoundedQueue(t *testing.T) {
	h, err := NewHasher(4, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	// A queued caller would wait for a worker for as long as this: a
	// refusal that came from waiting instead of from the full queue would
	// not come while the worker is held.
	h.maxWait = time.Hour
	// Occupy the single worker and the single queue place.
	release, err := h.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	queued := make(chan error, 1)
	go func() {
		defer wg.Done()
		queued <- h.Verify(context.Background(), "", "x")
	}()
	deadline := time.Now().Add(2 * time.Second)
	for h.pending.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	third := make(chan error, 1)
	go func() { third <- h.Verify(context.Background(), "", "x") }()
	select {
	case err := <-third:
		if !errors.Is(err, ErrBusy) {
			t.Errorf("third caller: %v, want ErrBusy", err)
		}
	case <-time.After(10 * time.Second):
		t.Error("the third caller was left waiting for a worker instead of being refused at once")
	}
	release()
	wg.Wait()
	if err := <-queued; !errors.Is(err, ErrMismatch) {
		t.Errorf("queued caller: %v, want ErrMismatch once a worker was free", err)
	}
}

func TestCheck(t *testing.T) {
	tests := []struct {
		pw, want string
	}{
		{"", "required"},
		{"short", "at least 8"},
		{"ünïcödé", "at least 8"},
		{strings.Repeat("a", 73), "72 bytes"},
		{"password", "common"},
		{"Password1", "common"},
		{"Tr0ub4dor&3x", ""},
		{"iloveyou", "common"},
		{"correct horse battery", ""},
	}
	for _, tt := range tests {
		got := Check(tt.pw)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("Check(%q) = %q, want a message containing %q", tt.pw, got, tt.want)
		}
	}
	if n := len(common); n != 10000 {
		t.Errorf("%d common passwords loaded, want 10000", n)
	}
}
