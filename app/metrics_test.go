package app

import (
	"fiberauth/app/mail/mailtest"

	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// scrape reads /metrics with the metrics secret.
func (ts *testServer) scrape() string {
	ts.t.Helper()
	res := ts.get("/metrics", bearer(metricsSecret)...)
	wantStatus(ts.t, res, http.StatusOK)
	return res.Body
}

// sample returns the value of the series written exactly as series in an
// exposition (name{labels} in the order Prometheus writes them), or -1.
func sample(exposition, series string) float64 {
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

func wantSample(t *testing.T, exposition, series string, want float64) {
	t.Helper()
	if got := sample(exposition, series); got != want {
		t.Errorf("%s = %v, want %v", series, got, want)
	}
}

// TestMetrics drives each kind of event once or more and reads it back
// from /metrics; no label holds a name, an address, a token or a raw path.
func TestMetrics(t *testing.T) {
	ts := newTestServer(t, "METRICS_TOKEN", metricsSecret, "TRUSTED_PROXIES", "192.0.2.1")
	res := ts.get("/metrics")
	wantStatus(t, res, http.StatusUnauthorized)
	if res.Header.Get("WWW-Authenticate") == "" {
		t.Error("401 from /metrics without WWW-Authenticate")
	}
	wantStatus(t, ts.get("/metrics", bearer("wrong-secret-wrong-secret")...), http.StatusUnauthorized)
	wantStatus(t, newTestServer(t).get("/metrics", bearer(metricsSecret)...), http.StatusNotFound)

	from := []string{"X-Forwarded-For", "198.51.100.77"}
	ts.register("alice", "alice@example.com", pw)
	first := ts.pairFrom(ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}, from...))
	ts.postForm("/token", url.Values{"username": {"alice"}, "password": {"wrong password"}}, from...)
	ts.postForm("/token", url.Values{"username": {"nobody-at-all"}, "password": {"wrong password"}}, from...)
	b := ts.browser()
	wantStatus(t, b.login("alice", pw), http.StatusSeeOther)
	for range 5 {
		ts.postForm("/token", url.Values{"username": {"alice"}, "password": {"wrong password"}})
	}
	wantStatus(t, ts.postForm("/token", url.Values{"username": {"alice"}, "password": {pw}}), http.StatusTooManyRequests)

	second := ts.pairFrom(ts.refresh(first.Refresh))
	ts.pairFrom(ts.refresh(second.Refresh))
	wantStatus(t, ts.refresh(first.Refresh), http.StatusBadRequest) // a grandparent: reuse
	wantStatus(t, b.submit("/profile", "/logout", url.Values{}), http.StatusSeeOther)
	wantStatus(t, ts.get("/users/me", bearer(second.Access)...), http.StatusUnauthorized)
	wantStatus(t, ts.get("/no/such/page/alice-secret-path"), http.StatusNotFound)

	m := ts.scrape()
	wantSample(t, m, `fiberauth_registrations_total`, 1)
	wantSample(t, m, `fiberauth_sign_ins_total{outcome="success",surface="api"}`, 1)
	wantSample(t, m, `fiberauth_sign_ins_total{outcome="success",surface="page"}`, 1)
	wantSample(t, m, `fiberauth_sign_ins_total{outcome="wrong_password",surface="api"}`, 6)
	wantSample(t, m, `fiberauth_sign_ins_total{outcome="unknown_user",surface="api"}`, 1)
	wantSample(t, m, `fiberauth_sign_ins_total{outcome="throttled",surface="api"}`, 1)
	wantSample(t, m, `fiberauth_token_refreshes_total{outcome="success"}`, 2)
	wantSample(t, m, `fiberauth_token_refreshes_total{outcome="reused"}`, 1)
	wantSample(t, m, `fiberauth_sessions_ended_total{reason="refresh_reused"}`, 1)
	wantSample(t, m, `fiberauth_sessions_ended_total{reason="sign_out"}`, 1)
	wantSample(t, m, `fiberauth_http_requests_total{method="POST",route="/token",status="2xx"}`, 3)
	wantSample(t, m, `fiberauth_http_requests_total{method="GET",route="/users/me",status="4xx"}`, 1)
	wantSample(t, m, `fiberauth_http_requests_total{method="GET",route="other",status="4xx"}`, 1)
	if sample(m, `fiberauth_http_request_duration_seconds_count{method="POST",route="/token",status="4xx"}`) < 8 {
		t.Error("no latency samples for refused sign-ins")
	}
	if sample(m, `fiberauth_password_hash_wait_seconds_count`) < 10 {
		t.Error("password hash waits not counted")
	}
	if sample(m, `fiberauth_password_hash_queue_depth`) != 0 {
		t.Error("the hash queue is not empty at rest")
	}
	if sample(m, `fiberauth_session_cache_hits_total`) < 0 || sample(m, `fiberauth_session_cache_misses_total`) < 1 {
		t.Error("session cache counts missing")
	}
	for _, want := range []string{`go_sql_open_connections{db_name="write"}`, "go_goroutines ", "process_resident_memory_bytes "} {
		if !strings.Contains(m, want) {
			t.Errorf("exposition lacks %s", want)
		}
	}

	// Nothing personal or secret in any label or value.
	for _, secret := range []string{"alice", "nobody-at-all", "198.51.100.77", first.Access, first.Refresh, pw, "alice-secret-path"} {
		if strings.Contains(m, secret) {
			t.Errorf("the exposition holds %q", secret)
		}
	}
	routes := map[string]bool{"other": true, "/static/*": true}
	for _, r := range ts.s.table {
		routes[r.Path] = true
	}
	for _, match := range regexp.MustCompile(`route="([^"]*)"`).FindAllStringSubmatch(m, -1) {
		if !routes[match[1]] {
			t.Errorf("route label %q is not a route pattern", match[1])
		}
	}

	problems, err := testutil.GatherAndLint(ts.s.metrics.Registry())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	promtool(t, m)
}

