package client

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4/pkg/media/samplebuilder"

	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/media/sframe"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// ErrE2EENeedsFrames is returned by Publish for a track the SDK cannot
// encrypt: with end-to-end encryption on, every frame must pass through
// Publication.WriteSample, so tracks are made by PublishSample.
var ErrE2EENeedsFrames = errors.New("client: end-to-end encryption needs every frame: publish with PublishSample and write with Publication.WriteSample, or set Options.E2EE.Disabled")

// E2EEOptions configures end-to-end encryption (docs/E2EE.md). It is on
// unless Disabled: frames are encrypted with SFrame (RFC 9605) before they
// leave the client, and keys travel between participants sealed, in relay
// messages the server cannot read.
type E2EEOptions struct {
	// Disabled turns end-to-end encryption off: frames are sent as the
	// encoder made them, the join says so, and every participant sees
	// this client and its tracks marked as not end-to-end encrypted
	// (ParticipantInfo.E2EE, TrackInfo.E2EE false). Options.PublicKey is
	// then the application's to use.
	Disabled bool
	// Suite is the SFrame cipher suite; every participant of a room must
	// use the same. Default e2ee.DefaultSuite (AES_128_GCM_SHA256_128).
	Suite sframe.CipherSuite
	// KeyLog, when set, is told every base key the client makes or
	// receives, for debugging and tests. It defeats the purpose of
	// end-to-end encryption: never set it in production.
	KeyLog func(e2ee.KeyEvent)
	// AcceptClear lets RemoteTrack.ReadFrame return frames that do not
	// decrypt, with Frame.Encrypted false, from a track the server marks
	// as not end-to-end encrypted (TrackInfo.E2EE false) although its
	// owner encrypts. Without it they are dropped and counted
	// (FrameStats.ClearRefused). This is a downgrade the server can
	// exploit: it can then inject media of its own under any participant,
	// and the application must treat every frame with Encrypted false as
	// readable and forgeable by the server. Frames of participants that
	// never said they encrypt come up in clear either way.
	AcceptClear bool
	// Store keeps this client's identity key and the keys of the people
	// it has met (trust on first use). Default: e2ee.NewMemoryStore(),
	// which forgets both when the process ends; give an
	// e2ee.OpenFileStore for a client people meet again.
	Store e2ee.IdentityStore
	// Admission decides about each participant waiting to be admitted
	// (docs/E2EE.md, "Admission and rosters"): nobody gets this client's
	// media keys before a member admits them. Nil leaves them all
	// waiting until the application calls Client.Admit or Client.Refuse
	// (or another member admits them); AdmitAll admits everyone (bots,
	// load tests), AdmitKnown those whose key the user verified.
	Admission AdmissionPolicy
	// RosterTimeout is how long members' views of the call may disagree
	// before Handlers.Admission.RosterMismatch: default
	// e2ee.DefaultRosterTimeout.
	RosterTimeout time.Duration
}

// peerTrust is what this client decided about one identity's media, from
// the roster's announcements of the participant itself (its join
// statement, ParticipantInfo.E2EE), never from the per-track fields the
// server also writes (TrackInfo.E2EE, TrackInfo.Identity):
//
//   - encrypts: the participant was announced with E2EE on at some point
//     of this client's life. It is never cleared: not by a later
//     announcement without E2EE, a reconnect, or the participant leaving
//     and coming back. Every frame of its tracks must then decrypt under
//     its own keys, or it is dropped.
//   - announced: it is in the roster now (joined, participant_joined).
//     Announced and not encrypting: its frames come up in clear, flagged.
//     Not announced (a track seen before its owner): nothing is decided
//     yet, so its frames must decrypt like those of an encrypting one.
//
// The server could only ever downgrade a participant in this client's
// eyes by announcing it without E2EE from the first moment this client
// hears of it, and then the participant shows as not encrypted
// (ParticipantInfo.E2EE false, Frame.Encrypted false) and is missing from
// this client's safety number, which then differs from everyone else's.
// The fields are atomic: ReadFrame reads them per frame without c.mu.
// Records are kept for the client's life (one per identity it heard of).
type peerTrust struct {
	encrypts  atomic.Bool
	announced atomic.Bool
}

// trustLocked returns the decision record of identity, made on first use.
// Called with c.mu held.
func (c *Client) trustLocked(identity string) *peerTrust {
	if c.trust == nil {
		c.trust = make(map[string]*peerTrust)
	}
	pt := c.trust[identity]
	if pt == nil {
		pt = &peerTrust{}
		c.trust[identity] = pt
	}
	return pt
}

