package app

import (
	"net/http"

	"github.com/gofiber/fiber/v2"

	"fiberauth/app/account"
)

// Two-factor sign-in: enrolment and management on the API (the recipe's
// paths kept), and the recipe's code check.

// apiStartTOTP is POST /user/enable-mfa (the recipe's path) and POST
// /users/me/mfa/totp: a new secret waits for its first code.
func (s *Server) apiStartTOTP(c *fiber.Ctx) error {
	e, err := s.acct.StartTOTP(c.UserContext(), currentUser(c))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"totp_uri": e.URI, "secret": e.Secret})
}

// apiConfirmTOTP is POST /users/me/mfa/totp/confirm: the first code and
// the account's password turn two-factor on.
func (s *Server) apiConfirmTOTP(c *fiber.Ctx) error {
	var req struct {
		Code     *string `json:"code"`
		Password *string `json:"password"`
	}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var problems []fieldError
	code := required(&problems, "code", req.Code)
	pw := required(&problems, "password", req.Password)
	if len(problems) > 0 {
		return errValidation(problems...)
	}
	codes, err := s.acct.ConfirmTOTP(c.UserContext(), s.client(c, false), currentUser(c), pw, code)
	if err != nil {
		if account.ErrorCode(err) == account.EInvalid {
			return errDetail(http.StatusConflict, account.MsgNoPendingSetup)
		}
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"recovery_codes": codes})
}

func (s *Server) readStepUp(c *fiber.Ctx) (pw, code string, err error) {
	var req stepUpRequest
	if err := decodeJSON(c, &req); err != nil {
		return "", "", err
	}
	var problems []fieldError
	pw = required(&problems, "password", req.Password)
	code = required(&problems, "code", req.Code)
	if len(problems) > 0 {
		return "", "", errValidation(problems...)
	}
	return pw, code, nil
}

// apiDisableTOTP is DELETE /users/me/mfa/totp.
func (s *Server) apiDisableTOTP(c *fiber.Ctx) error {
	pw, code, err := s.readStepUp(c)
	if err != nil {
		return err
	}
	if err := s.acct.DisableTOTP(c.UserContext(), s.client(c, false), currentUser(c), pw, code); err != nil {
		return err
	}
	return c.SendStatus(http.StatusNoContent)
}

// apiNewRecoveryCodes is POST /users/me/mfa/recovery-codes.
func (s *Server) apiNewRecoveryCodes(c *fiber.Ctx) error {
	pw, code, err := s.readStepUp(c)
	if err != nil {
		return err
	}
	codes, err := s.acct.NewRecoveryCodes(c.UserContext(), s.client(c, false), currentUser(c), pw, code)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"recovery_codes": codes})
}

// apiVerifyTOTP is POST /verify-totp, the recipe's check of a code: JSON
// {"username","code"} or, as the recipe sends them, the query parameters
// username and code. It gates nothing and counts as a sign-in attempt.
func (s *Server) apiVerifyTOTP(c *fiber.Ctx) error {
	var username, code string
	if mediaType(c) == fiber.MIMEApplicationJSON {
		var req struct {
			Username *string `json:"username"`
			Code     *string `json:"code"`
		}
		if err := decodeJSON(c, &req); err != nil {
			return err
		}
		var problems []fieldError
		username = required(&problems, "username", req.Username)
		code = required(&problems, "code", req.Code)
		if len(problems) > 0 {
			return errValidation(problems...)
		}
	} else {
		username, code = c.Query("username"), c.Query("code")
		var problems []fieldError
		for _, f := range []struct{ name, v string }{{"username", username}, {"code", code}} {
			v := f.v
			if v == "" {
				problems = append(problems, fieldError{Type: "missing", Loc: []string{"query", f.name}, Msg: "Field required"})
			} else {
				required(&problems, f.name, &v)
			}
		}
		if len(problems) > 0 {
			return errValidation(problems...)
		}
	}
	err := s.acct.VerifyTOTP(c.UserContext(), s.client(c, false), username, code)
	switch account.ErrorCode(err) {
	case "":
		return c.JSON(fiber.Map{"message": "TOTP token verified successfully"})
	case account.EInvalid:
		return errDetail(http.StatusBadRequest, account.MsgMFANotActive)
	case account.EBadOTP:
		return errDetail(http.StatusUnauthorized, account.MsgInvalidTOTP)
	}
	return err
}