// promtool checks an exposition with Prometheus's own checker. It is
// skipped where promtool is not installed, unless
// FIBERAUTH_REQUIRE_PROMTOOL=1 (set by .ci/run).
func promtool(t *testing.T, exposition string) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("FIBERAUTH_REQUIRE_PROMTOOL") == "1" {
			t.Fatal("promtool is not installed (apt-get install -y prometheus)")
		}
		t.Log("promtool not installed: exposition not checked by it")
		return
	}
	cmd := exec.Command(bin, "check", "metrics")
	cmd.Stdin = strings.NewReader(exposition)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check metrics: %v\n%s", err, out)
	}
}

// TestMetricsAddr: METRICS_ADDR serves /metrics on a listener of its own,
// without authentication, while the main listener keeps it hidden.
func TestMetricsAddr(t *testing.T) {
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()
	dir := t.TempDir()
	env := map[string]string{"ADDR": "127.0.0.1:0", "DATABASE_PATH": dir + "/app.db", "BCRYPT_COST": "4", "METRICS_ADDR": addr}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard, io.Discard, runOptions{ready: ready})
	}()
	var main string
	select {
	case main = <-ready:
	case err := <-done:
		t.Fatalf("run: %v", err)
	}
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !bytes.Contains(body, []byte("fiberauth_registrations_total 0")) {
		t.Fatalf("METRICS_ADDR /metrics: %d\n%.300s", res.StatusCode, body)
	}
	res, err = http.Get("http://" + main + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("/metrics on the main listener without METRICS_TOKEN: %d, want 404", res.StatusCode)
	}
}

