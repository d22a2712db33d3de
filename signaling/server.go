// Package signaling is Sotto's WebSocket signaling server: it
// authenticates callers with access tokens, admits them to rooms, speaks
// protocol v1 (package wire) with them and drives the SFU (package
// media/sfu) on their behalf, within limits that keep one caller from
// disturbing another.
package signaling

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Defaults of Config fields left zero.
const (
	DefaultJoinTimeout  = 10 * time.Second
	DefaultPingInterval = 15 * time.Second
)

// Config configures a Server.
type Config struct {
	// Keys maps API keys (a token's kid) to secrets of at least
	// wire.MinSecretBytes.
	Keys map[string]string
	// TokenLeeway is the clock skew tolerated on token times (see
	// NewVerifier).
	TokenLeeway time.Duration
	Limits      ServerLimits
	// ICEServers are given to every client in "joined".
	ICEServers []wire.ICEServer
	// ICEServersFunc, when set, replaces ICEServers per identity
	// (short-lived TURN credentials).
	ICEServersFunc func(identity string) []wire.ICEServer
	// JoinTimeout is how long a connection may stay open without joining.
	JoinTimeout time.Duration
	// PingInterval is the WebSocket keepalive: a peer that does not answer
	// a ping within one interval is disconnected.
	PingInterval time.Duration
	// OriginPatterns lists the browser origins (host patterns) allowed
	// besides the server's own host. Clients that send no Origin (native
	// apps, servers) are accepted: the token, not the origin, admits them.
	OriginPatterns []string
	Logger         *slog.Logger          // default slog.Default()
	Registerer     prometheus.Registerer // nil: metrics not registered
}

// SFU is what the server needs of the media plane; *sfu.SFU implements it.
type SFU interface {
	Join(cfg sfu.ParticipantConfig) (*sfu.Participant, error)
	RoomTracks(room string) []sfu.TrackInfo
}

// Server is the signaling endpoint (see the package doc).
type Server struct {
	cfg      Config
	limits   ServerLimits
	sfu      SFU
	log      *slog.Logger
	verifier *Verifier
	joins    *joinLimiter
	unjoined *unjoinedLimiter
	metrics  *metrics
	origins  originLog

	// mu guards the rooms, the sessions and the drain state. Lock order:
	// Server.mu, room.mu, session.mu; none is held while calling into media.
	mu           sync.Mutex
	rooms        map[string]*room
	participants int
	sessions     map[*session]struct{}
	draining     bool
	drained      chan struct{} // closed when draining and no session is left
}

// NewServer validates cfg, fills its defaults and returns a server that
// admits callers to sfu.
func NewServer(cfg Config, sfu SFU) (*Server, error) {
	if sfu == nil {
		return nil, errors.New("signaling: no SFU")
	}
	v, err := NewVerifier(cfg.Keys, cfg.TokenLeeway)
	if err != nil {
		return nil, fmt.Errorf("signaling: Config.Keys/TokenLeeway: %w", err)
	}
	limits, err := cfg.Limits.withDefaults()
	if err != nil {
		return nil, err
	}
	cfg.Limits = limits
	switch {
	case cfg.JoinTimeout < 0:
		return nil, fmt.Errorf("signaling: Config.JoinTimeout %v is negative", cfg.JoinTimeout)
	case cfg.JoinTimeout == 0:
		cfg.JoinTimeout = DefaultJoinTimeout
	}
	switch {
	case cfg.PingInterval < 0:
		return nil, fmt.Errorf("signaling: Config.PingInterval %v is negative", cfg.PingInterval)
	case cfg.PingInterval == 0:
		cfg.PingInterval = DefaultPingInterval
	}
	for i, s := range cfg.ICEServers {
		if len(s.URLs) == 0 {
			return nil, fmt.Errorf("signaling: Config.ICEServers[%d] has no URLs", i)
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	return &Server{
		cfg:      cfg,
		limits:   limits,
		sfu:      sfu,
		log:      cfg.Logger,
		verifier: v,
		joins:    newJoinLimiter(limits),
		unjoined: newUnjoinedLimiter(limits),
		metrics:  m,
		rooms:    make(map[string]*room),
		sessions: make(map[*session]struct{}),
	}, nil
}

// ServeHTTP upgrades the request to a WebSocket and runs the signaling
// session on it until it ends. cmd/sfu mounts it at Path.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	addr := sourceAddr(r)
	key := unjoinedKey(addr)
	if !s.admitUnjoined(w, key) {
		return
	}
	hw := &hijackRecorder{ResponseWriter: w}
	conn, err := websocket.Accept(hw, r, &websocket.AcceptOptions{
		OriginPatterns:  s.cfg.OriginPatterns,
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		s.origins.refused(s.log, r, s.cfg.OriginPatterns)
		s.log.Debug("signaling: websocket upgrade refused", "remote", r.RemoteAddr, "err", err)
		s.unjoined.release(key)
		s.metrics.unjoined.Dec()
		return
	}
	sess := newSession(s, conn, hw.conn, addr)
	sess.unjoinedKey = key
	s.register(sess)
	sess.run()
	s.unregister(sess)
}

// admitUnjoined takes an unjoined slot for key, or refuses the request
// before the upgrade: 429 when the address holds its share, 503 when the
// node holds its maximum. Slots come back at join or when the connection ends.
func (s *Server) admitUnjoined(w http.ResponseWriter, key string) bool {
	var (
		status int
		msg    string
	)
	switch s.unjoined.acquire(key) {
	case "":
		s.metrics.unjoined.Inc()
		return true
	case unjoinedAddress:
		status = http.StatusTooManyRequests
		msg = fmt.Sprintf("too many connections from this address have not joined (at most %d); join on them or close them, then retry", s.limits.UnjoinedPerAddress)
		s.metrics.unjoinedRefuse.WithLabelValues(unjoinedAddress).Inc()
	default:
		status = http.StatusServiceUnavailable
		msg = fmt.Sprintf("this node holds its maximum of %d connections that have not joined; retry shortly", s.limits.UnjoinedConnections)
		s.metrics.unjoinedRefuse.WithLabelValues(unjoinedTotal).Inc()
	}
	w.Header().Set("Retry-After", strconv.Itoa(max(1, int(s.cfg.JoinTimeout.Round(time.Second)/time.Second))))
	http.Error(w, msg, status)
	return false
}

// Ready reports whether the server admits joins: false once Shutdown began.
func (s *Server) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return !s.draining
}

// Counts returns the rooms and participants (joined or joining) held now.
func (s *Server) Counts() (rooms, participants int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.rooms), s.participants
}

