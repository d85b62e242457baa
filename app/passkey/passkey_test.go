package passkey

import (
	"encoding/json"
	"errors"
	"testing"

	"fiberauth/app/passkey/passkeytest"
)

const origin = "https://auth.example.com"

func engine(t *testing.T) *Engine {
	t.Helper()
	e, err := New(Config{RPID: "example.com", Origins: []string{origin}, RPName: "Fiberauth"})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// register makes a passkey for a user with the authenticator.
func register(t *testing.T, e *Engine, a *passkeytest.Authenticator, u User) (Credential, *passkeytest.Credential) {
	t.Helper()
	options, state, err := e.BeginRegistration(u, Required)
	if err != nil {
		t.Fatal(err)
	}
	resp, sc, err := a.Create(options)
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.FinishRegistration(u, state, resp)
	if err != nil {
		t.Fatalf("registration refused: %v", err)
	}
	return c, sc
}

func TestOptionsJSON(t *testing.T) {
	e := engine(t)
	u := User{Handle: []byte("0123456789abcdef0123456789abcdef"), Name: "alice"}
	options, _, err := e.BeginRegistration(u, Preferred)
	if err != nil {
		t.Fatal(err)
	}
	var create struct {
		PublicKey struct {
			RP        map[string]string `json:"rp"`
			User      map[string]string `json:"user"`
			Challenge string            `json:"challenge"`
			Selection map[string]any    `json:"authenticatorSelection"`
			Att       string            `json:"attestation"`
			Timeout   int               `json:"timeout"`
		} `json:"publicKey"`
	}
	if err := json.Unmarshal(options, &create); err != nil {
		t.Fatal(err)
	}
	pk := create.PublicKey
	if pk.RP["id"] != "example.com" || pk.User["id"] != "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY" || pk.User["name"] != "alice" ||
		len(pk.Challenge) < 43 || pk.Selection["residentKey"] != "required" || pk.Selection["userVerification"] != "preferred" ||
		pk.Att != "none" || pk.Timeout != 300000 {
		t.Errorf("creation options: %s", options)
	}
	options, _, err = e.BeginAssertion(nil, Required)
	if err != nil {
		t.Fatal(err)
	}
	var get map[string]map[string]any
	json.Unmarshal(options, &get)
	if allow, ok := get["publicKey"]["allowCredentials"].([]any); !ok || len(allow) != 0 || get["publicKey"]["userVerification"] != "required" ||
		get["publicKey"]["rpId"] != "example.com" {
		t.Errorf("request options for a username-less sign-in: %s", options)
	}
}

// TestCeremonies: a passkey made and used, and each way an answer can be
// wrong refused.
func TestCeremonies(t *testing.T) {
	e := engine(t)
	a := passkeytest.New(origin)
	u := User{Handle: []byte("handle-of-alice-0123456789abcdef"), Name: "alice"}
	cred, sc := register(t, e, a, u)
	if !cred.UserVerified || len(cred.AAGUID) != 16 || cred.Attestation != "none" || len(cred.Transports) != 2 {
		t.Errorf("credential: %+v", cred)
	}
	u.Credentials = []Credential{cred}

	assert := func(u *User, uv Verification, tamper ...passkeytest.Tamper) (Result, error) {
		t.Helper()
		options, state, err := e.BeginAssertion(u, uv)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := a.Get(options, tamper...)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParseAssertion(resp)
		if err != nil {
			return Result{}, err
		}
		owner := User{Handle: u0(u, p), Name: "alice", Credentials: []Credential{cred}}
		r, err := e.FinishAssertion(state, p, owner)
		if err == nil && !r.CounterWentBack {
			cred.SignCount = r.Credential.SignCount
		}
		return r, err
	}
	r, err := assert(nil, Required)
	if err != nil || !r.UserVerified || r.CounterWentBack || r.Credential.SignCount != 1 {
		t.Fatalf("username-less sign-in: %+v, %v", r, err)
	}
	if r, err = assert(&u, Preferred); err != nil || r.Credential.SignCount != 2 {
		t.Fatalf("sign-in for a known account: %+v, %v", r, err)
	}
	two := uint32(2)
	for _, tt := range []struct {
		name   string
		uv     Verification
		tamper passkeytest.Tamper
	}{
		{"another origin", Required, passkeytest.Tamper{Origin: "https://auth.example.com.evil.test"}},
		{"another relying party", Required, passkeytest.Tamper{RPID: "evil.test"}},
		{"another challenge", Required, passkeytest.Tamper{Challenge: []byte("a challenge of another ceremony")}},
		{"no user verification", Required, passkeytest.Tamper{NoUV: true}},
		{"a bad signature", Required, passkeytest.Tamper{BadSignature: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := assert(nil, tt.uv, tt.tamper)
			t.Log(err)
			if !errors.Is(err, ErrRefused) {
				t.Errorf("err = %v, want ErrRefused", err)
			}
		})
	}
	// A counter that did not move on is reported; the caller refuses it.
	if r, err := assert(nil, Required, passkeytest.Tamper{Counter: &two}); err != nil || !r.CounterWentBack {
		t.Errorf("a counter gone back: %+v, %v", r, err)
	}
	// Without verification preferred is enough.
	if r, err := assert(&u, Preferred, passkeytest.Tamper{NoUV: true}); err != nil || r.UserVerified {
		t.Errorf("presence only, verification preferred: %+v, %v", r, err)
	}
	// A credential the account does not hold.
	other, _ := register(t, e, passkeytest.New(origin), User{Handle: []byte("handle-of-bob-0123456789abcdef01"), Name: "bob"})
	options, state, _ := e.BeginAssertion(nil, Required)
	resp, _ := a.Get(options, passkeytest.Tamper{Credential: sc})
	p, _ := ParseAssertion(resp)
	if _, err := e.FinishAssertion(state, p, User{Handle: u.Handle, Credentials: []Credential{other}}); !errors.Is(err, ErrRefused) {
		t.Errorf("an assertion checked against another credential: %v", err)
	}
	// Registration answers for another origin or without verification.
	for _, tamper := range []passkeytest.Tamper{{Origin: "https://evil.test"}, {NoUV: true}, {RPID: "evil.test"}} {
		options, state, _ := e.BeginRegistration(u, Required)
		resp, _, err := passkeytest.New(origin).Create(options, tamper)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.FinishRegistration(u, state, resp); !errors.Is(err, ErrRefused) {
			t.Errorf("registration with %+v: %v, want ErrRefused", tamper, err)
		}
	}
	if _, err := ParseAssertion([]byte(`{"id":"x"}`)); !errors.Is(err, ErrRefused) {
		t.Errorf("a malformed answer: %v", err)
	}
}

// u0 is the user handle an assertion is checked with: the one it names.
func u0(u *User, p *Assertion) []byte {
	if u != nil {
		return u.Handle
	}
	return p.UserHandle
}

// BenchmarkFinishAssertion is the engine's check of one answer alone (no
// database): parsing, origin, relying party, challenge, flags and the
// ES256 signature.
func BenchmarkFinishAssertion(b *testing.B) {
	e, err := New(Config{RPID: "example.com", Origins: []string{origin}, RPName: "Fiberauth"})
	if err != nil {
		b.Fatal(err)
	}
	a := passkeytest.New(origin)
	a.Counting = false
	u := User{Handle: []byte("handle-of-alice-0123456789abcdef"), Name: "alice"}
	options, state, _ := e.BeginRegistration(u, Required)
	resp, _, err := a.Create(options)
	if err != nil {
		b.Fatal(err)
	}
	cred, err := e.FinishRegistration(u, state, resp)
	if err != nil {
		b.Fatal(err)
	}
	u.Credentials = []Credential{cred}
	options, state, _ = e.BeginAssertion(nil, Required)
	answer, _ := a.Get(options)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		p, err := ParseAssertion(answer)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.FinishAssertion(state, p, u); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "checks/s")
}
