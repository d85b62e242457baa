package oidc

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"fiberauth/app/account"
	"fiberauth/db"
)

// EndSession is a checked RP-initiated logout request (OpenID Connect
// RP-Initiated Logout 1.0).
type EndSession struct {
	// Client is the application, named by the hint's audience or client_id;
	// zero when neither names one.
	Client db.Client
	// HintSID and HintSubject come from a valid id_token_hint ("" without).
	HintSID, HintSubject string
	// Return is where the browser goes afterwards: a post-logout redirect
	// URI registered for Client, with state; "" when none was asked for
	// or it is not registered (never an open redirect).
	Return string
}

// ParseEndSession checks a logout request. An id_token_hint must be an ID
// token this service signed (expired or not); its audience, or client_id,
// names the application, whose registered post-logout URIs alone are
// followed.
func (p *Provider) ParseEndSession(ctx context.Context, q url.Values) (EndSession, error) {
	var out EndSession
	clientID := q.Get("client_id")
	if hint := q.Get("id_token_hint"); hint != "" {
		var c IDClaims
		if err := p.tokens.ParseHint(hint, &c); err != nil {
			return out, &Error{Code: "invalid_request", Description: "The id_token_hint is not an ID token of this service.", Status: 400}
		}
		if len(c.Audience) != 1 || (clientID != "" && c.Audience[0] != clientID) {
			return out, &Error{Code: "invalid_request", Description: "The id_token_hint is not for this application.", Status: 400}
		}
		clientID, out.HintSID, out.HintSubject = c.Audience[0], c.SID, c.Subject
	}
	if clientID != "" {
		c, err := p.store.ClientByID(ctx, clientID)
		if errors.Is(err, db.ErrNotFound) {
			return out, &Error{Code: "invalid_request", Description: "The request names an application that is not registered here.", Status: 400}
		}
		if err != nil {
			return out, account.Fail(err)
		}
		out.Client = c
	}
	if to := q.Get("post_logout_redirect_uri"); to != "" {
		if out.Client.ID == "" || !slices.Contains(out.Client.PostLogoutRedirectURIs, to) {
			return out, &Error{Code: "invalid_request", Description: "The post-logout redirect URI is not one registered for this application.", Status: 400}
		}
		out.Return = to
		if st := q.Get("state"); st != "" && printable(st, 1024) {
			out.Return = withQuery(to, url.Values{"state": {st}})
		}
	}
	return out, nil
}

// Matches reports whether the request's hint names the caller's session:
// then the logout needs no confirmation.
func (e EndSession) Matches(pr *account.Principal) bool {
	return pr != nil && e.HintSID != "" && e.HintSID == pr.Session.ID && e.HintSubject == pr.User.Subject
}

// ConnectedApps returns the applications the caller allowed, or that hold
// sessions of the account.
func (p *Provider) ConnectedApps(ctx context.Context, pr *account.Principal) ([]db.ConnectedApp, error) {
	list, err := p.store.ListConnectedApps(ctx, pr.User.ID, p.now())
	return list, account.Fail(err)
}

// RevokeApp forgets what the caller allowed an application and ends every
// session (token) it holds of the account; the application is told through
// the back channel. ENotFound when it holds nothing.
func (p *Provider) RevokeApp(ctx context.Context, c account.Client, pr *account.Principal, clientID string) error {
	cl, err := p.Client(ctx, clientID)
	if err != nil {
		return err
	}
	_, err = p.store.RevokeApp(ctx, pr.User.ID, clientID, account.Voids(account.ChangeAppRevoked, ""),
		db.Event{Kind: db.EventAppRevoked, At: p.now(), IP: c.Addr, UserAgent: c.UserAgent, Detail: "Access of " + cl.Name + " revoked"})
	if errors.Is(err, db.ErrNotFound) {
		return errNoClient
	}
	p.logouts.wake()
	return account.Fail(err)
}

// WakeLogouts asks the back-channel dispatcher to look for notices now
// (after a change that may have ended sessions).
func (p *Provider) WakeLogouts() { p.logouts.wake() }

// FlushLogouts waits until no back-channel notice is queued or being
// delivered (tests), or ctx ends.
func (p *Provider) FlushLogouts(ctx context.Context) error { return p.logouts.flush(ctx) }

// backchannelEvent is the logout token's event (Back-Channel Logout §2.4).
const backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"

// LogoutClaims are a logout token's claims.
type LogoutClaims struct {
	SID    string         `json:"sid,omitempty"`
	Events map[string]any `json:"events"`
	jwt.RegisteredClaims
}

// dispatcher delivers the queued back-channel logout notices: it claims
// due ones under a lease (any instance may deliver a notice another
// queued), POSTs a freshly signed logout token to the application's
// back-channel URI, and deletes the notice on a 2xx answer, or retries
// with growing waits, up to six times. Deliveries run side by side, at
// most logoutSlots at once and logoutPerClient for one application, each
// claimed as a slot frees: a slow or unreachable application delays only
// its own notices.
type dispatcher struct {
	p     *Provider
	owner string
	wakeC chan struct{}
	stop  chan struct{}
	done  chan struct{}
	// deliveries are those under way; close waits for them.
	deliveries sync.WaitGroup
	mu         sync.Mutex
	busy       int
	perClient  map[string]int
}

