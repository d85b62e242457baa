package app

import (
	"encoding/base32"
	"net/http"
	"testing"
	"time"

	"fiberauth/app/account/otptest"
)

// totpAt is the code of a base-32 secret at t (otptest: written from the
// RFC, not with the service's library).
func totpAt(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	code, err := otptest.Code(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return code
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
	res = ts.postJSON("/users/me/mfa/totp/confirm", `{"code":"`+code+`","password":"`+pw+`"}`, bearer(tok)...)
	wantStatus(t, res, http.StatusOK)
	var codes []string
	for _, c := range res.json(t)["recovery_codes"].([]any) {
		codes = append(codes, c.(string))
	}
	return secret, codes
}
