package oidc

// Metadata is the provider's description of itself, for both
// /.well-known/openid-configuration (OpenID Connect Discovery 1.0 §3) and
// /.well-known/oauth-authorization-server (RFC 8414).
func (p *Provider) Metadata() map[string]any {
	base := p.cfg.Issuer
	return map[string]any{
		"issuer":                                base,
		"authorization_endpoint":                base + "/authorize",
		"token_endpoint":                        base + "/token",
		"userinfo_endpoint":                     base + "/userinfo",
		"jwks_uri":                              base + "/.well-known/jwks.json",
		"end_session_endpoint":                  base + "/logout",
		"revocation_endpoint":                   base + "/revoke",
		"introspection_endpoint":                base + "/introspect",
		"scopes_supported":                      KnownScopes,
		"response_types_supported":              []string{"code"},
		"response_modes_supported":              []string{"query"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token", "password"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256", "EdDSA"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post", "none"},
		"code_challenge_methods_supported":      []string{"S256"},
		"claims_supported": []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "amr", "at_hash", "azp", "sid",
			"preferred_username", "email", "email_verified"},
		"prompt_values_supported":                        []string{"none", "login", "consent", "select_account"},
		"claims_parameter_supported":                     false,
		"request_parameter_supported":                    false,
		"request_uri_parameter_supported":                false,
		"authorization_response_iss_parameter_supported": true,
		"backchannel_logout_supported":                   true,
		"backchannel_logout_session_supported":           true,
		"revocation_endpoint_auth_methods_supported":     []string{"none"},
		"introspection_endpoint_auth_methods_supported":  []string{"bearer"},
		"service_documentation":                          base + "/docs",
	}
}