const (
	logoutAttempts  = 6
	logoutLease     = time.Minute
	logoutPoll      = time.Second
	logoutSlots     = 16
	logoutPerClient = 4
)

func newDispatcher(p *Provider) *dispatcher {
	owner, _ := random(12)
	d := &dispatcher{p: p, owner: owner, wakeC: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{}),
		perClient: map[string]int{}}
	go d.run()
	return d
}

func (d *dispatcher) wake() {
	select {
	case d.wakeC <- struct{}{}:
	default:
	}
}

func (d *dispatcher) run() {
	defer close(d.done)
	t := time.NewTicker(logoutPoll)
	defer t.Stop()
	for {
		d.round()
		select {
		case <-d.stop:
			return
		case <-t.C:
		case <-d.wakeC:
		}
	}
}

// round starts deliveries of what is due now, as long as slots are free.
func (d *dispatcher) round() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		d.mu.Lock()
		free := logoutSlots - d.busy
		var full []string
		for id, n := range d.perClient {
			if n >= logoutPerClient {
				full = append(full, id)
			}
		}
		d.mu.Unlock()
		if free <= 0 {
			return
		}
		notices, err := d.p.store.ClaimLogouts(ctx, d.owner, time.Now(), logoutLease, free, logoutPerClient, full)
		if err != nil {
			d.p.log.Warn("back-channel logouts: claim", "error", err.Error())
			return
		}
		if len(notices) == 0 {
			return
		}
		for _, n := range notices {
			d.mu.Lock()
			d.busy++
			d.perClient[n.ClientID]++
			d.mu.Unlock()
			d.deliveries.Add(1)
			go func() {
				defer d.deliveries.Done()
				defer func() {
					d.mu.Lock()
					d.busy--
					if d.perClient[n.ClientID]--; d.perClient[n.ClientID] <= 0 {
						delete(d.perClient, n.ClientID)
					}
					d.mu.Unlock()
					d.wake() // a slot is free
				}()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				d.deliver(ctx, n)
			}()
		}
	}
}

func (d *dispatcher) deliver(ctx context.Context, n db.LogoutNotice) {
	p := d.p
	c, err := p.store.ClientByID(ctx, n.ClientID)
	if err != nil || c.BackchannelLogoutURI == "" {
		p.store.DoneLogout(ctx, n.ID, n.Claim)
		return
	}
	err = p.postLogout(ctx, c, n)
	if err == nil {
		p.store.DoneLogout(ctx, n.ID, n.Claim)
		return
	}
	attempts := n.Attempts + 1
	if attempts >= logoutAttempts {
		p.log.Error("back-channel logout not delivered", "client_id", c.ID, "attempts", attempts, "error", err.Error())
		p.store.DoneLogout(ctx, n.ID, n.Claim)
		return
	}
	wait := min(2*time.Second<<(attempts-1), 5*time.Minute)
	p.log.Warn("back-channel logout failed; will retry", "client_id", c.ID, "attempt", attempts, "retry_in", wait.String(),
		"error", err.Error())
	p.store.RetryLogout(ctx, n.ID, n.Claim, attempts, time.Now().Add(wait))
}

// postLogout signs a logout token for the notice and POSTs it.
func (p *Provider) postLogout(ctx context.Context, c db.Client, n db.LogoutNotice) error {
	jti, err := random(16)
	if err != nil {
		return err
	}
	now := time.Now().Truncate(time.Second)
	claims := LogoutClaims{SID: n.SID, Events: map[string]any{backchannelEvent: map[string]any{}},
		RegisteredClaims: jwt.RegisteredClaims{Issuer: p.cfg.Issuer, Subject: n.Subject, Audience: jwt.ClaimStrings{c.ID},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(2 * time.Minute)), ID: jti}}
	raw, err := p.tokens.Sign(claims, c.IDTokenAlg, now, map[string]any{"typ": "logout+jwt"})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BackchannelLogoutURI,
		strings.NewReader(url.Values{"logout_token": {raw}}.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	res, err := p.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	res.Body.Close()
	if res.StatusCode < 200 || res.StatusCode > 299 {
		return errors.New("the application answered " + res.Status)
	}
	return nil
}

func (d *dispatcher) flush(ctx context.Context) error {
	for {
		d.wake()
		n, err := d.p.store.PendingLogouts(ctx)
		if err != nil {
			return err
		}
		d.mu.Lock()
		busy := d.busy
		d.mu.Unlock()
		if n == 0 && busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (d *dispatcher) close(ctx context.Context) {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	all := make(chan struct{})
	go func() {
		<-d.done
		d.deliveries.Wait()
		close(all)
	}()
	select {
	case <-all:
	case <-ctx.Done():
	}
}
