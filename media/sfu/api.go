// Package sfu is Sotto's SFU: rooms of participants whose published
// tracks are forwarded to the participants that subscribe to them. Each
// participant has a publisher connection (the client offers) and a
// subscriber connection (the SFU offers). Clients encrypt frames end to
// end, so the SFU works on RTP headers alone. The signaling layer calls
// Join and the Participant methods, and learns what happened through Events.
package sfu

import (
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/transport/v4"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"
)

// Config configures an SFU. Every field's zero value has a usable default.
type Config struct {
	// ListenIP is the address the media port binds to. Default "0.0.0.0":
	// UDP then binds each interface address present at New.
	ListenIP string
	// Port is the UDP and ICE-TCP port all media uses; 0 picks a free one.
	Port int
	// DisableTCP turns off ICE-TCP.
	DisableTCP bool
	// PublicIPs, when set, replace the host candidates' addresses (1:1 NAT).
	PublicIPs []string
	// IncludeLoopback offers, and accepts, loopback candidates (tests).
	IncludeLoopback bool
	// AllowCandidates are remote candidate ranges accepted although the
	// policy refuses them by default (candidates.go).
	AllowCandidates []netip.Prefix
	// RefusePrivateCandidates refuses remote candidates in private ranges
	// (RFC 1918, RFC 6598, RFC 4193), allowed by default for LAN calls.
	RefusePrivateCandidates bool
	// AudioLevelExtension negotiates the RFC 6464 audio-level extension.
	// Off by default: it tells the node, in clear, who speaks and when.
	AudioLevelExtension bool
	// DisableBatchedWrites sends each packet with a sendto(2) of its own
	// instead of a fan-out's copies in one sendmmsg(2) (docs/BENCHMARKS.md).
	DisableBatchedWrites bool
	// PacketCacheSize is the number of packets kept per published track to
	// answer NACKs. Default 512; rounded up to a power of two.
	PacketCacheSize int
	// KeyframeRequestInterval is the least time between two picture-loss
	// requests sent to one publisher for one track. Default 500ms.
	KeyframeRequestInterval time.Duration
	// Per-track limits in bits (RTP header and payload) and packets per
	// second, bursts of a second's worth; beyond them packets are dropped.
	// Defaults in ratelimit.go; a negative value turns a limit off.
	AudioMaxBitrate    int
	AudioMaxPacketRate int
	VideoMaxBitrate    int
	VideoMaxPacketRate int
	// A track over RateLimitEndFactor times a limit for RateLimitEndAfter
	// ends its publisher's session (RuleRateExceeded). Defaults 4 and 3s.
	RateLimitEndFactor     int
	RateLimitEndAfter      time.Duration
	ICEDisconnectedTimeout time.Duration
	ICEFailedTimeout       time.Duration
	// Logger receives the SFU's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the SFU's Prometheus metrics. Nil: not registered.
	Registerer prometheus.Registerer
	// Net is for tests: a virtual network (UDP only) instead of the host's.
	Net transport.Net
	// Tap sees each forwarded RTP packet once, before fan-out: what a
	// curious operator could record. It must be quick and keep nothing.
	Tap func(trackSID string, h *rtp.Header, payload []byte)
}

// ParticipantConfig describes a participant joining a room's media plane.
type ParticipantConfig struct {
	Room         string
	SID          string // participant session id, unique per join (assigned by signaling)
	Identity     string // verified identity from the access token
	CanPublish   bool
	CanSubscribe bool
	// AutoSubscribe subscribes to every other participant's tracks.
	AutoSubscribe bool
	// ReuseSections lets a new subscribed track take an ended one's
	// m-section, so the SDP does not grow. Off for clients that cannot
	// receive again on a section that went inactive (pion/webrtc#2226).
	ReuseSections bool
	// MaxTracks bounds the tracks published at once (0: unlimited).
	MaxTracks int
	// E2EE is the client's unchecked claim to encrypt end to end.
	E2EE       bool
	ICEServers []webrtc.ICEServer
	Events     Events
}

// Events tell a participant's signaling session what happened, one call at
// a time and never under the SFU's locks, so a callback may call back in.
type Events struct {
	// SubscriberOffer carries an offer the client answers (HandleAnswer).
	SubscriberOffer func(sdp string)
	// ICECandidate carries a local candidate of target; nil ends gathering.
	ICECandidate func(target string, c *webrtc.ICECandidateInit)
	// TrackPublished: an own track started, before anyone is offered it.
	TrackPublished func(t TrackInfo)
	// TrackUnpublished: an own track ended.
	TrackUnpublished func(t TrackInfo)
	// ConnectionFailed: ICE or DTLS failed on target's connection.
	ConnectionFailed func(target string)
	// Refused: the participant broke a bound (rule) and was closed.
	Refused func(rule string)
}

// TrackInfo describes a published track.
type TrackInfo struct {
	SID            string // assigned by the SFU; the WebRTC track id subscribers see
	ParticipantSID string // owner's session id; the WebRTC stream id subscribers see
	Identity       string
	ClientTrackID  string // track id from the owner's offer (msid)
	Kind           webrtc.RTPCodecType
	Codec          string // MIME type
	Muted          bool
	E2EE           bool // the owner's ParticipantConfig.E2EE
}

// Errors a caller branches on.
var (
	ErrPermission    = errors.New("sfu: not permitted by the access token")
	ErrNotOwner      = errors.New("sfu: track belongs to another participant")
	ErrUnknownTrack  = errors.New("sfu: no such track")
	ErrTooManyTracks = errors.New("sfu: too many tracks for this participant")
	ErrClosed        = errors.New("sfu: closed")
	ErrNegotiation   = errors.New("sfu: negotiation failed")
)
