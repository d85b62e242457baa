package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"fiberauth/app/valid"
)

// form holds the fields of a request body. Handlers of POST requests read
// their fields only from here, never from the URL's query string, so that a
// credential or token in a URL (which logs and browser histories keep) is
// never taken, and a query value can never override a body field.
type form map[string][]string

// get returns the first value of name, or "".
func (f form) get(name string) string {
	if v := f[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// has reports whether name was sent.
func (f form) has(name string) bool { _, ok := f[name]; return ok }

// errNotForm is returned for a body that is neither form encoding.
var errNotForm = errors.New("the request body must be form-encoded (application/x-www-form-urlencoded)")

// mediaType returns the request's Content-Type without parameters, lower
// case, or "" when there is none or it does not parse.
func mediaType(c *fiber.Ctx) string {
	ct := string(c.Request().Header.ContentType())
	if ct == "" {
		return ""
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return ""
	}
	return mt
}

// bodyForm parses an application/x-www-form-urlencoded or
// multipart/form-data body (as FastAPI's form fields accept both). Any
// other content type gives errNotForm.
func bodyForm(c *fiber.Ctx) (form, error) {
	switch mediaType(c) {
	case fiber.MIMEApplicationForm:
		var args fasthttp.Args
		args.ParseBytes(c.Body())
		f := form{}
		args.VisitAll(func(k, v []byte) {
			f[string(k)] = append(f[string(k)], string(v))
		})
		return f, nil
	case fiber.MIMEMultipartForm:
		mf, err := c.MultipartForm()
		if err != nil {
			return nil, errors.New("the multipart body could not be read")
		}
		return form(mf.Value), nil
	}
	return nil, errNotForm
}

// pageForm reads a page's form submission; a body that is not a form reads
// as an empty one (the CSRF check then refuses it).
func pageForm(c *fiber.Ctx) form {
	f, err := bodyForm(c)
	if err != nil {
		return form{}
	}
	return f
}

// decodeJSON reads a JSON object of string fields into dst (a pointer to a
// struct of *string fields). The body must be declared application/json
// (415 otherwise: a cross-site form cannot send that type without a
// preflight); problems with the JSON itself come back as 422 field errors.
func decodeJSON(c *fiber.Ctx, dst any) error {
	if mediaType(c) != fiber.MIMEApplicationJSON {
		return errNotJSON
	}
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return errValidation(fieldError{Type: "missing", Loc: []string{"body"}, Msg: "Field required"})
	}
	if !utf8.Valid(body) {
		return errValidation(fieldError{Type: "json_invalid", Loc: []string{"body"}, Msg: "Body is not valid UTF-8"})
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(dst); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return errValidation(fieldError{Type: "string_type", Loc: []string{"body", te.Field}, Msg: "Input should be a valid string"})
		}
		if errors.As(err, &te) {
			return errValidation(fieldError{Type: "model_attributes_type", Loc: []string{"body"}, Msg: "Input should be a JSON object"})
		}
		return errValidation(fieldError{Type: "json_invalid", Loc: []string{"body"}, Msg: "JSON decode error"})
	}
	if dec.More() {
		return errValidation(fieldError{Type: "json_invalid", Loc: []string{"body"}, Msg: "JSON decode error: trailing data"})
	}
	return nil
}

// required checks that a decoded field is present and clean.
func required(problems *[]fieldError, name string, v *string) string {
	if v == nil {
		*problems = append(*problems, fieldError{Type: "missing", Loc: []string{"body", name}, Msg: "Field required"})
		return ""
	}
	if p := valid.Text(*v); p != "" {
		*problems = append(*problems, fieldError{Type: "value_error", Loc: []string{"body", name}, Msg: "Value " + p})
		return ""
	}
	return *v
}

// oauthForm reads an OAuth endpoint's form body (RFC 6749 §3.2, RFC 7009
// §2.1): any problem with it is 400 invalid_request, and no parameter may
// be sent twice.
func oauthForm(c *fiber.Ctx, fields ...string) (form, error) {
	f, err := bodyForm(c)
	if err != nil {
		return nil, oauthError(http.StatusBadRequest, "invalid_request", err.Error())
	}
	return f, f.check(fields...)
}

// check refuses a request whose named fields are repeated or not clean
// text: 400 invalid_request.
func (f form) check(fields ...string) error {
	for _, name := range fields {
		if len(f[name]) > 1 {
			return oauthError(http.StatusBadRequest, "invalid_request", name+" must not be repeated")
		}
		if p := valid.Text(f.get(name)); p != "" {
			return oauthError(http.StatusBadRequest, "invalid_request", name+" "+p)
		}
	}
	return nil
}

// optional reads a field that may be left out ("" then); present, it must
// be clean.
func optional(problems *[]fieldError, name string, v *string) string {
	if v == nil {
		return ""
	}
	return required(problems, name, v)
}
