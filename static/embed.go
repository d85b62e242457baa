// Package static holds the stylesheets, images and vendored front-end
// assets, embedded in the binary.
package static

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed css js vendor favicon.svg
var files embed.FS

// FS returns the assets as an http.FileSystem rooted at this folder.
func FS() http.FileSystem {
	sub, err := fs.Sub(files, ".")
	if err != nil {
		panic(err) // unreachable: "." always exists
	}
	return http.FS(sub)
}
