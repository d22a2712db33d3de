// Package web is the browser client: the call page and the JS SDK it is
// built on (web/sdk, an ES module other web apps can import), embedded so
// that cmd/sfu serves them at "/" with no build step. The Go side only
// serves files; everything a browser does lives in the JavaScript.
package web

import (
	"embed"
	"encoding/json"
	"io/fs"
	"net/http"
	"regexp"
)

//go:embed index.html app.js app style.css sdk
var files embed.FS

// Files is the embedded page and SDK, rooted at the page.
func Files() fs.FS { return files }

// Options configures Handler.
type Options struct {
	// DevToken, when set, serves GET /dev/token?room=R&identity=N with a
	// join token ({"token": "..."}) so that /?room=R&name=N joins at
	// once. Only a node in development mode (no configured API key) sets
	// it: anyone who can reach the page can then join any room.
	DevToken func(room, identity string) (string, error)
}

// contentSecurityPolicy allows the page its own scripts, styles and
// workers, WebSocket signaling to its own origin, and media from the
// browser's own capture; nothing from elsewhere.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; worker-src 'self' blob:; " +
	"style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; " +
	"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// namePattern is what a dev-mode room or identity may look like.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Handler serves the page at "/" and its files beside it.
func Handler(opts Options) http.Handler {
	mux := http.NewServeMux()
	static := http.FileServerFS(files)
	mux.Handle("GET /", secure(static))
	if opts.DevToken != nil {
		mux.HandleFunc("GET /dev/token", func(w http.ResponseWriter, r *http.Request) {
			room, identity := r.URL.Query().Get("room"), r.URL.Query().Get("identity")
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Cache-Control", "no-store")
			if !namePattern.MatchString(room) || !namePattern.MatchString(identity) {
				w.WriteHeader(http.StatusBadRequest)
				_ = json.NewEncoder(w).Encode(map[string]string{
					"error": "room and identity must be 1 to 64 letters, digits, '.', '_' or '-'",
				})
				return
			}
			tok, err := opts.DevToken(room, identity)
			if err != nil {
				w.WriteHeader(http.StatusInternalServerError)
				_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
				return
			}
			_ = json.NewEncoder(w).Encode(map[string]string{"token": tok})
		})
	}
	return mux
}

func secure(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Permissions-Policy", "camera=(self), microphone=(self), display-capture=(self)")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}
