// Package e2e tests the built program from outside: as a separate process
// (crashes, restarts, signals, start-up failures, load) and through a real
// browser.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"fiberauth/db/dbtest"
)

// binary is the program built once for every test in this package.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fiberauth-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fiberauth")
	build := exec.Command("go", "build", "-o", binary, ".")
	build.Dir = filepath.Join("..", "..")
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the program:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one running server process.
type proc struct {
	t      testing.TB
	cmd    *exec.Cmd
	base   string
	mu     sync.Mutex
	stderr bytes.Buffer
	done   chan struct{}
	found  chan string
	err    error
}

// listening finds the address in the start-up line, in text or JSON.
var listening = regexp.MustCompile(`msg=listening addr=(http://[0-9.:]+)|"msg":"listening","addr":"(http://[0-9.:]+)"`)

// baseEnv is what every process gets: cheap bcrypt, a free port, logs as
// text (the tests read them), and the database: a SQLite file, or a
// PostgreSQL URL.
func baseEnv(database string, extra ...string) []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "ADDR=127.0.0.1:0", "BCRYPT_COST=4", "LOG_FORMAT=text"}
	if strings.HasPrefix(database, "postgres://") {
		// Instances on one database share one issuer.
		env = append(env, "DATABASE_URL="+database, "ISSUER=http://fiberauth.test")
	} else {
		env = append(env, "DATABASE_PATH="+database)
	}
	return append(env, extra...)
}

// engines runs fn once with a fresh SQLite file and once with a fresh
// PostgreSQL schema (when TEST_DATABASE_URL is set).
func engines(t *testing.T, fn func(t *testing.T, database string)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, filepath.Join(t.TempDir(), "app.db")) })
	t.Run("postgres", func(t *testing.T) { fn(t, dbtest.URL(t)) })
}

// start runs the program with env and waits until it listens.
func start(t testing.TB, env []string) *proc {
	t.Helper()
	p := launch(t, env)
	p.waitListening()
	return p
}

// launch runs the program with env without waiting for it.
func launch(t testing.TB, env []string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(binary), done: make(chan struct{}), found: make(chan string, 1)}
	p.cmd.Env = env
	pipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pipe)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr.WriteString(line + "\n")
			p.mu.Unlock()
			if m := listening.FindStringSubmatch(line); m != nil {
				select {
				case p.found <- m[1] + m[2]:
				default:
				}
			}
		}
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// waitListening waits until the program listens and notes its address.
func (p *proc) waitListening() {
	p.t.Helper()
	select {
	case p.base = <-p.found:
	case <-p.done:
		p.t.Fatalf("server exited before listening: %v\n%s", p.err, p.log())
	case <-time.After(60 * time.Second):
		p.t.Fatalf("server did not listen within 60s\n%s", p.log())
	}
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

// stop sends sig and waits for the exit, returning how long it took.
func (p *proc) stop(sig os.Signal) (time.Duration, error) {
	begin := time.Now()
	p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return time.Since(begin), fmt.Errorf("did not exit within 20s after %v", sig)
	}
	return time.Since(begin), p.err
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

// register posts a registration and returns the status.
func register(base, username, password string) (int, error) {
	body := fmt.Sprintf(`{"username":%q,"email":%q,"password":%q}`, username, username+"@example.com", password)
	res, err := client.Post(base+"/register/user", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

// token signs in and returns the status and the token.
func token(base, username, password string) (int, string, error) {
	res, err := client.PostForm(base+"/token", url.Values{"username": {username}, "password": {password}})
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(res.Body).Decode(&body)
	return res.StatusCode, body.AccessToken, nil
}

// me calls GET /users/me with a bearer token and returns the status.
func me(base, tok string) (int, error) {
	req, _ := http.NewRequest(http.MethodGet, base+"/users/me", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	return res.StatusCode, nil
}

const password = "correct horse battery"

func TestRestartKeepsTokensAndRevocations(t *testing.T) { engines(t, restartKeepsTokensAndRevocations) }

func restartKeepsTokensAndRevocations(t *testing.T, db string) {
	// The restarted server listens on another free port: the issuer its
	// tokens name is set, as a deployment's is.
	env := baseEnv(db, "ISSUER=http://fiberauth.test")
	p := start(t, env)
	if st, err := register(p.base, "alice", password); err != nil || st != 201 {
		t.Fatalf("register: %d %v", st, err)
	}
	_, kept, _ := token(p.base, "alice", password)
	_, revoked, _ := token(p.base, "alice", password)
	res, err := client.PostForm(p.base+"/revoke", url.Values{"token": {revoked}})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", res, err)
	}
	res.Body.Close()
	if _, err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v\n%s", err, p.log())
	}

	p = start(t, env)
	if st, _ := me(p.base, kept); st != 200 {
		t.Errorf("token issued before the restart: %d, want 200", st)
	}
	if st, _ := me(p.base, revoked); st != 401 {
		t.Errorf("token revoked before the restart: %d, want 401", st)
	}
}

func TestConcurrentRegistrations(t *testing.T) { engines(t, concurrentRegistrations) }

func concurrentRegistrations(t *testing.T, db string) {
	p := start(t, baseEnv(db))
	count := func(n int, name func(i int) string) map[int]int {
		statuses := map[int]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		gate := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				<-gate
				st, err := register(p.base, name(i), password)
				if err != nil {
					t.Errorf("request %d: %v", i, err)
				}
				mu.Lock()
				statuses[st]++
				mu.Unlock()
			}(i)
		}
		close(gate)
		wg.Wait()
		return statuses
	}
	same := count(40, func(int) string { return "samename" })
	if same[201] != 1 || same[409] != 39 || len(same) != 2 {
		t.Errorf("40 registrations of one username: %v, want 1×201 and 39×409", same)
	}
	distinct := count(150, func(i int) string { return fmt.Sprintf("user%03d", i) })
	if distinct[201] != 150 {
		t.Errorf("150 registrations of distinct usernames: %v, want 150×201", distinct)
	}
	if strings.Contains(p.log(), "database is locked") {
		t.Error("the log mentions \"database is locked\"")
	}
}

