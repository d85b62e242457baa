package app

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// Provocations of the email endpoints' documented answers. Each that needs
// a code registers an account of its own, so that the order in which they
// run does not matter.

// mailUser registers a fresh account and returns its name, address and a
// token.
func (f *fixture) mailUser(t *testing.T) (name, email, tok string) {
	name = fmt.Sprintf("mailer%d", victims.Add(1))
	email = name + "@example.com"
	f.ts.register(name, email, pw)
	return name, email, f.ts.token(name, pw)
}

// lastCode is the code of the newest mail to addr.
func (f *fixture) lastCode(t *testing.T, addr string) string {
	f.ts.flushMail()
	c := f.sink.Last(t, addr).Code()
	if c == "" {
		t.Fatalf("the newest mail to %s has no code", addr)
	}
	return c
}

// later runs fn with the service's clock two minutes ahead (past the mail
// spacing), then puts it back.
func (f *fixture) later(fn func()) {
	now := time.Now().Add(2 * time.Minute)
	f.ts.s.acct.Now = func() time.Time { return now }
	defer func() { f.ts.s.acct.Now = time.Now }()
	fn()
}

// forgiveMailLimits forgets the per-address count of requests that send
// mail.
func (f *fixture) forgiveMailLimits(t *testing.T) {
	if err := f.ts.s.acct.Limits().ForgetPrefix(context.Background(), "m:"); err != nil {
		t.Fatal(err)
	}
}

func init() {
	const newPW = `"new_password":"a brand new passphrase"`
	add := map[string]provoke{
		"POST /password/forgot 202": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/password/forgot", jsonType, `{"login":"alice"}`)
		},
		"POST /password/forgot 422": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/password/forgot", jsonType, `{}`)
		},
		"POST /password/forgot 429": func(t *testing.T, f *fixture) (req *http.Request, res response) {
			defer f.forgiveMailLimits(t)
			for i := 0; i < 100; i++ {
				req, res = f.send(t, "POST", "/password/forgot", jsonType, `{"login":"nobody"}`)
				if res.StatusCode == http.StatusTooManyRequests {
					break
				}
			}
			return req, res
		},
		"POST /password/reset 204": func(t *testing.T, f *fixture) (*http.Request, response) {
			name, email, _ := f.mailUser(t)
			f.send(t, "POST", "/password/forgot", jsonType, `{"login":"`+name+`"}`)
			code := f.lastCode(t, email)
			return f.send(t, "POST", "/password/reset", jsonType, `{"login":"`+name+`","code":"`+code+`",`+newPW+`}`)
		},
		"POST /password/reset 400": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/password/reset", jsonType, `{"login":"alice","code":"0000-0000",`+newPW+`}`)
		},
		"POST /password/reset 422": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/password/reset", jsonType, `{"login":"alice","code":"0000-0000","new_password":"short"}`)
		},
		"POST /password/reset 429": func(t *testing.T, f *fixture) (*http.Request, response) {
			throttled(t, f, "alice")
			defer unthrottled(t, f)
			return f.send(t, "POST", "/password/reset", jsonType, `{"login":"alice","code":"0000-0000",`+newPW+`}`)
		},
		"POST /password/reset 503": func(t *testing.T, f *fixture) (req *http.Request, res response) {
			name, email, _ := f.mailUser(t)
			f.send(t, "POST", "/password/forgot", jsonType, `{"login":"`+name+`"}`)
			code := f.lastCode(t, email)
			busy(f, func() {
				req, res = f.send(t, "POST", "/password/reset", jsonType, `{"login":"`+name+`","code":"`+code+`",`+newPW+`}`)
			})
			return
		},
		"POST /users/me/email 202": func(t *testing.T, f *fixture) (*http.Request, response) {
			name, _, tok := f.mailUser(t)
			return f.send(t, "POST", "/users/me/email", jsonType, `{"new_email":"`+name+`@new.example.com","password":"`+pw+`"}`, bearer(tok)...)
		},
		"POST /users/me/email 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/email", jsonType, `{}`)
		},
		"POST /users/me/email 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/email", jsonType, `{"new_email":"alice2@example.com","password":"wrong"}`, bearer(f.tok)...)
		},
		"POST /users/me/email 409": func(t *testing.T, f *fixture) (*http.Request, response) {
			_, _, tok := f.mailUser(t)
			return f.send(t, "POST", "/users/me/email", jsonType, `{"new_email":"alice@example.com","password":"`+pw+`"}`, bearer(tok)...)
		},
		"POST /users/me/email 415": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/email", "text/plain", `{}`, bearer(f.tok)...)
		},
		"POST /users/me/email 422": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/email", jsonType, `{"new_email":"not an address","password":"x"}`, bearer(f.tok)...)
		},
		"POST /users/me/email 429": func(t *testing.T, f *fixture) (*http.Request, response) {
			throttled(t, f, "alice")
			defer unthrottled(t, f)
			return f.send(t, "POST", "/users/me/email", jsonType, `{"new_email":"alice2@example.com","password":"`+pw+`"}`, bearer(f.tok)...)
		},
		"POST /users/me/email/verify 204": func(t *testing.T, f *fixture) (*http.Request, response) {
			_, email, tok := f.mailUser(t)
			code := f.lastCode(t, email)
			return f.send(t, "POST", "/users/me/email/verify", jsonType, `{"code":"`+code+`"}`, bearer(tok)...)
		},
		"POST /users/me/email/verify 400": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/email/verify", jsonType, `{"code":"0000-0000"}`, bearer(f.tok)...)
		},
		"POST /users/me/email/verify 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/email/verify", jsonType, `{"code":"0000-0000"}`)
		},
		"POST /users/me/email/verify 415": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/email/verify", "text/plain", `{}`, bearer(f.tok)...)
		},
		"POST /users/me/email/verify 422": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/email/verify", jsonType, `{}`, bearer(f.tok)...)
		},
		"POST /users/me/email/verify 429": func(t *testing.T, f *fixture) (*http.Request, response) {
			throttled(t, f, "alice")
			defer unthrottled(t, f)
			return f.send(t, "POST", "/users/me/email/verify", jsonType, `{"code":"0000-0000"}`, bearer(f.tok)...)
		},
		"POST /users/me/email/verify/resend 202": func(t *testing.T, f *fixture) (req *http.Request, res response) {
			name, _, _ := f.mailUser(t)
			f.later(func() {
				tok := f.ts.token(name, pw)
				req, res = f.send(t, "POST", "/users/me/email/verify/resend", "", "", bearer(tok)...)
			})
			return
		},
		"POST /users/me/email/verify/resend 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/email/verify/resend", "", "")
		},
		"POST /users/me/email/verify/resend 409": func(t *testing.T, f *fixture) (*http.Request, response) {
			_, email, tok := f.mailUser(t)
			code := f.lastCode(t, email)
			f.send(t, "POST", "/users/me/email/verify", jsonType, `{"code":"`+code+`"}`, bearer(tok)...)
			return f.send(t, "POST", "/users/me/email/verify/resend", "", "", bearer(tok)...)
		},
		"POST /users/me/email/verify/resend 429": func(t *testing.T, f *fixture) (*http.Request, response) {
			// Within a minute of the code sent at registration.
			_, _, tok := f.mailUser(t)
			return f.send(t, "POST", "/users/me/email/verify/resend", "", "", bearer(tok)...)
		},
	}
	for k, v := range add {
		provocations[k] = v
	}
}

