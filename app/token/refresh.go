package token

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// NewRefresh returns a new opaque refresh token (256 random bits, URL-safe)
// and the SHA-256 that is stored in its place.
func NewRefresh() (raw string, hash []byte, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", nil, err
	}
	raw = base64.RawURLEncoding.EncodeToString(b)
	return raw, HashRefresh(raw), nil
}

// HashRefresh is what is stored for a refresh token: its SHA-256. The
// token has 256 random bits, so a fast hash is enough.
func HashRefresh(raw string) []byte {
	sum := sha256.Sum256([]byte(raw))
	return sum[:]
}
