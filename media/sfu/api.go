// Package sfu is Sotto's SFU: rooms of participants whose published
// tracks are forwarded to the other participants that subscribe to them.
//
// Each participant has two peer connections: a publisher connection on which
// the client offers the media it sends, and a subscriber connection on which
// the SFU offers the media it forwards. The SFU never reads a payload beyond
// the RTP header and header extensions: clients encrypt frames end to end, so
// routing, feedback and retransmission work on headers alone. Per subscriber,
// every forwarded track gets its own SSRC, sequence numbers and timestamps,
// so a track can be unpublished and republished and a late joiner receives
// existing tracks. Picture-loss and full-intra requests from subscribers reach
// the publisher throttled; NACKs are answered from a bounded per-track packet
// cache shared by all of the track's subscribers.
//
// The package knows nothing of signaling's transport: the signaling layer
// calls Join and the Participant methods, and learns what happened through
// Events.
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

// Config configures an SFU. The zero value of every field has a usable
// default, noted beside it.
type Config struct {
	// ListenIP is the address the media port binds to. Default "0.0.0.0":
	// then UDP binds the port on each interface address present at New
	// (so replies leave from the address a peer sent to), TCP on the
	// unspecified address.
	ListenIP string
	// Port is the one UDP port (ICE UDP mux) and the TCP port of the same
	// number (ICE-TCP) all media uses. 0 picks a free port (tests); the
	// command's default is 7781.
	Port int
	// DisableTCP turns off ICE-TCP.
	DisableTCP bool
	// PublicIPs, when set, replace the host candidates' addresses (1:1 NAT).
	PublicIPs []string
	// IncludeLoopback offers loopback candidates (local development, tests).
	// It also lets clients' loopback candidates through the candidate
	// policy.
	IncludeLoopback bool
	// AllowCandidates are ranges of remote ICE candidates the SFU checks
	// although its policy refuses them by default (loopback, link-local,
	// multicast, reserved, documentation, its own addresses).
	AllowCandidates []netip.Prefix
	// RefusePrivateCandidates refuses remote candidates in private ranges
	// (RFC 1918, RFC 6598, RFC 4193), allowed by default for LAN calls.
	RefusePrivateCandidates bool
	// AudioLevelExtension negotiates the RFC 6464 audio-level header
	// extension. Off by default: browsers then stamp every audio packet
	// with the speaker's level in clear, telling the node who speaks and
	// when, packet by packet, though it cannot read the audio. Clients
	// compute speaking indicators from the audio they decrypt; turn it on
	// only for clients that need the node's view and accept the leak.
	AudioLevelExtension bool
	// DisableBatchedWrites sends every packet on the UDP media port with
	// a sendto(2) of its own. By default the copies of a packet fanned
	// out to several subscribers leave in one sendmmsg(2) (up to 32
	// datagrams), which saves most of a syscall per forwarded packet and
	// delays a packet by the rest of its fan-out loop, 100µs at most
	// while that loop runs (docs/BENCHMARKS.md). Ignored with Net.
	DisableBatchedWrites bool
	// PacketCacheSize is the number of packets kept per published track to
	// answer NACKs. Default 512; rounded up to a power of two.
	PacketCacheSize int
	// KeyframeRequestInterval is the least time between two picture-loss
	// requests sent to one publisher for one track. Default 500ms.
	KeyframeRequestInterval time.Duration
	// AudioMaxBitrate and AudioMaxPacketRate bound each published audio
	// track, in bits (RTP header and payload) and packets per second,
	// with bursts of one second's worth; VideoMaxBitrate and
	// VideoMaxPacketRate each video track. What a track sends beyond them
	// is dropped and counted. Defaults 320 kbit/s and 250 packets/s for
	// audio, 8 Mbit/s and 1500 packets/s for video (ratelimit.go says
	// why); a negative value turns that limit off.
	AudioMaxBitrate    int
	AudioMaxPacketRate int
	VideoMaxBitrate    int
	VideoMaxPacketRate int
	// RateLimitEndFactor and RateLimitEndAfter: a track sending more than
	// RateLimitEndFactor times either of its limits for RateLimitEndAfter
	// (whole seconds) in a row ends its publisher's session
	// (Events.Refused with RuleRateExceeded). Defaults 4 and 3s.
	RateLimitEndFactor int
	RateLimitEndAfter  time.Duration
	// ICEDisconnectedTimeout and ICEFailedTimeout tune ICE liveness.
	// Defaults 5s and 10s.
	ICEDisconnectedTimeout time.Duration
	ICEFailedTimeout       time.Duration
	// Logger receives the SFU's logs. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives the SFU's Prometheus metrics. Nil: not registered.
	Registerer prometheus.Registerer
	// Net is for tests: the network the SFU's ICE uses (pion's vnet, say);
	// nil means the host's. ListenIP must then be one of Net's addresses,
	// and ICE-TCP is off whatever DisableTCP says: a virtual network
	// carries UDP only.
	Net transport.Net
	// Tap, when set, sees every RTP packet the SFU forwards, once per
	// packet before fan-out: the track's SID, the parsed header and the
	// payload. It is what a curious operator could record, and tests use
	// it to show that with end-to-end encryption that is ciphertext. It
	// runs on the forwarding path: it must be quick and must not keep
	// header or payload past its return.
	Tap func(trackSID string, h *rtp.Header, payload []byte)
}

