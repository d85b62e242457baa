// Package config reads the service's settings from command-line flags, with
// environment variables of the same meaning as fallbacks, and validates them.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"fiberauth/app/mail"
)

// Config is the validated configuration of one server process.
type Config struct {
	// Addr is the address to listen on (ADDR).
	Addr string
	// DatabasePath is the SQLite file (DATABASE_PATH), used when
	// DatabaseURL is empty.
	DatabasePath string
	// DatabaseURL selects PostgreSQL (DATABASE_URL).
	DatabaseURL string
	// DatabaseMaxConns bounds the PostgreSQL pool (DATABASE_MAX_CONNS).
	DatabaseMaxConns int
	// SecretKey signs tokens when set (SECRET_KEY); otherwise a key is
	// generated once and kept in the database.
	SecretKey []byte
	// TokenLifetime is how long an access token lives
	// (ACCESS_TOKEN_EXPIRE_MINUTES).
	TokenLifetime time.Duration
	// SessionLifetime is a session's absolute lifetime, and its refresh
	// tokens' (REFRESH_TOKEN_EXPIRE_DAYS).
	SessionLifetime time.Duration
	// IdleLifetime ends a session not used for that long
	// (SESSION_IDLE_DAYS).
	IdleLifetime time.Duration
	// ReuseGrace is how long a just-spent refresh token may be presented
	// again without ending its session (REFRESH_REUSE_GRACE).
	ReuseGrace time.Duration
	// Issuer is the service's public URL: the iss of its tokens and the
	// base of the URLs in its metadata (ISSUER).
	Issuer string
	// IssuerFromAddr is true when ISSUER was not set and the issuer was
	// derived from ADDR.
	IssuerFromAddr bool
	// KeyPublishDelay is how long a new signing key is published before
	// it signs (KEY_PUBLISH_DELAY).
	KeyPublishDelay time.Duration
	// IntrospectionTokens are the bearer secrets that may call
	// /introspect (INTROSPECTION_TOKENS).
	IntrospectionTokens []string
	// BcryptCost is the cost of new password hashes (BCRYPT_COST).
	BcryptCost int
	// LogLevel is the minimum level logged (LOG_LEVEL).
	LogLevel slog.Level
	// LogFormat is "text", "json" or "" for text on a terminal and JSON
	// otherwise (LOG_FORMAT).
	LogFormat string
	// MetricsToken is the bearer secret that may read /metrics on the main
	// listener (METRICS_TOKEN); empty: /metrics answers 404 there.
	MetricsToken string
	// MetricsAddr is the address of a separate listener serving /metrics
	// without authentication (METRICS_ADDR); empty: none.
	MetricsAddr string
	// CookieSecure is "auto" (Secure when the request came over HTTPS),
	// "true" or "false" (COOKIE_SECURE).
	CookieSecure string
	// TrustedProxies lists the proxies whose X-Forwarded-For is believed
	// (TRUSTED_PROXIES).
	TrustedProxies []netip.Prefix
	// LoginFailuresPerAccount is how many failed sign-ins an account may
	// have from one client address within LoginWindow before sign-ins to
	// it from that address are throttled.
	LoginFailuresPerAccount int
	// LoginFailuresAccountWide is how many failed sign-ins an account may
	// have from all addresses together within LoginWindow before only
	// clients that signed in to it before may try.
	LoginFailuresAccountWide int
	// LoginFailuresPerIP is the ceiling of failed sign-ins from one client
	// address within LoginWindow.
	LoginFailuresPerIP int
	// LoginWindow is the period over which failures are counted.
	LoginWindow time.Duration
	// RegistrationsPerIP is how many accounts one client address may
	// register per hour.
	RegistrationsPerIP int
	// CeremoniesPerIP is how many passkey ceremonies one client address
	// may begin without a session (sign-in and sign-up options) within
	// LoginWindow; each one is a row kept for 5 minutes.
	CeremoniesPerIP int
	// HashWorkers is how many bcrypt computations run at once.
	HashWorkers int
	// HashQueue is how many more may wait for a worker before requests
	// are shed with 503.
	HashQueue int
	// SMTPURL is the mail server (SMTP_URL); empty: mail is logged, not
	// sent.
	SMTPURL string
	// MailFrom is the sender of mail (MAIL_FROM).
	MailFrom string
	// PublicURL is where people reach the pages, used in links in mail
	// (PUBLIC_URL); PublicURLFromAddr is true when it was derived.
	PublicURL         string
	PublicURLFromAddr bool
	// TOTPIssuer names the service in authenticator apps (TOTP_ISSUER).
	TOTPIssuer string
	// RequireVerifiedEmail refuses sign-in to accounts whose address is
	// not verified (REQUIRE_VERIFIED_EMAIL).
	RequireVerifiedEmail bool
	// WebAuthnRPID is the relying party id of passkeys (WEBAUTHN_RP_ID):
	// a domain, by default the host of PUBLIC_URL. Empty when passkeys
	// are off: PUBLIC_URL names an IP address (as the default does) and
	// no id was set; PasskeysOff then says so in words.
	WebAuthnRPID string
	// GitHubURL and GitHubAPIURL are GitHub's web and API addresses
	// (GITHUB_URL, GITHUB_API_URL), for sign-in with GitHub.
	GitHubURL, GitHubAPIURL string
	// WebAuthnOrigins are the origins passkey ceremonies may come from
	// (WEBAUTHN_ORIGINS), each scheme://host[:port]; by default
	// PUBLIC_URL's origin.
	WebAuthnOrigins []string
	// PasskeysOff says why passkeys are off, for the start-up log; empty
	// when they are on.
	PasskeysOff string
	// Dev reloads templates from disk on every request.
	Dev bool
}

