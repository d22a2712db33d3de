// Package client is the Go SDK for Sotto's signaling: it connects to a Sotto
// server, joins a room with an access token, publishes local tracks,
// receives the tracks the server forwards, exchanges relay messages with the
// other participants, and reconnects on its own when the connection drops.
//
// A Client speaks wire protocol v1 (package signaling) over one WebSocket and
// holds two peer connections, as the protocol asks: a publisher connection on
// which the client offers the media it sends, and a subscriber connection on
// which the server offers the media it forwards. Neither side ever has to
// resolve an offer collision.
//
// Goroutines. Each Client runs a supervisor (the reconnect state machine)
// and an event goroutine that calls Handlers one at a time, in order. Each
// connection (session) runs a WebSocket reader, a writer that serialises
// every outgoing message, a publisher negotiator that keeps one offer in
// flight at a time, a keepalive, and one RTCP reader per published track.
// A session's goroutines all end before the next session is dialled, and
// every goroutine of a Client has ended once Done is closed.
package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Errors a caller branches on.
var (
	// ErrClosed is returned by calls on a Client that is finished (after
	// Close, Leave or a final error), and is what Err reports after Close
	// and Leave.
	ErrClosed = errors.New("client: closed")
	// ErrDisconnected wraps the failure of a request that was pending, or
	// made, while the connection to the server was down. The client may
	// already be reconnecting; the request can be retried once it has.
	ErrDisconnected = errors.New("client: disconnected")
	// ErrReplaced is the final error when the same identity joined the
	// room again elsewhere; the client does not reconnect.
	ErrReplaced = errors.New("client: session replaced by a newer join of the same identity")
	// ErrNotPublished is returned for a publication the server has not
	// announced (yet), or that was unpublished.
	ErrNotPublished = errors.New("client: track not published")
	// ErrMessageTooLarge is returned for a request that would exceed the
	// message size the server accepts (a relay with too much data, say).
	ErrMessageTooLarge = errors.New("client: message too large for the server")
)

// Timings that are not worth an option.
const (
	defaultInitialBackoff = 250 * time.Millisecond
	defaultMaxBackoff     = 5 * time.Second
	// joinTimeout bounds one reconnect attempt: dial, join, and restoring
	// publications and subscriptions.
	joinTimeout = 15 * time.Second
	// negotiationTimeout bounds the wait for the answer to a publisher
	// offer. A server that never answers leaves the publisher connection
	// unusable, so the session is dropped and the client reconnects.
	negotiationTimeout = 20 * time.Second
	// rateLimitedRetry is the wait before an offer the server dropped as
	// rate limited is sent again. The writer keeps to the rate the server
	// announced, so this is rare.
	rateLimitedRetry = 250 * time.Millisecond
	// writeTimeout bounds writing one message to the WebSocket.
	writeTimeout = 10 * time.Second
	// keepaliveInterval is how often a WebSocket ping checks that the
	// server is still there; a half-open TCP connection is otherwise only
	// noticed when the kernel gives up on it.
	keepaliveInterval = 15 * time.Second
	// readLimit bounds one message from the server. A joined message of a
	// large room or an offer with many tracks is well below it.
	readLimit = 4 << 20
	// maxQueuedMessages bounds messages waiting for the writer; a server
	// that stops reading makes the session fail instead of growing memory.
	maxQueuedMessages = 4096
	// maxEarlyCandidates bounds remote candidates kept while the remote
	// description they belong to is not set yet.
	maxEarlyCandidates = 64
)

// Options configures a Client. Token or TokenSource is required; every other
// field has a usable zero value.
type Options struct {
	// Token is the access token presented in the join message.
	Token string
	// TokenSource, when set, is called for a token on every connect and
	// reconnect (so a long call can present fresh, short-lived tokens). It
	// takes precedence over Token.
	TokenSource func(ctx context.Context) (string, error)
	// Room, when set, must equal the token's room; the server refuses the
	// join (room_mismatch) otherwise.
	Room string
	// AutoSubscribe subscribes to every track in the room, present and
	// future. Nil means true.
	AutoSubscribe *bool
	// PublicKey is opaque to the server and handed to the other
	// participants in ParticipantInfo (end-to-end encryption carries the
	// identity key here).
	PublicKey string
	// SettingEngine, when set, configures pion (network types, loopback
	// candidates, mDNS, ports). It is copied; later changes have no effect.
	SettingEngine *webrtc.SettingEngine
	// ICETransportPolicy, when webrtc.ICETransportPolicyRelay, makes
	// both peer connections use only relayed candidates from the TURN
	// servers the server hands out in joined: a caller who must not
	// reveal its address, or a test that the relay path works. The zero
	// value gathers every kind of candidate.
	ICETransportPolicy webrtc.ICETransportPolicy
	// Logger receives the client's logs. Default slog.Default().
	Logger *slog.Logger
	// Reconnect tunes reconnecting after the connection drops.
	Reconnect ReconnectPolicy
	// E2EE configures end-to-end encryption, on by default.
	E2EE E2EEOptions
	// Handlers are told what happens in the room.
	Handlers Handlers
}

