package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	c, err := Parse(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:8000" || c.DatabasePath != "app.db" || c.TokenLifetime != 30*time.Minute ||
		c.BcryptCost != 12 || c.SecretKey != nil || c.CookieSecure != "auto" || len(c.TrustedProxies) != 0 ||
		c.LoginFailuresPerAccount != 5 || c.LoginWindow != 15*time.Minute || c.LoginFailuresAccountWide != 100 ||
		c.DatabaseURL != "" || c.DatabaseMaxConns != 16 || c.CeremoniesPerIP != 1000 {
		t.Errorf("defaults: %+v", c)
	}
}

func TestEnvAndFlags(t *testing.T) {
	e := env(map[string]string{"ADDR": "0.0.0.0:9000", "BCRYPT_COST": "4", "ACCESS_TOKEN_EXPIRE_MINUTES": "5",
		"SECRET_KEY": strings.Repeat("k", 32), "TRUSTED_PROXIES": "10.0.0.1, 192.168.0.0/16", "LOG_LEVEL": "debug"})
	c, err := Parse([]string{"--addr", "127.0.0.1:1"}, e, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:1" {
		t.Errorf("flag did not win over the environment: %q", c.Addr)
	}
	if c.BcryptCost != 4 || c.TokenLifetime != 5*time.Minute || string(c.SecretKey) != strings.Repeat("k", 32) || len(c.TrustedProxies) != 2 {
		t.Errorf("environment not applied: %+v", c)
	}
}

func TestBadValues(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"short secret", map[string]string{"SECRET_KEY": "short"}, "SECRET_KEY is 5 bytes; it must be at least 32 bytes"},
		{"cost too low", map[string]string{"BCRYPT_COST": "3"}, "BCRYPT_COST"},
		{"cost too high", map[string]string{"BCRYPT_COST": "32"}, "BCRYPT_COST"},
		{"cost not a number", map[string]string{"BCRYPT_COST": "twelve"}, "BCRYPT_COST"},
		{"expiry zero", map[string]string{"ACCESS_TOKEN_EXPIRE_MINUTES": "0"}, "ACCESS_TOKEN_EXPIRE_MINUTES"},
		{"expiry negative", map[string]string{"ACCESS_TOKEN_EXPIRE_MINUTES": "-5"}, "ACCESS_TOKEN_EXPIRE_MINUTES"},
		{"log level", map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{"addr", map[string]string{"ADDR": "nonsense"}, "ADDR"},
		{"cookie secure", map[string]string{"COOKIE_SECURE": "maybe"}, "COOKIE_SECURE"},
		{"trusted proxies", map[string]string{"TRUSTED_PROXIES": "10.0.0.1,not-an-ip"}, "TRUSTED_PROXIES"},
		{"window", map[string]string{"LOGIN_WINDOW": "forever"}, "LOGIN_WINDOW"},
		{"ceremonies", map[string]string{"PASSKEY_CEREMONIES_PER_IP": "0"}, "PASSKEY_CEREMONIES_PER_IP"},
		{"account-wide", map[string]string{"LOGIN_FAILURES_ACCOUNT_WIDE": "0"}, "LOGIN_FAILURES_ACCOUNT_WIDE"},
		{"database URL of another kind", map[string]string{"DATABASE_URL": "mysql://root:hunter2@db/app"}, "DATABASE_URL must be a PostgreSQL URL"},
		{"database URL as a path", map[string]string{"DATABASE_URL": "app.db"}, "DATABASE_URL must be a PostgreSQL URL"},
		{"pool size", map[string]string{"DATABASE_MAX_CONNS": "0"}, "DATABASE_MAX_CONNS"},
		{"SMTP URL of another kind", map[string]string{"SMTP_URL": "http://user:hunter2@mail.example.com"}, "SMTP_URL must start with smtp:// or smtps://"},
		{"SMTP URL with a bad port", map[string]string{"SMTP_URL": "smtp://user:hunter2@mail.example.com:99999"}, "SMTP_URL has an invalid port"},
		{"SMTP URL with an unknown parameter", map[string]string{"SMTP_URL": "smtps://user:hunter2@mail.example.com?tls=no"}, "SMTP_URL: unknown parameter"},
		{"MAIL_FROM not an address", map[string]string{"MAIL_FROM": "Fiberauth"}, "MAIL_FROM"},
		{"MAIL_FROM with a line break", map[string]string{"MAIL_FROM": "a@example.com\r\nBcc: b@example.com"}, "MAIL_FROM"},
		{"PUBLIC_URL", map[string]string{"PUBLIC_URL": "auth.example.com"}, "PUBLIC_URL"},
		{"REQUIRE_VERIFIED_EMAIL", map[string]string{"REQUIRE_VERIFIED_EMAIL": "sometimes"}, "REQUIRE_VERIFIED_EMAIL"},
		{"TOTP_ISSUER with a colon", map[string]string{"TOTP_ISSUER": "Acme: Auth"}, "TOTP_ISSUER"},
		{"TOTP_ISSUER empty", map[string]string{"TOTP_ISSUER": " "}, "TOTP_ISSUER"},
		{"WEBAUTHN_RP_ID an address", map[string]string{"WEBAUTHN_RP_ID": "127.0.0.1"}, "WEBAUTHN_RP_ID \"127.0.0.1\": must be a domain name, not an IP address"},
		{"WEBAUTHN_RP_ID with a port", map[string]string{"WEBAUTHN_RP_ID": "localhost:8000"}, "WEBAUTHN_RP_ID"},
		{"WEBAUTHN_RP_ID a URL", map[string]string{"WEBAUTHN_RP_ID": "https://example.com"}, "WEBAUTHN_RP_ID"},
		{"WEBAUTHN_RP_ID not covering PUBLIC_URL", map[string]string{"WEBAUTHN_RP_ID": "example.org", "PUBLIC_URL": "https://auth.example.com"},
			"WEBAUTHN_RP_ID example.org does not cover PUBLIC_URL's origin https://auth.example.com"},
		{"WEBAUTHN_ORIGINS without an RP id", map[string]string{"WEBAUTHN_ORIGINS": "http://localhost:8000"}, "set WEBAUTHN_RP_ID too"},
		{"WEBAUTHN_ORIGINS outside the RP id", map[string]string{"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": "https://example.com.evil.test"},
			"is not within WEBAUTHN_RP_ID example.com"},
		{"WEBAUTHN_ORIGINS plain http", map[string]string{"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": "http://example.com"}, "only on https pages"},
		{"WEBAUTHN_ORIGINS with a path", map[string]string{"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": "https://example.com/login"}, "must be an origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(nil, env(tt.env), &bytes.Buffer{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want one naming %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the error shows the database password: %v", err)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is more than one line: %q", err)
			}
		})
	}
}

