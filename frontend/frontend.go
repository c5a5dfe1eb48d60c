// Package frontend holds the web UI as static files, embedded in the binary so that
// the HTTP server can serve it at / without a build step.
package frontend

import (
	"embed"
	"io/fs"
)

//go:embed static
var files embed.FS

// FS returns the web page's files (index.html, app.js, style.css) rooted at the
// static directory.
func FS() fs.FS {
	sub, err := fs.Sub(files, "static")
	if err != nil {
		panic(err) // cannot happen: "static" is a valid, embedded path
	}
	return sub
}
