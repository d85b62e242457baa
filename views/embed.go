// Package views holds the server-rendered HTML templates, embedded in the
// binary so that it runs from any directory.
package views

import "embed"

// FS holds every template: pages at the top level, shared pieces under
// partials/.
//
//go:embed *.html partials/*.html
var FS embed.FS
