package app

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/boombuler/barcode/qr"
	"github.com/gofiber/fiber/v2"

	"fiberauth/app/account"
	"fiberauth/db"
)

// The browser side of two-factor sign-in: the second step of the login
// page, and the profile's set-up, turn-off and recovery-code pages.

// The pending second step: after a right password, a signed cookie names
// the account for five minutes. Its signature covers the account's stamp,
// which every change that voids pending second steps moves on (the
// account core's table of what ends what: a password change, signing out
// everywhere, ...). No session exists until the second step succeeds.
const (
	mfaCookie     = "mfa_pending"
	mfaPendingFor = 5 * time.Minute
)

// mfaSign signs a pending step for u as it is now: its stamp, and its
// subject identifier (never reused, so that a step cannot outlive its
// account into another that gets the same id).
func (s *Server) mfaSign(payload string, u db.User) string {
	mac := hmac.New(sha256.New, s.mfaKey)
	mac.Write([]byte(payload + "|" + strconv.FormatInt(u.Stamp, 10) + "|" + u.Subject))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// setPending starts the second step for u in this browser; via names the
// provider of the first step, "" for a password.
func (s *Server) setPending(c *fiber.Ctx, u db.User, via string) error {
	nonce := make([]byte, 16)
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	payload := strconv.FormatInt(u.ID, 10) + "." + strconv.FormatInt(s.acct.Now().Add(mfaPendingFor).Unix(), 10) + "." +
		base64.RawURLEncoding.EncodeToString(nonce) + "." + via
	s.setCookie(c, mfaCookie, payload+"."+s.mfaSign(payload, u), mfaPendingFor)
	// The page rendered with this answer names the account too.
	c.Locals(pendingLocal, u.ID)
	return nil
}

// pendingStep is this browser's second step: the account it names, the
// check of its signature against the account's current stamp, and the
// provider of the first step ("" for a password).
type pendingStep struct {
	userID int64
	proves func(db.User) bool
	via    string
}

// pending reads this browser's second step. ok is false without one, or
// when it has expired.
func (s *Server) pending(c *fiber.Ctx) (pendingStep, bool) {
	parts := strings.Split(c.Cookies(s.cookieName(c, mfaCookie)), ".")
	if len(parts) != 5 {
		return pendingStep{}, false
	}
	id, err1 := strconv.ParseInt(parts[0], 10, 64)
	exp, err2 := strconv.ParseInt(parts[1], 10, 64)
	if err1 != nil || err2 != nil || !s.acct.Now().Before(time.Unix(exp, 0)) {
		return pendingStep{}, false
	}
	payload, sig := strings.Join(parts[:4], "."), parts[4]
	return pendingStep{userID: id, via: parts[3], proves: func(u db.User) bool {
		return hmac.Equal([]byte(sig), []byte(s.mfaSign(payload, u)))
	}}, true
}

func secondStepFields(recovery bool, errMsg string) []fieldView {
	if recovery {
		return []fieldView{{Name: "code", Label: "Recovery code", Type: "text", Autocomplete: "off", Error: errMsg,
			Hint:     "One of the codes you saved when you set up two-factor sign-in, such as 7K3M9-QXD2R. Each works once.",
			Required: true, Autofocus: true, MaxLength: 40}}
	}
	return []fieldView{{Name: "code", Label: "Code from your authenticator app", Type: "text", Autocomplete: "one-time-code",
		Error: errMsg, Hint: "6 digits.", Required: true, Autofocus: true, MaxLength: 40}}
}

// secondStep renders the login page's second step, offering a passkey
// beside the code when the account has one.
func (s *Server) secondStep(c *fiber.Ctx, status int, next string, recovery bool, errMsg string) error {
	has := false
	step, ok := s.pending(c)
	userID := step.userID
	if id, set := c.Locals(pendingLocal).(int64); set {
		userID, ok = id, true
	}
	if ok {
		var err error
		if has, err = s.acct.HasPasskeys(c.UserContext(), userID); err != nil {
			return err
		}
	}
	return s.render(c, status, "login", page{Title: "Two-factor sign-in", MFA: true, Recovery: recovery, Next: next,
		Error: errMsg, Fields: secondStepFields(recovery, errMsg), HasPasskeys: has})
}

// pageSecondStep is GET /login/mfa: the second step again (for example
// with ?recovery=1 for a recovery code).
func (s *Server) pageSecondStep(c *fiber.Ctx) error {
	if _, ok := s.pending(c); !ok {
		return c.Redirect("/login?done=mfa_expired", fiber.StatusSeeOther)
	}
	return s.secondStep(c, http.StatusOK, safeNext(c.Query("next")), c.Query("recovery") == "1", "")
}

// submitSecondStep is POST /login/mfa.
func (s *Server) submitSecondStep(c *fiber.Ctx) error {
	f := pageForm(c)
	next, recovery := safeNext(f.get("next")), f.get("recovery") == "1"
	step, ok := s.pending(c)
	if !ok {
		s.clearCookie(c, mfaCookie)
		return c.Redirect("/login?done=mfa_expired", fiber.StatusSeeOther)
	}
	code := f.get("code")
	if strings.TrimSpace(code) == "" {
		msg := "Enter a code from your authenticator app."
		if recovery {
			msg = "Enter one of your recovery codes."
		}
		return s.secondStep(c, http.StatusUnprocessableEntity, next, recovery, msg)
	}
	g, err := s.acct.SecondStep(c.UserContext(), s.client(c, true), step.userID, step.proves, code, step.via)
	if err != nil {
		switch account.ErrorCode(err) {
		case account.EUnauthorized:
			s.clearCookie(c, mfaCookie)
			return c.Redirect("/login?done=mfa_expired", fiber.StatusSeeOther)
		case account.EUnverified:
			// Every factor was right, but the address must be verified
			// first: the same page as after a right password.
			s.clearCookie(c, mfaCookie)
			return s.render(c, http.StatusForbidden, "login", page{Title: "Log in", Next: next, Unverified: true,
				Login: g.User.Username, Error: msgUnverifiedPage, Fields: s.loginFields(g.User.Username, "")})
		}
		status, msg, _, ok := pageError(c, err)
		if !ok {
			return err
		}
		if account.ErrorCode(err) == account.EBadOTP {
			status = http.StatusUnauthorized
		}
		return s.secondStep(c, status, next, recovery, msg)
	}
	s.clearCookie(c, mfaCookie)
	if err := s.setSession(c, g); err != nil {
		return err
	}
	if next == "" {
		next = "/profile"
	}
	return c.Redirect(next, fiber.StatusSeeOther)
}

// qrSVG draws text as a QR code in SVG, for the page itself (no image
// request, no outside service).
func qrSVG(text string) (template.HTML, error) {
	code, err := qr.Encode(text, qr.M, qr.Auto)
	if err != nil {
		return "", err
	}
	b := code.Bounds()
	const quiet = 4
	w, h := b.Dx(), b.Dy()
	var path strings.Builder
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			r, _, _, _ := code.At(b.Min.X+x, b.Min.Y+y).RGBA()
			if r < 0x8000 {
				fmt.Fprintf(&path, "M%d %dh1v1h-1z", x+quiet, y+quiet)
			}
		}
	}
	svg := fmt.Sprintf(`<svg class="qr" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="220" height="220" role="img" aria-label="QR code for your authenticator app" shape-rendering="crispEdges"><rect width="100%%" height="100%%" fill="#fff"/><path d="%s" fill="#000"/></svg>`,
		w+2*quiet, h+2*quiet, path.String())
	return template.HTML(svg), nil // built here from numbers only
}

