package throttle

import (
	"crypto/sha256"
	"encoding/base64"
	"net/netip"
)

// AddressKey is the key a client address is counted under: an IPv4 address
// as is, an IPv6 address by its /64 (one subscriber usually holds a whole
// /64, so counting single addresses would give it 2^64 tries), and anything
// that is not an address by a digest of it.
func AddressKey(addr string) string {
	a, err := netip.ParseAddr(addr)
	if err != nil {
		return "x" + Digest(addr)
	}
	a = a.Unmap().WithZone("")
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.String()
	}
	return a.String()
}

// Digest is a fixed-size stand-in for text of any length (a login name that
// matches no account), so that what attackers type cannot grow the keys.
func Digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}