// Shutdown drains the server: joins are refused with shutting_down, every
// connection is sent going_away (reason shutdown) and closed with
// CloseGoingAway, and every participant leaves the SFU. It returns nil once
// every session has ended; if ctx is done first, it closes the remaining
// TCP connections at once and returns ctx's error.
//
// Connections opened meanwhile are still upgraded, so that their join gets
// a clear shutting_down; stop routing to the node (Ready), then stop the
// HTTP server, which does not track WebSocket connections.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.draining {
		s.draining = true
		s.drained = make(chan struct{})
		if len(s.sessions) == 0 {
			close(s.drained)
		}
	}
	drained := s.drained
	all := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()

	s.log.Info("signaling: shutting down", "sessions", len(all))
	for _, sess := range all {
		sess.goAway(wire.ReasonShutdown, "the server is shutting down; reconnect", wire.CloseGoingAway, "shutdown")
	}
	select {
	case <-drained:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	all = all[:0]
	for sess := range s.sessions {
		all = append(all, sess)
	}
	s.mu.Unlock()
	for _, sess := range all {
		sess.abort()
	}
	s.log.Warn("signaling: shutdown deadline reached; connections closed at once", "sessions", len(all))
	return fmt.Errorf("signaling: shutdown: %w", ctx.Err())
}

func (s *Server) register(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sessions[sess] = struct{}{}
}

func (s *Server) unregister(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, sess)
	if s.draining && len(s.sessions) == 0 {
		select {
		case <-s.drained:
		default:
			close(s.drained)
		}
	}
}

func (s *Server) iceServers(identity string) []wire.ICEServer {
	var out []wire.ICEServer
	if s.cfg.ICEServersFunc != nil {
		out = s.cfg.ICEServersFunc(identity)
	} else {
		out = s.cfg.ICEServers
	}
	if out == nil {
		out = []wire.ICEServer{}
	}
	return out
}

// sourceAddr is the address joins are limited by: the TCP peer's IP.
// Forwarded headers are not trusted; behind a proxy callers share its address.
func sourceAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// hijackRecorder keeps the net.Conn that websocket.Accept hijacks, so that
// a connection stuck in the close handshake can still be closed at once.
type hijackRecorder struct {
	http.ResponseWriter
	conn net.Conn
}

// Hijack implements http.Hijacker.
func (h *hijackRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, fmt.Errorf("signaling: hijack: %w", err)
	}
	h.conn = c
	return c, rw, nil
}

// Unwrap lets http.ResponseController find the underlying writer.
func (h *hijackRecorder) Unwrap() http.ResponseWriter { return h.ResponseWriter }