func TestMixedLoad(t *testing.T) {
	p := start(t, baseEnv(filepath.Join(t.TempDir(), "app.db")))
	const users = 20
	toks := make([]string, users)
	for i := range toks {
		name := fmt.Sprintf("mixed%02d", i)
		if st, _ := register(p.base, name, password); st != 201 {
			t.Fatalf("register %s: %d", name, st)
		}
		_, toks[i], _ = token(p.base, name, password)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	bad := map[string]int{}
	deadline := time.Now().Add(3 * time.Second)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				u := (w + i) % users
				var st int
				var err error
				if i%4 == 0 {
					st, _, err = token(p.base, fmt.Sprintf("mixed%02d", u), password)
				} else {
					st, err = me(p.base, toks[u])
				}
				if err != nil || st != 200 {
					mu.Lock()
					bad[fmt.Sprintf("%d %v", st, err)]++
					mu.Unlock()
				}
			}
		}(w)
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Errorf("failures under mixed load: %v", bad)
	}
	if strings.Contains(p.log(), "database is locked") {
		t.Error("the log mentions \"database is locked\"")
	}
}

func TestGracefulShutdown(t *testing.T) { engines(t, gracefulShutdown) }

func gracefulShutdown(t *testing.T, db string) {
	p := start(t, baseEnv(db, "BCRYPT_COST=12"))
	register(p.base, "alice", password) // cost 12: about a quarter second of bcrypt
	// Open the connections first, so that the sign-ins below are on the
	// server as soon as they are sent.
	const n = 4
	var warm sync.WaitGroup
	for i := 0; i < n; i++ {
		warm.Add(1)
		go func() { defer warm.Done(); client.Get(p.base + "/healthz") }()
	}
	warm.Wait()
	// Start sign-ins (each a cost-12 bcrypt, two at a time on two workers),
	// then SIGTERM while they run.
	type result struct {
		status int
		at     time.Time
	}
	results := make(chan result, n)
	for i := 0; i < n; i++ {
		go func() {
			st, _, err := token(p.base, "alice", password)
			if err != nil {
				st = -1
			}
			results <- result{st, time.Now()}
		}()
	}
	time.Sleep(150 * time.Millisecond)
	signalled := time.Now()
	took, err := p.stop(syscall.SIGTERM)
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, p.log())
	}
	if took > 10*time.Second {
		t.Errorf("exit took %v, want under 10s", took)
	}
	after := 0
	for i := 0; i < n; i++ {
		r := <-results
		if r.status != 200 {
			t.Errorf("in-flight request finished with %d, want 200", r.status)
		}
		if r.at.After(signalled) {
			after++
		}
	}
	if after == 0 {
		t.Error("every sign-in had finished before SIGTERM: nothing was in flight")
	}
	t.Logf("%d of %d sign-ins were still running at SIGTERM; exit took %v", after, n, took)
	if !strings.Contains(p.log(), "msg=stopped") {
		t.Errorf("no clean stop in the log:\n%s", p.log())
	}
}

// runFails runs the program and expects it to exit non-zero with one clear
// line on stderr.
func runFails(t *testing.T, env []string, want string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary)
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatalf("exited 0, want a failure")
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() <= 0 {
		t.Fatalf("exit: %v", err)
	}
	out := strings.TrimSpace(stderr.String())
	if strings.Count(out, "\n") != 0 {
		t.Errorf("stderr is not one line:\n%s", out)
	}
	if strings.Contains(out, "panic") || strings.Contains(out, "goroutine") {
		t.Errorf("panic trace on stderr:\n%s", out)
	}
	if !strings.Contains(out, want) {
		t.Errorf("stderr %q does not say %q", out, want)
	}
	return out
}