// updateTrustLocked applies the roster to peerTrust: who is announced now,
// and who announced end-to-end encryption (for good). Called with c.mu
// held, after every change of the roster's participants.
func (c *Client) updateTrustLocked() {
	now := make(map[string]bool, len(c.others.order))
	for _, sid := range c.others.order {
		m := c.others.by[sid]
		if !m.announced {
			continue
		}
		pt := c.trustLocked(m.info.Identity)
		if m.info.E2EE && !pt.encrypts.Load() {
			pt.encrypts.Store(true)
		}
		pt.announced.Store(true)
		now[m.info.Identity] = true
	}
	for id, pt := range c.trust {
		if !now[id] {
			pt.announced.Store(false)
		}
	}
}

// startE2EE makes the client's identity key for the join; newKeys builds
// the key-management session once joined says who and where we are.
func (c *Client) startE2EE() error {
	if c.opts.E2EE.Disabled {
		return nil
	}
	if c.opts.PublicKey != "" {
		return errors.New("client: Options.PublicKey is set by end-to-end encryption (the identity key); set Options.E2EE.Disabled to carry a key of your own")
	}
	st := c.opts.E2EE.Store
	if st == nil {
		st = e2ee.NewMemoryStore()
	}
	c.store = st
	id, err := st.Identity()
	if err != nil {
		return fmt.Errorf("client: identity key: %w", err)
	}
	sk, err := e2ee.NewSessionKey()
	if err != nil {
		return fmt.Errorf("client: session key: %w", err)
	}
	c.identity, c.sessionKey = id, sk
	c.opts.PublicKey = e2ee.Announce(id, sk)
	return nil
}

func (c *Client) newKeys(j *wire.Joined) error {
	if c.identity == nil {
		return nil
	}
	keys, err := e2ee.NewSession(e2ee.Options{
		Room:       j.Room,
		Self:       j.Participant.Identity,
		Identity:   c.identity,
		SessionKey: c.sessionKey,
		Suite:      c.opts.E2EE.Suite,
		Send:       c.sendKeyMessage,
		KeyLog:     c.opts.E2EE.KeyLog,
		Logger:     c.log,
		Admission: &e2ee.AdmissionOptions{
			OnEvent:       c.onMembership,
			RosterTimeout: c.opts.E2EE.RosterTimeout,
		},
	})
	if err != nil {
		return fmt.Errorf("client: end-to-end encryption: %w", err)
	}
	c.keys = keys
	return nil
}

// sendKeyMessage queues a key-management relay on the current session. It
// never blocks: the session's writer keeps to the server's rate. A relay
// to a participant who left meanwhile is refused by the server, which
// nobody needs to hear about.
func (c *Client) sendKeyMessage(to []string, msg json.RawMessage) {
	s := c.keySess.Load()
	if s == nil {
		return
	}
	id := c.nextID()
	s.requestAsync(id, wire.Relay{Type: wire.TypeRelay, ID: id, To: to, Data: msg})
}

// updateKeyMembersLocked tells key management who is in the call. After
// a reconnect every other participant has dropped this client's keys
// (they saw it leave), so it starts over with a fresh key for all.
// Called with c.mu held.
func (c *Client) updateKeyMembersLocked(s *session) {
	c.updateTrustLocked()
	if c.keys == nil {
		return
	}
	if prev := c.keySess.Swap(s); prev != nil && prev != s {
		// Joined again: waiting again, and those listed now are the
		// roots (the others admit this client again on their own).
		c.keys.Rejoin()
	}
	var peers []e2ee.Peer
	for _, sid := range c.others.order {
		m := c.others.by[sid]
		if m.announced && m.info.E2EE && m.info.PublicKey != "" {
			// One held out (a key change awaits the user) still counts
			// in the roster, which is about whom the node shows.
			held := !c.trustedKeyLocked(m.info)
			peers = append(peers, e2ee.Peer{Identity: m.info.Identity, PublicKey: m.info.PublicKey, Held: held})
		}
	}
	c.keys.SetMembers(peers)
}

// SafetyNumber is the call's safety number: derived from the identity key
// of every participant with end-to-end encryption, this one included. It
// is the same on every participant's screen if and only if nobody's key
// was swapped on the way; people compare it out of band (docs/E2EE.md).
// "" when E2EE is off.
func (c *Client) SafetyNumber() string {
	if c.keys == nil {
		return ""
	}
	return c.keys.SafetyNumber()
}

// E2EEStats reports key management: the current epoch of this client's
// sending key and counts of keys sent, received and refused. Zero when
// E2EE is off.
func (c *Client) E2EEStats() e2ee.Stats {
	if c.keys == nil {
		return e2ee.Stats{}
	}
	return c.keys.Stats()
}

// E2EEChanged returns a channel closed at the next change of key state:
// this client switching to a new sending key (E2EEStats().Epoch), or a
// sender's expired keys being dropped. Nil when E2EE is off.
func (c *Client) E2EEChanged() <-chan struct{} {
	if c.keys == nil {
		return nil
	}
	return c.keys.Changed()
}

