package app

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"fiberauth/app/token"
	"fiberauth/db"
)

// initialKeySetting is where the seed of the first signing key is kept, so
// that instances starting together make the same first key.
const initialKeySetting = "ed25519_seed_1"

// loadKeys reads the signing keys, making the first one on the first start.
func loadKeys(ctx context.Context, store *db.Store, now time.Time) ([]token.Key, error) {
	stored, err := store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	if len(stored) == 0 {
		seed, err := store.Secret(ctx, initialKeySetting, token.NewSeed)
		if err != nil {
			return nil, err
		}
		k, err := token.NewKey(seed, now, now)
		if err != nil {
			return nil, err
		}
		if err := store.AddSigningKey(ctx, db.SigningKey{ID: k.ID, Seed: seed, CreatedAt: now, PublishAt: now}); err != nil {
			return nil, err
		}
		if stored, err = store.SigningKeys(ctx); err != nil {
			return nil, err
		}
	}
	keys := make([]token.Key, 0, len(stored))
	for _, sk := range stored {
		k, err := token.NewKey(sk.Seed, sk.CreatedAt, sk.PublishAt)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %v", sk.ID, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// keyReloader keeps the token manager's keys in step with the database:
// on a timer, when another instance announces a change, and (at most once
// a second) when a request needs the freshest set.
type keyReloader struct {
	s    *Server
	mu   sync.Mutex
	last time.Time
}

const (
	keyReloadEvery = 30 * time.Second
	keyReloadMin   = time.Second
)

// reload reads the keys unless that was done less than min ago.
func (r *keyReloader) reload(ctx context.Context, min time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if time.Since(r.last) < min {
		return
	}
	r.last = time.Now()
	keys, err := loadKeys(ctx, r.s.store, time.Now())
	if err != nil {
		r.s.log.Warn("signing keys not reloaded", slog.String("error", err.Error()))
		return
	}
	r.s.acct.Tokens().SetKeys(keys)
}

// watch reloads the keys every keyReloadEvery until ctx ends.
func (r *keyReloader) watch(ctx context.Context) {
	t := time.NewTicker(keyReloadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.reload(ctx, 0)
		}
	}
}