// ParticipantConfig describes a participant joining a room's media plane.
type ParticipantConfig struct {
	Room     string
	SID      string // participant session id, unique per join (assigned by signaling)
	Identity string // verified identity from the access token
	// CanPublish and CanSubscribe are the token's grants.
	CanPublish   bool
	CanSubscribe bool
	// AutoSubscribe subscribes to every other participant's tracks, present
	// and future. Ignored without CanSubscribe.
	AutoSubscribe bool
	// ReuseSections lets a new subscribed track take the m-section of an
	// ended one of the same kind, once the client has answered an offer
	// that showed that section inactive, so the subscriber's SDP does not
	// grow with every track that comes and goes. Off for clients that stop
	// a transceiver for good when its section goes inactive (pion up to
	// v4.2 at least, pion/webrtc#2226): they could not receive on it again.
	ReuseSections bool
	// MaxTracks bounds the tracks this participant may publish at once
	// (0: unlimited). An offer that would exceed it is refused with
	// ErrTooManyTracks.
	MaxTracks int
	// E2EE is the participant's statement that it encrypts its media end
	// to end. The SFU cannot check it (it never holds a media key); it
	// only reports it in TrackInfo.
	E2EE bool
	// ICEServers are given to both peer connections (TURN for the server
	// side is rarely needed, but kept symmetric).
	ICEServers []webrtc.ICEServer
	// Events receives what happens to this participant.
	Events Events
}

// Events are how the SFU tells a participant's signaling session what
// happened. The SFU never calls them while holding a lock of its own, so a
// callback may call back into the SFU. Calls for one participant are not
// concurrent with each other. Nil fields are ignored.
type Events struct {
	// SubscriberOffer carries an SDP offer on the subscriber connection that
	// the client must answer (Participant.HandleAnswer).
	SubscriberOffer func(sdp string)
	// ICECandidate carries a local ICE candidate of the publisher or
	// subscriber connection ("publisher"/"subscriber"); nil when gathering
	// is complete.
	ICECandidate func(target string, c *webrtc.ICECandidateInit)
	// TrackPublished reports that a track of THIS participant started
	// (its first RTP packet arrived). It is called before any subscriber is
	// offered the track.
	TrackPublished func(t TrackInfo)
	// TrackUnpublished reports that a track of THIS participant ended, by
	// Unpublish, by the client removing it, or by its transport closing.
	TrackUnpublished func(t TrackInfo)
	// ConnectionFailed reports that ICE or DTLS failed on one of the two
	// connections; the client is expected to reconnect.
	ConnectionFailed func(target string)
	// Refused reports that the SFU ended this participant's media because
	// it broke one of the SFU's bounds (rule, e.g. "too_many_ssrcs"); the
	// participant is closed and its session should end.
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
