package token

import (
	"strconv"
	"testing"
	"time"
)

// BenchmarkVerifyCacheFull verifies tokens the cache has not seen while it
// is full: every call is a miss that checks a signature and evicts an
// entry. Its cost must not grow with the fill (compare with
// BenchmarkVerifyCold, misses into a cache with room).
func BenchmarkVerifyCacheFull(b *testing.B) {
	now := time.Now()
	m := testManager(b, time.Hour, &now)
	toks := make([]string, 3*maxVerified)
	for i := range toks {
		toks[i], _, _ = m.Issue(grant("sid-"+strconv.Itoa(i)), now)
	}
	for _, tok := range toks[:2*maxVerified] {
		m.Verify(tok)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Verify(toks[i%len(toks)]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyCold verifies tokens the cache has not seen while it has
// room: the signature check and claim decoding without eviction.
func BenchmarkVerifyCold(b *testing.B) {
	now := time.Now()
	m := testManager(b, time.Hour, &now)
	toks := make([]string, maxVerified/2)
	for i := range toks {
		toks[i], _, _ = m.Issue(grant("sid-"+strconv.Itoa(i)), now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%len(toks) == 0 {
			b.StopTimer()
			m = testManager(b, time.Hour, &now)
			b.StartTimer()
		}
		if _, err := m.Verify(toks[i%len(toks)]); err != nil {
			b.Fatal(err)
		}
	}
}
