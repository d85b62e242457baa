package app

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"fiberauth/app/oidc"
	"fiberauth/db"
)

// cli runs a command on ts's database, as another process would: with its
// own store. stdin is what it reads.
func (ts *testServer) cli(stdin string, args ...string) (string, error) {
	ts.t.Helper()
	env := map[string]string{"BCRYPT_COST": "4", "DATABASE_PATH": ts.s.cfg.DatabasePath, "DATABASE_URL": ts.s.cfg.DatabaseURL,
		"PUBLIC_URL": ts.s.cfg.PublicURL}
	var out bytes.Buffer
	err := runCommand(context.Background(), args, func(k string) string { return env[k] }, strings.NewReader(stdin), &out)
	return out.String(), err
}

func (ts *testServer) mustCLI(stdin string, args ...string) string {
	ts.t.Helper()
	out, err := ts.cli(stdin, args...)
	if err != nil {
		ts.t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	return out
}

// seeChange waits until the server sees a change another process made:
// at once on SQLite after reading the notices, and as soon as the
// notification arrives on PostgreSQL.
func (ts *testServer) seeChange(check func() bool) {
	ts.t.Helper()
	if err := ts.store.PollNotices(context.Background()); err != nil {
		ts.t.Fatal(err)
	}
	if ts.store.Engine() == db.SQLite {
		if !check() {
			ts.t.Fatal("the change is not seen after reading the notices")
		}
		return
	}
	for deadline := time.Now().Add(10 * time.Second); !check(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			ts.t.Fatal("the change is not seen 10 s later")
		}
	}
}

