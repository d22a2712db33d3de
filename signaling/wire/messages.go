// Package wire is Sotto's signaling contract, shared by the server and
// every client: the messages of protocol v1, error and close codes, the
// access token's claims, and the one table of codecs and header extensions
// both sides negotiate. It imports nothing of the server.
//
// docs/PROTOCOL.md specifies the protocol; this package is its Go form.
// Every message is one JSON object in one WebSocket text frame, with a
// "type" field naming it. Identity and room membership come from the
// access token presented in "join", never from anything else the client
// says.
package wire

import (
	"encoding/json"

	"github.com/pion/webrtc/v4"
)

// ProtocolVersion is the signaling protocol version this package speaks. A
// client states the version it speaks in its join message.
const ProtocolVersion = 1

// Path is the HTTP path of the WebSocket signaling endpoint.
const Path = "/v1/signal"

// Message types. C->S: sent by the client; S->C: sent by the server; both:
// either side.
const (
	TypeJoin             = "join"               // C->S, first message of every connection
	TypeJoined           = "joined"             // S->C, answer to join
	TypeOffer            = "offer"              // both: C->S on the publisher connection, S->C on the subscriber connection
	TypeAnswer           = "answer"             // both: S->C on the publisher connection, C->S on the subscriber connection
	TypeCandidate        = "candidate"          // both: trickle ICE
	TypeSubscribe        = "subscribe"          // C->S
	TypeUnsubscribe      = "unsubscribe"        // C->S
	TypeUnpublish        = "unpublish"          // C->S
	TypeMute             = "mute"               // C->S
	TypeRelay            = "relay"              // both: opaque participant-to-participant message
	TypeLeave            = "leave"              // C->S
	TypePing             = "ping"               // both
	TypePong             = "pong"               // both
	TypeError            = "error"              // S->C
	TypeParticipantJoin  = "participant_joined" // S->C
	TypeParticipantLeft  = "participant_left"   // S->C
	TypeTrackPublished   = "track_published"    // S->C
	TypeTrackUnpublished = "track_unpublished"  // S->C
	TypeTrackMuted       = "track_muted"        // S->C
	TypeGoingAway        = "going_away"         // S->C, the server is about to close this connection
	TypeAck              = "ack"                // S->C, a request carrying an id succeeded
)

// Targets name which of a participant's two peer connections an offer,
// answer or candidate belongs to. The client offers on its publisher
// connection (media it sends); the server offers on the subscriber
// connection (media it forwards to the client). Two connections mean
// neither side ever has to resolve an offer collision.
const (
	TargetPublisher  = "publisher"
	TargetSubscriber = "subscriber"
)

// Track kinds.
const (
	KindAudio = "audio"
	KindVideo = "video"
)

// Error codes carried in an error message's "code". docs/PROTOCOL.md lists
// each with its meaning and whether the connection is closed after it.
const (
	// Protocol and input errors.
	CodeBadMessage      = "bad_message"         // not JSON, or fields of the wrong type
	CodeUnknownType     = "unknown_type"        // "type" is not a v1 message type
	CodeVersion         = "unsupported_version" // join.protocol is not a version this server speaks (fatal)
	CodeNotJoined       = "not_joined"          // a message other than join/ping before join (fatal)
	CodeAlreadyJoined   = "already_joined"      // a second join on one connection
	CodeMessageTooLarge = "message_too_large"   // frame above the size limit (fatal)
	CodeRateLimited     = "rate_limited"        // messages per second exceeded; message dropped
	CodeFlood           = "flood"               // rate limit exceeded persistently (fatal)
	CodeRelayFlood      = "relay_flood"         // relays refused persistently (budget or a receiver's share) (fatal)

	// Authentication and authorisation.
	CodeTokenMissing       = "token_missing"       // join without a token (fatal)
	CodeTokenMalformed     = "token_malformed"     // not a JWT, or missing required claims (fatal)
	CodeTokenAlgorithm     = "token_algorithm"     // alg is not HS256 (none, RS256, ...) (fatal)
	CodeTokenUnknownKey    = "token_unknown_key"   // kid names no configured secret (fatal)
	CodeTokenSignature     = "token_signature"     // signature does not verify (fatal)
	CodeTokenExpired       = "token_expired"       // exp is past, beyond leeway (fatal)
	CodeTokenNotYetValid   = "token_not_yet_valid" // nbf is in the future, beyond leeway (fatal)
	CodeRoomMismatch       = "room_mismatch"       // join.room differs from the token's room (fatal)
	CodePermissionDenied   = "permission_denied"   // the token does not grant this action
	CodeNotOwner           = "not_owner"           // the track belongs to another participant
	CodeUnknownTrack       = "unknown_track"       // no such track in this room
	CodeUnknownParticipant = "unknown_participant" // relay to an identity not in the room

	// Capacity.
	CodeRoomFull        = "room_full"         // participants per room reached (fatal)
	CodeTooManyRooms    = "too_many_rooms"    // rooms per node reached (fatal)
	CodeTooManyTracks   = "too_many_tracks"   // tracks per participant reached; offer refused
	CodeJoinRateLimited = "join_rate_limited" // joins per second from this address exceeded (fatal)
	CodeShuttingDown    = "shutting_down"     // the node no longer accepts joins (fatal)
	CodeMediaRefused    = "media_refused"     // the SFU ended the participant's media for breaking a bound (fatal)

	// A published track sent far beyond its rate limits for seconds (fatal).
	CodeMediaRateExceeded = "media_rate_exceeded"

	// Media.
	CodeNegotiation  = "negotiation_failed" // an offer, answer or candidate could not be applied
	CodeOfferPending = "offer_pending"      // a publisher offer came while the previous one was being answered
	CodeInternal     = "internal"           // a server fault; the message was not acted on
)

