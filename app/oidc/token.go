package oidc

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"errors"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"fiberauth/app/account"
	"fiberauth/app/token"
	"fiberauth/db"
)

// TokenResponse is what the token endpoint answers an application.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	IDToken      string `json:"id_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
}

// CodeExchange is an authorization_code grant (RFC 6749 §4.1.3).
type CodeExchange struct {
	Auth         ClientAuth
	Code         string
	RedirectURI  string
	CodeVerifier string
}

var errBadCode = oauthErr(400, "invalid_grant", "The authorization code is invalid, expired, spent, or not this application's")

// Exchange swaps an authorization code for tokens: once, within its
// lifetime, by the application it was issued to, with the redirect URI and
// the PKCE verifier of its request. A code presented a second time ends
// the session it was exchanged for (RFC 6749 §4.1.2). The application's
// session starts in the same transaction that spends the code.
func (p *Provider) Exchange(ctx context.Context, c account.Client, x CodeExchange) (TokenResponse, error) {
	client, err := p.authenticate(ctx, x.Auth)
	if err != nil {
		return TokenResponse{}, err
	}
	if x.Code == "" || len(x.Code) > 256 {
		return TokenResponse{}, oauthErr(400, "invalid_request", "code is required")
	}
	now := p.now()
	sessionID, err := random(16)
	if err != nil {
		return TokenResponse{}, err
	}
	// Used only when offline access was granted.
	refresh, refreshHash, err := token.NewRefresh()
	if err != nil {
		return TokenResponse{}, err
	}
	var checkErr error
	code, parent, u, err := p.store.ExchangeCode(ctx, db.Exchange{
		Hash: sha(x.Code), Now: now,
		Replayed: account.Voids(account.ChangeCodeReplayed, ""),
		Check: func(code db.AuthCode, parent db.Session, u db.User) error {
			switch {
			case code.ClientID != client.ID, code.RedirectURI != x.RedirectURI:
				checkErr = errBadCode
			case code.CodeChallenge == "" && x.CodeVerifier != "":
				checkErr = oauthErr(400, "invalid_grant", "A code_verifier was sent for a request without a code_challenge")
			case code.CodeChallenge != "" && !verifierMatches(x.CodeVerifier, code.CodeChallenge):
				checkErr = oauthErr(400, "invalid_grant", "The code_verifier does not match the code_challenge")
			case !now.Before(parent.ExpiresAt):
				checkErr = errBadCode
			}
			return checkErr
		},
		Start: func(code db.AuthCode, parent db.Session) db.NewSession {
			offline := hasScope(code.Scope, ScopeOffline)
			expires, hash := parent.ExpiresAt, []byte(nil)
			if offline {
				expires, hash = now.Add(p.cfg.SessionLifetime), refreshHash
			}
			return db.NewSession{Session: db.Session{ID: sessionID, UserID: parent.UserID, CreatedAt: now, ExpiresAt: expires,
				LastUsedAt: now, IP: c.Addr, UserAgent: c.UserAgent, Scope: code.Scope, AMR: parent.AMR, ClientID: client.ID,
				ParentID: parent.ID, Offline: offline, AuthTime: parent.SignedInAt()}, RefreshHash: hash}
		},
	})
	switch {
	case checkErr != nil:
		return TokenResponse{}, checkErr
	case errors.Is(err, db.ErrCodeReplayed):
		p.log.Warn("authorization code presented again: the session it was exchanged for ended", "client_id", client.ID)
		return TokenResponse{}, errBadCode
	case errors.Is(err, db.ErrNotFound):
		return TokenResponse{}, errBadCode
	case err != nil:
		return TokenResponse{}, account.Fail(err)
	}
	if !hasScope(code.Scope, ScopeOffline) {
		refresh = ""
	}
	se := db.Session{ID: sessionID, UserID: u.ID, CreatedAt: now, Scope: code.Scope, AMR: parent.AMR, ClientID: client.ID, ParentID: parent.ID}
	return p.respond(client, u, se, parent.SignedInAt(), code.Nonce, refresh, now)
}

// verifierMatches checks a PKCE verifier against an S256 challenge (RFC
// 7636 §4.6).
func verifierMatches(verifier, challenge string) bool {
	if !challengeForm.MatchString(verifier) {
		return false
	}
	sum := sha256.Sum256([]byte(verifier))
	return equal([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge))
}

// respond issues the access token and, with openid, the ID token of an
// application's session.
func (p *Provider) respond(client db.Client, u db.User, se db.Session, authTime time.Time, nonce, refresh string, now time.Time) (TokenResponse, error) {
	scope := account.Effective(u.Role, se.Scope)
	access, _, err := p.tokens.Issue(token.Grant{Subject: u.Subject, SessionID: se.ID, Scope: scope,
		AMR: strings.Fields(se.AMR), ClientID: client.ID}, now)
	if err != nil {
		return TokenResponse{}, err
	}
	out := TokenResponse{AccessToken: access, TokenType: "Bearer", ExpiresIn: int(p.tokens.Lifetime().Seconds()), Scope: scope,
		RefreshToken: refresh}
	if hasScope(scope, ScopeOpenID) {
		if out.IDToken, err = p.idToken(client, u, se, authTime, nonce, access, now); err != nil {
			return TokenResponse{}, err
		}
	}
	return out, nil
}

