package app

import (
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/oidc"
	"fiberauth/db"
)

// Registered applications in the admin area: /admin/clients and the same
// as JSON under /admin/api/clients.

// clientJSON is an application as the admin API shows it.
type clientJSON struct {
	ClientID               string   `json:"client_id"`
	Name                   string   `json:"name"`
	Public                 bool     `json:"public"`
	FirstParty             bool     `json:"first_party"`
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	BackchannelLogoutURI   string   `json:"backchannel_logout_uri,omitempty"`
	Scopes                 []string `json:"scopes"`
	IDTokenAlg             string   `json:"id_token_signed_response_alg"`
	CreatedAt              string   `json:"created_at"`
	// Secret is shown once, when the application is created or its
	// secret rotated.
	Secret string `json:"client_secret,omitempty"`
}

func clientOut(c db.Client, secret string) clientJSON {
	return clientJSON{ClientID: c.ID, Name: c.Name, Public: c.Public(), FirstParty: c.FirstParty,
		RedirectURIs: nonNil(c.RedirectURIs), PostLogoutRedirectURIs: nonNil(c.PostLogoutRedirectURIs),
		BackchannelLogoutURI: c.BackchannelLogoutURI, Scopes: nonNil(c.Scopes), IDTokenAlg: c.IDTokenAlg,
		CreatedAt: c.CreatedAt.UTC().Format(time.RFC3339), Secret: secret}
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// apiAdminClients is GET /admin/api/clients.
func (s *Server) apiAdminClients(c *fiber.Ctx) error {
	list, err := s.oidc.Clients(c.UserContext())
	if err != nil {
		return err
	}
	out := make([]clientJSON, 0, len(list))
	for _, cl := range list {
		out = append(out, clientOut(cl, ""))
	}
	return c.JSON(fiber.Map{"clients": out})
}

// clientRequest is the body of POST /admin/api/clients.
type clientRequest struct {
	Name                   *string  `json:"name"`
	RedirectURIs           []string `json:"redirect_uris"`
	PostLogoutRedirectURIs []string `json:"post_logout_redirect_uris"`
	BackchannelLogoutURI   *string  `json:"backchannel_logout_uri"`
	Scopes                 []string `json:"scopes"`
	Public                 bool     `json:"public"`
	FirstParty             bool     `json:"first_party"`
	IDTokenAlg             *string  `json:"id_token_signed_response_alg"`
}

// apiAdminCreateClient is POST /admin/api/clients → 201 with the secret,
// shown once.
func (s *Server) apiAdminCreateClient(c *fiber.Ctx) error {
	var req clientRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	name := required(&problems, "name", req.Name)
	backchannel := optional(&problems, "backchannel_logout_uri", req.BackchannelLogoutURI)
	alg := optional(&problems, "id_token_signed_response_alg", req.IDTokenAlg)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	cl, secret, err := s.oidc.CreateClient(c.UserContext(), s.admin(c), oidc.ClientInput{Name: name, RedirectURIs: req.RedirectURIs,
		PostLogoutRedirectURIs: req.PostLogoutRedirectURIs, BackchannelLogoutURI: backchannel, Scopes: req.Scopes, Public: req.Public,
		FirstParty: req.FirstParty, IDTokenAlg: alg})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(http.StatusCreated).JSON(clientOut(cl, secret))
}

// apiAdminRotateClient is POST /admin/api/clients/{id}/secret.
func (s *Server) apiAdminRotateClient(c *fiber.Ctx) error {
	secret, err := s.oidc.RotateSecret(c.UserContext(), s.admin(c), c.Params("id"))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"client_id": c.Params("id"), "client_secret": secret})
}

