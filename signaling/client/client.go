// Package client is the Go SDK for Sotto's signaling: it joins a room with
// an access token, publishes local tracks, receives the tracks the server
// forwards, exchanges relay messages, encrypts media end to end, and
// reconnects on its own when the connection drops.
//
// A Client speaks protocol v1 (package wire) over one WebSocket and holds two
// peer connections: a publisher one on which it offers what it sends, and a
// subscriber one on which the server offers what it forwards, so neither
// side ever resolves an offer collision. Each Client runs a supervisor
// (reconnect.go) and an event goroutine calling Handlers in order; each
// session runs a reader, a writer, a publisher negotiator, a keepalive and
// an RTCP reader per published track, all ended before the next session is
// dialled and before Done is closed.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/internal/eventqueue"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Timings that are not worth an option.
const (
	defaultInitialBackoff = 250 * time.Millisecond
	defaultMaxBackoff     = 5 * time.Second
	joinTimeout           = 15 * time.Second // one reconnect attempt, restore included
	// negotiationTimeout bounds the wait for an answer to a publisher
	// offer; without one the connection is unusable and the client reconnects.
	negotiationTimeout = 20 * time.Second
	rateLimitedRetry   = 250 * time.Millisecond // resend of an offer dropped as rate limited
	writeTimeout       = 10 * time.Second
	keepaliveInterval  = 15 * time.Second // notices a half-open TCP connection
	readLimit          = 4 << 20
	// maxQueuedMessages bounds the writer's queue: a server that stops
	// reading fails the session instead of growing memory.
	maxQueuedMessages  = 4096
	maxEarlyCandidates = 64 // remote candidates held before their description
)

// Client is a participant in one room. Its methods are safe for concurrent
// use. Its state is grouped by concern, every group guarded by mu.
type Client struct {
	url    string
	opts   Options
	log    *slog.Logger
	api    *webrtc.API
	events *eventqueue.Queue
	ids    atomic.Uint64

	life context.Context // cancelled when the client finishes
	stop context.CancelFunc
	// closing stops reconnect attempts at Close; a live session still
	// closes gracefully.
	closing  context.Context
	closeNow context.CancelFunc
	runDone  chan struct{} // closed when the supervisor has returned

	mu sync.Mutex
	connState
	roomState
	pubs []*Publication // publish.go
	keyState
}

// connState is the connection's lifecycle (this file, reconnect.go).
type connState struct {
	sess     *session // nil while reconnecting and once finished
	leaving  bool
	finished bool
	err      error
}

