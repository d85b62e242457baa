package app

import (
	"net/http"
	"time"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/federation"
	"fiberauth/db"
)

// Sign-in providers in the admin area: /admin/providers and the same as
// JSON under /admin/api/providers.

// providerJSON is a provider as the admin API shows it (never its
// secret).
type providerJSON struct {
	Name        string `json:"name"`
	DisplayName string `json:"display_name"`
	Kind        string `json:"kind"`
	Issuer      string `json:"issuer"`
	ClientID    string `json:"client_id"`
	HasSecret   bool   `json:"has_client_secret"`
	Scopes      string `json:"scopes"`
	RedirectURI string `json:"redirect_uri"`
	CreatedAt   string `json:"created_at"`
	Unreachable string `json:"warning,omitempty"`
}

func (s *Server) providerOut(p db.Provider) providerJSON {
	return providerJSON{Name: p.Name, DisplayName: p.DisplayName, Kind: p.Kind, Issuer: p.Issuer, ClientID: p.ClientID,
		HasSecret: p.SealedSecret != "", Scopes: p.Scopes, RedirectURI: s.fed.RedirectURI(p.Name),
		CreatedAt: p.CreatedAt.UTC().Format(time.RFC3339)}
}

// apiAdminProviders is GET /admin/api/providers.
func (s *Server) apiAdminProviders(c *fiber.Ctx) error {
	list, err := s.fed.Providers(c.UserContext())
	if err != nil {
		return err
	}
	out := make([]providerJSON, 0, len(list))
	for _, p := range list {
		out = append(out, s.providerOut(p))
	}
	return c.JSON(fiber.Map{"providers": out})
}

// providerRequest is the body of POST /admin/api/providers.
type providerRequest struct {
	Name         *string `json:"name"`
	DisplayName  *string `json:"display_name"`
	Kind         *string `json:"kind"`
	Issuer       *string `json:"issuer"`
	ClientID     *string `json:"client_id"`
	ClientSecret *string `json:"client_secret"`
	Scopes       *string `json:"scopes"`
}

// apiAdminAddProvider is POST /admin/api/providers → 201.
func (s *Server) apiAdminAddProvider(c *fiber.Ctx) error {
	var req providerRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	in := federation.ProviderInput{Name: required(&problems, "name", req.Name), DisplayName: optional(&problems, "display_name", req.DisplayName),
		Issuer: optional(&problems, "issuer", req.Issuer), ClientID: required(&problems, "client_id", req.ClientID),
		ClientSecret: optional(&problems, "client_secret", req.ClientSecret), Scopes: optional(&problems, "scopes", req.Scopes)}
	switch kind := optional(&problems, "kind", req.Kind); kind {
	case "", db.ProviderOIDC:
	case db.ProviderGitHub:
		in.GitHub = true
	default:
		problems = append(problems, fieldError{Type: "literal_error", Loc: []string{"body", "kind"}, Msg: "Input should be 'oidc' or 'github'"})
	}
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	p, err := s.fed.Add(c.UserContext(), s.admin(c), in)
	if err != nil {
		return err
	}
	out := s.providerOut(p)
	if err := s.fed.Reachable(c.UserContext(), p); err != nil {
		out.Unreachable = err.Error()
	}
	return c.Status(http.StatusCreated).JSON(out)
}

// apiAdminDeleteProvider is DELETE /admin/api/providers/{name} → 200 with
// how many accounts it left without a way to sign in.
func (s *Server) apiAdminDeleteProvider(c *fiber.Ctx) error {
	d, err := s.fed.Delete(c.UserContext(), s.admin(c), c.Params("name"))
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"deleted": c.Params("name"), "accounts_left_without_sign_in": d.Stranded, "sessions_ended": d.SessionsEnded})
}

// providersView is what /admin/providers shows.
type providersView struct {
	Providers []providerJSON
	Fields    []fieldView
}

func providerFields(v, errs map[string]string) []fieldView {
	return []fieldView{
		{Name: "name", Label: "Name", Type: "text", Value: v["name"], Error: errs["name"], Required: true, MaxLength: 32,
			Hint: "Short, in addresses: /login/<name>. Lower-case letters, digits and '-'."},
		{Name: "display_name", Label: "Display name (optional)", Type: "text", Value: v["display_name"], Error: errs["display_name"], MaxLength: 64,
			Hint: "The buttons say “Continue with <display name>”."},
		{Name: "issuer", Label: "Issuer URL (OpenID Connect)", Type: "text", Value: v["issuer"], Error: errs["issuer"],
			Hint: "Such as https://accounts.example.com; leave empty for GitHub."},
		{Name: "client_id", Label: "Client ID", Type: "text", Value: v["client_id"], Error: errs["client_id"], Required: true},
		{Name: "client_secret", Label: "Client secret", Type: "password", Autocomplete: "off", Error: errs["client_secret"],
			Hint: "Kept encrypted."},
	}
}

// pageAdminProviders is GET /admin/providers.
func (s *Server) pageAdminProviders(c *fiber.Ctx) error {
	return s.adminProvidersPage(c, http.StatusOK, "", "", nil, nil)
}

func (s *Server) adminProvidersPage(c *fiber.Ctx, status int, note, errMsg string, values, errs map[string]string) error {
	list, err := s.fed.Providers(c.UserContext())
	if err != nil {
		return err
	}
	views := make([]providerJSON, 0, len(list))
	for _, p := range list {
		views = append(views, s.providerOut(p))
	}
	return s.render(c, status, "admin_providers", page{Title: "Sign-in providers", Notice: note, Error: errMsg,
		ProviderAdmin: &providersView{Providers: views, Fields: providerFields(values, errs)}})
}

// submitAdminAddProvider is POST /admin/providers.
func (s *Server) submitAdminAddProvider(c *fiber.Ctx) error {
	f := pageForm(c)
	values := map[string]string{}
	for _, k := range []string{"name", "display_name", "issuer", "client_id"} {
		values[k] = shown(f.get(k))
	}
	p, err := s.fed.Add(c.UserContext(), s.admin(c), federation.ProviderInput{Name: f.get("name"), DisplayName: f.get("display_name"),
		GitHub: f.get("kind") == db.ProviderGitHub, Issuer: f.get("issuer"), ClientID: f.get("client_id"), ClientSecret: f.get("client_secret")})
	if err != nil {
		status, msg, fields, ok := pageError(c, err)
		if !ok {
			return err
		}
		return s.adminProvidersPage(c, status, "", msg, values, fields)
	}
	note := p.DisplayName + " added. Register the redirect URI " + s.fed.RedirectURI(p.Name) + " at the provider."
	if err := s.fed.Reachable(c.UserContext(), p); err != nil {
		note += " It does not answer yet: people see a page saying so until it does."
	}
	return s.adminProvidersPage(c, http.StatusOK, note, "", nil, nil)
}

// submitAdminDeleteProvider is POST /admin/providers/{name}/delete.
func (s *Server) submitAdminDeleteProvider(c *fiber.Ctx) error {
	d, err := s.fed.Delete(c.UserContext(), s.admin(c), c.Params("name"))
	if err != nil {
		if status, msg, _, ok := pageError(c, err); ok {
			return s.adminProvidersPage(c, status, "", msg, nil, nil)
		}
		return err
	}
	note := "The provider has been deleted, with every link to it; every session signed in with it has ended."
	if d.Stranded > 0 {
		note += " Accounts left without a way to sign in can set a password with a reset by mail."
	}
	return s.adminProvidersPage(c, http.StatusOK, note, "", nil, nil)
}