func TestBadStartupConditions(t *testing.T) {
	dir := t.TempDir()
	notDB := filepath.Join(dir, "notes.db")
	const notes = "not a database, but precious"
	os.WriteFile(notDB, []byte(notes), 0o600)

	// An existing database must survive every refused start untouched.
	good := filepath.Join(dir, "good.db")
	p := start(t, baseEnv(good))
	register(p.base, "alice", password)
	busy := strings.TrimPrefix(p.base, "http://")

	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"missing directory", baseEnv(filepath.Join(dir, "missing", "app.db")), "does not exist"},
		{"not SQLite", baseEnv(notDB), "not a SQLite database"},
		{"directory is a file", baseEnv(filepath.Join(notDB, "app.db")), "not a directory"},
		{"port in use", append(baseEnv(good), "ADDR="+busy), "address already in use"},
		{"short SECRET_KEY", append(baseEnv(good), "SECRET_KEY=too-short"), "SECRET_KEY"},
		{"bad BCRYPT_COST", append(baseEnv(good), "BCRYPT_COST=99"), "BCRYPT_COST"},
		{"bad expiry", append(baseEnv(good), "ACCESS_TOKEN_EXPIRE_MINUTES=soon"), "ACCESS_TOKEN_EXPIRE_MINUTES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { runFails(t, tt.env, tt.want) })
	}
	t.Run("unwritable directory", func(t *testing.T) { unwritableDirectory(t) })
	if b, _ := os.ReadFile(notDB); string(b) != notes {
		t.Error("the non-SQLite file was modified")
	}
	if st, _, _ := token(p.base, "alice", password); st != 200 {
		t.Errorf("existing data damaged: sign-in gives %d", st)
	}
}

// unwritableDirectory starts the program on a database in a directory it
// may not write. Root may write anywhere, so as root the program is run as
// the user nobody (through runuser), from a copy it can execute.
func unwritableDirectory(t *testing.T) {
	dir, err := os.MkdirTemp("", "fiberauth-ro-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	ro := filepath.Join(dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	os.Chmod(ro, 0o555)
	env := baseEnv(filepath.Join(ro, "app.db"))
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		runuser, err := exec.LookPath("runuser")
		if err != nil {
			t.Fatalf("running as root needs runuser (util-linux) to drop privileges: %v", err)
		}
		bin := filepath.Join(dir, "fiberauth")
		data, err := os.ReadFile(binary)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(bin, data, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd = exec.Command(runuser, append([]string{"-u", "nobody", "--", "env", "-i"}, append(env, bin)...)...)
	} else {
		cmd = exec.Command(binary)
		cmd.Env = env
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	out := strings.TrimSpace(stderr.String())
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() <= 0 {
		t.Fatalf("exit: %v, want a failure; stderr: %s", err, out)
	}
	if strings.Count(out, "\n") != 0 || strings.Contains(out, "panic") {
		t.Errorf("stderr is not one clear line:\n%s", out)
	}
	if !strings.Contains(out, "cannot open database") || !strings.Contains(out, "writable") {
		t.Errorf("stderr %q does not say the directory is not writable", out)
	}
	if _, err := os.Stat(filepath.Join(ro, "app.db")); err == nil {
		t.Error("a database file was created in the read-only directory")
	}
}

// The real signals: SIGINT starts a graceful stop, which waits for a
// connection in the middle of sending its request; a second SIGINT ends
// the program at once, with a non-zero status.
func TestSecondSignal(t *testing.T) {
	p := start(t, baseEnv(filepath.Join(t.TempDir(), "app.db")))
	conn, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Half a request: the server waits for the rest.
	fmt.Fprint(conn, "POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nuser")
	time.Sleep(100 * time.Millisecond) // let the server start reading it
	p.cmd.Process.Signal(syscall.SIGINT)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.log(), "stopping gracefully") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case <-p.done:
		t.Fatalf("exited after one signal with a request in flight:\n%s", p.log())
	default:
	}
	took, err := p.stop(syscall.SIGINT)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Errorf("exit after the second signal: %v, want status 1\n%s", err, p.log())
	}
	if !strings.Contains(p.log(), "second signal") || strings.Contains(p.log(), "msg=stopped") {
		t.Errorf("log does not show a forced stop:\n%s", p.log())
	}
	t.Logf("exited %v after the second signal", took)
}

// TestLogsAreJSONOffTerminal: with its standard error not a terminal and
// LOG_FORMAT unset, the program logs JSON lines, one object each.
func TestLogsAreJSONOffTerminal(t *testing.T) {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "ADDR=127.0.0.1:0", "BCRYPT_COST=4",
		"DATABASE_PATH=" + filepath.Join(t.TempDir(), "app.db")}
	p := start(t, env)
	res, err := http.Get(p.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if _, err := p.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(p.log()), "\n")
	var request bool
	for _, line := range lines {
		var v map[string]any
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("not a JSON line: %s", line)
		}
		request = request || (v["msg"] == "request" && v["route"] == "/healthz")
	}
	if !request {
		t.Fatalf("the request to /healthz is not logged:\n%s", p.log())
	}
}
