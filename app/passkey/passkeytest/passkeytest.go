// Package passkeytest is a software authenticator for tests, written from
// the WebAuthn Level 3 specification: discoverable ECDSA P-256 (ES256)
// credentials with "none" attestation, answers in the JSON forms
// PublicKeyCredential's toJSON gives, and knobs to answer wrongly on
// purpose (another origin or relying party, another challenge, no user
// verification, a counter that goes back, a bad signature).
package passkeytest

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// Authenticator holds credentials and answers ceremonies' options.
type Authenticator struct {
	// Origin is the origin of the page the browser would run the
	// ceremony on (the client data's origin).
	Origin string
	// AAGUID names the authenticator model.
	AAGUID [16]byte
	// Counting: the authenticator keeps a signature counter per
	// credential (0 at creation, one more at each use); otherwise it
	// always reports 0, as synced passkeys do.
	Counting bool
	// BackupEligible and BackedUp are the BE and BS flags it reports.
	BackupEligible, BackedUp bool
	// NoUserVerification: it can test presence only (no PIN, no
	// fingerprint), so it never sets the UV flag.
	NoUserVerification bool

	mu    sync.Mutex
	creds []*Credential
}

// New returns an authenticator for pages at origin that verifies the
// person and counts.
func New(origin string) *Authenticator {
	a := &Authenticator{Origin: origin, Counting: true}
	copy(a.AAGUID[:], "fiberauth-test-a")
	return a
}

// Credential is one key pair of the authenticator.
type Credential struct {
	ID         []byte
	Key        *ecdsa.PrivateKey
	RPID       string
	UserHandle []byte
	UserName   string
	Counter    uint32
}

// Tamper changes one answer, to provoke a refusal.
type Tamper struct {
	// Origin replaces the client data's origin.
	Origin string
	// RPID hashes another relying party id into the authenticator data.
	RPID string
	// Challenge replaces the challenge answered.
	Challenge []byte
	// NoUV leaves out the user-verified flag.
	NoUV bool
	// Counter reports this counter instead of the next one.
	Counter *uint32
	// Credential answers with this credential, whatever the options ask
	// (at creation: registers its id and key again, as a tampered client
	// would, instead of making a new one).
	Credential *Credential
	// BadSignature spoils the signature.
	BadSignature bool
}

// Credentials returns the authenticator's credentials, oldest first.
func (a *Authenticator) Credentials() []*Credential {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]*Credential(nil), a.creds...)
}

// Forget drops a credential (the person deleted it from the device).
func (a *Authenticator) Forget(c *Credential) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, x := range a.creds {
		if x == c {
			a.creds = append(a.creds[:i], a.creds[i+1:]...)
			return
		}
	}
}

var b64 = base64.RawURLEncoding

// b64bytes is a base64url JSON string.
type b64bytes []byte

func (b *b64bytes) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	v, err := b64.DecodeString(s)
	*b = v
	return err
}

type descriptor struct {
	ID   b64bytes `json:"id"`
	Type string   `json:"type"`
}

type creationOptions struct {
	PublicKey struct {
		RP struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		} `json:"rp"`
		User struct {
			ID   b64bytes `json:"id"`
			Name string   `json:"name"`
		} `json:"user"`
		Challenge b64bytes `json:"challenge"`
		Params    []struct {
			Alg int `json:"alg"`
		} `json:"pubKeyCredParams"`
		Exclude   []descriptor `json:"excludeCredentials"`
		Selection struct {
			ResidentKey      string `json:"residentKey"`
			UserVerification string `json:"userVerification"`
		} `json:"authenticatorSelection"`
	} `json:"publicKey"`
}

type requestOptions struct {
	PublicKey struct {
		Challenge        b64bytes     `json:"challenge"`
		RPID             string       `json:"rpId"`
		Allow            []descriptor `json:"allowCredentials"`
		UserVerification string       `json:"userVerification"`
	} `json:"publicKey"`
}

// ErrNotAllowed is what a browser reports as NotAllowedError: no
// credential fits, or the person cannot be verified as required.
var ErrNotAllowed = errors.New("passkeytest: not allowed")

// ErrInvalidState is InvalidStateError: the authenticator already holds a
// credential the options exclude.
var ErrInvalidState = errors.New("passkeytest: a credential of this authenticator is excluded")

func pick(t []Tamper) Tamper {
	if len(t) > 0 {
		return t[0]
	}
	return Tamper{}
}

const (
	flagUP = 0x01
	flagUV = 0x04
	flagBE = 0x08
	flagBS = 0x10
	flagAT = 0x40
)

func (a *Authenticator) flags(t Tamper, uvAsked string) (byte, error) {
	f := byte(flagUP)
	if !a.NoUserVerification && !t.NoUV {
		f |= flagUV
	} else if uvAsked == "required" && !t.NoUV {
		return 0, ErrNotAllowed
	}
	if a.BackupEligible {
		f |= flagBE
	}
	if a.BackedUp {
		f |= flagBS
	}
	return f, nil
}

func clientData(typ string, challenge []byte, origin string) []byte {
	b, _ := json.Marshal(map[string]any{"type": typ, "challenge": b64.EncodeToString(challenge), "origin": origin, "crossOrigin": false})
	return b
}

