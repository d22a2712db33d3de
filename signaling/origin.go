package signaling

import (
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"
)

// A refused origin is logged at most once per originLogInterval, and at
// most originLogMax of them are remembered: the Origin header is the
// client's to choose.
const (
	originLogInterval = 10 * time.Minute
	originLogMax      = 256
)

// originLog tells the operator which page was refused and what would
// admit it: websocket.Accept answers 403 and says nothing else.
type originLog struct {
	mu       sync.Mutex
	seen     map[string]time.Time // origin -> when last logged
	overflow time.Time            // when a refusal past originLogMax was last logged
}

// refused logs r's origin if patterns do not admit it, which is when
// websocket.Accept refuses it (coder/websocket's rule: an Origin naming
// the request's own host passes, else a path.Match pattern must match the
// origin's host, or its scheme://host if the pattern has a scheme).
func (l *originLog) refused(log *slog.Logger, r *http.Request, patterns []string) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" || strings.EqualFold(r.Host, u.Host) {
		return
	}
	for _, p := range patterns {
		target := u.Host
		if strings.Contains(p, "://") {
			target = u.Scheme + "://" + u.Host
		}
		if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(target)); ok {
			return
		}
	}

	now := time.Now()
	l.mu.Lock()
	if l.seen == nil {
		l.seen = make(map[string]time.Time)
	}
	last, known := l.seen[origin]
	switch {
	case known && now.Sub(last) < originLogInterval:
		l.mu.Unlock()
		return
	case !known && len(l.seen) >= originLogMax:
		for o, t := range l.seen {
			if now.Sub(t) >= originLogInterval {
				delete(l.seen, o)
			}
		}
		if len(l.seen) >= originLogMax {
			logNow := now.Sub(l.overflow) >= originLogInterval
			if logNow {
				l.overflow = now
			}
			l.mu.Unlock()
			if logNow {
				log.Warn("signaling: refusing WebSockets from many page origins; not logging each", "origin", origin, "remote", r.RemoteAddr)
			}
			return
		}
	}
	l.seen[origin] = now
	l.mu.Unlock()
	log.Warn("signaling: refused a WebSocket from a page on another origin (403); to admit it, allow the host pattern "+u.Host+" (sfu: --allowed-origin "+u.Host+")",
		"origin", origin, "host", r.Host, "allowed", patterns, "remote", r.RemoteAddr)
}