// IDClaims are an ID token's claims (OpenID Connect Core §2, §5.1).
type IDClaims struct {
	AuthTime          int64    `json:"auth_time"`
	Nonce             string   `json:"nonce,omitempty"`
	AMR               []string `json:"amr,omitempty"`
	ATHash            string   `json:"at_hash,omitempty"`
	AZP               string   `json:"azp,omitempty"`
	SID               string   `json:"sid,omitempty"`
	PreferredUsername string   `json:"preferred_username,omitempty"`
	Email             string   `json:"email,omitempty"`
	EmailVerified     *bool    `json:"email_verified,omitempty"`
	jwt.RegisteredClaims
}

// idToken signs an ID token for the application's session: RS256 unless
// the application registered EdDSA. sid names the session of this service
// it was authorized from, which back-channel logouts name too.
func (p *Provider) idToken(client db.Client, u db.User, se db.Session, authTime time.Time, nonce, access string, now time.Time) (string, error) {
	iat := now.Truncate(time.Second)
	c := IDClaims{AuthTime: authTime.Unix(), Nonce: nonce, AMR: strings.Fields(se.AMR), AZP: client.ID, SID: se.ParentID,
		RegisteredClaims: jwt.RegisteredClaims{Issuer: p.cfg.Issuer, Subject: u.Subject, Audience: jwt.ClaimStrings{client.ID},
			IssuedAt: jwt.NewNumericDate(iat), ExpiresAt: jwt.NewNumericDate(iat.Add(p.cfg.IDTokenLifetime))}}
	if access != "" {
		c.ATHash = leftHalfHash(access, client.IDTokenAlg)
	}
	claims := p.claimsFor(u, se.Scope)
	c.PreferredUsername, c.Email = claims.PreferredUsername, claims.Email
	c.EmailVerified = claims.EmailVerified
	return p.tokens.Sign(c, client.IDTokenAlg, now, map[string]any{"typ": "JWT"})
}

// leftHalfHash is at_hash (OpenID Connect Core §3.1.3.6): the left half of
// the access token's hash under the hash of the ID token's algorithm:
// SHA-256 for RS256, SHA-512 for EdDSA (Ed25519 hashes with SHA-512, as
// the libraries that verify at_hash take it).
func leftHalfHash(s, alg string) string {
	if alg == "EdDSA" {
		sum := sha512.Sum512([]byte(s))
		return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
	}
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
}

// UserInfo is what /userinfo and ID tokens say of an account, by scope.
type UserInfo struct {
	Subject           string `json:"sub"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Email             string `json:"email,omitempty"`
	EmailVerified     *bool  `json:"email_verified,omitempty"`
}

func (p *Provider) claimsFor(u db.User, scope string) UserInfo {
	info := UserInfo{Subject: u.Subject}
	if hasScope(scope, ScopeProfile) {
		info.PreferredUsername = u.Username
	}
	if hasScope(scope, ScopeEmail) {
		v := u.EmailVerified
		info.Email, info.EmailVerified = u.Email, &v
	}
	return info
}

// UserInfoOf answers /userinfo for an application's access token: the
// claims its scopes allow. insufficient_scope (403) for a token without
// openid.
func (p *Provider) UserInfoOf(pr *account.Principal) (UserInfo, error) {
	granted := pr.Granted()
	if !hasScope(granted, ScopeOpenID) {
		return UserInfo{}, oauthErr(403, "insufficient_scope", "The access token does not allow openid")
	}
	return p.claimsFor(pr.User, granted), nil
}

// Refresh serves a refresh_token grant for an application's session: the
// application must authenticate (auth reads how) as at the code exchange; the account
// core's rotation, reuse detection and grace apply; a new ID token comes
// with the new access token. ok is false when the token is not an
// application's (the core's own refresh grant answers it as before).
func (p *Provider) Refresh(ctx context.Context, c account.Client, auth func() (ClientAuth, error), raw, scope string) (TokenResponse, bool, error) {
	se, _, _, err := p.store.SessionByRefresh(ctx, token.HashRefresh(raw))
	if errors.Is(err, db.ErrNotFound) || (err == nil && se.ClientID == "") {
		// Not an application's token: the core's refresh grant answers,
		// as it always has (its clients may send any client_id).
		return TokenResponse{}, false, nil
	}
	if err != nil {
		return TokenResponse{}, true, account.Fail(err)
	}
	a, err := auth()
	if err != nil {
		return TokenResponse{}, true, err
	}
	client, err := p.authenticate(ctx, a)
	if err != nil {
		return TokenResponse{}, true, err
	}
	if client.ID != se.ClientID {
		return TokenResponse{}, true, oauthErr(400, "invalid_grant", account.MsgInvalidRefresh)
	}
	g, err := p.acct.Refresh(ctx, c, raw, scope)
	switch account.ErrorCode(err) {
	case "":
	case account.EUnauthorized:
		return TokenResponse{}, true, oauthErr(400, "invalid_grant", account.MsgInvalidRefresh)
	case account.EInvalid:
		return TokenResponse{}, true, oauthErr(400, "invalid_scope", "The requested scope is wider than the one granted")
	default:
		return TokenResponse{}, true, err
	}
	out := TokenResponse{AccessToken: g.AccessToken, TokenType: "Bearer", ExpiresIn: g.ExpiresIn, Scope: g.Scope, RefreshToken: g.RefreshToken}
	if hasScope(g.Scope, ScopeOpenID) {
		authTime := g.Session.SignedInAt()
		if out.IDToken, err = p.idToken(client, g.User, g.Session, authTime, "", g.AccessToken, p.now()); err != nil {
			return TokenResponse{}, true, err
		}
	}
	return out, true, nil
}
