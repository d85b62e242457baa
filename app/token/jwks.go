package token

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"time"
)

// JWK is a public key as RFC 7517 and RFC 8037 write it.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS is the public keys other services need at now: those about to sign
// (so that caches learn them first), the one signing, and retired ones
// while tokens they signed may still be valid.
func (m *Manager) JWKS(now time.Time) []JWK {
	out := []JWK{}
	for _, st := range m.States(now) {
		if st.State == "expired" {
			continue
		}
		out = append(out, JWK{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(st.Public),
			Kid: st.ID, Alg: "EdDSA", Use: "sig"})
	}
	return out
}

// Thumbprint is the RFC 7638 thumbprint of an Ed25519 public key (the
// SHA-256 of its required members in lexical order), used as its key id.
func Thumbprint(pub ed25519.PublicKey) string {
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