// WebSocket close codes the server uses after a fatal error.
const (
	CloseNormal        = 1000 // leave, or session replaced
	CloseGoingAway     = 1001 // node shutting down
	CloseProtocolError = 1002 // version mismatch, not joined
	ClosePolicy        = 1008 // authentication, permission, flood, capacity
	CloseTooBig        = 1009 // message too large
	CloseInternal      = 1011 // server fault
)

// Going-away reasons.
const (
	ReasonShutdown = "shutdown" // node draining; reconnect (possibly to another node)
	ReasonReplaced = "replaced" // the same identity joined again elsewhere; do not reconnect
)

// Envelope is the part every message shares. Decoders read it first to
// learn the type, then decode the whole object into the type's struct.
type Envelope struct {
	Type string `json:"type"`
}

// Join is the first message a client sends.
type Join struct {
	Type string `json:"type"` // "join"
	// Protocol is the protocol version the client speaks; must be 1.
	Protocol int `json:"protocol"`
	// Token is a signed access token (see docs/PROTOCOL.md, Access tokens).
	Token string `json:"token"`
	// Room, when set, must equal the token's room. Lets a client fail
	// loudly when it was handed a token for another room.
	Room string `json:"room,omitempty"`
	// AutoSubscribe subscribes to every track in the room, present and
	// future. Default true when omitted. Needs the subscribe grant.
	AutoSubscribe *bool `json:"auto_subscribe,omitempty"`
	// ReuseSections lets the server's subscriber offers give a new track
	// the m-section of an ended one of the same kind. Default true when
	// omitted; false for WebRTC stacks that cannot receive again on a
	// section that went inactive (pion).
	ReuseSections *bool `json:"reuse_sections,omitempty"`
	// PublicKey is opaque to the server: passed to the other participants
	// in ParticipantInfo. End-to-end encryption carries the participant's
	// identity public key here. At most 1024 bytes.
	PublicKey string `json:"public_key,omitempty"`
	// E2EE is the client's statement that it encrypts every frame it
	// publishes end to end (SFrame, docs/E2EE.md). The server cannot check
	// it; it only shows it to everyone on the participant and its tracks,
	// so a track sent in clear is visible as such. Default false.
	E2EE bool `json:"e2ee,omitempty"`
}

// ICEServer is a STUN or TURN server a client may use.
type ICEServer struct {
	URLs       []string `json:"urls"`
	Username   string   `json:"username,omitempty"`
	Credential string   `json:"credential,omitempty"`
}

// ParticipantInfo describes a participant to the others in its room.
type ParticipantInfo struct {
	SID          string      `json:"sid"`      // session id, assigned by the server, new on every join
	Identity     string      `json:"identity"` // from the token's sub claim
	PublicKey    string      `json:"public_key,omitempty"`
	E2EE         bool        `json:"e2ee"` // the participant's join said it encrypts its media end to end
	CanPublish   bool        `json:"can_publish"`
	CanSubscribe bool        `json:"can_subscribe"`
	Tracks       []TrackInfo `json:"tracks"`
}

// TrackInfo describes a published track.
type TrackInfo struct {
	SID            string `json:"sid"`             // track id, assigned by the server; the subscriber sees it as the WebRTC track id
	ParticipantSID string `json:"participant_sid"` // owner's session id; the subscriber sees it as the WebRTC stream id
	Identity       string `json:"identity"`        // owner's identity
	ClientTrackID  string `json:"client_track_id"` // the track id (msid) the owner used in its offer
	Kind           string `json:"kind"`            // "audio" or "video"
	Codec          string `json:"codec"`           // MIME type, e.g. "audio/opus"
	Muted          bool   `json:"muted"`
	// E2EE repeats the owner's join statement: false means the track's
	// frames are not end-to-end encrypted and the server could read them.
	E2EE bool `json:"e2ee"`
}

// Joined answers a successful join.
type Joined struct {
	Type         string            `json:"type"` // "joined"
	Protocol     int               `json:"protocol"`
	Room         string            `json:"room"`
	Participant  ParticipantInfo   `json:"participant"`  // this client
	Participants []ParticipantInfo `json:"participants"` // everyone else, with their tracks
	ICEServers   []ICEServer       `json:"ice_servers"`
	Limits       Limits            `json:"limits"`
}