func TestHelpListsEveryVariableAndNoSecret(t *testing.T) {
	var out bytes.Buffer
	secret := strings.Repeat("s", 40)
	_, err := Parse([]string{"--help"}, env(map[string]string{"SECRET_KEY": secret,
		"DATABASE_URL": "postgres://user:" + secret + "@db/app", "SMTP_URL": "smtps://user:" + secret + "@mail.example.com"}), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err = %v, want flag.ErrHelp", err)
	}
	for _, v := range []string{"ADDR", "DATABASE_PATH", "DATABASE_URL", "DATABASE_MAX_CONNS", "LOGIN_FAILURES_ACCOUNT_WIDE", "SECRET_KEY", "ACCESS_TOKEN_EXPIRE_MINUTES", "BCRYPT_COST", "LOG_LEVEL", "COOKIE_SECURE", "TRUSTED_PROXIES", "SMTP_URL", "MAIL_FROM", "PUBLIC_URL", "REQUIRE_VERIFIED_EMAIL", "WEBAUTHN_RP_ID", "WEBAUTHN_ORIGINS"} {
		if !strings.Contains(out.String(), v) {
			t.Errorf("--help does not mention %s", v)
		}
	}
	if strings.Contains(out.String(), secret) {
		t.Error("--help prints the secret key, the database password or the mail server's")
	}
}