// CheckServe checks what serving needs beyond the values themselves,
// before anything is opened or written: with DEV, templates that can be
// read from ./views; with several instances possible (DATABASE_URL), an
// issuer that is not each instance's own address.
func (c Config) CheckServe() error {
	if c.Dev {
		if _, err := fs.Stat(os.DirFS("views"), "login.html"); err != nil {
			where, _ := filepath.Abs("views")
			return fmt.Errorf("DEV is on, but the templates cannot be read from %s: start from the repository's top folder, or turn DEV off", where)
		}
	}
	if c.DatabaseURL != "" && c.IssuerFromAddr {
		return errors.New("DATABASE_URL is set but neither ISSUER nor PUBLIC_URL is: every instance would name its own address as the issuer of its tokens and refuse the others'; set ISSUER (or PUBLIC_URL) to the service's public URL, the same on every instance")
	}
	return nil
}

// ErrUsage marks a command line that cannot be read (an unknown flag, a
// stray argument).
var ErrUsage = errors.New("bad command line")

// Usage is printed above the flag list by --help.
const Usage = `Usage: fiberauth [flags]

Every flag can also be set by the environment variable named in its
description; a flag given on the command line wins.

`

// Parse reads args (without the program name) and the environment through
// getenv. It returns flag.ErrHelp after printing help to out when asked.
func Parse(args []string, getenv func(string) string, out io.Writer) (Config, error) {
	fs := flag.NewFlagSet("fiberauth", flag.ContinueOnError)
	fs.SetOutput(out)
	// Flags are declared with the built-in defaults, so that --help shows
	// those (and never a secret taken from the environment); the
	// environment is consulted after parsing for flags not given.
	type setting struct {
		env string
		val *string
	}
	settings := map[string]setting{}
	str := func(name, env, def, usage string) *string {
		v := fs.String(name, def, usage+" ("+env+")")
		settings[name] = setting{env: env, val: v}
		return v
	}
	addr := str("addr", "ADDR", "127.0.0.1:8000", "address to listen on")
	dbPath := str("database-path", "DATABASE_PATH", "app.db", "SQLite database file, created if missing (when DATABASE_URL is not set)")
	dbURL := str("database-url", "DATABASE_URL", "", "PostgreSQL URL (postgres://user:password@host:port/database?sslmode=...); when set it replaces the SQLite file; prefer the variable, since flags show in process lists")
	maxConns := str("database-max-conns", "DATABASE_MAX_CONNS", "16", "most connections to PostgreSQL at once for requests (throttle counts use up to a quarter as many more)")
	secret := str("secret-key", "SECRET_KEY", "", "HS256 signing key, at least 32 bytes; when empty a random key is generated once and stored in the database; prefer the variable, since flags show in process lists")
	expire := str("access-token-expire-minutes", "ACCESS_TOKEN_EXPIRE_MINUTES", "30", "lifetime of access tokens in minutes, 1 to 525600")
	refreshDays := str("refresh-token-expire-days", "REFRESH_TOKEN_EXPIRE_DAYS", "30", "absolute lifetime of a session and its refresh tokens in days, 1 to 3650")
	idleDays := str("session-idle-days", "SESSION_IDLE_DAYS", "14", "a session not used for this many days ends, 1 to 3650")
	grace := str("refresh-reuse-grace", "REFRESH_REUSE_GRACE", "10s", "how long a just-spent refresh token may be presented again (a client that lost the answer) without ending its session, 0s to 1m")
	issuer := str("issuer", "ISSUER", "", "the service's public URL, the iss of its tokens and the base of its metadata URLs; empty means PUBLIC_URL, or http://ADDR when that is empty too (refused with DATABASE_URL)")
	publishDelay := str("key-publish-delay", "KEY_PUBLISH_DELAY", "10m", "how long a new signing key is in the JWK set before it signs, 0s to 24h")
	introspection := str("introspection-tokens", "INTROSPECTION_TOKENS", "", "comma-separated bearer secrets (at least 16 characters each) that may call POST /introspect; empty refuses every caller; prefer the variable")
	cost := str("bcrypt-cost", "BCRYPT_COST", "12", "bcrypt cost of new password hashes, 4 to 31")
	level := str("log-level", "LOG_LEVEL", "info", "debug, info, warn or error")
	logFormat := str("log-format", "LOG_FORMAT", "", "text or json; empty means text when standard error is a terminal and json otherwise")
	metricsToken := str("metrics-token", "METRICS_TOKEN", "", "bearer secret (at least 16 characters) that may read GET /metrics on the main listener; empty: /metrics answers 404 there; prefer the variable")
	metricsAddr := str("metrics-addr", "METRICS_ADDR", "", "host:port of a separate listener serving /metrics without authentication (keep it private); empty: none")
	cookieSecure := str("cookie-secure", "COOKIE_SECURE", "auto", "Secure attribute of cookies: auto (when the request came over HTTPS), true or false")
	proxies := str("trusted-proxies", "TRUSTED_PROXIES", "", "comma-separated IPs or CIDRs of reverse proxies whose X-Forwarded-For and X-Forwarded-Proto are trusted; empty trusts none")
	perAccount := str("login-failures-per-account", "LOGIN_FAILURES_PER_ACCOUNT", "5", "failed sign-ins per account from one client address within the login window before that address is throttled for it")
	accountWide := str("login-failures-account-wide", "LOGIN_FAILURES_ACCOUNT_WIDE", "100", "failed sign-ins per account from all addresses within the login window before only clients that signed in to it before may try")
	perIP := str("login-failures-per-ip", "LOGIN_FAILURES_PER_IP", "50", "failed sign-ins per client address within the login window before it is throttled")
	window := str("login-window", "LOGIN_WINDOW", "15m", "period over which failed sign-ins are counted")
	regs := str("registrations-per-ip", "REGISTRATIONS_PER_IP", "300", "accounts one client address may register per hour")
	ceremonies := str("passkey-ceremonies-per-ip", "PASSKEY_CEREMONIES_PER_IP", "1000", "passkey sign-ins and sign-ups one client address may begin in each period of the login window")
	workers := str("hash-workers", "HASH_WORKERS", "0", "bcrypt computations run at once; 0 means one per CPU")
	queue := str("hash-queue", "HASH_QUEUE", "0", "sign-ins that may wait for a bcrypt worker before more are refused with 503 (none waits longer than 5s); 0 means 128 per worker")
	smtpURL := str("smtp-url", "SMTP_URL", "", "mail server, smtp://user:password@host:port (STARTTLS when offered) or smtps://... (TLS from the start), ?insecure_skip_verify=1 for development only; empty: each message is written to the log instead; prefer the variable")
	mailFrom := str("mail-from", "MAIL_FROM", mail.DefaultFrom, "sender of mail, \"Name <address>\" or an address")
	publicURL := str("public-url", "PUBLIC_URL", "", "where people reach the pages, used in links in mail, such as https://auth.example.com; empty means ISSUER, or http://ADDR")
	requireVerified := str("require-verified-email", "REQUIRE_VERIFIED_EMAIL", "false", "refuse sign-in to accounts whose email address is not verified (true or false)")
	totpIssuer := str("totp-issuer", "TOTP_ISSUER", "Fiberauth", "the name authenticator apps and passkey managers show for this service's accounts")
	rpID := str("webauthn-rp-id", "WEBAUTHN_RP_ID", "", "relying party id of passkeys: the domain they belong to, such as example.com; empty means the host of PUBLIC_URL (localhost for this machine's address; passkeys are off for another IP address)")
	githubURL := str("github-url", "GITHUB_URL", "https://github.com", "GitHub's web address, for sign-in with GitHub (GitHub Enterprise Server, or a test server)")
	githubAPIURL := str("github-api-url", "GITHUB_API_URL", "https://api.github.com", "GitHub's API address, for sign-in with GitHub")
	origins := str("webauthn-origins", "WEBAUTHN_ORIGINS", "", "comma-separated origins passkey sign-ins may come from, such as https://auth.example.com (https, or http on localhost), each within WEBAUTHN_RP_ID; empty means PUBLIC_URL's origin")
	dev := new(string)
	*dev = "false"
	fs.Var(boolText{dev}, "dev", "development mode: reload templates from ./views on each request; --dev alone means on, --dev=false off (DEV)")
	settings["dev"] = setting{env: "DEV", val: dev}
	// The flag package's own messages are not used: help goes to out
	// when asked for, and a bad flag is one error line.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(out, Usage)
			fs.SetOutput(out)
			fs.PrintDefaults()
			return Config{}, err
		}
		return Config{}, fmt.Errorf("%w: %v; run with --help to list the settings", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("%w: unexpected argument %q (see --help, and fiberauth help for the commands)", ErrUsage, fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for name, st := range settings {
		if v := getenv(st.env); !given[name] && v != "" {
			*st.val = v
		}
	}

	c := Config{Addr: *addr, DatabasePath: *dbPath, DatabaseURL: strings.TrimSpace(*dbURL), CookieSecure: strings.ToLower(*cookieSecure)}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }

	if _, _, err := splitHostPort(c.Addr); err != nil {
		bad("ADDR %q is not host:port: %v", c.Addr, err)
	}
	if c.DatabaseURL != "" {
		if !strings.HasPrefix(c.DatabaseURL, "postgres://") && !strings.HasPrefix(c.DatabaseURL, "postgresql://") {
			// Never echo the value: it may hold a password.
			bad("DATABASE_URL must be a PostgreSQL URL starting with postgres:// or postgresql://")
		} else if _, err := url.Parse(c.DatabaseURL); err != nil {
			bad("DATABASE_URL is not a valid URL")
		}
	} else if strings.TrimSpace(c.DatabasePath) == "" {
		bad("DATABASE_PATH is empty")
	}
	if n, err := intIn(*maxConns, 1, 1000); err != nil {
		bad("DATABASE_MAX_CONNS %q: %v", *maxConns, err)
	} else {
		c.DatabaseMaxConns = n
	}
	if *secret != "" {
		if len(*secret) < 32 {
			bad("SECRET_KEY is %d bytes; it must be at least 32 bytes (for example: openssl rand -hex 32)", len(*secret))
		}
		c.SecretKey = []byte(*secret)
	}
	if n, err := intIn(*expire, 1, 525600); err != nil {
		bad("ACCESS_TOKEN_EXPIRE_MINUTES %q: %v", *expire, err)
	} else {
		c.TokenLifetime = time.Duration(n) * time.Minute
	}
	if n, err := intIn(*refreshDays, 1, 3650); err != nil {
		bad("REFRESH_TOKEN_EXPIRE_DAYS %q: %v", *refreshDays, err)
	} else {
		c.SessionLifetime = time.Duration(n) * 24 * time.Hour
	}
	if n, err := intIn(*idleDays, 1, 3650); err != nil {
		bad("SESSION_IDLE_DAYS %q: %v", *idleDays, err)
	} else {
		c.IdleLifetime = time.Duration(n) * 24 * time.Hour
	}
	if d, err := time.ParseDuration(*grace); err != nil || d < 0 || d > time.Minute {
		bad("REFRESH_REUSE_GRACE %q: must be a duration from 0s to 1m, such as 10s", *grace)
	} else {
		c.ReuseGrace = d
	}
	if d, err := time.ParseDuration(*publishDelay); err != nil || d < 0 || d > 24*time.Hour {
		bad("KEY_PUBLISH_DELAY %q: must be a duration from 0s to 24h, such as 10m", *publishDelay)
	} else {
		c.KeyPublishDelay = d
	}
	c.Issuer = strings.TrimRight(strings.TrimSpace(*issuer), "/")
	if c.Issuer == "" {
		// The public URL names the service as well as ISSUER does.
		c.Issuer = strings.TrimRight(strings.TrimSpace(*publicURL), "/")
	}
	if c.Issuer == "" {
		host, port, _ := splitHostPort(c.Addr)
		if host == "" || host == "0.0.0.0" || host == "::" || host == "[::]" {
			host = "127.0.0.1"
		}
		c.Issuer = "http://" + host + ":" + strconv.Itoa(port)
		c.IssuerFromAddr = true
	} else if u, err := url.Parse(c.Issuer); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" {
		bad("ISSUER %q: must be an http or https URL without query or fragment, such as https://auth.example.com", *issuer)
	}
	for _, tok := range strings.Split(*introspection, ",") {
		if tok = strings.TrimSpace(tok); tok == "" {
			continue
		}
		if len(tok) < 16 {
			bad("INTROSPECTION_TOKENS: each token must be at least 16 characters (for example: openssl rand -hex 32)")
			break
		}
		c.IntrospectionTokens = append(c.IntrospectionTokens, tok)
	}
	if n, err := intIn(*cost, 4, 31); err != nil {
		bad("BCRYPT_COST %q: %v", *cost, err)
	} else {
		c.BcryptCost = n
	}
	if err := c.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		bad("LOG_LEVEL %q: must be debug, info, warn or error", *level)
	}
	switch c.LogFormat = strings.ToLower(strings.TrimSpace(*logFormat)); c.LogFormat {
	case "", "text", "json":
	default:
		bad("LOG_FORMAT %q: must be text or json", *logFormat)
	}
	if c.MetricsToken = strings.TrimSpace(*metricsToken); c.MetricsToken != "" && len(c.MetricsToken) < 16 {
		bad("METRICS_TOKEN must be at least 16 characters (for example: openssl rand -hex 32)")
	}
	if c.MetricsAddr = strings.TrimSpace(*metricsAddr); c.MetricsAddr != "" {
		if _, _, err := splitHostPort(c.MetricsAddr); err != nil {
			bad("METRICS_ADDR %q is not host:port: %v", c.MetricsAddr, err)
		}
	}
	switch c.CookieSecure {
	case "auto", "true", "false":
	case "1", "yes", "on":
		c.CookieSecure = "true"
	case "0", "no", "off":
		c.CookieSecure = "false"
	default:
		bad("COOKIE_SECURE %q: must be auto, true or false", *cookieSecure)
	}
	for _, p := range strings.Split(*proxies, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		pfx, err := parsePrefix(p)
		if err != nil {
			bad("TRUSTED_PROXIES entry %q is not an IP address or CIDR", p)
			continue
		}
		c.TrustedProxies = append(c.TrustedProxies, pfx)
	}
	if n, err := intIn(*perAccount, 1, 1000000); err != nil {
		bad("LOGIN_FAILURES_PER_ACCOUNT %q: %v", *perAccount, err)
	} else {
		c.LoginFailuresPerAccount = n
	}
	if n, err := intIn(*accountWide, 1, 100000000); err != nil {
		bad("LOGIN_FAILURES_ACCOUNT_WIDE %q: %v", *accountWide, err)
	} else {
		c.LoginFailuresAccountWide = n
	}
	if n, err := intIn(*perIP, 1, 100000000); err != nil {
		bad("LOGIN_FAILURES_PER_IP %q: %v", *perIP, err)
	} else {
		c.LoginFailuresPerIP = n
	}
	if d, err := time.ParseDuration(*window); err != nil || d < time.Second || d > 24*time.Hour {
		bad("LOGIN_WINDOW %q: must be a duration between 1s and 24h, such as 15m", *window)
	} else {
		c.LoginWindow = d
	}
	if n, err := intIn(*regs, 1, 100000000); err != nil {
		bad("REGISTRATIONS_PER_IP %q: %v", *regs, err)
	} else {
		c.RegistrationsPerIP = n
	}
	if n, err := intIn(*ceremonies, 1, 100000000); err != nil {
		bad("PASSKEY_CEREMONIES_PER_IP %q: %v", *ceremonies, err)
	} else {
		c.CeremoniesPerIP = n
	}
	if n, err := intIn(*workers, 0, 1024); err != nil {
		bad("HASH_WORKERS %q: %v", *workers, err)
	} else {
		c.HashWorkers = n
	}
	if n, err := intIn(*queue, 0, 1000000); err != nil {
		bad("HASH_QUEUE %q: %v", *queue, err)
	} else {
		c.HashQueue = n
	}
	if c.SMTPURL = strings.TrimSpace(*smtpURL); c.SMTPURL != "" {
		if _, err := mail.ParseURL(c.SMTPURL); err != nil {
			bad("%v", err)
		}
	}
	c.MailFrom = strings.TrimSpace(*mailFrom)
	if err := mail.CheckFrom(c.MailFrom); err != nil {
		bad("%v", err)
	}
	c.PublicURL = strings.TrimRight(strings.TrimSpace(*publicURL), "/")
	if c.PublicURL == "" {
		c.PublicURL, c.PublicURLFromAddr = c.Issuer, c.IssuerFromAddr
	} else if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
		u.RawQuery != "" || u.Fragment != "" {
		bad("PUBLIC_URL %q: must be an http or https URL without query or fragment, such as https://auth.example.com", *publicURL)
	}
	if c.TOTPIssuer = strings.TrimSpace(*totpIssuer); c.TOTPIssuer == "" || strings.Contains(c.TOTPIssuer, ":") || hasControl(c.TOTPIssuer) {
		bad("TOTP_ISSUER %q: must be a non-empty name without ':' or control characters", *totpIssuer)
	}
	c.WebAuthnRPID, c.WebAuthnOrigins, c.PasskeysOff = webAuthn(*rpID, *origins, c.PublicURL, bad)
	for _, gh := range []struct {
		name string
		v    *string
		out  *string
	}{{"GITHUB_URL", githubURL, &c.GitHubURL}, {"GITHUB_API_URL", githubAPIURL, &c.GitHubAPIURL}} {
		*gh.out = strings.TrimRight(strings.TrimSpace(*gh.v), "/")
		if u, err := url.Parse(*gh.out); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			bad("%s %q: must be an http or https URL without query or fragment", gh.name, *gh.v)
		}
	}
	if b, ok := parseBool(*requireVerified); ok {
		c.RequireVerifiedEmail = b
	} else {
		bad("REQUIRE_VERIFIED_EMAIL %q: must be true or false", *requireVerified)
	}
	switch strings.ToLower(*dev) {
	case "1", "true", "yes", "on":
		c.Dev = true
	case "", "0", "false", "no", "off":
	default:
		bad("DEV %q: must be true or false", *dev)
	}
	if len(errs) > 0 {
		// One line, so that a start-up failure reads as one message.
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Error()
		}
		return Config{}, errors.New(strings.Join(msgs, "; "))
	}
	return c, nil
}