// ReconnectPolicy tunes reconnecting. The zero value reconnects without a
// limit on attempts, waiting 250ms before the first and doubling the wait up
// to 5s, each wait jittered.
type ReconnectPolicy struct {
	// Disabled makes a dropped connection final: Disconnected fires and
	// the client is done.
	Disabled bool
	// MaxAttempts bounds consecutive failed attempts; 0 is unlimited
	// (until Close, Leave or a final error).
	MaxAttempts int
	// InitialBackoff is the wait before the first attempt. Default 250ms.
	InitialBackoff time.Duration
	// MaxBackoff caps the doubling wait. Default 5s.
	MaxBackoff time.Duration
}

// Handlers are told what happens in the room. All are optional. A client
// calls them from one goroutine of its own, in order and never
// concurrently, so a handler may call the Client's methods; a handler that
// blocks holds up the ones after it, not the media.
//
// Participants and tracks already in the room when the client joins are
// announced like later ones (ParticipantJoined, then TrackPublished for
// each of their tracks), so handlers alone can follow the room. After a
// reconnect only the differences are announced. Every TrackPublished is
// eventually followed by a TrackUnpublished for the same SID, and every
// ParticipantJoined by a ParticipantLeft, unless the client finishes first.
type Handlers struct {
	// ParticipantJoined reports another participant.
	ParticipantJoined func(wire.ParticipantInfo)
	// ParticipantLeft reports that a participant's session ended, with the
	// server's reason ("left", "disconnected", "replaced", "shutdown").
	ParticipantLeft func(p wire.ParticipantInfo, reason string)
	// TrackPublished reports a track, of another participant or of this
	// client (then Publication.SID is set before it is called).
	TrackPublished func(wire.TrackInfo)
	// TrackUnpublished reports that a track ended.
	TrackUnpublished func(wire.TrackInfo)
	// TrackMuted reports a track's new mute state (TrackInfo.Muted).
	TrackMuted func(wire.TrackInfo)
	// Track delivers the media of a subscribed track once it arrives. The
	// application reads RemoteTrack.Track. After a reconnect it fires
	// again with a new RemoteTrack; reads on the old one end with an error.
	// A track whose TrackInfo.Identity is not that of the participant
	// listing it is never delivered (Client.RefusedTracks).
	Track func(*RemoteTrack)
	// Relay delivers a relay message from another participant.
	Relay func(from wire.ParticipantInfo, data json.RawMessage)
	// Reconnecting reports that the connection dropped, and why; the
	// client is reconnecting.
	Reconnecting func(err error)
	// Reconnected reports that the client joined again and republished
	// its tracks.
	Reconnected func()
	// Disconnected reports the end: no more reconnects. err is ErrClosed
	// after Close or Leave. It is the last handler called.
	Disconnected func(err error)
	// Error reports a non-fatal server error not tied to a request of
	// this client's (a request's error is returned by the call).
	Error func(*ServerError)
	// SecurityKeyChanged is called when someone this client met before
	// (the same token sub) arrives with another identity key. Until the
	// application calls Client.AcceptKeyChange with it, that participant gets no
	// media key from this client and none of theirs is taken.
	SecurityKeyChanged func(KeyChange)
	// Admission reports who waits to be admitted, who was admitted or
	// refused, and the roster alert (admission.go).
	Admission AdmissionHandlers
}

// ServerError is an error message from the server. Calls return it (possibly
// wrapped) when the server refused a request; use errors.As and branch on
// Code, one of the signaling.Code constants.
type ServerError struct {
	Code    string // signaling.Code*
	Message string
	Ref     string // type of the message that caused it, when known
	RefID   string // id of the request that caused it, when it had one
	Fatal   bool   // the server closes the connection after it
}

// Error implements error.
func (e *ServerError) Error() string {
	if e.Message == "" {
		return "client: server error " + e.Code
	}
	return "client: server error " + e.Code + ": " + e.Message
}

func serverError(m *wire.Error) *ServerError {
	return &ServerError{Code: m.Code, Message: m.Message, Ref: m.Ref, RefID: m.RefID, Fatal: m.Fatal}
}

// permanent reports whether a join refused with err can never succeed by
// trying again with the same configuration.
func permanent(err error) bool {
	if errors.Is(err, ErrClosed) || errors.Is(err, ErrReplaced) {
		return true
	}
	var se *ServerError
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code {
	case wire.CodeTokenMissing, wire.CodeTokenMalformed, wire.CodeTokenAlgorithm,
		wire.CodeTokenUnknownKey, wire.CodeTokenSignature, wire.CodeTokenExpired,
		wire.CodeTokenNotYetValid, wire.CodeRoomMismatch, wire.CodeVersion,
		wire.CodePermissionDenied:
		return true
	}
	return false
}