// Limits tells a client what the server will enforce on its connection.
type Limits struct {
	MaxMessageBytes      int `json:"max_message_bytes"`
	MessagesPerSecond    int `json:"messages_per_second"`
	TracksPerParticipant int `json:"tracks_per_participant"`
	// RelayBytesPerSecond and RelayBurstBytes are the budget of relay data
	// bytes this connection may send; beyond it relays get rate_limited.
	RelayBytesPerSecond int `json:"relay_bytes_per_second"`
	RelayBurstBytes     int `json:"relay_burst_bytes"`
}

// SessionDescription is an SDP offer or answer for one of the two peer
// connections.
type SessionDescription struct {
	Type   string `json:"type"` // "offer" or "answer"
	ID     string `json:"id,omitempty"`
	Target string `json:"target"` // "publisher" or "subscriber"
	SDP    string `json:"sdp"`
}

// Candidate is one trickled ICE candidate. A null candidate means the
// sender has finished gathering.
type Candidate struct {
	Type      string                   `json:"type"` // "candidate"
	Target    string                   `json:"target"`
	Candidate *webrtc.ICECandidateInit `json:"candidate"`
}

// Subscribe asks for tracks to be forwarded to this client; Unsubscribe
// stops them.
type Subscribe struct {
	Type      string   `json:"type"` // "subscribe" or "unsubscribe"
	ID        string   `json:"id,omitempty"`
	TrackSIDs []string `json:"track_sids"`
}

// Unpublish stops one of the client's own tracks.
type Unpublish struct {
	Type     string `json:"type"` // "unpublish"
	ID       string `json:"id,omitempty"`
	TrackSID string `json:"track_sid"`
}

// Mute sets the mute state of one of the client's own tracks.
type Mute struct {
	Type     string `json:"type"` // "mute"
	ID       string `json:"id,omitempty"`
	TrackSID string `json:"track_sid"`
	Muted    bool   `json:"muted"`
}

// Relay is an opaque message between participants of one room. From the
// client, To lists recipient identities (empty: everyone else in the room)
// and From is ignored. From the server, From and FromSID name the sender as
// its token does. Data is any JSON value, passed on byte for byte and never
// stored.
type Relay struct {
	Type    string          `json:"type"` // "relay"
	ID      string          `json:"id,omitempty"`
	To      []string        `json:"to,omitempty"`
	From    string          `json:"from,omitempty"`
	FromSID string          `json:"from_sid,omitempty"`
	Data    json.RawMessage `json:"data"`
}

// Ack confirms that the request with this id was carried out. Requests
// that carry an "id" (offer, subscribe, unsubscribe, unpublish, mute,
// relay) get exactly one ack or one error with that ref_id; an offer's
// success is its answer, which carries the offer's id instead of an ack.
type Ack struct {
	Type string `json:"type"` // "ack"
	ID   string `json:"id"`
}

// Leave ends the session.
type Leave struct {
	Type string `json:"type"` // "leave"
}

// Ping asks the other side for a Pong with the same ID.
type Ping struct {
	Type string `json:"type"` // "ping" or "pong"
	ID   string `json:"id,omitempty"`
}

// Error reports a refused or failed message.
type Error struct {
	Type    string `json:"type"` // "error"
	Code    string `json:"code"`
	Message string `json:"message"`
	// Ref is the type of the message that caused the error, when known.
	Ref string `json:"ref,omitempty"`
	// RefID is the id of the request that caused the error, when it had one.
	RefID string `json:"ref_id,omitempty"`
	// Fatal means the server closes the connection after this message.
	Fatal bool `json:"fatal"`
}

// ParticipantJoined announces a new participant to the others.
type ParticipantJoined struct {
	Type        string          `json:"type"` // "participant_joined"
	Participant ParticipantInfo `json:"participant"`
}

// ParticipantLeft announces that a participant's session ended.
type ParticipantLeft struct {
	Type     string `json:"type"` // "participant_left"
	SID      string `json:"sid"`
	Identity string `json:"identity"`
	// Reason: "left", "disconnected", "replaced" or "shutdown".
	Reason string `json:"reason"`
}

// TrackPublished announces a track, to its owner too (so the owner learns
// the track's sid).
type TrackPublished struct {
	Type  string    `json:"type"` // "track_published"
	Track TrackInfo `json:"track"`
}

// TrackUnpublished announces that a track ended.
type TrackUnpublished struct {
	Type           string `json:"type"` // "track_unpublished"
	SID            string `json:"sid"`
	ParticipantSID string `json:"participant_sid"`
	Identity       string `json:"identity"`
}

// TrackMuted announces a track's mute state.
type TrackMuted struct {
	Type           string `json:"type"` // "track_muted"
	SID            string `json:"sid"`
	ParticipantSID string `json:"participant_sid"`
	Identity       string `json:"identity"`
	Muted          bool   `json:"muted"`
}

// GoingAway warns that the server closes this connection shortly.
type GoingAway struct {
	Type    string `json:"type"`   // "going_away"
	Reason  string `json:"reason"` // "shutdown" or "replaced"
	Message string `json:"message"`
}