// webAuthn reads the passkey settings: the relying party id and the
// origins, explicit or derived from the public URL. An explicit value that
// no browser would accept is refused (bad). A public URL on a loopback
// address (as the default http://127.0.0.1:8000) gives localhost, at the
// same port: the pages at http://localhost:8000 offer passkeys. Any other
// derived relying party id that cannot be one (an IP address) turns
// passkeys off, with the reason in off.
func webAuthn(rpID, origins, publicURL string, bad func(string, ...any)) (id string, list []string, off string) {
	id = strings.ToLower(strings.TrimSpace(rpID))
	pub, _ := url.Parse(publicURL)
	switch {
	case id != "":
		if msg := domainProblem(id); msg != "" {
			bad("WEBAUTHN_RP_ID %q: %s", rpID, msg)
			return "", nil, ""
		}
	case pub == nil || pub.Hostname() == "":
		return "", nil, "" // PUBLIC_URL is refused already
	default:
		id = strings.ToLower(pub.Hostname())
		if loopback(id) && strings.TrimSpace(origins) == "" {
			// On this machine (as by default): the same server as
			// localhost, which browsers let hold passkeys over http.
			o := pub.Scheme + "://localhost"
			if pub.Port() != "" {
				o += ":" + pub.Port()
			}
			return "localhost", []string{o}, ""
		}
		if domainProblem(id) != "" {
			if strings.TrimSpace(origins) != "" {
				bad("WEBAUTHN_ORIGINS is set but WEBAUTHN_RP_ID is not, and PUBLIC_URL's host %s cannot be a relying party id (passkeys belong to a domain name): set WEBAUTHN_RP_ID too, such as localhost", id)
			}
			return "", nil, "PUBLIC_URL " + publicURL + " names no domain (passkeys belong to a domain name, never an IP address): set PUBLIC_URL=http://localhost:8000 for local use, or WEBAUTHN_RP_ID and WEBAUTHN_ORIGINS"
		}
	}
	if strings.TrimSpace(origins) == "" {
		if pub == nil || pub.Host == "" {
			return "", nil, ""
		}
		o := strings.ToLower(pub.Scheme + "://" + pub.Host)
		if !within(pub.Hostname(), id) {
			bad("WEBAUTHN_RP_ID %s does not cover PUBLIC_URL's origin %s: set WEBAUTHN_ORIGINS too (the origins people sign in from, within %s)", id, o, id)
			return "", nil, ""
		}
		return id, []string{o}, ""
	}
	for _, raw := range strings.Split(origins, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
			(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			bad("WEBAUTHN_ORIGINS entry %q: must be an origin, scheme://host[:port], such as https://auth.example.com", raw)
			continue
		case u.Scheme == "http" && !localhost(u.Hostname()):
			bad("WEBAUTHN_ORIGINS entry %q: browsers use passkeys only on https pages (and http://localhost)", raw)
			continue
		case !within(strings.ToLower(u.Hostname()), id):
			bad("WEBAUTHN_ORIGINS entry %q is not within WEBAUTHN_RP_ID %s: its host must be %s or end in .%s", raw, id, id, id)
			continue
		}
		list = append(list, strings.ToLower(u.Scheme+"://"+u.Host))
	}
	if len(list) == 0 {
		bad("WEBAUTHN_ORIGINS names no origin")
	}
	return id, list, ""
}

