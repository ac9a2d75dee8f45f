// Package site serves the dashboard's static build from `pulse serve`.
//
// The build (vite build, into dist/app) is embedded with go:embed, so one binary carries the hub and
// its dashboard. A checkout built with `go build` alone, on a machine without Node, has no dist/app:
// then the committed dist/index.html, a page that says how to build the dashboard, is served instead,
// and everything else still builds and works.
package site

import (
	"embed"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// Built reports whether the real dashboard (not the placeholder page) is embedded in this binary.
func Built() bool {
	_, err := fs.Stat(dist, "dist/app/index.html")
	return err == nil
}

// Handler serves the embedded dashboard: the build when there is one, else the placeholder page.
func Handler() http.Handler {
	root := "dist"
	if Built() {
		root = "dist/app"
	}
	sub, err := fs.Sub(dist, root)
	if err != nil {
		panic(fmt.Sprintf("site: embedded %s: %v", root, err)) // cannot happen: root is a literal that exists
	}
	return NewHandler(sub)
}

// NewHandler serves a dashboard build from files. Hashed assets (under assets/, named by their
// content) are cached for a year as immutable, since a new build names its files anew; index.html
// must never be cached, or a browser would keep asking for assets that no longer exist. A path
// that names no file and has no extension is a deep link into the single-page app and gets
// index.html; a missing file with an extension (a stale asset, config.json) is a 404, so no script
// or JSON parser is ever handed HTML.
func NewHandler(files fs.FS) http.Handler {
	static := http.FileServerFS(files)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name == "" || name == "index.html" {
			serveIndex(w, r, files, false)
			return
		}
		info, err := fs.Stat(files, name)
		switch {
		case err == nil && !info.IsDir():
			if strings.HasPrefix(name, "assets/") {
				w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
			} else {
				w.Header().Set("Cache-Control", "no-cache")
			}
			r2 := *r
			u := *r.URL
			u.Path = "/" + name
			r2.URL = &u
			static.ServeHTTP(w, &r2)
		case path.Ext(name) == "":
			serveIndex(w, r, files, true)
		default:
			http.NotFound(w, r)
		}
	})
}

// serveIndex answers index.html, not cached, whatever path asked for it. For a deep link (a path
// below the root) it adds <base href="/">: the build's asset paths are relative (./assets/…, so
// that it works from any bucket prefix), and from /agents/x they would resolve to /agents/assets/….
// Served by the hub, the dashboard is always at the root.
func serveIndex(w http.ResponseWriter, r *http.Request, files fs.FS, deep bool) {
	body, err := fs.ReadFile(files, "index.html")
	if err != nil {
		http.Error(w, "site: the build has no index.html", http.StatusInternalServerError)
		return
	}
	if deep {
		body = withBase(body)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// withBase puts <base href="/"> first in the page's <head>, or leaves a page without one unchanged.
func withBase(page []byte) []byte {
	s := string(page)
	i := strings.Index(strings.ToLower(s), "<head>")
	if i < 0 {
		return page
	}
	i += len("<head>")
	return []byte(s[:i] + `<base href="/">` + s[i:])
}
