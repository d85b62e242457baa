package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// soakLimits lift the per-address limits: every soak client shares one
// loopback address.
var soakLimits = []string{"REGISTRATIONS_PER_IP=100000000", "LOGIN_FAILURES_PER_IP=100000000", "LOGIN_FAILURES_PER_ACCOUNT=1000000"}

// soakDuration is how long each soak runs; SOAK_DURATION overrides it.
func soakDuration(def time.Duration) time.Duration {
	if d, err := time.ParseDuration(os.Getenv("SOAK_DURATION")); err == nil {
		return d
	}
	return def
}

var soakRuns atomic.Int64

var csrfField = regexp.MustCompile(`name="csrf_token" value="([^"]+)"`)

// soakClient drives every endpoint in turn, as one user would, and counts
// any answer other than the expected one.
type soakClient struct {
	base string
	name string
	hc   *http.Client
	errs map[string]int
	n    int
}

func (c *soakClient) expect(label string, want int, res *http.Response, err error) string {
	if err != nil {
		c.errs[label+": "+err.Error()]++
		return ""
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	c.n++
	if res.StatusCode != want {
		c.errs[fmt.Sprintf("%s: %d", label, res.StatusCode)]++
	}
	return string(b)
}

func (c *soakClient) round(i int) {
	base := c.base
	bearer := func(method, path, tok, body string) (*http.Response, error) {
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		return c.hc.Do(req)
	}
	name := fmt.Sprintf("%s_%d", c.name, i)
	body := fmt.Sprintf(`{"username":%q,"email":%q,"password":%q}`, name, name+"@example.com", password)
	res, err := c.hc.Post(base+"/register/user", "application/json", strings.NewReader(body))
	c.expect("register", 201, res, err)
	res, err = c.hc.PostForm(base+"/token", url.Values{"username": {name}, "password": {password}})
	tokBody := c.expect("token", 200, res, err)
	tok := between(tokBody, `"access_token":"`, `"`)
	res, err = c.hc.PostForm(base+"/token", url.Values{"username": {name}, "password": {"wrong password"}})
	c.expect("token wrong", 401, res, err)
	for j := 0; j < 5; j++ {
		res, err = bearer("GET", "/users/me", tok, "")
		c.expect("me", 200, res, err)
	}
	res, err = bearer("GET", "/users/me/sessions", tok, "")
	c.expect("sessions", 200, res, err)
	res, err = bearer("GET", "/users/me/events", tok, "")
	c.expect("events", 200, res, err)
	res, err = c.hc.Get(base + "/healthz")
	c.expect("healthz", 200, res, err)

	// The browser surface, with its own cookie jar.
	jar := newJar()
	bc := &http.Client{Jar: jar, Timeout: c.hc.Timeout, Transport: c.hc.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err = bc.Get(base + "/login")
	page := c.expect("login page", 200, res, err)
	csrf := between(page, `name="csrf_token" value="`, `"`)
	res, err = bc.PostForm(base+"/login", url.Values{"username": {name}, "password": {password}, "csrf_token": {csrf}})
	c.expect("login", 303, res, err)
	res, err = bc.Get(base + "/profile")
	page = c.expect("profile", 200, res, err)
	if m := csrfField.FindStringSubmatch(page); m != nil {
		csrf = m[1]
	}
	res, err = bc.PostForm(base+"/logout", url.Values{"csrf_token": {csrf}})
	c.expect("logout", 303, res, err)

	res, err = bearer("POST", "/users/me/password", tok, `{"current_password":"`+password+`","new_password":"another passphrase"}`)
	c.expect("password", 204, res, err)
	res, err = bearer("DELETE", "/users/me/sessions", tok, "")
	c.expect("end others", 204, res, err)
	res, err = c.hc.PostForm(base+"/revoke", url.Values{"token": {tok}})
	c.expect("revoke", 200, res, err)
	res, err = bearer("GET", "/users/me", tok, "")
	c.expect("me after revoke", 401, res, err)
	_, tok2, _ := token(base, name, "another passphrase")
	res, err = bearer("DELETE", "/users/me", tok2, `{"password":"another passphrase"}`)
	c.expect("delete", 204, res, err)
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	if j := strings.Index(s, b); j >= 0 {
		return s[:j]
	}
	return ""
}

// soak runs clients against base for d and returns the error counts and the
// number of requests.
func soak(base string, clients int, d time.Duration) (map[string]int, int) {
	run := soakRuns.Add(1)
	tr := &http.Transport{MaxIdleConnsPerHost: clients * 2}
	defer tr.CloseIdleConnections()
	var wg sync.WaitGroup
	var mu sync.Mutex
	errs := map[string]int{}
	total := 0
	deadline := time.Now().Add(d)
	for w := 0; w < clients; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			c := &soakClient{base: base, name: fmt.Sprintf("soak%d_%d", run, w), hc: &http.Client{Timeout: 30 * time.Second, Transport: tr}, errs: map[string]int{}}
			for i := 0; time.Now().Before(deadline); i++ {
				c.round(i)
			}
			mu.Lock()
			for k, v := range c.errs {
				errs[k] += v
			}
			total += c.n
			mu.Unlock()
		}(w)
	}
	wg.Wait()
	return errs, total
}

