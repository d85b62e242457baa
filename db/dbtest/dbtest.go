// Package dbtest gives tests a fresh PostgreSQL schema of their own on the
// server named by TEST_DATABASE_URL, or a private PostgreSQL server they may
// stop and start. Without PostgreSQL these tests skip with a message naming
// what is missing, unless FIBERAUTH_REQUIRE_POSTGRES=1 (set by CI) makes
// them fail.
package dbtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
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

// Server is a PostgreSQL server of a test's own, in a temporary directory,
// that the test may stop and start (to see the service survive a database
// restart) without disturbing other tests.
type Server struct {
	t    testing.TB
	dir  string
	port int
	run  func(args ...string) *exec.Cmd
}

// pgBin is where Debian's PostgreSQL 15 keeps its programs.
const pgBin = "/usr/lib/postgresql/15/bin"

// StartServer initialises and starts a private PostgreSQL server, stopped
// when t ends. It skips (or fails, under FIBERAUTH_REQUIRE_POSTGRES=1) when
// PostgreSQL's programs are not installed.
func StartServer(t testing.TB) *Server {
	t.Helper()
	if _, err := os.Stat(filepath.Join(pgBin, "initdb")); err != nil {
		if Required() {
			t.Fatalf("PostgreSQL is required but %s/initdb is missing: apt-get install -y postgresql", pgBin)
		}
		t.Skipf("a private PostgreSQL server needs %s/initdb (apt-get install -y postgresql)", pgBin)
	}
	// PostgreSQL refuses to run as root: as root, run it as postgres.
	run := func(args ...string) *exec.Cmd { return exec.Command(args[0], args[1:]...) }
	var owner *user.User
	if os.Geteuid() == 0 {
		var err error
		if owner, err = user.Lookup("postgres"); err != nil {
			t.Fatalf("running as root needs the postgres user: %v", err)
		}
		run = func(args ...string) *exec.Cmd {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--"}, args...)...)
		}
	}
	dir, err := os.MkdirTemp("", "fiberauth-pg-")
	if err != nil {
		t.Fatal(err)
	}
	if owner != nil {
		uid, _ := strconv.Atoi(owner.Uid)
		gid, _ := strconv.Atoi(owner.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	s := &Server{t: t, dir: dir, port: freePort(t), run: run}
	out, err := run(filepath.Join(pgBin, "initdb"), "-D", filepath.Join(dir, "data"), "-U", "postgres",
		"--auth=trust", "-E", "UTF8", "--no-sync").CombinedOutput()
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	t.Cleanup(func() {
		s.pgctl("stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	s.Start()
	return s
}

func freePort(t testing.TB) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (s *Server) pgctl(args ...string) ([]byte, error) {
	full := append([]string{filepath.Join(pgBin, "pg_ctl"), "-D", filepath.Join(s.dir, "data"), "-w", "-t", "60"}, args...)
	return s.run(full...).CombinedOutput()
}

// Start starts the server (again).
func (s *Server) Start() {
	s.t.Helper()
	opts := fmt.Sprintf("-p %d -k %s -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off", s.port, s.dir)
	if out, err := s.pgctl("start", "-o", opts, "-l", filepath.Join(s.dir, "log")); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.dir, "log"))
		s.t.Fatalf("start PostgreSQL: %v\n%s\n%s", err, out, log)
	}
}

// Stop stops the server, closing every connection to it.
func (s *Server) Stop() {
	s.t.Helper()
	if out, err := s.pgctl("stop", "-m", "fast"); err != nil {
		s.t.Fatalf("stop PostgreSQL: %v\n%s", err, out)
	}
}

// URL is the address of a new, empty database on the server.
func (s *Server) URL() string {
	s.t.Helper()
	admin := fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		s.t.Fatalf("connect to the private server: %v", err)
	}
	defer conn.Close(context.Background())
	b := make([]byte, 6)
	rand.Read(b)
	name := "d_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		s.t.Fatalf("create database: %v", err)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.port, name)
}
