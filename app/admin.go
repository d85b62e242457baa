package app

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/account"
	"fiberauth/db"
)

// The admin area: pages under /admin and the same as JSON under
// /admin/api, for accounts of the admin role (requireRole in routes.go).

// userParam reads the :id of an admin route.
func userParam(c *fiber.Ctx) (int64, error) {
	id, err := strconv.ParseInt(c.Params("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, &Error{Status: http.StatusNotFound, Detail: account.MsgUserNotFound}
	}
	return id, nil
}

// pageParam reads ?page= (1 when absent or not a positive number).
func pageParam(c *fiber.Ctx) int {
	n, err := strconv.Atoi(c.Query("page"))
	if err != nil || n < 1 || n > 1_000_000 {
		return 1
	}
	return n
}

type adminUserJSON struct {
	ID            int64  `json:"id"`
	Username      string `json:"username"`
	Email         string `json:"email"`
	Role          string `json:"role"`
	EmailVerified bool   `json:"email_verified"`
	MFAEnabled    bool   `json:"mfa_enabled"`
	CreatedAt     string `json:"created_at"`
	LastSignInAt  string `json:"last_sign_in_at"`
}

func adminUser(u db.User) adminUserJSON {
	j := adminUserJSON{ID: u.ID, Username: u.Username, Email: u.Email, Role: u.Role,
		EmailVerified: u.EmailVerified, MFAEnabled: u.MFAEnabled, CreatedAt: u.CreatedAt.UTC().Format(time.RFC3339)}
	if !u.LastSignInAt.IsZero() {
		j.LastSignInAt = u.LastSignInAt.UTC().Format(time.RFC3339)
	}
	return j
}

// apiAdminUsers is GET /admin/api/users?search=&page=.
func (s *Server) apiAdminUsers(c *fiber.Ctx) error {
	page := pageParam(c)
	p, err := s.acct.Users(c.UserContext(), c.Query("search"), page)
	if err != nil {
		return err
	}
	out := make([]adminUserJSON, 0, len(p.Users))
	for _, u := range p.Users {
		out = append(out, adminUser(u))
	}
	return c.JSON(fiber.Map{"users": out, "total": p.Total, "page": page, "page_size": account.AdminPageSize})
}

// apiAdminUser is GET /admin/api/users/{id}.
func (s *Server) apiAdminUser(c *fiber.Ctx) error {
	id, err := userParam(c)
	if err != nil {
		return err
	}
	d, err := s.acct.Account(c.UserContext(), id)
	if err != nil {
		return err
	}
	sessions := make([]sessionJSON, 0, len(d.Sessions))
	for _, se := range d.Sessions {
		sessions = append(sessions, sessionOut(se, ""))
	}
	events := make([]eventJSON, 0, len(d.Events))
	for _, e := range d.Events {
		events = append(events, eventOut(e))
	}
	passkeys := make([]passkeyJSON, 0, len(d.Passkeys))
	for _, p := range d.Passkeys {
		passkeys = append(passkeys, passkeyOut(p))
	}
	return c.JSON(fiber.Map{"user": adminUser(d.User), "sessions": sessions, "events": events, "passkeys": passkeys})
}

// apiAdminSetRole is PUT /admin/api/users/{id}/role, JSON {"role": ...}.
func (s *Server) apiAdminSetRole(c *fiber.Ctx) error {
	id, err := userParam(c)
	if err != nil {
		return err
	}
	var req struct {
		Role *string `json:"role"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	role := required(&problems, "role", req.Role)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	if err := s.acct.SetRole(c.UserContext(), s.admin(c), id, role); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// apiAdminEndSessions is DELETE /admin/api/users/{id}/sessions.
func (s *Server) apiAdminEndSessions(c *fiber.Ctx) error {
	id, err := userParam(c)
	if err != nil {
		return err
	}
	if _, err := s.acct.EndUserSessions(c.UserContext(), s.admin(c), id); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// apiAdminEndSession is DELETE /admin/api/users/{id}/sessions/{sid}.
func (s *Server) apiAdminEndSession(c *fiber.Ctx) error {
	id, err := userParam(c)
	if err != nil {
		return err
	}
	if err := s.acct.EndUserSession(c.UserContext(), s.admin(c), id, c.Params("sid")); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// userAction is an admin's action on one account that returns nothing.
type userAction func(ctx context.Context, by account.Admin, id int64) error

// apiUserAction answers an admin API route on /admin/api/users/{id}/...
// with act, then 204.
func (s *Server) apiUserAction(act userAction) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := userParam(c)
		if err != nil {
			return err
		}
		if err := act(c.UserContext(), s.admin(c), id); err != nil {
			return err
		}
		return c.SendStatus(http.StatusNoContent)
	}
}

// formUserAction answers an admin page's form on /admin/users/{id}/...
// with act, then the user's page with the notice done (or the error).
func (s *Server) formUserAction(act userAction, done string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := userParam(c)
		if err != nil {
			return err
		}
		return s.adminDone(c, id, act(c.UserContext(), s.admin(c), id), done)
	}
}

type auditJSON struct {
	Time   string `json:"time"`
	Admin  string `json:"admin"`
	Action string `json:"action"`
	Target string `json:"target"`
	Detail string `json:"detail"`
	IP     string `json:"ip"`
}

// apiAdminAudit is GET /admin/api/audit?page=.
func (s *Server) apiAdminAudit(c *fiber.Ctx) error {
	page := pageParam(c)
	list, total, err := s.acct.AuditLog(c.UserContext(), page)
	if err != nil {
		return err
	}
	out := make([]auditJSON, 0, len(list))
	for _, a := range list {
		out = append(out, auditJSON{Time: a.At.UTC().Format(time.RFC3339), Admin: a.AdminName, Action: a.Action,
			Target: a.TargetName, Detail: a.Detail, IP: a.IP})
	}
	return c.JSON(fiber.Map{"entries": out, "total": total, "page": page, "page_size": account.AdminPageSize})
}

// admin is the signed-in admin of a request.
func (s *Server) admin(c *fiber.Ctx) account.Admin {
	return account.AdminOf(currentUser(c), s.client(c, false))
}

// Pages.

// pageAdminUsers is GET /admin: the user list, searchable, 50 a page.
func (s *Server) pageAdminUsers(c *fiber.Ctx) error {
	pg := pageParam(c)
	search := c.Query("search")
	p, err := s.acct.Users(c.UserContext(), search, pg)
	if err != nil {
		return err
	}
	pages := (p.Total + account.AdminPageSize - 1) / account.AdminPageSize
	v := page{Title: "Admin: users", Admin: &adminView{Users: p.Users, Total: p.Total, Search: search, Page: pg, Pages: pages}}
	if pg > 1 {
		v.Admin.Prev = "/admin?" + url.Values{"search": {search}, "page": {strconv.Itoa(pg - 1)}}.Encode()
	}
	if pg < pages {
		v.Admin.Next = "/admin?" + url.Values{"search": {search}, "page": {strconv.Itoa(pg + 1)}}.Encode()
	}
	v.Notice = adminNotices[c.Query("done")]
	return s.render(c, http.StatusOK, "admin_users", v)
}

// pageAdminUser is GET /admin/users/{id}.
func (s *Server) pageAdminUser(c *fiber.Ctx) error {
	id, err := userParam(c)
	if err != nil {
		return err
	}
	d, err := s.acct.Account(c.UserContext(), id)
	if err != nil {
		return err
	}
	views := s.sessionViews(c.UserContext(), d.Sessions, "")
	v := page{Title: "Admin: " + d.User.Username, Sessions: views, Events: d.Events, PasskeyList: d.Passkeys,
		Admin: &adminView{Target: &d.User, Roles: account.Roles}}
	v.Notice = adminNotices[c.Query("done")]
	return s.render(c, http.StatusOK, "admin_user", v)
}

// Confirmations of admin actions, chosen by a fixed query value.
var adminNotices = map[string]string{
	"role":     "The role has been changed.",
	"sessions": "The sessions have been ended.",
	"session":  "The session has been ended.",
	"limits":   "The sign-in limits have been cleared.",
	"mfa":      "Two-factor sign-in is off for this account, and its sessions have ended.",
	"deleted":  "The account has been deleted.",
	"passkey":  "The passkey has been removed, and the account's sessions have ended.",
}

// adminDone redirects after an admin form, or shows its error on the
// user's page.
func (s *Server) adminDone(c *fiber.Ctx, id int64, err error, done string) error {
	if err != nil {
		if status, msg, fields, ok := pageError(c, err); ok {
			for _, m := range fields {
				msg = m // the one field of an admin form
			}
			return errDetail(status, msg)
		}
		return err
	}
	if done == "deleted" {
		return c.Redirect("/admin?done=deleted", fiber.StatusSeeOther)
	}
	return c.Redirect("/admin/users/"+strconv.FormatInt(id, 10)+"?done="+done, fiber.StatusSeeOther)
}

// submitAdminRole is POST /admin/users/{id}/role.
func (s *Server) submitAdminRole(c *fiber.Ctx) error {
	id, err := userParam(c)
	if err != nil {
		return err
	}
	return s.adminDone(c, id, s.acct.SetRole(c.UserContext(), s.admin(c), id, pageForm(c).get("role")), "role")
}

// submitAdminEndSessions is POST /admin/users/{id}/sessions/end.
func (s *Server) submitAdminEndSessions(c *fiber.Ctx) error {
	id, err := userParam(c)
	if err != nil {
		return err
	}
	_, err = s.acct.EndUserSessions(c.UserContext(), s.admin(c), id)
	return s.adminDone(c, id, err, "sessions")
}

// submitAdminEndSession is POST /admin/users/{id}/sessions/{sid}/end.
func (s *Server) submitAdminEndSession(c *fiber.Ctx) error {
	id, err := userParam(c)
	if err != nil {
		return err
	}
	return s.adminDone(c, id, s.acct.EndUserSession(c.UserContext(), s.admin(c), id, c.Params("sid")), "session")
}

// pageAdminAudit is GET /admin/audit.
func (s *Server) pageAdminAudit(c *fiber.Ctx) error {
	pg := pageParam(c)
	list, total, err := s.acct.AuditLog(c.UserContext(), pg)
	if err != nil {
		return err
	}
	pages := (total + account.AdminPageSize - 1) / account.AdminPageSize
	v := page{Title: "Admin: audit", Admin: &adminView{Audit: list, Total: total, Page: pg, Pages: pages}}
	if pg > 1 {
		v.Admin.Prev = "/admin/audit?page=" + strconv.Itoa(pg-1)
	}
	if pg < pages {
		v.Admin.Next = "/admin/audit?page=" + strconv.Itoa(pg+1)
	}
	return s.render(c, http.StatusOK, "admin_audit", v)
}