// domainProblem says why s cannot be a relying party id (a domain name:
// letters, digits and hyphens in dot-separated labels, not an IP address),
// or "".
func domainProblem(s string) string {
	if isIP(s) {
		return "must be a domain name, not an IP address"
	}
	if len(s) > 253 {
		return "is too long for a domain name"
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "must be a domain name such as example.com (no scheme, port or path)"
		}
		for i := 0; i < len(label); i++ {
			b := label[i]
			if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '-') {
				return "must be a domain name such as example.com (no scheme, port or path)"
			}
		}
	}
	return ""
}

// loopback reports whether host is a loopback address (127.0.0.1, ::1).
func loopback(host string) bool {
	a, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && a.IsLoopback()
}

func isIP(s string) bool {
	_, err := netip.ParseAddr(strings.Trim(s, "[]"))
	return err == nil
}

// within reports whether host is the domain id or one under it.
func within(host, id string) bool {
	host = strings.ToLower(host)
	return host == id || strings.HasSuffix(host, "."+id)
}

// localhost reports whether host is localhost or a name under it, which
// browsers treat as a secure context over plain http.
func localhost(host string) bool {
	return within(host, "localhost")
}

// hasControl reports whether s holds a control character.
func hasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0
}

// boolText is a flag that may stand alone (--dev means --dev=true) and
// keeps its value as text, checked with the other settings.
type boolText struct{ v *string }

func (b boolText) String() string {
	if b.v == nil {
		return ""
	}
	return *b.v
}
func (b boolText) Set(s string) error { *b.v = s; return nil }
func (b boolText) IsBoolFlag() bool   { return true }

func parseBool(s string) (bool, bool) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "true", "yes", "on":
		return true, true
	case "", "0", "false", "no", "off":
		return false, true
	}
	return false, false
}

func intIn(s string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return 0, errors.New("not a whole number")
	}
	if n < lo || n > hi {
		return 0, fmt.Errorf("must be between %d and %d", lo, hi)
	}
	return n, nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func splitHostPort(addr string) (string, int, error) {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		return "", 0, errors.New("missing port")
	}
	port, err := strconv.Atoi(addr[i+1:])
	if err != nil || port < 0 || port > 65535 {
		return "", 0, errors.New("port must be a number from 0 to 65535")
	}
	return addr[:i], port, nil
}