// TestCommands runs each command of the command line against a running
// server's database, and checks what the server sees.
func TestCommands(t *testing.T) {
	onEngines(t, func(t *testing.T, env ...string) {
		ts := newTestServer(t, env...)

		out := ts.mustCLI(pw+"\n", "users", "create", "--username", "root", "--email", "root@example.com", "--role", "admin")
		if !strings.HasPrefix(out, "created root (id ") || !strings.Contains(out, "role admin") {
			t.Fatalf("users create said %q", out)
		}
		root := ts.token("root", pw)
		if got := ts.get("/users/me", bearer(root)...).json(t)["role"]; got != "admin" {
			t.Fatalf("role of the created admin = %v", got)
		}
		// A password is never taken from an argument.
		if _, err := ts.cli("", "users", "create", "--username", "eve", "--email", "eve@example.com", "--password", pw); err == nil {
			t.Fatal("users create took --password")
		}
		if _, err := ts.cli("", "users", "create", "--username", "eve", "--email", "eve@example.com"); err == nil ||
			!strings.Contains(err.Error(), "no password") {
			t.Fatalf("users create without a password: %v", err)
		}
		if _, err := ts.cli("short\n", "users", "create", "--username", "eve", "--email", "eve@example.com"); err == nil ||
			!strings.Contains(err.Error(), "at least 8 characters") {
			t.Fatalf("users create with a short password: %v", err)
		}
		if _, err := ts.cli(pw+"\n", "users", "create", "--username", "root", "--email", "other@example.com"); err == nil ||
			!strings.Contains(err.Error(), "That username is already taken.") {
			t.Fatalf("users create with a taken name: %v", err)
		}

		ts.register("alice", "alice@example.com", pw)
		alice := ts.token("alice", pw)
		out = ts.mustCLI("", "users", "list", "--search", "ALICE@")
		if !strings.Contains(out, "alice@example.com") || strings.Contains(out, "root@") || !strings.HasSuffix(out, "1 account\n") {
			t.Fatalf("users list --search:\n%s", out)
		}
		if out := ts.mustCLI("", "users", "list"); !strings.HasSuffix(out, "2 accounts\n") {
			t.Fatalf("users list:\n%s", out)
		}

		// Changes made by another process reach the running server.
		wantStatus(t, ts.get("/users/me", bearer(alice)...), http.StatusOK) // now cached
		if out := ts.mustCLI("", "users", "set-role", "alice@example.com", "premium"); out != "alice is now premium (was basic)\n" {
			t.Fatalf("users set-role said %q", out)
		}
		ts.seeChange(func() bool { return ts.get("/users/me", bearer(alice)...).json(t)["role"] == "premium" })
		if out := ts.mustCLI("", "users", "end-sessions", "alice"); out != "ended 1 session of alice\n" {
			t.Fatalf("users end-sessions said %q", out)
		}
		ts.seeChange(func() bool { return ts.get("/users/me", bearer(alice)...).StatusCode == http.StatusUnauthorized })

		for range 5 {
			ts.postForm("/token", url.Values{"username": {"alice"}, "password": {"wrong password"}})
		}
		wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}), http.StatusTooManyRequests)
		ts.mustCLI("", "limits", "clear", "alice")
		alice = ts.token("alice", pw)

		if _, err := ts.cli("", "users", "set-role", "root", "basic"); err == nil || !strings.Contains(err.Error(), "last admin") {
			t.Fatalf("demoting the last admin: %v", err)
		}
		if _, err := ts.cli("", "users", "set-role", "alice", "owner"); err == nil || !strings.Contains(err.Error(), "Role must be") {
			t.Fatalf("an unknown role: %v", err)
		}
		ts.mustCLI("", "users", "delete", "alice")
		ts.seeChange(func() bool { return ts.get("/users/me", bearer(alice)...).StatusCode == http.StatusUnauthorized })
		if _, err := ts.cli("", "users", "delete", "alice"); err == nil || ExitCode(err) != 1 || !strings.Contains(err.Error(), `no account is called "alice"`) {
			t.Fatalf("deleting a missing account: %v", err)
		}

		// Each change is in the audit list, as done by the command line.
		res := ts.get("/admin/api/audit", bearer(root)...)
		var actions []string
		for _, e := range res.json(t)["entries"].([]any) {
			e := e.(map[string]any)
			if e["admin"] != "the command line" {
				t.Errorf("audit entry %v: not from the command line", e)
			}
			actions = append(actions, e["action"].(string))
		}
		if got := strings.Join(actions, " "); got != "delete clear_limits end_sessions set_role create" {
			t.Fatalf("audit actions = %q", got)
		}

		if out := ts.mustCLI("", "migrate"); !strings.Contains(out, "schema version") {
			t.Fatalf("migrate said %q", out)
		}
		copyPath := filepath.Join(t.TempDir(), "copy.db")
		_, err := ts.cli("", "backup", copyPath)
		if ts.store.Engine() == db.Postgres {
			if !errors.Is(err, db.ErrNoBackup) {
				t.Fatalf("backup on PostgreSQL: %v", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		if fi, err := os.Stat(copyPath); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("backup file: %v, mode %v; want 0600", err, fi.Mode())
		}
		if _, err := ts.cli("", "backup", copyPath); err == nil || !strings.Contains(err.Error(), "already exists") {
			t.Fatalf("backup over an existing file: %v", err)
		}
		copied, err := db.Open(context.Background(), db.Options{Path: copyPath})
		if err != nil {
			t.Fatal(err)
		}
		defer copied.Close()
		if u, err := copied.UserByUsernameKey(context.Background(), "root"); err != nil || u.Role != "admin" {
			t.Fatalf("root in the backup: %+v, %v", u, err)
		}
	})
}

