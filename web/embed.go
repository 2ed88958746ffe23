// Package web is the browser wallet: its built bundle (dist/, made by
// scripts/build-web.sh from src/ and static/, committed) embedded in the
// binary, and the handler that serves it with the headers a page holding
// a session token needs.
//
// The page is three files: index.html, app.js and app.css. There is no
// inline script or style, so the Content-Security-Policy allows only the
// page's own origin, and the wallet talks gRPC-Web to the same origin
// (connect-src 'self').
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"
)

//go:embed dist
var dist embed.FS

// ContentSecurityPolicy is sent with every response of [Handler]: scripts,
// styles and API calls from the page's own origin only, no framing, no
// plugins, no inline code.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// file is one embedded file with its ETag.
type file struct {
	name string
	body []byte
	etag string
}

// Handler is HandlerFor a gateway without replicas.
func Handler() http.Handler { return HandlerFor(nil) }

// HandlerFor serves the wallet of a gateway whose other replicas are at
// replicas (https base URLs): "/replicas.json" lists them for the page,
// which fails over to them when its gateway does not answer, and the
// Content-Security-Policy lets it connect there too (and nowhere else).
// Each replica must list this gateway's origin in its cors_origins.
//
// It serves "/" (index.html), "/app.js" and "/app.css",
// GET and HEAD only; any other path is 404 and any other method 405. Mount
// it at "/" of a mux whose API routes are more specific patterns, so that
// they win. Every answer carries the security headers; the files are
// revalidated on each load (no-cache with an ETag), so a new gateway's
// wallet is picked up at once.
func HandlerFor(replicas []string) http.Handler {
	csp := ContentSecurityPolicy
	origins := make([]string, 0, len(replicas))
	for _, r := range replicas {
		if u, err := url.Parse(r); err == nil && u.Scheme == "https" && u.Host != "" {
			origins = append(origins, u.Scheme+"://"+u.Host)
		}
	}
	if len(origins) > 0 {
		csp = strings.Replace(csp, "connect-src 'self'", "connect-src 'self' "+strings.Join(origins, " "), 1)
	}
	list, _ := json.Marshal(struct { //nolint:errchkjson // strings only
		Replicas []string `json:"replicas"`
	}{origins})
	files := map[string]file{}
	err := fs.WalkDir(dist, "dist", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := dist.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		name := path.Base(p)
		files["/"+name] = file{name: name, body: body, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
		return nil
	})
	if err != nil {
		panic("web: embedded dist: " + err.Error()) // the embed is fixed at build time
	}
	files["/"] = files["/index.html"]
	sum := sha256.Sum256(list)
	files["/replicas.json"] = file{name: "replicas.json", body: list, etag: `"` + hex.EncodeToString(sum[:16]) + `"`}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hdr := w.Header()
		hdr.Set("Content-Security-Policy", csp)
		hdr.Set("X-Content-Type-Options", "nosniff")
		hdr.Set("Referrer-Policy", "no-referrer")
		hdr.Set("X-Frame-Options", "DENY")
		hdr.Set("Cross-Origin-Opener-Policy", "same-origin")
		f, ok := files[r.URL.Path]
		if !ok {
			hdr.Set("Cache-Control", "no-store")
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			hdr.Set("Allow", "GET, HEAD")
			hdr.Set("Cache-Control", "no-store")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		hdr.Set("Cache-Control", "no-cache")
		hdr.Set("ETag", f.etag)
		// ServeContent sets Content-Type from the name and answers
		// If-None-Match with 304.
		http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(f.body))
	})
}
