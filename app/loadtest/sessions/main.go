// Command sessions signs one user in many times and writes the access
// tokens, one per line, for the load script's cold-read run: cycling
// through more sessions than the server caches makes every lookup a miss.
// With -measure it reads such a file and calls GET /users/me with each
// token in turn, at a steady rate from many connections, and prints the
// latency percentiles: the cold read's own cost, not a queue's. With
// -codes it measures the OpenID Connect code exchange (codes.go).
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	base := flag.String("base", "http://127.0.0.1:8098", "the server")
	user := flag.String("user", "loaduser", "username")
	pw := flag.String("password", "correct horse battery", "password")
	n := flag.Int("n", 20000, "sessions to start")
	workers := flag.Int("workers", 4, "sign-ins at once per account (one account may have five in flight)")
	accounts := flag.Int("accounts", 1, "accounts to sign in, in turn: the user and, past one, USER-2, USER-3… (registered here with the same password)")
	out := flag.String("out", "tokens.txt", "file to write the tokens to (read with -measure)")
	measureRate := flag.Int("measure", 0, "instead, read the tokens and call GET /users/me this many times a second")
	refresh := flag.Bool("refresh", false, "write the refresh tokens instead of the access tokens")
	conns := flag.Int("conns", 32, "connections for -measure")
	dur := flag.Duration("duration", 10*time.Second, "how long to measure")
	codes := flag.Int("codes", 0, "instead, exchange this many authorization codes of -client-id and print exchanges per second, p99 (ms) and failures")
	clientID := flag.String("client-id", "", "first-party client for -codes")
	secret := flag.String("client-secret", "", "its secret")
	redirect := flag.String("redirect-uri", "", "its redirect URI")
	flag.Parse()
	if *codes > 0 {
		if err := exchangeCodes(*base, *user, *pw, *clientID, *secret, *redirect, *codes, *conns); err != nil {
			fmt.Fprintln(os.Stderr, "sessions:", err)
			os.Exit(1)
		}
		return
	}
	if *measureRate > 0 {
		if err := measure(*base, *out, *measureRate, *conns, *dur); err != nil {
			fmt.Fprintln(os.Stderr, "sessions:", err)
			os.Exit(1)
		}
		return
	}

	names := []string{*user}
	for i := 2; i <= *accounts; i++ {
		name := fmt.Sprintf("%s-%d", *user, i)
		body := fmt.Sprintf(`{"username":%q,"email":"%s@example.com","password":%q}`, name, name, *pw)
		res, err := http.Post(*base+"/register/user", "application/json", strings.NewReader(body))
		if err != nil {
			fmt.Fprintln(os.Stderr, "sessions:", err)
			os.Exit(1)
		}
		res.Body.Close()
		names = append(names, name)
	}
	tokens := make([]string, *n)
	var wg sync.WaitGroup
	next := make(chan int)
	var failed sync.Once
	var failure error
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *workers * len(names)}}
	for w := 0; w < *workers*len(names); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				res, err := client.PostForm(*base+"/token", url.Values{"username": {names[i%len(names)]}, "password": {*pw}})
				if err != nil {
					failed.Do(func() { failure = err })
					continue
				}
				var body struct {
					AccessToken  string `json:"access_token"`
					RefreshToken string `json:"refresh_token"`
				}
				json.NewDecoder(res.Body).Decode(&body)
				res.Body.Close()
				if res.StatusCode != 200 {
					failed.Do(func() { failure = fmt.Errorf("POST /token: status %d", res.StatusCode) })
					continue
				}
				tokens[i] = body.AccessToken
				if *refresh {
					tokens[i] = body.RefreshToken
				}
			}
		}()
	}
	for i := 0; i < *n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if failure != nil {
		fmt.Fprintln(os.Stderr, "sessions:", failure)
		os.Exit(1)
	}
	f, err := os.Create(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sessions:", err)
		os.Exit(1)
	}
	w := bufio.NewWriter(f)
	for _, t := range tokens {
		fmt.Fprintln(w, t)
	}
	if err := w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "sessions:", err)
		os.Exit(1)
	}
	f.Close()
}

// measure calls GET /users/me with the tokens of file in turn, rate times a
// second over conns connections, and prints how many were answered and the
// latency percentiles.
func measure(base, file string, rate, conns int, d time.Duration) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	tokens := strings.Fields(string(data))
	if len(tokens) == 0 {
		return fmt.Errorf("no tokens in %s", file)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}}
	tickets := make(chan int, conns)
	var mu sync.Mutex
	var lat []time.Duration
	bad := 0
	var wg sync.WaitGroup
	for w := 0; w < conns; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range tickets {
				req, _ := http.NewRequest(http.MethodGet, base+"/users/me", nil)
				req.Header.Set("Authorization", "Bearer "+tokens[i%len(tokens)])
				start := time.Now()
				res, err := client.Do(req)
				took := time.Since(start)
				ok := err == nil && res.StatusCode == 200
				if err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				mu.Lock()
				lat = append(lat, took)
				if !ok {
					bad++
				}
				mu.Unlock()
			}
		}()
	}
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; time.Since(start) < d; i++ {
		time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
		tickets <- i
	}
	close(tickets)
	wg.Wait()
	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[int(p*float64(len(lat)-1))] }
	fmt.Printf("%d requests in %v (%.0f/s), %d not 200; latency p50 %v, p99 %v, max %v\n",
		len(lat), d, float64(len(lat))/d.Seconds(), bad, pct(0.5), pct(0.99), lat[len(lat)-1])
	return nil
}