// Connect dials rawURL ("http(s)://" or "ws(s)://host:port", empty path
// meaning wire.Path), joins, and returns once joined; a refused join
// returns the *ServerError. ctx bounds only connecting.
func Connect(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	u, err := signalURL(rawURL)
	if err != nil {
		return nil, err
	}
	if opts.Token == "" && opts.TokenSource == nil {
		return nil, errors.New("client: Options needs a Token or a TokenSource")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Reconnect.InitialBackoff <= 0 {
		opts.Reconnect.InitialBackoff = defaultInitialBackoff
	}
	if opts.Reconnect.MaxBackoff <= 0 {
		opts.Reconnect.MaxBackoff = defaultMaxBackoff
	}
	if opts.Reconnect.MaxBackoff < opts.Reconnect.InitialBackoff {
		opts.Reconnect.MaxBackoff = opts.Reconnect.InitialBackoff
	}
	log := opts.Logger.With("url", u)
	se := opts.SettingEngine
	if opts.ICETransportPolicy == webrtc.ICETransportPolicyRelay {
		// pion's ICE agent dials remote passive TCP candidates from the
		// host's own addresses whatever the policy, which would reveal
		// the caller's address.
		var relayOnly webrtc.SettingEngine
		if se != nil {
			relayOnly = *se
		}
		relayOnly.DisableActiveTCP(true)
		se = &relayOnly
	}
	api, err := newAPI(se, log)
	if err != nil {
		return nil, err
	}
	life, stop := context.WithCancel(context.Background())
	closing, closeNow := context.WithCancel(context.Background())
	c := &Client{
		url:      u,
		opts:     opts,
		log:      log,
		api:      api,
		events:   eventqueue.New(nil), // a handler's panic propagates, as the application's own
		life:     life,
		stop:     stop,
		closing:  closing,
		closeNow: closeNow,
		runDone:  make(chan struct{}),
		roomState: roomState{
			others:       newRoster(nil),
			subscribed:   make(map[string]struct{}),
			unsubscribed: make(map[string]struct{}),
			held:         make(map[string]*RemoteTrack),
		},
	}
	if err := c.startE2EE(); err != nil {
		stop()
		closeNow()
		return nil, err
	}
	s, joined, err := c.dial(ctx)
	if err == nil {
		if err = c.newKeys(joined); err != nil {
			s.close()
		}
	}
	if err != nil {
		stop()
		closeNow()
		return nil, err
	}
	c.mu.Lock()
	c.installLocked(s, joined)
	c.mu.Unlock()
	s.start()
	go c.run(s)
	c.events.Start()
	c.log.Debug("client: joined", "room", joined.Room, "sid", joined.Participant.SID, "identity", joined.Participant.Identity)
	return c, nil
}

// signalURL turns the URL a caller was given into the WebSocket URL to dial.
func signalURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("client: server URL %q: %w", raw, err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "ws":
		u.Scheme = "ws"
	case "https", "wss":
		u.Scheme = "wss"
	default:
		return "", fmt.Errorf("client: server URL %q: scheme must be http, https, ws or wss", raw)
	}
	if u.Host == "" {
		return "", fmt.Errorf("client: server URL %q has no host", raw)
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = wire.Path
	}
	return u.String(), nil
}

// Done is closed once the client is finished and Disconnected has returned.
func (c *Client) Done() <-chan struct{} {
	return c.events.Done()
}

// Err reports why the client finished; nil while it runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the session with a WebSocket close and does not reconnect.
// Undelivered events are dropped but Disconnected(ErrClosed). It returns
// once the connection's goroutines are gone (Done waits for the handlers),
// and may be called from a handler, repeatedly and concurrently.
func (c *Client) Close() error {
	c.closeNow()
	<-c.runDone
	return nil
}

// Leave tells the server (others see reason "left") and closes like Close;
// ctx bounds sending the leave message.
func (c *Client) Leave(ctx context.Context) error {
	c.mu.Lock()
	c.leaving = true
	s := c.sess
	c.mu.Unlock()
	var err error
	if s != nil {
		err = s.sendSync(ctx, wire.Leave{Type: wire.TypeLeave})
		if errors.Is(err, ErrDisconnected) {
			// Dropped already: the server ends the session on its own.
			err = nil
		}
	}
	if cerr := c.Close(); err == nil {
		err = cerr
	}
	return err
}

// nextID returns a request id unique for the client's lifetime.
func (c *Client) nextID() string {
	return fmt.Sprintf("c%d", c.ids.Add(1))
}

// liveSessionLocked returns the current session, or why there is none.
func (c *Client) liveSessionLocked() (*session, error) {
	if c.finished || c.leaving {
		return nil, ErrClosed
	}
	if c.sess == nil || c.sess.isFailed() {
		return nil, fmt.Errorf("%w: reconnecting", ErrDisconnected)
	}
	return c.sess, nil
}

func (c *Client) liveSession() (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.liveSessionLocked()
}

// request sends a message carrying an id and waits for its ack or error.
func (c *Client) request(ctx context.Context, build func(id string) any) error {
	s, err := c.liveSession()
	if err != nil {
		return err
	}
	id := c.nextID()
	_, err = s.request(ctx, id, build(id))
	return err
}

// emit queues a handler call, with c.mu held or not.
func (c *Client) emit(fn func()) {
	c.events.Push(fn, nil)
}
