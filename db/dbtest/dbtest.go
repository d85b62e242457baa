// Package dbtest gives tests a fresh PostgreSQL schema of their own on the
// server named by TEST_DATABASE_URL. Without that variable PostgreSQL tests
// skip with a message naming it, unless FIBERAUTH_REQUIRE_POSTGRES=1 (set by
// CI) makes them fail.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Available reports whether TEST_DATABASE_URL is set.
func Available() bool { return os.Getenv("TEST_DATABASE_URL") != "" }

// Required reports whether PostgreSQL tests must run (CI).
func Required() bool { return os.Getenv("FIBERAUTH_REQUIRE_POSTGRES") == "1" }

// Skip skips t when PostgreSQL is not configured, or fails it when it is
// required.
func Skip(t testing.TB) {
	t.Helper()
	if Available() {
		return
	}
	if Required() {
		t.Fatal("PostgreSQL is required (FIBERAUTH_REQUIRE_POSTGRES=1) but TEST_DATABASE_URL is not set")
	}
	t.Skip("PostgreSQL tests need TEST_DATABASE_URL (see the README's Tests section)")
}

// URL returns the URL of a new, empty schema on the test server, dropped
// when t ends. Connections opened with it see only that schema.
func URL(t testing.TB) string {
	t.Helper()
	Skip(t)
	base := os.Getenv("TEST_DATABASE_URL")
	b := make([]byte, 6)
	rand.Read(b)
	schema := "t_" + hex.EncodeToString(b)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("connect to TEST_DATABASE_URL: %v", err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop schema %s: %v", schema, err)
			return
		}
		defer conn.Close(context.Background())
		if _, err := conn.Exec(ctx, "DROP SCHEMA "+schema+" CASCADE"); err != nil {
			t.Logf("drop schema %s: %v", schema, err)
		}
	})
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("TEST_DATABASE_URL: %v", err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}