// Frame is one media frame of a remote track, as its sender's encoder made
// it.
type Frame struct {
	Data      []byte
	Timestamp uint32 // RTP timestamp
	// Encrypted reports that the frame came end-to-end encrypted and was
	// decrypted here; KID is the SFrame key id it carried.
	Encrypted bool
	KID       uint64
}

// FrameStats counts a remote track's frames.
type FrameStats struct {
	Decrypted uint64 // decrypted and returned by ReadFrame
	Rejected  uint64 // failed to decrypt (tampered, replayed, malformed): dropped
	NoKey     uint64 // no key for them (yet): dropped
	Clear     uint64 // returned without decryption: the owner does not encrypt (or E2EEOptions.AcceptClear)
	// ClearRefused counts frames that did not decrypt on a track the
	// server marks as not end-to-end encrypted although its owner
	// encrypts: clear media the server injected, or a downgrade. Dropped
	// unless E2EEOptions.AcceptClear.
	ClearRefused uint64
}

// frameReader turns a remote track's RTP into frames and decrypts them.
type frameReader struct {
	mu    sync.Mutex // one ReadFrame at a time
	sb    *samplebuilder.SampleBuilder
	codec e2ee.Codec
	err   error

	decrypted, rejected, noKey, clear, clearRefused atomic.Uint64
}

// maxLateFrames is how many packets the sample builder waits for a
// missing one before giving up on its frame.
const maxLatePackets = 256

// ReadFrame returns the track's next complete frame. With this client's
// E2EE on, whether a frame must be decrypted, and under whose keys, is
// decided by the track's owner (Participant), never by the track's own
// fields, which the server writes: a participant that ever said it
// encrypts (ParticipantInfo.E2EE) has every frame decrypted under its
// identity's keys, whatever Info.E2EE says, and so has a participant not
// yet announced. Frames that fail to decrypt are dropped and counted
// (Stats), never returned: as ClearRefused when the server marks the track
// as not end-to-end encrypted (unless E2EEOptions.AcceptClear, which
// returns them in clear). Frames of a participant announced without E2EE,
// and every frame when E2EE is off here, are returned as they came, with
// Encrypted false: the application decides whether to play media the
// server could read. Call it from one goroutine; do not mix it with
// reading Track directly.
func (t *RemoteTrack) ReadFrame() (Frame, error) {
	fr := &t.frames
	fr.mu.Lock()
	defer fr.mu.Unlock()
	if fr.err != nil {
		return Frame{}, fr.err
	}
	if fr.sb == nil {
		codec, err := e2ee.CodecFromMime(t.Track.Codec().MimeType)
		if err != nil {
			fr.err = fmt.Errorf("client: track %s: %w", t.Info.SID, err)
			return Frame{}, fr.err
		}
		var dep rtp.Depacketizer
		switch codec {
		case e2ee.CodecOpus:
			dep = &codecs.OpusPacket{}
		case e2ee.CodecVP8:
			dep = &codecs.VP8Packet{}
		case e2ee.CodecH264:
			dep = &codecs.H264Packet{}
		}
		fr.codec = codec
		fr.sb = samplebuilder.New(maxLatePackets, dep, t.Track.Codec().ClockRate)
	}
	for {
		if s := fr.sb.Pop(); s != nil {
			f := Frame{Data: s.Data, Timestamp: s.PacketTimestamp}
			if t.keys == nil || (t.owner.announced.Load() && !t.owner.encrypts.Load()) {
				fr.clear.Add(1)
				return f, nil
			}
			pt, h, err := t.keys.DecryptFrame(t.Participant.Identity, fr.codec, s.Data)
			if err != nil {
				switch {
				case !t.Info.E2EE && t.acceptClear:
					fr.clear.Add(1)
					return f, nil
				case !t.Info.E2EE:
					fr.clearRefused.Add(1)
				case errors.Is(err, e2ee.ErrNoKey):
					fr.noKey.Add(1)
				default:
					fr.rejected.Add(1)
				}
				continue
			}
			fr.decrypted.Add(1)
			f.Data, f.Encrypted, f.KID = pt, true, h.KID
			return f, nil
		}
		pkt, _, err := t.Track.ReadRTP()
		if err != nil {
			return Frame{}, err
		}
		fr.sb.Push(pkt)
	}
}

// Stats counts the frames ReadFrame has handled.
func (t *RemoteTrack) Stats() FrameStats {
	fr := &t.frames
	return FrameStats{
		Decrypted:    fr.decrypted.Load(),
		Rejected:     fr.rejected.Load(),
		NoKey:        fr.noKey.Load(),
		Clear:        fr.clear.Load(),
		ClearRefused: fr.clearRefused.Load(),
	}
}
