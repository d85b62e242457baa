// Package metrics holds the service's Prometheus metrics. A nil *Metrics
// records nothing, so that code built without metrics needs no checks.
//
// No label ever holds a username, an address, a token or a raw path:
// routes are their patterns, and every other label takes a value from a
// short fixed list.
package metrics

import (
	"database/sql"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const namespace = "fiberauth"

// Sign-in outcomes.
const (
	Success       = "success"
	WrongPassword = "wrong_password"
	UnknownUser   = "unknown_user"
	Throttled     = "throttled"
	MFARequired   = "mfa_required"
	Busy          = "busy"
	InvalidScope  = "invalid_scope"
	Unverified    = "unverified"
	WrongCode     = "wrong_code"
	WrongPasskey  = "wrong_passkey"
	Error         = "error"
)

// Metrics is the service's set of metrics, in a registry of its own.
type Metrics struct {
	reg *prometheus.Registry

	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	// series holds each route, method and status class's counter and
	// histogram once looked up (requestSeries), so that a request pays one
	// map read for both instead of hashing its labels twice.
	series        sync.Map
	signIns       *prometheus.CounterVec
	registrations prometheus.Counter
	refreshes     *prometheus.CounterVec
	ended         *prometheus.CounterVec
	hashWait      prometheus.Histogram
	mail          *prometheus.CounterVec
}

// Sources are the readings metrics take from other parts of the service
// when scraped.
type Sources struct {
	// HashQueue is how many password checks wait for or hold a worker.
	HashQueue func() float64
	// Cache returns the session cache's hits and misses so far.
	Cache func() (hits, misses uint64)
	// MailQueue is how many mail messages wait to be sent.
	MailQueue func() float64
	// Pools are the database connection pools by name.
	Pools map[string]*sql.DB
}

// New returns the metrics, registered with the Go runtime and process
// collectors and with src's readings.
func New(src Sources) *Metrics {
	reg := prometheus.NewRegistry()
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "http_requests_total",
			Help: "HTTP requests answered, by route pattern, method and status class.",
		}, []string{"route", "method", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by route pattern, method and status class.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method", "status"}),
		signIns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "sign_ins_total",
			Help: "Sign-in attempts, by surface (api or page) and outcome.",
		}, []string{"surface", "outcome"}),
		registrations: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace, Name: "registrations_total",
			Help: "Accounts registered.",
		}),
		refreshes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "token_refreshes_total",
			Help: "Refresh token grants, by outcome: success, grace (a just-spent token presented again), reused (a spent token: its session was ended) or invalid.",
		}, []string{"outcome"}),
		ended: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "sessions_ended_total",
			Help: "Sessions ended, by reason.",
		}, []string{"reason"}),
		hashWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace, Name: "password_hash_wait_seconds",
			Help:    "Time password checks and hashes waited for a bcrypt worker (shed ones included).",
			Buckets: []float64{.0001, .001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
	}
	m.mail = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Name: "mail_messages_total",
		Help: "Mail messages by kind and outcome: sent, retried (an attempt failed and will be repeated), failed (given up) or spaced (not sent: one of that kind went to the account less than a minute before).",
	}, []string{"kind", "outcome"})
	reg.MustRegister(m.requests, m.duration, m.signIns, m.registrations, m.refreshes, m.ended, m.hashWait, m.mail,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	// Zero series for the fixed label values, so that rates exist before
	// the first event.
	for _, surface := range []string{"api", "page"} {
		for _, o := range []string{Success, WrongPassword, UnknownUser, Throttled, Busy, MFARequired, WrongCode, WrongPasskey} {
			m.signIns.WithLabelValues(surface, o)
		}
	}
	for _, o := range []string{"success", "grace", "reused", "invalid"} {
		m.refreshes.WithLabelValues(o)
	}
	for _, k := range MailKinds {
		for _, o := range []string{"sent", "retried", "failed"} {
			m.mail.WithLabelValues(k, o)
		}
	}
	if src.MailQueue != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "mail_queue_depth",
			Help: "Mail messages waiting to be sent or retried.",
		}, src.MailQueue))
	}
	if src.HashQueue != nil {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: namespace, Name: "password_hash_queue_depth",
			Help: "Password checks and hashes waiting for or holding a bcrypt worker.",
		}, src.HashQueue))
	}
	if src.Cache != nil {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: namespace, Name: "session_cache_hits_total",
			Help: "Session lookups answered from the in-memory cache.",
		}, func() float64 { h, _ := src.Cache(); return float64(h) }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{
				Namespace: namespace, Name: "session_cache_misses_total",
				Help: "Session lookups that went to the database.",
			}, func() float64 { _, m := src.Cache(); return float64(m) }))
	}
	for name, pool := range src.Pools {
		reg.MustRegister(collectors.NewDBStatsCollector(pool, name))
	}
	return m
}

// Handler serves the exposition.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Registry is the registry the metrics are in.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Request records an answered request. route is the matched pattern, or
// "other" when none matched.
func (m *Metrics) Request(route, method string, status int, d time.Duration) {
	if m == nil {
		return
	}
	k := seriesKey{route, knownMethod(method), statusClass(status)}
	v, ok := m.series.Load(k)
	if !ok {
		v, _ = m.series.LoadOrStore(k, &requestSeries{
			n: m.requests.WithLabelValues(k.route, k.method, k.class),
			d: m.duration.WithLabelValues(k.route, k.method, k.class),
		})
	}
	rs := v.(*requestSeries)
	rs.n.Inc()
	rs.d.Observe(d.Seconds())
}

// seriesKey names a request series; the route is a registered pattern (or
// "other"), so that there are as many as routes, methods and classes.
type seriesKey struct{ route, method, class string }

type requestSeries struct {
	n prometheus.Counter
	d prometheus.Observer
}

// SignIn records a sign-in attempt's outcome.
func (m *Metrics) SignIn(browser bool, outcome string) {
	if m == nil {
		return
	}
	surface := "api"
	if browser {
		surface = "page"
	}
	m.signIns.WithLabelValues(surface, outcome).Inc()
}

// Registered records a new account.
func (m *Metrics) Registered() {
	if m != nil {
		m.registrations.Inc()
	}
}

// Refresh records a refresh grant's outcome.
func (m *Metrics) Refresh(outcome string) {
	if m != nil {
		m.refreshes.WithLabelValues(outcome).Inc()
	}
}

// SessionsEnded records n sessions ended for reason.
func (m *Metrics) SessionsEnded(reason string, n int64) {
	if m != nil && n > 0 {
		m.ended.WithLabelValues(reason).Add(float64(n))
	}
}

// MailKinds are the kinds of mail the service sends.
var MailKinds = []string{"verify_email", "password_reset", "password_changed", "email_changed", "sign_in_added"}

// Mail records a mail message's outcome: sent, retried, failed or spaced.
func (m *Metrics) Mail(kind, outcome string) {
	if m != nil {
		m.mail.WithLabelValues(kind, outcome).Inc()
	}
}

// HashWait records how long a password computation waited for a worker.
func (m *Metrics) HashWait(d time.Duration) {
	if m != nil {
		m.hashWait.Observe(d.Seconds())
	}
}

func statusClass(status int) string {
	switch {
	case status >= 500:
		return "5xx"
	case status >= 400:
		return "4xx"
	case status >= 300:
		return "3xx"
	case status >= 200:
		return "2xx"
	}
	return "1xx"
}

// knownMethod keeps the method label to the standard methods.
func knownMethod(m string) string {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return m
	}
	return "other"
}
