package client

import (
	"context"
	"encoding/json"
	"log/slog"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Options configures a Client. Token or TokenSource is required; every other
// field has a usable zero value.
type Options struct {
	Token string // the access token presented in the join message
	// TokenSource, when set, is called for a token on every connect and
	// reconnect, so a long call presents fresh tokens. It wins over Token.
	TokenSource func(ctx context.Context) (string, error)
	// Room, when set, must equal the token's room (else room_mismatch).
	Room string
	// AutoSubscribe subscribes to every track in the room, present and
	// future. Nil means true.
	AutoSubscribe *bool
	// PublicKey is handed to the other participants in ParticipantInfo;
	// end-to-end encryption carries the identity key here.
	PublicKey string
	// SettingEngine, when set, configures pion (network types, loopback
	// candidates, mDNS, ports). It is copied.
	SettingEngine *webrtc.SettingEngine
	// ICETransportPolicy webrtc.ICETransportPolicyRelay uses only relayed
	// candidates from the TURN servers given in joined, so the caller's
	// address is not revealed.
	ICETransportPolicy webrtc.ICETransportPolicy
	Logger             *slog.Logger // default slog.Default()
	Reconnect          ReconnectPolicy
	E2EE               E2EEOptions // end-to-end encryption, on by default
	Handlers           Handlers
}

// ReconnectPolicy tunes reconnecting. The zero value reconnects without a
// limit on attempts, waiting 250ms before the first and doubling the wait up
// to 5s, each wait jittered.
type ReconnectPolicy struct {
	Disabled       bool          // a dropped connection is final
	MaxAttempts    int           // consecutive failed attempts; 0 is unlimited
	InitialBackoff time.Duration // default 250ms
	MaxBackoff     time.Duration // default 5s
}

// Handlers are told what happens in the room; all are optional. They are
// called from one goroutine of the client's, in order, so a handler may call
// the Client; one that blocks holds up the later ones, not the media.
//
// Participants and tracks present at the join are announced like later ones;
// after a reconnect only the differences are. Every TrackPublished is
// followed by a TrackUnpublished for the same SID, and every
// ParticipantJoined by a ParticipantLeft, unless the client finishes first.
type Handlers struct {
	ParticipantJoined func(wire.ParticipantInfo)
	// ParticipantLeft gives the server's reason ("left", "disconnected",
	// "replaced", "shutdown").
	ParticipantLeft func(p wire.ParticipantInfo, reason string)
	// TrackPublished reports another's track or this client's (then
	// Publication.SID is already set).
	TrackPublished   func(wire.TrackInfo)
	TrackUnpublished func(wire.TrackInfo)
	TrackMuted       func(wire.TrackInfo)
	// Track delivers a subscribed track's media, again with a new
	// RemoteTrack after a reconnect. A track whose TrackInfo.Identity is not
	// its lister's is never delivered (Client.RefusedTracks).
	Track        func(*RemoteTrack)
	Relay        func(from wire.ParticipantInfo, data json.RawMessage)
	Reconnecting func(err error) // the connection dropped; reconnecting
	Reconnected  func()          // joined again, tracks republished
	// Disconnected is the last handler called: no more reconnects. err is
	// ErrClosed after Close or Leave.
	Disconnected func(err error)
	// Error reports a non-fatal server error that answers no request.
	Error func(*ServerError)
	// SecurityKeyChanged: someone met before (same token sub) has another
	// identity key; until Client.AcceptKeyChange no media keys go either way.
	SecurityKeyChanged func(KeyChange)
	Admission          AdmissionHandlers
}