// TestLogs: every request is logged at info with its id, method, route
// pattern, status, duration, address and, once known, user id; failed
// sign-ins with their reason. No password, token, cookie or secret ever
// reaches the log.
func TestLogs(t *testing.T) {
	var buf syncBuffer
	const secretKey = "a-signing-secret-of-at-least-32-bytes!!"
	sink := mailtest.Start(t)
	ts := newLoggedServer(t, &buf, "LOG_LEVEL", "debug", "SECRET_KEY", secretKey, "METRICS_TOKEN", metricsSecret,
		"INTROSPECTION_TOKENS", introspectionSecret, "SMTP_URL", sink.URL())
	const newPassword = "a brand new passphrase 42"
	ts.register("alice", "alice@example.com", pw)
	ts.makeAdmin("root")
	p := ts.signIn("alice")
	p2 := ts.pairFrom(ts.refresh(p.Refresh))
	ts.postForm("/token", url.Values{"username": {"alice"}, "password": {"a wrong guess 1234"}})
	ts.postForm("/token", url.Values{"username": {"typed-password-here"}, "password": {"another wrong guess"}})
	ts.postForm("/introspect", url.Values{"token": {p2.Access}}, bearer(introspectionSecret)...)
	ts.get("/users/me", bearer(p2.Access)...)
	ts.scrape()
	b := ts.browser()
	b.login("alice", pw)
	cookies := b.cookieHeader()
	b.submit("/profile/password", "/profile/password", url.Values{"current_password": {pw}, "new_password": {newPassword}})
	root := ts.token("root", pw)
	ts.send("PUT", fmt.Sprintf("/admin/api/users/%d/role", ts.userID("alice")), `{"role": "premium"}`, bearer(root)...)
	ts.postForm("/revoke", url.Values{"token": {p2.Refresh}})
	// A password reset with a code from the mail.
	ts.flushMail()
	verifyCode := sink.Last(t, "alice@example.com").Code()
	ts.postJSON("/password/forgot", `{"login":"alice"}`)
	ts.flushMail()
	resetCode := sink.Last(t, "alice@example.com").Code()
	const resetPassword = "a reset passphrase 99"
	wantStatus(t, ts.postJSON("/password/reset", `{"login":"alice","code":"`+resetCode+`","new_password":"`+resetPassword+`"}`), http.StatusNoContent)
	ts.s.acct.FlushEvents()
	ts.s.FlushLog()

	log := buf.String()
	secrets := []string{pw, newPassword, "a wrong guess 1234", "another wrong guess", "typed-password-here",
		p.Access, p.Refresh, p2.Access, p2.Refresh, root, secretKey, metricsSecret, introspectionSecret,
		verifyCode, resetCode, strings.ReplaceAll(verifyCode, "-", ""), strings.ReplaceAll(resetCode, "-", ""), resetPassword}
	for _, c := range strings.Split(cookies, "; ") {
		if _, v, ok := strings.Cut(c, "="); ok && len(v) >= 16 {
			secrets = append(secrets, v)
		}
	}
	for _, secret := range secrets {
		if strings.Contains(log, secret) {
			t.Errorf("the log holds a secret: %q", secret)
		}
	}

	var requests, failures int
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		switch line["msg"] {
		case "request":
			requests++
			if line["level"] != "INFO" {
				t.Errorf("request logged at %v: %s", line["level"], sc.Text())
			}
			for _, k := range []string{"request_id", "method", "route", "status", "duration", "ip"} {
				if _, ok := line[k]; !ok {
					t.Errorf("request line without %s: %s", k, sc.Text())
				}
			}
			if line["route"] == "/users/me" && line["user_id"] == nil {
				t.Errorf("a signed-in request without user_id: %s", sc.Text())
			}
		case "sign-in failed":
			failures++
			if line["level"] != "INFO" || line["outcome"] == nil || line["ip"] == nil {
				t.Errorf("sign-in failure line: %s", sc.Text())
			}
		}
	}
	if requests < 12 || failures != 2 {
		t.Fatalf("%d request lines and %d sign-in failures logged; want at least 12 and 2\n%s", requests, failures, log)
	}
	if !strings.Contains(log, `"outcome":"unknown_user"`) || !strings.Contains(log, `"outcome":"wrong_password"`) {
		t.Errorf("sign-in failures without their reason:\n%s", log)
	}
}
