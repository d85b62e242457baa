package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// exchangeCodes measures the OpenID Connect code exchange: it signs the
// user in, has GET /authorize issue n codes for a first-party client (with
// PKCE S256), then exchanges each once at POST /token from conns
// connections as fast as they are answered, and prints the exchanges per
// second and the latency percentiles. Codes live 60 seconds, so n should
// be what the server exchanges in well under that.
func exchangeCodes(base, user, pw, clientID, secret, redirect string, n, conns int) error {
	res, err := http.PostForm(base+"/token", url.Values{"username": {user}, "password": {pw}})
	if err != nil {
		return err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	json.NewDecoder(res.Body).Decode(&tok)
	res.Body.Close()
	if tok.AccessToken == "" {
		return fmt.Errorf("POST /token: status %d", res.StatusCode)
	}
	client := &http.Client{
		Transport:     &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	type code struct{ code, verifier string }
	codes := make([]code, n)
	var failure atomic.Value
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				verifier := random()
				sum := sha256.Sum256([]byte(verifier))
				q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
					"scope": {"openid profile email"}, "state": {random()}, "nonce": {random()},
					"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
				req, _ := http.NewRequest(http.MethodGet, base+"/authorize?"+q.Encode(), nil)
				req.Header.Set("Cookie", "access_token="+tok.AccessToken)
				res, err := client.Do(req)
				if err != nil {
					failure.Store(err)
					continue
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				to, _ := url.Parse(res.Header.Get("Location"))
				if to == nil || to.Query().Get("code") == "" {
					failure.Store(fmt.Errorf("GET /authorize: status %d, Location %q", res.StatusCode, res.Header.Get("Location")))
					continue
				}
				codes[i] = code{to.Query().Get("code"), verifier}
			}
		}()
	}
	for i := 0; i < n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if err, _ := failure.Load().(error); err != nil {
		return err
	}

	lat := make([]time.Duration, n)
	var bad atomic.Int64
	var firstBad atomic.Value
	work := make(chan int, n)
	for i := range codes {
		work <- i
	}
	close(work)
	start := time.Now()
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				form := url.Values{"grant_type": {"authorization_code"}, "code": {codes[i].code}, "redirect_uri": {redirect},
					"code_verifier": {codes[i].verifier}}
				req, _ := http.NewRequest(http.MethodPost, base+"/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(url.QueryEscape(clientID), url.QueryEscape(secret))
				t := time.Now()
				res, err := client.Do(req)
				lat[i] = time.Since(t)
				if err != nil {
					bad.Add(1)
					continue
				}
				raw, _ := io.ReadAll(res.Body)
				res.Body.Close()
				var body struct {
					IDToken string `json:"id_token"`
				}
				json.Unmarshal(raw, &body)
				if res.StatusCode != 200 || body.IDToken == "" {
					if bad.Add(1) == 1 {
						firstBad.Store(fmt.Sprintf("status %d: %s", res.StatusCode, raw))
					}
				}
			}
		}()
	}
	wg.Wait()
	took := time.Since(start)
	slices.Sort(lat)
	fmt.Printf("%.1f %.2f %d\n", float64(n)/took.Seconds(), float64(lat[n*99/100].Microseconds())/1000, bad.Load())
	if first, ok := firstBad.Load().(string); ok {
		return fmt.Errorf("POST /token refused a code: %s", first)
	}
	return nil
}

func random() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