// TestCommandLineErrors: a wrong command line gets one clear line and exit
// status 2, before any database is opened.
func TestCommandLineErrors(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"DATABASE_PATH": filepath.Join(dir, "app.db")}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frob"}, `"frob" is not a command`},
		{[]string{"users"}, "users needs one of: list, create, set-role, end-sessions, delete"},
		{[]string{"users", "set-role", "alice"}, "users set-role needs 2 arguments"},
		{[]string{"users", "delete"}, "users delete needs 1 argument"},
		{[]string{"users", "create", "--username", "a"}, "users create needs --email"},
		{[]string{"users", "create"}, "users create needs --username and --email"},
		{[]string{"users", "list", "--search"}, "users list: --search needs a value"},
		{[]string{"backup", "a.db", "b.db"}, `backup: unexpected argument "b.db"`},
	} {
		var out bytes.Buffer
		err := runCommand(context.Background(), tc.args, func(k string) string { return env[k] }, strings.NewReader(""), &out)
		if err == nil || ExitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v (exit %d), want %q and exit 2", tc.args, err, ExitCode(err), tc.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "app.db")); err == nil {
		t.Error("a wrong command line created the database")
	}
	var out bytes.Buffer
	if err := runCommand(context.Background(), []string{"help"}, func(string) string { return "" }, nil, &out); err != nil ||
		!strings.Contains(out.String(), "users create --username U --email E [--role R]") {
		t.Fatalf("help: %v\n%s", err, out.String())
	}
}

// TestBackupNeverWritesThroughAPath: the copy is made in a private folder
// beside the target and linked into place, so that nothing can be made to
// receive it in between: an existing file and a symbolic link at the target
// are refused (the link's target is not created), the copy is private even
// under a permissive umask, and nothing is left behind.
func TestBackupNeverWritesThroughAPath(t *testing.T) {
	ts := newTestServer(t)
	ts.makeAdmin("root")
	dir := t.TempDir()
	env := map[string]string{"DATABASE_PATH": ts.path}
	backupTo := func(path string) error {
		return runCommand(context.Background(), []string{"backup", path}, func(k string) string { return env[k] }, nil, &strings.Builder{})
	}
	elsewhere := filepath.Join(t.TempDir(), "stolen.db")
	link := filepath.Join(dir, "link.db")
	if err := os.Symlink(elsewhere, link); err != nil {
		t.Fatal(err)
	}
	if err := backupTo(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Fatalf("backup to a symbolic link: %v", err)
	}
	if _, err := os.Stat(elsewhere); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the backup went through the link: %v", err)
	}
	old := syscall.Umask(0)
	err := backupTo(filepath.Join(dir, "copy.db"))
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(filepath.Join(dir, "copy.db")); err != nil || fi.Mode() != 0o600 {
		t.Fatalf("backup file: %v, mode %v; want a regular file, 0600", err, fi.Mode())
	}
	// Someone puts a link at the target while the copy is being made: the
	// copy does not go through it.
	store, err := db.Open(context.Background(), db.Options{Path: ts.path})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	racing := filepath.Join(dir, "racing.db")
	store.Hooks.BeforeBackupLands = func(path string) {
		if err := os.Symlink(elsewhere, path); err != nil {
			t.Error(err)
		}
	}
	if err := store.Backup(context.Background(), racing); err == nil {
		t.Fatal("a backup landed on a link planted while it was made")
	}
	if _, err := os.Stat(elsewhere); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the backup went through the planted link: %v", err)
	}
	os.Remove(racing)
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Fatalf("left in the folder: %v; want the link and the copy", names)
	}
}

// A client id is never read as a flag: new ids start with a letter or a
// digit, and one that starts with "-" (made before) is named after "--".
func TestClientIDsOnTheCommandLine(t *testing.T) {
	ts := newTestServer(t)
	for range 200 {
		id, _ := ts.client(t, oidc.ClientInput{RedirectURIs: []string{"https://app.example.com/cb"}})
		if id[0] == '-' || id[0] == '_' {
			t.Fatalf("client id %q reads as a flag", id)
		}
	}
	if err := ts.store.CreateClient(context.Background(), db.Client{ID: "-dashed", Name: "Old", RedirectURIs: []string{"https://a.example/cb"},
		Scopes: []string{"openid"}, IDTokenAlg: "RS256", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.cli("", "clients", "delete", "-dashed"); err == nil {
		t.Fatal("an id starting with - was taken without --")
	}
	ts.mustCLI("", "clients", "delete", "--", "-dashed")
	if _, err := ts.store.ClientByID(context.Background(), "-dashed"); err != db.ErrNotFound {
		t.Fatalf("after clients delete -- -dashed: %v", err)
	}
}
