package account

import (
	"crypto/rand"
	"strings"
)

// Codes people type (mailed codes, recovery codes) are written in
// Crockford's base 32: no I, L, O or U, so that a code read aloud or typed
// from a phone is not misread.
const codeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// randomCode returns n random symbols (5 bits each, n at most 12) with a
// dash in the middle for reading: "7K3M-9QXD".
func randomCode(n int) (string, error) {
	b := make([]byte, (n*5+7)/8)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	var v uint64
	for _, x := range b {
		v = v<<8 | uint64(x)
	}
	out := make([]byte, 0, n+1)
	for i := range n {
		if i == n/2 {
			out = append(out, '-')
		}
		out = append(out, codeAlphabet[v&31])
		v >>= 5
	}
	return string(out), nil
}

// normaliseSymbols reads a code of n symbols as typed: case does not
// matter, dashes and spaces are ignored, and O, I and L read as 0, 1 and
// 1. It returns "" for anything that cannot be such a code.
func normaliseSymbols(typed string, n int) string {
	if len(typed) > 4*n {
		return ""
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(typed) {
		switch {
		case r == '-' || r == ' ':
			continue
		case r == 'O':
			r = '0'
		case r == 'I' || r == 'L':
			r = '1'
		}
		if r > 127 || !strings.ContainsRune(codeAlphabet, r) {
			return ""
		}
		b.WriteRune(r)
	}
	if b.Len() != n {
		return ""
	}
	return b.String()
}