// TestWebAuthnSettings: the relying party id and origins, explicit or
// taken from PUBLIC_URL; localhost at the same port when PUBLIC_URL is on
// a loopback address, as the default is; passkeys off (with the reason)
// when it names another IP address.
func TestWebAuthnSettings(t *testing.T) {
	for _, tt := range []struct {
		name    string
		env     map[string]string
		id      string
		origins []string
		off     bool
	}{
		{"default: a loopback address, localhost", nil, "localhost", []string{"http://localhost:8000"}, false},
		{"IPv6 loopback", map[string]string{"PUBLIC_URL": "http://[::1]:9000"}, "localhost", []string{"http://localhost:9000"}, false},
		{"another address, off", map[string]string{"PUBLIC_URL": "http://192.0.2.7:8000"}, "", nil, true},
		{"from PUBLIC_URL", map[string]string{"PUBLIC_URL": "https://Auth.Example.com/"}, "auth.example.com", []string{"https://auth.example.com"}, false},
		{"localhost with its port", map[string]string{"PUBLIC_URL": "http://localhost:8000"}, "localhost", []string{"http://localhost:8000"}, false},
		{"a parent domain", map[string]string{"PUBLIC_URL": "https://auth.example.com", "WEBAUTHN_RP_ID": "Example.com"}, "example.com", []string{"https://auth.example.com"}, false},
		{"explicit origins", map[string]string{"WEBAUTHN_RP_ID": "example.com", "WEBAUTHN_ORIGINS": "https://example.com, https://login.example.com:8443"},
			"example.com", []string{"https://example.com", "https://login.example.com:8443"}, false},
		{"localhost over an address's PUBLIC_URL", map[string]string{"WEBAUTHN_RP_ID": "localhost", "WEBAUTHN_ORIGINS": "http://localhost:8000"},
			"localhost", []string{"http://localhost:8000"}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(nil, env(tt.env), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			if c.WebAuthnRPID != tt.id || strings.Join(c.WebAuthnOrigins, " ") != strings.Join(tt.origins, " ") || (c.PasskeysOff != "") != tt.off {
				t.Errorf("got id %q, origins %q, off %q; want %q, %q, off=%v", c.WebAuthnRPID, c.WebAuthnOrigins, c.PasskeysOff, tt.id, tt.origins, tt.off)
			}
		})
	}
}

// TestReadmeListsEverySetting: the README's configuration table names
// every flag that --help lists, with its variable, and no other.
func TestReadmeListsEverySetting(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var help bytes.Buffer
	if _, err := Parse([]string{"--help"}, env(nil), &help); !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	inHelp := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)\b.*\n(?:    .*\n)*?    .*\(([A-Z_]+)\)`).FindAllStringSubmatch(help.String(), -1) {
		inHelp[m[1]] = m[2]
	}
	inReadme := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([A-Z_]+)` \\(`--([a-z-]+)`\\) \\|").FindAllStringSubmatch(string(readme), -1) {
		inReadme[m[2]] = m[1]
	}
	if len(inHelp) < 30 {
		t.Fatalf("read only %d settings from --help:\n%s", len(inHelp), help.String())
	}
	for flag, env := range inHelp {
		if inReadme[flag] != env {
			t.Errorf("README's configuration table lacks `%s` (`--%s`)", env, flag)
		}
	}
	for flag := range inReadme {
		if _, ok := inHelp[flag]; !ok {
			t.Errorf("README lists --%s, which --help does not", flag)
		}
	}
}

// TestDevFlagForms: --dev alone is on, --dev=false off, DEV=1 on; a bad
// value is refused.
func TestDevFlagForms(t *testing.T) {
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want bool
	}{
		{[]string{"--dev"}, nil, true},
		{[]string{"-dev"}, nil, true},
		{[]string{"--dev=true"}, nil, true},
		{[]string{"--dev=false"}, nil, false},
		{[]string{"--dev=false"}, map[string]string{"DEV": "1"}, false},
		{nil, map[string]string{"DEV": "1"}, true},
		{nil, nil, false},
	} {
		c, err := Parse(tt.args, env(tt.env), &bytes.Buffer{})
		if err != nil || c.Dev != tt.want {
			t.Errorf("%v %v: dev %v, err %v; want %v", tt.args, tt.env, c.Dev, err, tt.want)
		}
	}
	if _, err := Parse([]string{"--dev=maybe"}, env(nil), &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "DEV") {
		t.Errorf("--dev=maybe: %v", err)
	}
}

// TestUnknownFlag: one line naming the flag and pointing to --help, no
// usage dump, and ErrUsage (exit status 2).
func TestUnknownFlag(t *testing.T) {
	var out bytes.Buffer
	_, err := Parse([]string{"--nope"}, env(nil), &out)
	if !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), "-nope") || !strings.Contains(err.Error(), "--help") ||
		strings.Contains(err.Error(), "\n") {
		t.Fatalf("err = %v", err)
	}
	if out.Len() != 0 {
		t.Fatalf("printed on an unknown flag:\n%s", out.String())
	}
}
