package token

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"math/big"
	"time"
)

// JWK is a public key as RFC 7517, RFC 7518 (RSA) and RFC 8037 (Ed25519)
// write it.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
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
		if st.Alg == RS256 {
			n, e := rsaParts(&st.RSA.PublicKey)
			out = append(out, JWK{Kty: "RSA", N: n, E: e, Kid: st.ID, Alg: RS256, Use: "sig"})
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

// rsaParts are the modulus and exponent of an RSA public key, as JWKs
// write them (big-endian, unpadded base64url).
func rsaParts(pub *rsa.PublicKey) (n, e string) {
	eb := big.NewInt(int64(pub.E)).Bytes()
	return base64.RawURLEncoding.EncodeToString(pub.N.Bytes()), base64.RawURLEncoding.EncodeToString(eb)
}

// RSAThumbprint is the RFC 7638 thumbprint of an RSA public key, used as
// its key id.
func RSAThumbprint(pub *rsa.PublicKey) string {
	n, e := rsaParts(pub)
	sum := sha256.Sum256([]byte(`{"e":"` + e + `","kty":"RSA","n":"` + n + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