// groupSecret splits a base-32 secret into groups of four for typing.
func groupSecret(secret string) string {
	var parts []string
	for len(secret) > 4 {
		parts = append(parts, secret[:4])
		secret = secret[4:]
	}
	return strings.Join(append(parts, secret), " ")
}

// submitMFASetup is POST /profile/mfa/setup: a new secret, then its page.
func (s *Server) submitMFASetup(c *fiber.Ctx) error {
	if _, err := s.acct.StartTOTP(c.UserContext(), currentUser(c)); err != nil {
		if account.ErrorCode(err) == account.EConflict {
			return c.Redirect("/profile", fiber.StatusSeeOther)
		}
		return err
	}
	return c.Redirect("/profile/mfa", fiber.StatusSeeOther)
}

func confirmFields(errs map[string]string) []fieldView {
	return []fieldView{
		{Name: "code", Label: "Code from your authenticator app", Type: "text", Autocomplete: "one-time-code",
			Error: errs["code"], Hint: "6 digits, shown by the app once it has the account.", Required: true, Autofocus: true, MaxLength: 40},
		{Name: "password", Label: "Your password", Type: "password", Autocomplete: "current-password",
			Error: errs["password"], Hint: "To confirm it is you turning this on.", Required: true},
	}
}

// pageMFA is GET /profile/mfa: the pending set-up (QR code, secret, and
// the form for the first code).
func (s *Server) pageMFA(c *fiber.Ctx) error {
	return s.mfaSetupPage(c, http.StatusOK, "", nil)
}

func (s *Server) mfaSetupPage(c *fiber.Ctx, status int, errMsg string, errs map[string]string) error {
	p := currentUser(c)
	if p.User.MFAEnabled {
		return c.Redirect("/profile", fiber.StatusSeeOther)
	}
	e, err := s.acct.PendingTOTP(c.UserContext(), p)
	if err != nil {
		return err
	}
	view := page{Title: "Set up two-factor sign-in", Error: errMsg}
	if e != nil {
		svg, err := qrSVG(e.URI)
		if err != nil {
			return err
		}
		view.QR, view.Secret, view.Fields = svg, groupSecret(e.Secret), confirmFields(errs)
	}
	return s.render(c, status, "mfa", view)
}