func authData(rpID string, flags byte, counter uint32, attested []byte) []byte {
	h := sha256.Sum256([]byte(rpID))
	out := append(h[:], flags, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(out[33:], counter)
	return append(out, attested...)
}

// Create answers creation options (as the server sent them, {"publicKey":
// ...}) with a new discoverable credential, and returns the answer as
// toJSON gives it.
func (a *Authenticator) Create(options []byte, tamper ...Tamper) ([]byte, *Credential, error) {
	t := pick(tamper)
	var o creationOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, nil, fmt.Errorf("passkeytest: creation options: %w", err)
	}
	pk := o.PublicKey
	es256 := false
	for _, p := range pk.Params {
		es256 = es256 || p.Alg == -7
	}
	if !es256 || len(pk.Challenge) == 0 || pk.RP.ID == "" || len(pk.User.ID) == 0 {
		return nil, nil, fmt.Errorf("passkeytest: creation options lack ES256, a challenge, the RP id or the user id: %s", options)
	}
	a.mu.Lock()
	for _, c := range a.creds {
		for _, x := range pk.Exclude {
			if bytes.Equal(c.ID, x.ID) {
				a.mu.Unlock()
				return nil, nil, ErrInvalidState
			}
		}
	}
	a.mu.Unlock()
	flags, err := a.flags(t, pk.Selection.UserVerification)
	if err != nil {
		return nil, nil, err
	}
	var key *ecdsa.PrivateKey
	var id []byte
	if t.Credential != nil {
		key, id = t.Credential.Key, t.Credential.ID
	} else {
		if key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return nil, nil, err
		}
		id = make([]byte, 32)
		rand.Read(id)
	}
	c := &Credential{ID: id, Key: key, RPID: pk.RP.ID, UserHandle: append([]byte(nil), pk.User.ID...), UserName: pk.User.Name}
	x, y := make([]byte, 32), make([]byte, 32)
	key.PublicKey.X.FillBytes(x)
	key.PublicKey.Y.FillBytes(y)
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
	if err != nil {
		return nil, nil, err
	}
	attested := append(append(append(a.AAGUID[:0:0], a.AAGUID[:]...), byte(len(id)>>8), byte(len(id))), id...)
	attested = append(attested, cose...)
	rpID := pk.RP.ID
	if t.RPID != "" {
		rpID = t.RPID
	}
	var counter uint32
	if t.Counter != nil {
		counter = *t.Counter
	}
	data := authData(rpID, flags|flagAT, counter, attested)
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": data})
	if err != nil {
		return nil, nil, err
	}
	challenge := pk.Challenge
	if t.Challenge != nil {
		challenge = t.Challenge
	}
	origin := a.Origin
	if t.Origin != "" {
		origin = t.Origin
	}
	resp, err := json.Marshal(map[string]any{
		"id": b64.EncodeToString(id), "rawId": b64.EncodeToString(id), "type": "public-key", "authenticatorAttachment": "platform",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(clientData("webauthn.create", challenge, origin)),
			"attestationObject": b64.EncodeToString(att),
			"transports":        []string{"internal", "hybrid"},
		},
		"clientExtensionResults": map[string]any{},
	})
	if err != nil {
		return nil, nil, err
	}
	if t.Credential != nil {
		return resp, t.Credential, nil
	}
	a.mu.Lock()
	a.creds = append(a.creds, c)
	a.mu.Unlock()
	return resp, c, nil
}

// Get answers request options with one of the authenticator's credentials
// for the relying party: the first the options allow, or with an empty
// allow list the newest discoverable one. ErrNotAllowed when none fits.
func (a *Authenticator) Get(options []byte, tamper ...Tamper) ([]byte, error) {
	t := pick(tamper)
	var o requestOptions
	if err := json.Unmarshal(options, &o); err != nil {
		return nil, fmt.Errorf("passkeytest: request options: %w", err)
	}
	pk := o.PublicKey
	if len(pk.Challenge) == 0 || pk.RPID == "" {
		return nil, fmt.Errorf("passkeytest: request options lack a challenge or the RP id: %s", options)
	}
	c := t.Credential
	a.mu.Lock()
	if c == nil {
		for i := len(a.creds) - 1; i >= 0; i-- {
			x := a.creds[i]
			if x.RPID != pk.RPID {
				continue
			}
			if len(pk.Allow) == 0 {
				c = x
				break
			}
			for _, d := range pk.Allow {
				if bytes.Equal(d.ID, x.ID) {
					c = x
				}
			}
			if c != nil {
				break
			}
		}
	}
	if c == nil {
		a.mu.Unlock()
		return nil, ErrNotAllowed
	}
	if a.Counting {
		c.Counter++
	}
	counter := c.Counter
	a.mu.Unlock()
	if t.Counter != nil {
		counter = *t.Counter
	}
	flags, err := a.flags(t, pk.UserVerification)
	if err != nil {
		return nil, err
	}
	rpID := c.RPID
	if t.RPID != "" {
		rpID = t.RPID
	}
	data := authData(rpID, flags, counter, nil)
	challenge := pk.Challenge
	if t.Challenge != nil {
		challenge = t.Challenge
	}
	origin := a.Origin
	if t.Origin != "" {
		origin = t.Origin
	}
	cd := clientData("webauthn.get", challenge, origin)
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte(nil), data...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, c.Key, digest[:])
	if err != nil {
		return nil, err
	}
	if t.BadSignature {
		sig[len(sig)-1] ^= 0xff
	}
	return json.Marshal(map[string]any{
		"id": b64.EncodeToString(c.ID), "rawId": b64.EncodeToString(c.ID), "type": "public-key", "authenticatorAttachment": "platform",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cd),
			"authenticatorData": b64.EncodeToString(data),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(c.UserHandle),
		},
		"clientExtensionResults": map[string]any{},
	})
}
