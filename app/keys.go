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

// initialKeySetting and initialRSASetting are where the first keys of each
// algorithm are kept, so that instances starting together make the same
// first keys.
const (
	initialKeySetting = "ed25519_seed_1"
	initialRSASetting = "rsa_key_1"
)

// loadKeys reads the signing keys, making the first one of each algorithm
// on the first start (an RSA key also on the first start after an upgrade
// from a release that had only Ed25519 keys).
func loadKeys(ctx context.Context, store *db.Store, now time.Time) ([]token.Key, error) {
	stored, err := store.SigningKeys(ctx)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, sk := range stored {
		have[sk.Alg] = true
	}
	first := []struct {
		alg, setting string
		make         func() ([]byte, error)
	}{{token.EdDSA, initialKeySetting, token.NewSeed}, {token.RS256, initialRSASetting, newRSASeed}}
	added := false
	for _, f := range first {
		if have[f.alg] {
			continue
		}
		seed, err := store.Secret(ctx, f.setting, f.make)
		if err != nil {
			return nil, err
		}
		k, err := keyOf(db.SigningKey{Alg: f.alg, Seed: seed, CreatedAt: now, PublishAt: now})
		if err != nil {
			return nil, err
		}
		if err := store.AddSigningKey(ctx, db.SigningKey{ID: k.ID, Alg: f.alg, Seed: seed, CreatedAt: now, PublishAt: now}); err != nil {
			return nil, err
		}
		added = true
	}
	if added {
		if stored, err = store.SigningKeys(ctx); err != nil {
			return nil, err
		}
	}
	keys := make([]token.Key, 0, len(stored))
	for _, sk := range stored {
		k, err := keyOf(sk)
		if err != nil {
			return nil, fmt.Errorf("signing key %s: %v", sk.ID, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// newRSASeed makes the first RSA key of a database (tests replace it with
// one that makes a key once: each of their databases needs one, and making
// one takes about 50 ms; a rotation always makes a new one).
var newRSASeed = token.NewRSASeed

// keyOf makes the token package's key of a stored one.
func keyOf(sk db.SigningKey) (token.Key, error) {
	if sk.Alg == token.RS256 {
		return token.NewRSAKey(sk.Seed, sk.CreatedAt, sk.PublishAt)
	}
	return token.NewKey(sk.Seed, sk.CreatedAt, sk.PublishAt)
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
