// Package openapi holds the OpenAPI 3.1 description of the JSON API, served
// at /openapi.json. Tests in package app keep it in step with the routes and
// with what the handlers answer.
package openapi

import _ "embed"

// Document is the OpenAPI 3.1 description, as JSON.
//
//go:embed openapi.json
var Document []byte