// apiAdminDeleteClient is DELETE /admin/api/clients/{id}.
func (s *Server) apiAdminDeleteClient(c *fiber.Ctx) error {
	if err := s.oidc.DeleteClient(c.UserContext(), s.admin(c), c.Params("id")); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// clientsView is what /admin/clients shows.
type clientsView struct {
	Clients []db.Client
	// Created or Rotated is the application just made or given a new
	// secret, with Secret shown once.
	Created *db.Client
	Secret  string
	Fields  []fieldView
}

func clientFields(v map[string]string, errs map[string]string) []fieldView {
	return []fieldView{
		{Name: "name", Label: "Name", Type: "text", Value: v["name"], Error: errs["name"], Required: true, MaxLength: 100,
			Hint: "Shown to people on the consent page."},
		{Name: "redirect_uris", Label: "Redirect URIs", Type: "text", Value: v["redirect_uris"], Error: errs["redirect_uris"], Required: true,
			Hint: "Where the application receives its codes, exactly; several separated by spaces. https, or http for localhost."},
		{Name: "post_logout_redirect_uris", Label: "Post-logout redirect URIs (optional)", Type: "text", Value: v["post_logout_redirect_uris"],
			Error: errs["post_logout_redirect_uris"]},
		{Name: "backchannel_logout_uri", Label: "Back-channel logout URI (optional)", Type: "text", Value: v["backchannel_logout_uri"],
			Error: errs["backchannel_logout_uri"], Hint: "Receives a signed logout token whenever a session the application holds ends."},
	}
}

// pageAdminClients is GET /admin/clients.
func (s *Server) pageAdminClients(c *fiber.Ctx) error {
	return s.adminClientsPage(c, http.StatusOK, "", nil, nil, nil, "")
}

func (s *Server) adminClientsPage(c *fiber.Ctx, status int, errMsg string, values, errs map[string]string, made *db.Client, secret string) error {
	list, err := s.oidc.Clients(c.UserContext())
	if err != nil {
		return err
	}
	note := ""
	switch c.Query("done") {
	case "deleted":
		note = "The application has been deleted; its sessions ended."
	}
	return s.render(c, status, "admin_clients", page{Title: "Applications", Notice: note, Error: errMsg,
		Clients: &clientsView{Clients: list, Created: made, Secret: secret, Fields: clientFields(values, errs)}})
}

// submitAdminCreateClient is POST /admin/clients.
func (s *Server) submitAdminCreateClient(c *fiber.Ctx) error {
	f := pageForm(c)
	values := map[string]string{}
	for _, k := range []string{"name", "redirect_uris", "post_logout_redirect_uris", "backchannel_logout_uri"} {
		values[k] = shown(f.get(k))
	}
	cl, secret, err := s.oidc.CreateClient(c.UserContext(), s.admin(c), oidc.ClientInput{Name: f.get("name"),
		RedirectURIs: strings.Fields(f.get("redirect_uris")), PostLogoutRedirectURIs: strings.Fields(f.get("post_logout_redirect_uris")),
		BackchannelLogoutURI: f.get("backchannel_logout_uri"), Public: f.get("public") == "1", FirstParty: f.get("first_party") == "1",
		Scopes: f["scopes"], IDTokenAlg: f.get("id_token_alg")})
	if err != nil {
		status, msg, fields, ok := pageError(c, err)
		if !ok {
			return err
		}
		return s.adminClientsPage(c, status, msg, values, fields, nil, "")
	}
	return s.adminClientsPage(c, http.StatusOK, "", nil, nil, &cl, secret)
}

// submitAdminRotateClient is POST /admin/clients/{id}/secret.
func (s *Server) submitAdminRotateClient(c *fiber.Ctx) error {
	secret, err := s.oidc.RotateSecret(c.UserContext(), s.admin(c), c.Params("id"))
	if err != nil {
		if status, msg, _, ok := pageError(c, err); ok {
			return s.adminClientsPage(c, status, msg, nil, nil, nil, "")
		}
		return err
	}
	cl, err := s.oidc.Client(c.UserContext(), c.Params("id"))
	if err != nil {
		return err
	}
	return s.adminClientsPage(c, http.StatusOK, "", nil, nil, &cl, secret)
}

// submitAdminDeleteClient is POST /admin/clients/{id}/delete.
func (s *Server) submitAdminDeleteClient(c *fiber.Ctx) error {
	if err := s.oidc.DeleteClient(c.UserContext(), s.admin(c), c.Params("id")); err != nil {
		if status, msg, _, ok := pageError(c, err); ok {
			return s.adminClientsPage(c, status, msg, nil, nil, nil, "")
		}
		return err
	}
	return c.Redirect("/admin/clients?done=deleted", fiber.StatusSeeOther)
}