// submitMFAConfirm is POST /profile/mfa/confirm: the first code turns
// two-factor on, and the recovery codes are shown, once.
func (s *Server) submitMFAConfirm(c *fiber.Ctx) error {
	f := pageForm(c)
	codes, err := s.acct.ConfirmTOTP(c.UserContext(), s.client(c, true), currentUser(c), f.get("password"), f.get("code"))
	if err != nil {
		status, msg, fields, ok := pageError(c, err)
		if !ok {
			return err
		}
		switch account.ErrorCode(err) {
		case account.EBadOTP:
			msg = "That code is not the current one. Check the app shows this account, and that this device's clock is right."
			fields["code"] = msg
		case account.EForbidden:
			fields["password"] = msg
		default:
			if f := fields["code"]; f != "" {
				msg = f
			}
		}
		return s.mfaSetupPage(c, status, msg, fields)
	}
	// The account changed: show it as it is now.
	currentUser(c).User.MFAEnabled = true
	return s.recoveryPage(c, codes, "Two-factor sign-in is on.")
}

// recoveryPage shows recovery codes, once.
func (s *Server) recoveryPage(c *fiber.Ctx, codes []string, note string) error {
	text := "Recovery codes for " + currentUser(c).User.Username + " (" + s.cfg.TOTPIssuer + "). Each works once.\n\n" +
		strings.Join(codes, "\n") + "\n"
	return s.render(c, http.StatusOK, "recovery", page{Title: "Your recovery codes", Notice: note, Codes: codes,
		Download: template.URL("data:text/plain;charset=utf-8," + url.PathEscape(text))})
}

func stepUpFields(errs map[string]string) []fieldView {
	return []fieldView{
		{Name: "password", Label: "Password", Type: "password", Autocomplete: "current-password", Error: errs["password"],
			Required: true, Autofocus: true},
		{Name: "code", Label: "Code from your authenticator app", Type: "text", Autocomplete: "one-time-code",
			Error: errs["code"], Hint: "6 digits, or a recovery code.", Required: true, MaxLength: 40},
	}
}

// stepUpPage renders the turn-off or new-codes form.
func (s *Server) stepUpPage(c *fiber.Ctx, status int, which, errMsg string, errs map[string]string) error {
	title, action, button := "Turn off two-factor sign-in", "/profile/mfa/off", "Turn off"
	if which == "recovery" {
		title, action, button = "New recovery codes", "/profile/mfa/recovery", "Make new codes"
	}
	return s.render(c, status, "stepup", page{Title: title, Action: action, Button: button, Error: errMsg,
		Fields: stepUpFields(errs)})
}

func (s *Server) pageMFAOff(c *fiber.Ctx) error {
	return s.stepUpPage(c, http.StatusOK, "off", "", nil)
}

func (s *Server) pageNewRecoveryCodes(c *fiber.Ctx) error {
	return s.stepUpPage(c, http.StatusOK, "recovery", "", nil)
}

// stepUpError shows a refused turn-off or new-codes request in its form.
func (s *Server) stepUpError(c *fiber.Ctx, which string, err error) error {
	status, msg, fields, ok := pageError(c, err)
	if !ok {
		return err
	}
	switch account.ErrorCode(err) {
	case account.EForbidden:
		fields["password"] = msg
	case account.EMFARequired, account.EBadOTP:
		fields["code"] = msg
	}
	return s.stepUpPage(c, status, which, msg, fields)
}

// submitMFAOff is POST /profile/mfa/off.
func (s *Server) submitMFAOff(c *fiber.Ctx) error {
	f := pageForm(c)
	err := s.acct.DisableTOTP(c.UserContext(), s.client(c, true), currentUser(c), f.get("password"), f.get("code"))
	if err != nil {
		if account.ErrorCode(err) == account.EConflict {
			return c.Redirect("/profile", fiber.StatusSeeOther)
		}
		return s.stepUpError(c, "off", err)
	}
	return c.Redirect("/profile?done=mfa_off", fiber.StatusSeeOther)
}

// submitNewRecoveryCodes is POST /profile/mfa/recovery.
func (s *Server) submitNewRecoveryCodes(c *fiber.Ctx) error {
	f := pageForm(c)
	codes, err := s.acct.NewRecoveryCodes(c.UserContext(), s.client(c, true), currentUser(c), f.get("password"), f.get("code"))
	if err != nil {
		if account.ErrorCode(err) == account.EConflict {
			return c.Redirect("/profile", fiber.StatusSeeOther)
		}
		return s.stepUpError(c, "recovery", err)
	}
	return s.recoveryPage(c, codes, "New recovery codes are ready; the old ones no longer work.")
}