// Client is a participant in one room. Its methods are safe for concurrent
// use.
type Client struct {
	url    string
	opts   Options
	log    *slog.Logger
	api    *webrtc.API
	events *eventQueue
	ids    atomic.Uint64

	life context.Context // cancelled when the client finishes
	stop context.CancelFunc
	// closing is done once Close is called: it stops reconnect attempts
	// at once, while a live session still closes gracefully.
	closing  context.Context
	closeNow context.CancelFunc
	runDone  chan struct{} // closed when the supervisor has returned

	mu           sync.Mutex
	sess         *session // nil while reconnecting and once finished
	self         wire.ParticipantInfo
	limits       wire.Limits
	others       roster
	pubs         []*Publication
	subscribed   map[string]struct{} // by Subscribe, re-sent after a reconnect
	unsubscribed map[string]struct{} // by Unsubscribe, re-sent after a reconnect when auto-subscribing
	held         map[string]*RemoteTrack
	// identity and keys are end-to-end encryption's; nil when it is off.
	// keySess is the session key messages go out on.
	identity *e2ee.Identity
	// sessionKey is the HPKE key and session id this client announces,
	// for its whole life (reconnects included).
	sessionKey *e2ee.SessionKey
	// store is E2EEOptions.Store or a MemoryStore; changed holds, per
	// person, a key that differs from the one store knows and that the
	// application has not accepted (known.go).
	store   e2ee.IdentityStore
	changed map[string]KeyChange
	// metNow holds identity+"\x00"+key of those this client's store met
	// for the first time during this client's life.
	metNow   map[string]bool
	keys     *e2ee.Session
	keySess  atomic.Pointer[session]
	leaving  bool
	finished bool
	err      error

	// trust is what this client decided about each other participant's
	// media, by identity, for the client's whole life (across
	// reconnects): see peerTrust.
	trust map[string]*peerTrust
	// refusedTracks counts tracks refused for naming another owner.
	refusedTracks atomic.Uint64
}

// Connect dials the server at rawURL, joins with opts.Token (or a token from
// opts.TokenSource), and returns once the server has answered with joined.
// rawURL is "http(s)://host:port" or "ws(s)://host:port"; an empty path
// means signaling.Path. A join the server refuses returns its *ServerError.
// ctx bounds only connecting: the client lives until Close or Leave, or
// until a final error (see Done).
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
		// pion's ICE agent (ice v4.4.2) dials every remote passive TCP
		// candidate from the host's own addresses whatever the policy:
		// relay-only would connect directly over ICE-TCP, bypassing the
		// relay and revealing the caller's address.
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
		url:          u,
		opts:         opts,
		log:          log,
		api:          api,
		events:       newEventQueue(),
		life:         life,
		stop:         stop,
		closing:      closing,
		closeNow:     closeNow,
		runDone:      make(chan struct{}),
		others:       newRoster(nil),
		subscribed:   make(map[string]struct{}),
		unsubscribed: make(map[string]struct{}),
		held:         make(map[string]*RemoteTrack),
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
	c.events.start()
	c.log.Debug("client: joined", "room", joined.Room, "sid", joined.Participant.SID, "identity", joined.Participant.Identity)
	return c, nil
}

// signalURL turns what a caller was given ("https://sotto.example",
// "ws://127.0.0.1:7780/v1/signal") into the WebSocket URL to dial.
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

// Self returns this client's participant as the server last described it,
// with the tracks the server has announced for it.
func (c *Client) Self() wire.ParticipantInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return copyParticipant(c.self)
}

// Participants returns the other participants in the room, with their
// tracks, in the order they became known.
func (c *Client) Participants() []wire.ParticipantInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.others.list()
}

// Done is closed when the client is finished for good: after Close or
// Leave, or after a final error (Err says which), once the last handler
// (Disconnected) has returned.
func (c *Client) Done() <-chan struct{} {
	return c.events.done
}

// Err reports why the client finished: ErrClosed after Close or Leave,
// otherwise the final error. It is nil while the client runs.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// Close ends the session without telling the server why (it sees the
// WebSocket close; the close handshake waits at most a few seconds for an
// unresponsive server) and does not reconnect. Events not yet delivered are
// dropped, except Disconnected(ErrClosed). Close returns once the
// connection and its goroutines are gone; a handler that is running may
// still be finishing, so wait on Done for the last handler to return. Close
// may be called from a handler, more than once, and concurrently.
func (c *Client) Close() error {
	c.closeNow()
	<-c.runDone
	return nil
}

// Leave tells the server the participant leaves (the others see
// ParticipantLeft with reason "left") and then closes like Close. ctx
// bounds sending the leave message.
func (c *Client) Leave(ctx context.Context) error {
	c.mu.Lock()
	c.leaving = true
	s := c.sess
	c.mu.Unlock()
	var err error
	if s != nil {
		err = s.sendSync(ctx, wire.Leave{Type: wire.TypeLeave})
		if errors.Is(err, ErrDisconnected) {
			// The connection dropped first; the server ends the session
			// on its own.
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
// Called with c.mu held.
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

// emit queues a handler call. Called with c.mu held or not; the queue has
// its own lock.
func (c *Client) emit(fn func()) {
	c.events.push(fn)
}