// mfaUser registers an account with two-factor on; its token, secret and
// recovery codes.
func (f *fixture) mfaUser(t *testing.T) (name, tok, secret string, codes []string) {
	name, _, tok = f.mailUser(t)
	secret, codes = f.ts.enrolled(t, tok)
	return name, tok, secret, codes
}

// atLater is a code for secret at the clock later sets.
func atLater(t *testing.T, f *fixture, secret string) string {
	return totpAt(t, secret, f.ts.s.acct.Now())
}

func init() {
	start := func(path string) map[string]provoke {
		return map[string]provoke{
			"POST " + path + " 200": func(t *testing.T, f *fixture) (*http.Request, response) {
				_, _, tok := f.mailUser(t)
				return f.send(t, "POST", path, "", "", bearer(tok)...)
			},
			"POST " + path + " 401": func(t *testing.T, f *fixture) (*http.Request, response) {
				return f.send(t, "POST", path, "", "")
			},
			"POST " + path + " 409": func(t *testing.T, f *fixture) (*http.Request, response) {
				_, tok, _, _ := f.mfaUser(t)
				return f.send(t, "POST", path, "", "", bearer(tok)...)
			},
		}
	}
	stepUp := func(method, path string) map[string]provoke {
		key := method + " " + path
		m := map[string]provoke{
			key + " 401": func(t *testing.T, f *fixture) (*http.Request, response) {
				return f.send(t, method, path, jsonType, `{}`)
			},
			key + " 403": func(t *testing.T, f *fixture) (*http.Request, response) {
				_, tok, _, _ := f.mfaUser(t)
				return f.send(t, method, path, jsonType, `{"password":"`+pw+`","code":"000000"}`, bearer(tok)...)
			},
			key + " 409": func(t *testing.T, f *fixture) (*http.Request, response) {
				return f.send(t, method, path, jsonType, `{"password":"`+pw+`","code":"000000"}`, bearer(f.tok)...)
			},
			key + " 415": func(t *testing.T, f *fixture) (*http.Request, response) {
				return f.send(t, method, path, "text/plain", `{}`, bearer(f.tok)...)
			},
			key + " 422": func(t *testing.T, f *fixture) (*http.Request, response) {
				return f.send(t, method, path, jsonType, `{}`, bearer(f.tok)...)
			},
			key + " 429": func(t *testing.T, f *fixture) (*http.Request, response) {
				name, tok, _, _ := f.mfaUser(t)
				throttled(t, f, name)
				return f.send(t, method, path, jsonType, `{"password":"`+pw+`","code":"000000"}`, bearer(tok)...)
			},
		}
		ok := http.StatusNoContent
		if method == "POST" {
			ok = http.StatusOK
		}
		m[fmt.Sprintf("%s %d", key, ok)] = func(t *testing.T, f *fixture) (req *http.Request, res response) {
			_, tok, secret, _ := f.mfaUser(t)
			f.later(func() {
				req, res = f.send(t, method, path, jsonType, `{"password":"`+pw+`","code":"`+atLater(t, f, secret)+`"}`, bearer(tok)...)
			})
			return
		}
		return m
	}
	add := map[string]provoke{
		"POST /users/me/mfa/totp/confirm 200": func(t *testing.T, f *fixture) (*http.Request, response) {
			_, _, tok := f.mailUser(t)
			_, res := f.send(t, "POST", "/users/me/mfa/totp", "", "", bearer(tok)...)
			secret, _ := res.json(t)["secret"].(string)
			return f.send(t, "POST", "/users/me/mfa/totp/confirm", jsonType, `{"code":"`+totpAt(t, secret, time.Now())+`","password":"`+pw+`"}`, bearer(tok)...)
		},
		"POST /users/me/mfa/totp/confirm 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/mfa/totp/confirm", jsonType, `{"code":"000000"}`)
		},
		"POST /users/me/mfa/totp/confirm 403": func(t *testing.T, f *fixture) (*http.Request, response) {
			_, _, tok := f.mailUser(t)
			f.send(t, "POST", "/users/me/mfa/totp", "", "", bearer(tok)...)
			return f.send(t, "POST", "/users/me/mfa/totp/confirm", jsonType, `{"code":"abcdef","password":"`+pw+`"}`, bearer(tok)...)
		},
		"POST /users/me/mfa/totp/confirm 409": func(t *testing.T, f *fixture) (*http.Request, response) {
			_, _, tok := f.mailUser(t)
			return f.send(t, "POST", "/users/me/mfa/totp/confirm", jsonType, `{"code":"000000","password":"`+pw+`"}`, bearer(tok)...)
		},
		"POST /users/me/mfa/totp/confirm 415": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/mfa/totp/confirm", "text/plain", `{}`, bearer(f.tok)...)
		},
		"POST /users/me/mfa/totp/confirm 422": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/users/me/mfa/totp/confirm", jsonType, `{}`, bearer(f.tok)...)
		},
		"POST /users/me/mfa/totp/confirm 429": func(t *testing.T, f *fixture) (*http.Request, response) {
			name, _, tok := f.mailUser(t)
			f.send(t, "POST", "/users/me/mfa/totp", "", "", bearer(tok)...)
			throttled(t, f, name)
			return f.send(t, "POST", "/users/me/mfa/totp/confirm", jsonType, `{"code":"000000","password":"`+pw+`"}`, bearer(tok)...)
		},
		"DELETE /admin/api/users/{id}/mfa 204": func(t *testing.T, f *fixture) (*http.Request, response) {
			name, _, _, _ := f.mfaUser(t)
			return f.send(t, "DELETE", "/admin/api/users/"+f.userID(t, name)+"/mfa", "", "", bearer(f.admin)...)
		},
		"DELETE /admin/api/users/{id}/mfa 404": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/admin/api/users/999999/mfa", "", "", bearer(f.admin)...)
		},
		"DELETE /admin/api/users/{id}/mfa 409": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "DELETE", "/admin/api/users/"+f.userID(t, "alice")+"/mfa", "", "", bearer(f.admin)...)
		},
		"POST /verify-totp 200": func(t *testing.T, f *fixture) (req *http.Request, res response) {
			name, _, secret, _ := f.mfaUser(t)
			f.later(func() {
				req, res = f.send(t, "POST", "/verify-totp", jsonType, `{"username":"`+name+`","code":"`+atLater(t, f, secret)+`"}`)
			})
			return
		},
		"POST /verify-totp 400": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/verify-totp?username=alice&code=123456", "", "")
		},
		"POST /verify-totp 401": func(t *testing.T, f *fixture) (*http.Request, response) {
			name, _, _, _ := f.mfaUser(t)
			return f.send(t, "POST", "/verify-totp?username="+name+"&code=000000", "", "")
		},
		"POST /verify-totp 422": func(t *testing.T, f *fixture) (*http.Request, response) {
			return f.send(t, "POST", "/verify-totp", jsonType, `{}`)
		},
		"POST /verify-totp 429": func(t *testing.T, f *fixture) (*http.Request, response) {
			throttled(t, f, "alice")
			defer unthrottled(t, f)
			return f.send(t, "POST", "/verify-totp?username=alice&code=123456", "", "")
		},
	}
	for _, m := range []map[string]provoke{start("/user/enable-mfa"), start("/users/me/mfa/totp"), add,
		stepUp("DELETE", "/users/me/mfa/totp"), stepUp("POST", "/users/me/mfa/recovery-codes")} {
		for k, v := range m {
			provocations[k] = v
		}
	}
}
