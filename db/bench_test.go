package db

import (
	"context"
	"testing"
	"time"
)

func benchSession(b *testing.B) *Store {
	s := mustOpen(b, sqliteOptions(b))
	ctx := context.Background()
	u, err := s.CreateUser(ctx, newUser("alice"))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	session(b, s, u, "sid", now, now.Add(time.Hour))
	return s
}

// BenchmarkSessionWithUser is the lookup as requests see it (cached).
func BenchmarkSessionWithUser(b *testing.B) {
	s := benchSession(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := s.SessionWithUser(ctx, "sid"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionWithUserQuery is the SQLite query behind it.
func BenchmarkSessionWithUserQuery(b *testing.B) {
	s := benchSession(b)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.cache.invalidate("sid")
		if _, _, err := s.SessionWithUser(ctx, "sid"); err != nil {
			b.Fatal(err)
		}
	}
}