func fdCount(pid string) int {
	ents, err := os.ReadDir("/proc/" + pid + "/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

func rssKB(pid string) int {
	b, _ := os.ReadFile("/proc/" + pid + "/status")
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			n, _ := strconv.Atoi(strings.Fields(line)[1])
			return n
		}
	}
	return -1
}

// TestSoakProcess runs mixed traffic across every endpoint against the
// built program and checks that its open file descriptors do not grow.
func TestSoakProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: run without -short")
	}
	p := start(t, baseEnv(filepath.Join(t.TempDir(), "app.db"), soakLimits...))
	pid := strconv.Itoa(p.cmd.Process.Pid)
	// Warm up, run half, measure, run the other half, measure again: the
	// second half must not add descriptors (pools and keep-alive
	// connections are open by then).
	d := soakDuration(40 * time.Second)
	soak(p.base, 4, 2*time.Second)
	fd0 := fdCount(pid)
	errs, n := soak(p.base, 4, d/2)
	settle()
	fd1, rss1 := fdCount(pid), rssKB(pid)
	errs2, n2 := soak(p.base, 4, d/2)
	fd2 := fdCount(pid)
	for deadline := time.Now().Add(15 * time.Second); fd2 > fd1+2 && time.Now().Before(deadline); fd2 = fdCount(pid) {
		settle()
	}
	rss2 := rssKB(pid)
	for k, v := range errs2 {
		errs[k] += v
	}
	t.Logf("process soak: %d requests in %v, fds %d -> %d -> %d, RSS %d -> %d KiB", n+n2, d, fd0, fd1, fd2, rss1, rss2)
	if len(errs) > 0 {
		t.Errorf("unexpected answers: %v", errs)
	}
	if fd2 > fd1+2 {
		t.Errorf("open file descriptors grew from %d to %d and stayed there for 15 s", fd1, fd2)
	}
}

// TestSoakInProcess runs the real program through app.Run inside the test
// process, so that goroutines can be counted too.
func TestSoakInProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: run without -short")
	}
	base, stop := serveApp(t, soakLimits...)
	d := soakDuration(20 * time.Second)
	soak(base, 4, 2*time.Second)
	errs, n := soak(base, 4, d/2)
	settle()
	g1, fd1 := runtime.NumGoroutine(), fdCount("self")
	before := goroutineStacks()
	errs2, n2 := soak(base, 4, d/2)
	// Idle server workers and connections wind down over several seconds
	// (the worker pool reaps idle workers every 10 s), so the counts are
	// allowed that long to come back; a leak per request or per connection
	// would leave hundreds behind, not a few.
	g2, fd2 := settleTo(g1+2, fd1+2, 15*time.Second)
	for k, v := range errs2 {
		errs[k] += v
	}
	t.Logf("in-process soak: %d requests in %v, goroutines %d -> %d, fds %d -> %d", n+n2, d, g1, g2, fd1, fd2)
	if len(errs) > 0 {
		t.Errorf("unexpected answers: %v", errs)
	}
	if g2 > g1+2 {
		t.Errorf("goroutines grew from %d to %d and stayed there for 15 s\nbefore:\n%s\nafter:\n%s", g1, g2, before, goroutineStacks())
	}
	if fd2 > fd1+2 {
		t.Errorf("open file descriptors grew from %d to %d and stayed there for 15 s", fd1, fd2)
	}
	if err := stop(); err != nil {
		t.Errorf("Run returned %v after cancel", err)
	}
}

// settle closes the test's idle client connections (each holds two client
// goroutines here and one server goroutine in the program) and lets
// finished goroutines wind down.
func settle() {
	http.DefaultTransport.(*http.Transport).CloseIdleConnections()
	client.CloseIdleConnections()
	time.Sleep(time.Second)
	runtime.GC()
}

// settleTo waits, up to timeout, until this process's goroutines and open
// file descriptors are back at or below the given counts, and returns the
// last counts seen.
func settleTo(maxG, maxFD int, timeout time.Duration) (g, fd int) {
	deadline := time.Now().Add(timeout)
	for {
		settle()
		g, fd = runtime.NumGoroutine(), fdCount("self")
		if (g <= maxG && fd <= maxFD) || time.Now().After(deadline) {
			return g, fd
		}
	}
}

// goroutineStacks lists this process's goroutines grouped by stack.
func goroutineStacks() string {
	var b strings.Builder
	pprof.Lookup("goroutine").WriteTo(&b, 1)
	return b.String()
}
