package app

import (
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// totpAt computes the RFC 6238 code of a base-32 secret at t, written here
// from the RFC (HMAC-SHA1, dynamic truncation, 6 digits, 30-second steps)
// rather than with the library the service uses, so that the tests check
// the service against the standard.
func totpAt(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	key, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.ToUpper(secret))
	if err != nil {
		t.Fatalf("secret %q: %v", secret, err)
	}
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(at.Unix()/30))
	mac := hmac.New(sha1.New, key)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%06d", v%1000000)
}

// The RFC's own test vector (appendix B, SHA-1, 8 digits truncated to 6):
// T = 59 gives 94287082, so 287082.
func TestTOTPVector(t *testing.T) {
	secret := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte("12345678901234567890"))
	if got := totpAt(t, secret, time.Unix(59, 0)); got != "287082" {
		t.Fatalf("test implementation gives %s, want 287082", got)
	}
}

// enrolled turns two-factor on for the bearer of tok at the service's
// clock and returns the secret and the recovery codes.
func (ts *testServer) enrolled(t testing.TB, tok string) (string, []string) {
	t.Helper()
	res := ts.postJSON("/users/me/mfa/totp", ``, bearer(tok)...)
	wantStatus(t, res, http.StatusOK)
	secret, _ := res.json(t)["secret"].(string)
	code := totpAt(t, secret, ts.s.acct.Now())
	res = ts.postJSON("/users/me/mfa/totp/confirm", `{"code":"`+code+`"}`, bearer(tok)...)
	wantStatus(t, res, http.StatusOK)
	var codes []string
	for _, c := range res.json(t)["recovery_codes"].([]any) {
		codes = append(codes, c.(string))
	}
	return secret, codes
}
