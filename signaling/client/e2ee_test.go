package client_test

// End-to-end encryption through a real SFU: what the server forwards and
// relays is ciphertext, subscribers decrypt, leavers and late joiners are
// locked out, tampering is caught, and swapped identity keys show.

import (
	"bytes"
	"cmp"
	"context"
	"crypto/ecdh"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/rtp/codecs"
	"github.com/pion/webrtc/v4"
	"github.com/pion/webrtc/v4/pkg/media"

	"github.com/sotto-rtc/sotto/internal/hostilenode"
	"github.com/sotto-rtc/sotto/media/e2ee"
	"github.com/sotto-rtc/sotto/media/sframe"
	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/client"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// marker is in every plaintext frame the tests publish; the server must
// never see it.
const marker = "SOTTO-PLAINTEXT-MARKER"

// e2eeFrame is frame n of a test publisher's track: the codec's clear
// prefix, then the marker, the publisher, the kind, n and filler.
func e2eeFrame(identity, kind string, n uint32) []byte {
	var b []byte
	switch kind {
	case wire.KindAudio:
		b = append(b, 0xfc) // Opus TOC: CELT FB 20 ms, one frame
	case wire.KindVideo:
		if n%30 == 0 {
			// VP8 key frame: frame tag, start code, 320x240.
			b = append(b, 0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00)
		} else {
			b = append(b, 0x51, 0x02, 0x00) // inter frame tag
		}
	}
	b = fmt.Appendf(b, "%s|%s|%s|", marker, identity, kind)
	b = binary.BigEndian.AppendUint32(b, n)
	seed := n*2654435761 + uint32(len(identity))
	for range 60 + n%300 {
		seed = seed*1103515245 + 12345
		b = append(b, byte(seed>>16))
	}
	return b
}

// checkFrame checks a decrypted frame against what its publisher sent.
func checkFrame(info wire.TrackInfo, frame []byte) error {
	head := fmt.Sprintf("%s|%s|%s|", marker, info.Identity, info.Kind)
	i := bytes.Index(frame, []byte(head))
	if i < 0 || len(frame) < i+len(head)+4 {
		return fmt.Errorf("track %s: frame without %q", info.SID, head)
	}
	n := binary.BigEndian.Uint32(frame[i+len(head):])
	if want := e2eeFrame(info.Identity, info.Kind, n); !bytes.Equal(frame, want) {
		return fmt.Errorf("track %s frame %d: differs from what was sent", info.SID, n)
	}
	return nil
}

// e2eePeer is an SDK client with E2EE on, its key log, and the frames it
// decrypted per remote track.
type e2eePeer struct {
	identity string
	c        *client.Client

	mu     sync.Mutex
	keys   []e2ee.KeyEvent
	tracks map[string]*frameRecv // by track SID
	wake   chan struct{}         // cap 1: something changed
	joined chan string
	pubs   []*client.Publication
	// alerts gets every roster alert; admitted every participant this
	// client admits or takes as a member, and "" when it is admitted.
	alerts   chan *client.RosterMismatchError
	admitted chan string
}

type frameRecv struct {
	info wire.TrackInfo
	rt   *client.RemoteTrack
	ok   int
	kids map[uint64]bool
	bad  error
}

func joinE2EE(ctx context.Context, t *testing.T, url, token, identity string, confs ...conf) *e2eePeer {
	t.Helper()
	p := &e2eePeer{
		identity: identity,
		tracks:   map[string]*frameRecv{},
		wake:     make(chan struct{}, 1),
		joined:   make(chan string, 64),
		alerts:   make(chan *client.RosterMismatchError, 64),
		admitted: make(chan string, 64),
	}
	opts := client.Options{
		Token:         token,
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
		E2EE: client.E2EEOptions{Admission: client.AdmitAll, KeyLog: func(e e2ee.KeyEvent) {
			p.mu.Lock()
			p.keys = append(p.keys, e)
			p.mu.Unlock()
			p.signal()
		}},
		Handlers: client.Handlers{
			Track:             p.receive,
			ParticipantJoined: func(pi wire.ParticipantInfo) { p.joined <- pi.Identity },
			Admission: client.AdmissionHandlers{
				RosterMismatch:      func(e *client.RosterMismatchError) { p.alerts <- e },
				ParticipantAdmitted: func(id, _ string) { p.admitted <- id },
				Admitted:            func(string) { p.admitted <- "" },
			},
		},
	}
	for _, f := range confs {
		f(&opts)
	}
	c, err := client.Connect(ctx, url, opts)
	if err != nil {
		t.Fatalf("%s: Connect: %v", identity, err)
	}
	p.c = c
	t.Cleanup(func() { _ = c.Close() })
	return p
}

func (p *e2eePeer) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *e2eePeer) receive(rt *client.RemoteTrack) {
	r := &frameRecv{info: rt.Info, rt: rt, kids: map[uint64]bool{}}
	p.mu.Lock()
	p.tracks[rt.Info.SID] = r
	p.mu.Unlock()
	go func() {
		for {
			f, err := rt.ReadFrame()
			if err != nil {
				return
			}
			err = checkFrame(rt.Info, f.Data)
			if err == nil && !f.Encrypted {
				err = fmt.Errorf("track %s: frame arrived without end-to-end encryption", rt.Info.SID)
			}
			p.mu.Lock()
			if err != nil && r.bad == nil {
				r.bad = err
			} else if err == nil {
				r.ok++
				r.kids[f.KID] = true
			}
			p.mu.Unlock()
			p.signal()
		}
	}()
}

// decrypted reports how many frames p decrypted from identity's track of
// kind since the count was at base (0: ever).
func (p *e2eePeer) decrypted(identity, kind string) int {
	n := 0
	for _, r := range p.tracks {
		if r.info.Identity == identity && r.info.Kind == kind {
			n += r.ok
		}
	}
	return n
}

// waitFrames waits until p decrypted at least min more frames of every
// kind in kinds from every identity in from than it had at the start.
func (p *e2eePeer) waitFrames(t *testing.T, from, kinds []string, more int) {
	t.Helper()
	p.mu.Lock()
	base := map[string]int{}
	for _, id := range from {
		for _, k := range kinds {
			base[id+"/"+k] = p.decrypted(id, k)
		}
	}
	p.mu.Unlock()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		done := true
		var have []string
		for _, r := range p.tracks {
			if r.bad != nil {
				p.mu.Unlock()
				t.Fatalf("%s: %v", p.identity, r.bad)
			}
		}
		for _, id := range from {
			for _, k := range kinds {
				n := p.decrypted(id, k) - base[id+"/"+k]
				have = append(have, fmt.Sprintf("%s/%s:%d", id, k, n))
				if n < more {
					done = false
				}
			}
		}
		p.mu.Unlock()
		if done {
			return
		}
		select {
		case <-p.wake:
		case <-deadline.C:
			t.Fatalf("%s: wanted %d more decrypted frames of each track; have %v", p.identity, more, have)
		}
	}
}

// ownKIDs are the KIDs p made for its own frames.
func (p *e2eePeer) ownKIDs() map[uint64]bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	kids := map[uint64]bool{}
	for _, e := range p.keys {
		if e.Sender == p.identity {
			kids[e.KID] = true
		}
	}
	return kids
}

func (p *e2eePeer) keyLog() []e2ee.KeyEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]e2ee.KeyEvent(nil), p.keys...)
}

// publish publishes an Opus and a VP8 track with E2EE and writes frames,
// paced like encoders, until stop is closed; the returned channel closes
// when the writers have returned.
func (p *e2eePeer) publish(ctx context.Context, t *testing.T, stop <-chan struct{}) <-chan struct{} {
	t.Helper()
	var wg sync.WaitGroup
	for _, k := range []struct {
		kind  string
		codec webrtc.RTPCodecCapability
		every time.Duration
	}{
		{wire.KindAudio, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeOpus, ClockRate: 48000, Channels: 2}, 20 * time.Millisecond},
		{wire.KindVideo, webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeVP8, ClockRate: 90000}, 33 * time.Millisecond},
	} {
		pub, err := p.c.PublishSample(ctx, p.identity+"-"+k.kind, k.codec)
		if err != nil {
			t.Fatalf("%s: PublishSample %s: %v", p.identity, k.kind, err)
		}
		p.pubs = append(p.pubs, pub)
		wg.Go(func() { writeFrames(pub, p.identity, k.kind, k.every, 0, stop) })
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	return done
}

// writeFrames writes e2eeFrame n, n+1, ... to pub every interval until stop.
func writeFrames(pub *client.Publication, identity, kind string, every time.Duration, n uint32, stop <-chan struct{}) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for ; ; n++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		_ = pub.WriteSample(media.Sample{Data: e2eeFrame(identity, kind, n), Duration: every})
	}
}

// tapRecorder records what the SFU forwards: every payload, per track.
type tapRecorder struct {
	on      atomic.Bool
	mu      sync.Mutex
	packets map[string][][]byte // by track SID
	n       int
}

const maxTapped = 20000

func (r *tapRecorder) tap(sid string, h *rtp.Header, payload []byte) {
	if !r.on.Load() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.n >= maxTapped {
		return
	}
	r.n++
	r.packets[sid] = append(r.packets[sid], bytes.Clone(payload))
}

func (r *tapRecorder) take() map[string][][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.packets
	r.packets, r.n = map[string][][]byte{}, 0
	return p
}

func newTappedServer(t *testing.T) (*localServer, *tapRecorder) {
	t.Helper()
	rec := &tapRecorder{packets: map[string][][]byte{}}
	srv, err := startLocalServerWith(signaling.ServerLimits{}, func(c *sfu.Config) { c.Tap = rec.tap })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return srv, rec
}

// trackOwners maps track SID to its TrackInfo, from what peers received.
func trackOwners(peers ...*e2eePeer) map[string]wire.TrackInfo {
	m := map[string]wire.TrackInfo{}
	for _, p := range peers {
		p.mu.Lock()
		for sid, r := range p.tracks {
			m[sid] = r.info
		}
		p.mu.Unlock()
	}
	return m
}

// frameOf returns the frame bytes an RTP payload starts (the VP8 payload
// descriptor removed), or nil for a packet that continues a frame.
func frameOf(t *testing.T, info wire.TrackInfo, payload []byte) []byte {
	t.Helper()
	if info.Kind == wire.KindAudio {
		return payload
	}
	var vp8 codecs.VP8Packet
	frame, err := vp8.Unmarshal(payload)
	if err != nil {
		t.Fatalf("track %s: forwarded VP8 payload does not parse: %v", info.SID, err)
	}
	if vp8.S != 1 || vp8.PID != 0 {
		return nil
	}
	return frame
}

func codecOf(info wire.TrackInfo) e2ee.Codec {
	if info.Kind == wire.KindAudio {
		return e2ee.CodecOpus
	}
	return e2ee.CodecVP8
}

// sframeHeader parses the SFrame header after a frame's clear prefix.
func sframeHeader(t *testing.T, info wire.TrackInfo, frame []byte) sframe.Header {
	t.Helper()
	n, err := e2ee.PrefixLen(codecOf(info), frame)
	if err != nil {
		t.Fatalf("track %s: forwarded frame has no clear prefix: %v", info.SID, err)
	}
	h, _, err := sframe.ParseHeader(frame[n:])
	if err != nil {
		t.Fatalf("track %s: forwarded frame has no SFrame header after its prefix: %v", info.SID, err)
	}
	return h
}

func TestE2EEServerForwardsOnlyCiphertext(t *testing.T) {
	srv, tap := newTappedServer(t)
	url := srv.Frontend().URL
	ctx := testContext(t)
	tap.on.Store(true)

	names := []string{"alice", "bob", "carol"}
	var peers []*e2eePeer
	stop := make(chan struct{})
	var writers []<-chan struct{}
	for _, id := range names {
		p := joinE2EE(ctx, t, url, srv.Token(id, true, true), id)
		peers = append(peers, p)
		writers = append(writers, p.publish(ctx, t, stop))
	}
	for _, p := range peers {
		p.waitFrames(t, others(names, p.identity), []string{wire.KindAudio, wire.KindVideo}, 30)
	}
	close(stop)
	for _, w := range writers {
		<-w
	}

	// What the SFU forwarded: never the marker; every frame an SFrame
	// header with a KID its sender made.
	owners := trackOwners(peers...)
	kidsOf := map[string]map[uint64]bool{}
	for _, p := range peers {
		kidsOf[p.identity] = p.ownKIDs()
		for _, r := range p.tracks {
			if !r.info.E2EE {
				t.Errorf("%s sees track %s of %s as not end-to-end encrypted", p.identity, r.info.SID, r.info.Identity)
			}
		}
	}
	packets, frames := 0, 0
	for sid, payloads := range tap.take() {
		info, ok := owners[sid]
		if !ok {
			t.Fatalf("the SFU forwarded track %s that no peer received", sid)
		}
		for _, pl := range payloads {
			packets++
			if bytes.Contains(pl, []byte(marker)) || bytes.Contains(pl, []byte(info.Identity+"|"+info.Kind)) {
				t.Fatalf("the SFU saw plaintext on track %s: %q", sid, pl)
			}
			frame := frameOf(t, info, pl)
			if frame == nil {
				continue
			}
			frames++
			if h := sframeHeader(t, info, frame); !kidsOf[info.Identity][h.KID] {
				t.Fatalf("track %s of %s: SFrame KID %#x is not one %s made (%v)", sid, info.Identity, h.KID, info.Identity, kidsOf[info.Identity])
			}
		}
	}
	if frames < 6*30 {
		t.Fatalf("the tap saw %d frames in %d packets; want at least %d", frames, packets, 6*30)
	}
	t.Logf("tap: %d packets, %d frame starts, all ciphertext under their senders' KIDs", packets, frames)

	// Everyone agrees on the safety number.
	want := peers[0].c.SafetyNumber()
	checkSafetyNumberFormat(t, peers[0].identity, want)
	for _, p := range peers[1:] {
		if got := p.c.SafetyNumber(); got != want {
			t.Fatalf("%s shows safety number %q, alice %q", p.identity, got, want)
		}
	}
}

// waitKeys waits until ok holds for p's key log.
func (p *e2eePeer) waitKeys(t *testing.T, what string, ok func([]e2ee.KeyEvent) bool) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	for !ok(p.keyLog()) {
		select {
		case <-p.wake:
		case <-deadline.C:
			t.Fatalf("%s: %s: not in its key log after %v", p.identity, what, testTimeout)
		}
	}
}

// TestE2EERelayMessagesAreOpaque looks for every secret the clients of a
// call held in everything the server carried and in the clients' logs:
// base keys, the SFrame keys and salts derived from them and from their
// ratchets, identity private keys, X25519 shared secrets, seal keys and
// sealed plaintexts, each as any 8-byte run, raw, hex or base64, after
// decoding what decodes (secrets_test.go).
func TestE2EERelayMessagesAreOpaque(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	proxy := hostilenode.New(t, srv.Frontend().URL, nil)
	logs := map[string]*logBuffer{}
	join := func(id string) *e2eePeer {
		logs[id] = &logBuffer{}
		return joinE2EE(ctx, t, proxy.URL, srv.Token(id, true, true), id, logs[id].options)
	}

	// The scenario: alice, bob and carol join in turn, each publishing
	// at once; dave joins without publishing and leaves.
	names := []string{"alice", "bob", "carol"}
	var peers []*e2eePeer
	stop := make(chan struct{})
	defer close(stop)
	for _, id := range names {
		p := join(id)
		peers = append(peers, p)
		p.publish(ctx, t, stop)
	}
	for _, p := range peers {
		p.waitFrames(t, others(names, p.identity), []string{wire.KindAudio}, 10)
	}
	dave := join("dave")
	dave.waitFrames(t, names, []string{wire.KindAudio}, 10)
	if err := dave.c.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range peers {
		p.waitFrames(t, others(names, p.identity), []string{wire.KindAudio}, 10)
	}
	everyone := append(slices.Clip(peers), dave)

	// The keys it must make, by the schedule of media/e2ee/keys.go (a
	// publisher's first key goes out as it is, each later join ratchets,
	// a leave draws a fresh key; a listener makes one and never sends
	// it): alice k0 (sent when bob joins), k1 (carol joins), k2 (dave
	// joins), k3 (dave leaves); bob the same; carol k0 (sent on publish),
	// k1 (dave joins), k2 (dave leaves); dave k0.
	ownKeys := map[string]int{"alice": 4, "bob": 4, "carol": 3, "dave": 1}
	// Who must hold whose keys: every member present when one went out.
	// Alice's k0 went to bob alone, bob's k0 to alice alone, carol's to
	// both; dave got each publisher's key made for his join.
	held := map[string]map[string]int{
		"alice": {"alice": 4, "bob": 4, "carol": 3},
		"bob":   {"alice": 4, "bob": 4, "carol": 3},
		"carol": {"alice": 3, "bob": 3, "carol": 3},
		"dave":  {"alice": 1, "bob": 1, "carol": 1, "dave": 1},
	}
	// One key message per key a publisher sent, with a box for each
	// member then: alice and bob 1+2+3+2, carol 2+3+2.
	const wantKeyMessages, wantBoxes = 4 + 4 + 3, 8 + 8 + 7

	// Let key management settle: each publisher switches to its last key
	// and the others still in the room hold it, so no key message is in
	// flight when the frames are searched.
	for _, p := range peers {
		want := uint32(ownKeys[p.identity] - 1)
		deadline := time.NewTimer(testTimeout)
		for {
			changed := p.c.E2EEChanged()
			if p.c.E2EEStats().Epoch >= want {
				break
			}
			select {
			case <-changed:
			case <-deadline.C:
				t.Fatalf("%s: key epoch %d, want %d after the scenario", p.identity, p.c.E2EEStats().Epoch, want)
			}
		}
		deadline.Stop()
		epoch := p.c.E2EEStats().Epoch
		var last uint64
		found := false
		for _, e := range p.keyLog() {
			if e.Sender == p.identity && e.KID&0xff == uint64(epoch&0xff) {
				last, found = e.KID, true
			}
		}
		if !found {
			t.Fatalf("%s sends under epoch %d, and its key log has no key of that epoch", p.identity, epoch)
		}
		for _, q := range peers {
			has := func(log []e2ee.KeyEvent) bool {
				return slices.ContainsFunc(log, func(e e2ee.KeyEvent) bool { return e.Sender == p.identity && e.KID == last })
			}
			if p.c.E2EEStats().SwitchesOnTimeout == 0 {
				// Every switch waited for every recipient's ack, which
				// a recipient sends after logging the key.
				if !has(q.keyLog()) {
					t.Fatalf("%s acknowledged %s's key %#x, and its key log does not have it", q.identity, p.identity, last)
				}
				continue
			}
			q.waitKeys(t, fmt.Sprintf("%s's key %#x", p.identity, last), has)
		}
	}

	// The key logs: what every client held, checked against the scenario.
	type keyID struct {
		sender string
		kid    uint64
	}
	bases := map[keyID][]byte{}
	events := 0
	for _, p := range everyone {
		kids := map[string]map[uint64]bool{}
		for _, e := range p.keyLog() {
			events++
			if len(e.BaseKey) != e2ee.DefaultSuite.HashSize() {
				t.Fatalf("%s logged a %d-byte base key from %s; the suite's are %d", p.identity, len(e.BaseKey), e.Sender, e2ee.DefaultSuite.HashSize())
			}
			if old, ok := bases[keyID{e.Sender, e.KID}]; ok && !bytes.Equal(old, e.BaseKey) {
				t.Fatalf("two base keys of %s under KID %#x", e.Sender, e.KID)
			}
			bases[keyID{e.Sender, e.KID}] = e.BaseKey
			if kids[e.Sender] == nil {
				kids[e.Sender] = map[uint64]bool{}
			}
			kids[e.Sender][e.KID] = true
		}
		for from, want := range held[p.identity] {
			if got := len(kids[from]); got < want {
				t.Fatalf("%s's key log has %d keys of %s; the scenario gives it at least %d", p.identity, got, from, want)
			}
		}
		if epoch := p.c.E2EEStats().Epoch; len(kids[p.identity]) < int(epoch)+1 {
			t.Fatalf("%s is at key epoch %d but logged %d keys of its own", p.identity, epoch, len(kids[p.identity]))
		}
	}
	wantBases := 0
	for _, n := range ownKeys {
		wantBases += n
	}
	if len(bases) < wantBases {
		t.Fatalf("the key logs have %d distinct base keys; the scenario makes at least %d", len(bases), wantBases)
	}

	// The frames: who each connection was, the room, and every box of
	// every key message, whichever way it went.
	frames := proxy.Carried()
	connOf, room := map[int]string{}, ""
	for _, f := range frames {
		var j wire.Joined
		if f.ToClient && json.Unmarshal(f.Data, &j) == nil && j.Type == wire.TypeJoined {
			connOf[f.Conn], room = j.Participant.Identity, j.Room
		}
	}
	if len(connOf) != len(everyone) || room == "" {
		t.Fatalf("the proxy saw %d joins (room %q), want %d", len(connOf), room, len(everyone))
	}
	boxes := map[string]sealedBox{}
	relays, keyMessages := 0, 0
	for _, f := range frames {
		var r wire.Relay
		if json.Unmarshal(f.Data, &r) != nil || r.Type != wire.TypeRelay || r.Data == nil {
			continue
		}
		relays++
		sender := r.From
		if !f.ToClient {
			sender = connOf[f.Conn]
		}
		var km struct {
			Version int               `json:"sotto_e2ee"`
			Type    string            `json:"type"`
			KID     uint64            `json:"kid"`
			Boxes   map[string]string `json:"boxes"`
		}
		if json.Unmarshal(r.Data, &km) != nil || km.Version == 0 || km.Type != "key" {
			continue
		}
		if !f.ToClient {
			keyMessages++
		}
		for to, b64 := range km.Boxes {
			sealed, err := base64.RawURLEncoding.DecodeString(b64)
			if err != nil {
				t.Fatalf("%s's box for %s is not base64url: %v", sender, to, err)
			}
			boxes[b64] = sealedBox{sender: sender, recipient: to, kid: km.KID, sealed: sealed}
		}
	}
	if keyMessages < wantKeyMessages || len(boxes) < wantBoxes {
		t.Fatalf("the clients sent %d key messages with %d boxes; the scenario makes at least %d with %d", keyMessages, len(boxes), wantKeyMessages, wantBoxes)
	}

	// The secrets. Per base key: itself, HKDF-Extract of it, the SFrame
	// key and salt, and the same for its ratchet (which a receiver
	// derives on its own when a frame comes under the next KID).
	var secrets []secret
	add := func(name string, b []byte) { secrets = append(secrets, secret{name, b}) }
	ids := slices.SortedFunc(maps.Keys(bases), func(a, b keyID) int {
		return cmp.Or(strings.Compare(a.sender, b.sender), cmp.Compare(a.kid, b.kid))
	})
	for _, id := range ids {
		base, what := bases[id], fmt.Sprintf("%s's base key %#x", id.sender, id.kid)
		prk, key, salt := sframeSchedule(t, e2ee.DefaultSuite, id.kid, base)
		add(what, base)
		add("HKDF-Extract of "+what, prk)
		add("the SFrame key of "+what, key)
		add("the SFrame salt of "+what, salt)
		next, err := sframe.Ratchet(e2ee.DefaultSuite, base)
		if err != nil {
			t.Fatal(err)
		}
		nextKID := id.kid&^0xff | (id.kid+1)&0xff
		prk, key, salt = sframeSchedule(t, e2ee.DefaultSuite, nextKID, next)
		add("the ratchet of "+what, next)
		add("HKDF-Extract of the ratchet of "+what, prk)
		add("the SFrame key of the ratchet of "+what, key)
		add("the SFrame salt of the ratchet of "+what, salt)
	}
	const perBase = 8
	// Identity private keys and session (HPKE) private keys.
	sessions := map[string]*ecdh.PrivateKey{}
	for _, p := range everyone {
		add(p.identity+"'s identity private key", identityPrivateKey(t, p.c))
		sessions[p.identity] = sessionPrivateKey(t, p.c)
		add(p.identity+"'s session private key", sessions[p.identity].Bytes())
	}
	// Every box opens, with the recipient's session key, to a key the key
	// logs reported, under the room, names, suite and KID it was sent for.
	for _, b64 := range slices.Sorted(maps.Keys(boxes)) {
		b := boxes[b64]
		if sessions[b.sender] == nil || sessions[b.recipient] == nil {
			t.Fatalf("a box from %q to %q: not participants of the call", b.sender, b.recipient)
		}
		plain := openBox(t, b, sessions[b.recipient])
		baseLen := e2ee.DefaultSuite.HashSize()
		if len(plain) < 11+2+baseLen+64 || plain[0] != 2 ||
			binary.BigEndian.Uint16(plain[1:3]) != uint16(e2ee.DefaultSuite) || binary.BigEndian.Uint64(plain[3:11]) != b.kid ||
			!bytes.Contains(plain, []byte(room)) || !bytes.Contains(plain, []byte(b.sender)) || !bytes.Contains(plain, []byte(b.recipient)) {
			t.Fatalf("%s's box for %s opens to %d bytes that are not version 2, the suite, KID %#x, the room and both names", b.sender, b.recipient, len(plain), b.kid)
		}
		body := plain[:len(plain)-64]
		if binary.BigEndian.Uint16(body[len(body)-baseLen-2:]) != uint16(baseLen) {
			t.Fatalf("%s's box for %s does not end in a %d-byte base key", b.sender, b.recipient, baseLen)
		}
		if logged := bases[keyID{b.sender, b.kid}]; !bytes.Equal(logged, body[len(body)-baseLen:]) {
			t.Fatalf("%s's box for %s carries base key %#x, which the key logs do not have: they missed a key", b.sender, b.recipient, b.kid)
		}
		// The rest of the plaintext is public (names, identity keys,
		// session ids) or derived from the base key by a signature.
	}
	people := len(everyone)
	if want := perBase*len(bases) + 2*people; len(secrets) != want || want < perBase*wantBases+2*people {
		t.Fatalf("%d secrets to look for; want %d, and at least %d", len(secrets), want, perBase*wantBases+2*people)
	}

	// The search: it must find what is planted, then nothing real.
	finder := newSecretFinder(t, secrets)
	checkFinderFindsLeaks(t, finder, secrets[0])                  // a base key
	checkFinderFindsLeaks(t, finder, secrets[3])                  // an SFrame salt, 12 bytes
	checkFinderFindsLeaks(t, finder, secrets[perBase*len(bases)]) // an identity private key
	var corpus []corpusItem
	for i, f := range frames {
		dir := "from " + connOf[f.Conn]
		if f.ToClient {
			dir = "to " + connOf[f.Conn]
		}
		corpus = append(corpus, expand(corpusItem{fmt.Sprintf("signaling frame %d (%s)", i, dir), f.Data}, expandDepth)...)
	}
	logBytes := 0
	for _, id := range slices.Sorted(maps.Keys(logs)) {
		b := logs[id].bytes()
		logBytes += len(b)
		for line := range bytes.Lines(b) {
			corpus = append(corpus, expand(corpusItem{id + "'s log: " + string(bytes.TrimSpace(line)), line}, expandDepth)...)
		}
	}
	searched := 0
	for _, it := range corpus {
		searched += len(it.b)
		if what, at, found := finder.find(it.b); found {
			lo, hi := max(0, at-80), min(len(it.b), at+80)
			t.Fatalf("%s carries %s at byte %d: …%q…", it.where, what, at, it.b[lo:hi])
		}
	}
	t.Logf("%d signaling frames (%d relays, %d key messages, %d boxes, all opened), %d bytes of client logs; "+
		"%d key events, %d base keys: %d secrets, in %d raw, %d hex and %d base64 windows, found in none of %d items (%d bytes) decoded from them",
		len(frames), relays, keyMessages, len(boxes), logBytes, events, len(bases), finder.secrets,
		len(finder.raw), len(finder.hex), len(finder.b64), len(corpus), searched)
}

func others(names []string, self string) []string {
	var out []string
	for _, n := range names {
		if n != self {
			out = append(out, n)
		}
	}
	return out
}

// cannotDecrypt asserts that no frame in packets decrypts with any of keys
// (nor keys ratcheted forward, nor keys tried under the frame's own KID).
func cannotDecrypt(t *testing.T, who string, keys []e2ee.KeyEvent, owners map[string]wire.TrackInfo, packets map[string][][]byte, ofIdentity map[string]bool) int {
	t.Helper()
	var candidates [][]byte
	for _, k := range keys {
		b := k.BaseKey
		candidates = append(candidates, b)
		for range 3 {
			next, err := sframe.Ratchet(e2ee.DefaultSuite, b)
			if err != nil {
				t.Fatal(err)
			}
			candidates = append(candidates, next)
			b = next
		}
	}
	tried := 0
	for sid, payloads := range packets {
		info := owners[sid]
		if !ofIdentity[info.Identity] || info.Kind != wire.KindAudio {
			continue
		}
		for _, pl := range payloads {
			n, err := e2ee.PrefixLen(e2ee.CodecOpus, pl)
			if err != nil {
				t.Fatal(err)
			}
			h, _, err := sframe.ParseHeader(pl[n:])
			if err != nil {
				t.Fatal(err)
			}
			for _, k := range keys {
				if k.KID == h.KID {
					t.Fatalf("%s held the key (KID %#x) of a frame of %s it must not read", who, h.KID, info.Identity)
				}
			}
			for _, key := range candidates {
				r := sframe.NewReceiver(e2ee.DefaultSuite, sframe.ReceiverOptions{})
				if err := r.SetKey(h.KID, key); err != nil {
					t.Fatal(err)
				}
				if _, _, err := r.Decrypt(nil, pl[:n], pl[n:]); err == nil {
					t.Fatalf("%s decrypted a frame of %s it must not read (KID %#x)", who, info.Identity, h.KID)
				} else if !errors.Is(err, sframe.ErrAuth) {
					t.Fatalf("a frame of %s under KID %#x failed with %v, not authentication: the attempt proves nothing", info.Identity, h.KID, err)
				}
			}
			tried++
		}
	}
	return tried
}

func TestE2EELeaverCannotDecryptWhatFollows(t *testing.T) {
	srv, tap := newTappedServer(t)
	url := srv.Frontend().URL
	ctx := testContext(t)

	names := []string{"alice", "bob", "carol"}
	var peers []*e2eePeer
	stop := make(chan struct{})
	var writers []<-chan struct{}
	for _, id := range names {
		p := joinE2EE(ctx, t, url, srv.Token(id, true, true), id)
		peers = append(peers, p)
		writers = append(writers, p.publish(ctx, t, stop))
	}
	alice, bob, carol := peers[0], peers[1], peers[2]
	for _, p := range peers {
		p.waitFrames(t, others(names, p.identity), []string{wire.KindAudio}, 10)
	}
	owners := trackOwners(peers...)
	epochs := map[string]uint32{"alice": alice.c.E2EEStats().Epoch, "bob": bob.c.E2EEStats().Epoch}

	// Pause the senders so that every frame recorded later was encrypted
	// after the rekey; carol leaves; wait for alice and bob to switch.
	close(stop)
	for _, w := range writers {
		<-w
	}
	held := carol.keyLog()
	if err := carol.c.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*e2eePeer{alice, bob} {
		deadline := time.NewTimer(testTimeout)
		for {
			changed := p.c.E2EEChanged()
			if p.c.E2EEStats().Epoch != epochs[p.identity] {
				break
			}
			select {
			case <-changed:
			case <-deadline.C:
				t.Fatalf("%s never switched to a new key after carol left", p.identity)
			}
		}
		deadline.Stop()
	}

	tap.on.Store(true)
	stop2 := make(chan struct{})
	var w2 sync.WaitGroup
	for _, p := range []*e2eePeer{alice, bob} {
		for _, pub := range p.pubs {
			if pub.Track().Kind() == webrtc.RTPCodecTypeAudio {
				w2.Go(func() { writeFrames(pub, p.identity, wire.KindAudio, 20*time.Millisecond, 100000, stop2) })
			}
		}
	}
	alice.waitFrames(t, []string{"bob"}, []string{wire.KindAudio}, 25)
	bob.waitFrames(t, []string{"alice"}, []string{wire.KindAudio}, 25)
	close(stop2)
	w2.Wait()
	tap.on.Store(false)

	tried := cannotDecrypt(t, "carol (who left)", held, owners, tap.take(), map[string]bool{"alice": true, "bob": true})
	if tried < 40 {
		t.Fatalf("only %d frames recorded after carol left", tried)
	}
	t.Logf("%d frames sent after carol left: none decrypts with the %d keys carol held, nor their ratchets", tried, len(held))
}

func TestE2EELateJoinerCannotDecryptEarlierFrames(t *testing.T) {
	srv, tap := newTappedServer(t)
	url := srv.Frontend().URL
	ctx := testContext(t)

	stop := make(chan struct{})
	defer close(stop)
	alice := joinE2EE(ctx, t, url, srv.Token("alice", true, true), "alice")
	bob := joinE2EE(ctx, t, url, srv.Token("bob", true, true), "bob")
	alice.publish(ctx, t, stop)
	bob.publish(ctx, t, stop)
	tap.on.Store(true)
	alice.waitFrames(t, []string{"bob"}, []string{wire.KindAudio}, 25)
	bob.waitFrames(t, []string{"alice"}, []string{wire.KindAudio}, 25)
	tap.on.Store(false)
	before := tap.take()
	owners := trackOwners(alice, bob)

	carol := joinE2EE(ctx, t, url, srv.Token("carol", true, true), "carol")
	carol.waitFrames(t, []string{"alice", "bob"}, []string{wire.KindAudio}, 10)

	tried := cannotDecrypt(t, "carol (who joined late)", carol.keyLog(), owners, before, map[string]bool{"alice": true, "bob": true})
	if tried < 40 {
		t.Fatalf("only %d frames recorded before carol joined", tried)
	}
	t.Logf("%d frames sent before carol joined: none decrypts with carol's keys", tried)
}

func TestE2EETamperedFramesAreRejected(t *testing.T) {
	// The tap rewrites what it sees, as a malicious SFU would: one byte
	// flipped in the SFrame header, the ciphertext or the tag.
	var seen atomic.Int64
	var tampered atomic.Int64
	var armed atomic.Bool
	flip := func(sid string, h *rtp.Header, payload []byte) {
		if !armed.Load() || len(payload) < 12 {
			return
		}
		switch seen.Add(1) % 8 {
		case 1:
			payload[0] ^= 0x04 // the SFrame header's config byte (Opus has no clear prefix)
		case 3:
			payload[1] ^= 0x01 // the SFrame header's counter (or KID) byte
		case 5:
			payload[len(payload)-1] ^= 0x80 // the tag
		case 7:
			payload[len(payload)/2] ^= 0x10 // the ciphertext
		default:
			return
		}
		tampered.Add(1)
	}
	srv, err := startLocalServerWith(signaling.ServerLimits{}, func(c *sfu.Config) { c.Tap = flip })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	url := srv.Frontend().URL
	ctx := testContext(t)

	alice := joinE2EE(ctx, t, url, srv.Token("alice", true, false), "alice")
	bob := joinE2EE(ctx, t, url, srv.Token("bob", false, true), "bob")
	pub, err := alice.c.PublishSample(ctx, "alice-audio", opus())
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go writeFrames(pub, "alice", wire.KindAudio, 20*time.Millisecond, 0, stop)
	bob.waitFrames(t, []string{"alice"}, []string{wire.KindAudio}, 10)
	armed.Store(true)
	bob.waitFrames(t, []string{"alice"}, []string{wire.KindAudio}, 40)
	armed.Store(false)

	var st client.FrameStats
	bob.mu.Lock()
	for _, r := range bob.tracks {
		st = r.rt.Stats()
	}
	bob.mu.Unlock()
	// waitFrames failed the test had any returned frame differed from
	// what alice sent: tampered frames were never played.
	if st.Rejected == 0 || int64(st.Rejected) > tampered.Load() {
		t.Fatalf("bob rejected %d frames; the SFU tampered with %d", st.Rejected, tampered.Load())
	}
	t.Logf("tampered %d, rejected %d, decrypted %d, no key %d", tampered.Load(), st.Rejected, st.Decrypted, st.NoKey)
}

func TestE2EESwappedIdentityKeyChangesSafetyNumber(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	direct := srv.Frontend().URL

	// The "server" alice talks to swaps bob's identity key for one the
	// attacker holds, in every message that carries it.
	mallory, err := e2ee.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	mallorySession, err := e2ee.NewSessionKey()
	if err != nil {
		t.Fatal(err)
	}
	malloryKey := e2ee.Announce(mallory, mallorySession)
	swap := func(b []byte) []byte {
		var m map[string]any
		if json.Unmarshal(b, &m) != nil {
			return b
		}
		changed := false
		fix := func(p any) {
			if pm, ok := p.(map[string]any); ok && pm["identity"] == "bob" {
				pm["public_key"] = malloryKey
				changed = true
			}
		}
		switch m["type"] {
		case wire.TypeJoined:
			if ps, ok := m["participants"].([]any); ok {
				for _, p := range ps {
					fix(p)
				}
			}
		case wire.TypeParticipantJoin:
			fix(m["participant"])
		}
		if !changed {
			return b
		}
		out, err := json.Marshal(m)
		if err != nil {
			return b
		}
		return out
	}
	proxy := hostilenode.New(t, direct, swap)

	bob := joinE2EE(ctx, t, direct, srv.Token("bob", true, true), "bob")
	carol := joinE2EE(ctx, t, direct, srv.Token("carol", true, true), "carol")
	alice := joinE2EE(ctx, t, proxy.URL, srv.Token("alice", true, true), "alice")
	for _, p := range []*e2eePeer{bob, carol} {
		waitJoined(t, p, "alice")
	}
	// alice publishes, so she seals her key to everyone (to the swapped
	// key for bob).
	if _, err := alice.c.PublishSample(ctx, "mic", opus()); err != nil {
		t.Fatal(err)
	}

	a, b, c := alice.c.SafetyNumber(), bob.c.SafetyNumber(), carol.c.SafetyNumber()
	for who, n := range map[string]string{"alice": a, "bob": b, "carol": c} {
		checkSafetyNumberFormat(t, who, n)
	}
	if b != c {
		t.Fatalf("bob and carol, whose keys nobody touched, disagree: %q vs %q", b, c)
	}
	if a == b {
		t.Fatalf("alice, whose view of bob's key was swapped, shows the same safety number %q", a)
	}
	// alice takes no view signed by bob's real key as bob's, so he
	// stays waiting in her eyes and gets nothing from her. carol, whom
	// the node did not touch, counts alice as admitted (bob or she
	// admitted her) and sees alice's view either missing (alice took
	// only bob's admission, which does not count for her) or without
	// bob: she is told.
	e := waitAlert(t, carol)
	if !slices.ContainsFunc(e.Mismatches, func(m e2ee.RosterMismatch) bool {
		return m.Member == "alice" && (m.Missing || slices.ContainsFunc(m.OnlyMine, func(x e2ee.RosterEntry) bool { return x.Name == "bob" }))
	}) {
		t.Fatalf("carol's alert does not name alice's view: %v", e)
	}
	// Nothing alice sent carries a box for "bob": none was sealed to the
	// swapped key.
	for _, f := range proxy.Recorded(hostilenode.RelaysOfType("key")) {
		if boxes, _ := hostilenode.RelayData(f.Data)["boxes"].(map[string]any); !f.ToClient && boxes["bob"] != nil {
			t.Fatal("alice sealed a key to the key the node swapped in for bob's")
		}
	}
	t.Logf("alice %q; bob and carol %q", a, b)
}

// waitMember waits until p counts every one of identities as a member
// ("" for itself: p was admitted).
func waitMember(t *testing.T, p *e2eePeer, identities ...string) {
	t.Helper()
	deadline := time.After(testTimeout)
	left := slices.Clone(identities)
	for len(left) > 0 {
		select {
		case id := <-p.admitted:
			left = slices.DeleteFunc(left, func(x string) bool { return x == id })
		case <-deadline:
			t.Fatalf("%s never counted %q as members: %+v", p.identity, left, p.c.Admissions())
		}
	}
}

// waitAlert waits for p's next roster alert.
func waitAlert(t *testing.T, p *e2eePeer) *client.RosterMismatchError {
	t.Helper()
	select {
	case e := <-p.alerts:
		return e
	case <-time.After(testTimeout):
		t.Fatalf("%s raised no roster alert: %+v %+v", p.identity, p.c.RosterStatus(), p.c.Admissions())
		return nil
	}
}

func waitJoined(t *testing.T, p *e2eePeer, identity string) {
	t.Helper()
	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	for {
		select {
		case id := <-p.joined:
			if id == identity {
				return
			}
		case <-deadline.C:
			t.Fatalf("%s never saw %s join", p.identity, identity)
		}
	}
}

func TestE2EEDisabledIsVisibleToEveryone(t *testing.T) {
	srv := newServer(t)
	url := srv.Frontend().URL
	ctx := testContext(t)

	bob := joinE2EE(ctx, t, url, srv.Token("bob", false, true), "bob")
	plain, err := client.Connect(ctx, url, client.Options{
		Token:         srv.Token("dave", true, false),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
		E2EE:          client.E2EEOptions{Disabled: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if plain.SafetyNumber() != "" {
		t.Fatal("a client with E2EE off shows a safety number")
	}
	pub, err := plain.PublishSample(ctx, "dave-audio", opus())
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go writeFrames(pub, "dave", wire.KindAudio, 20*time.Millisecond, 0, stop)

	deadline := time.NewTimer(testTimeout)
	defer deadline.Stop()
	for {
		bob.mu.Lock()
		var r *frameRecv
		for _, x := range bob.tracks {
			r = x
		}
		bob.mu.Unlock()
		if r != nil {
			if r.info.E2EE {
				t.Fatal("dave's track is marked end-to-end encrypted; dave turned E2EE off")
			}
			for _, pi := range bob.c.Participants() {
				if pi.Identity == "dave" && pi.E2EE {
					t.Fatal("dave is marked end-to-end encrypted")
				}
			}
			// ReadFrame returns dave's frames as they came, flagged.
			st := r.rt.Stats()
			bob.mu.Lock()
			bad := r.bad
			bob.mu.Unlock()
			if st.Clear > 0 {
				if bad == nil || !strings.Contains(bad.Error(), "without end-to-end encryption") {
					t.Fatalf("clear frames were not flagged as such: %v", bad)
				}
				return
			}
		}
		select {
		case <-bob.wake:
		case <-deadline.C:
			t.Fatal("bob never received dave's clear frames")
		}
	}
}

func TestE2EERefusesUnencryptableTracks(t *testing.T) {
	srv := newServer(t)
	ctx := testContext(t)
	alice := joinE2EE(ctx, t, srv.Frontend().URL, srv.Token("alice", true, true), "alice")
	if _, err := alice.c.PublishRTP(ctx, "raw", opus()); err == nil || !strings.Contains(err.Error(), "end-to-end encryption") {
		t.Fatalf("PublishRTP with E2EE on: %v; want ErrE2EENeedsFrames", err)
	}
	if _, err := alice.c.PublishSample(ctx, "g722", webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypeG722, ClockRate: 8000}); err == nil {
		t.Fatal("PublishSample of a codec E2EE has no frame format for succeeded")
	}
	if _, err := client.Connect(ctx, srv.Frontend().URL, client.Options{
		E2EE:  client.E2EEOptions{Admission: client.AdmitAll},
		Token: srv.Token("bob", true, true), PublicKey: "mine", Logger: quietLogger(),
	}); err == nil {
		t.Fatal("Connect with E2EE on and an application PublicKey succeeded")
	}
}

// h264TestFrame is an IDR access unit (SPS, PPS, slice) whose slice data
// carries the marker, n, and runs of zeros that need escaping once
// encrypted; large enough to be fragmented (FU-A).
func h264TestFrame(n uint32) []byte {
	f := []byte{0, 0, 0, 1, 0x67, 0x42, 0xc0, 0x1f, 0xda, 0x01, 0x40, 0, 0, 0, 1, 0x68, 0xce, 0x3c, 0x80, 0, 0, 0, 1, 0x65, 0x88, 0x84}
	f = fmt.Appendf(f, "%s|h264|%08d|", marker, n)
	for i := range 1500 + int(n%700) {
		f = append(f, byte(i*7+int(n)), 0, 0, byte(i%3)+1)
	}
	return f
}

func TestE2EEH264ThroughTheSFU(t *testing.T) {
	srv, tap := newTappedServer(t)
	url := srv.Frontend().URL
	ctx := testContext(t)
	tap.on.Store(true)

	frames := make(chan client.Frame, 256)
	bobTrack := make(chan *client.RemoteTrack, 1)
	c, err := client.Connect(ctx, url, client.Options{
		E2EE:          client.E2EEOptions{Admission: client.AdmitAll},
		Token:         srv.Token("bob", false, true),
		SettingEngine: loopbackSettings(),
		Logger:        quietLogger(),
		Handlers:      client.Handlers{Track: func(rt *client.RemoteTrack) { bobTrack <- rt }},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	alice := joinE2EE(ctx, t, url, srv.Token("alice", true, false), "alice")
	pub, err := alice.c.PublishSample(ctx, "camera", webrtc.RTPCodecCapability{
		MimeType: webrtc.MimeTypeH264, ClockRate: 90000,
		SDPFmtpLine: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
	})
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(33 * time.Millisecond)
		defer tick.Stop()
		for n := uint32(0); ; n++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			_ = pub.WriteSample(media.Sample{Data: h264TestFrame(n), Duration: 33 * time.Millisecond})
		}
	}()
	var rt *client.RemoteTrack
	select {
	case rt = <-bobTrack:
	case <-time.After(testTimeout):
		t.Fatal("bob got no H.264 track")
	}
	go func() {
		for {
			f, err := rt.ReadFrame()
			if err != nil {
				close(frames)
				return
			}
			frames <- f
		}
	}()
	for got := 0; got < 20; {
		select {
		case f, ok := <-frames:
			if !ok {
				t.Fatal("track ended")
			}
			i := bytes.Index(f.Data, []byte(marker+"|h264|"))
			if i < 0 || !f.Encrypted {
				t.Fatalf("frame without the marker or not encrypted (%v)", f.Encrypted)
			}
			var n uint32
			if _, err := fmt.Sscanf(string(f.Data[i+len(marker)+6:i+len(marker)+14]), "%08d", &n); err != nil {
				t.Fatal(err)
			}
			if want := e2ee.NormalizeAnnexB(h264TestFrame(n)); !bytes.Equal(f.Data, want) {
				t.Fatalf("frame %d: %d bytes, want %d", n, len(f.Data), len(want))
			}
			got++
		case <-time.After(testTimeout):
			t.Fatalf("bob decrypted no H.264 frame; stats %+v", rt.Stats())
		}
	}
	tap.on.Store(false)
	n := 0
	for _, payloads := range tap.take() {
		for _, pl := range payloads {
			n++
			if bytes.Contains(pl, []byte(marker)) {
				t.Fatal("the SFU saw an H.264 frame in clear")
			}
		}
	}
	t.Logf("20 H.264 frames decrypted byte for byte; %d forwarded packets, none in clear; stats %+v", n, rt.Stats())
}

// safetyNumberFormat is what e2ee.SafetyNumber renders: six groups of five
// digits. Two clients showing "" (or any placeholder) must not count as
// agreeing.
var safetyNumberFormat = regexp.MustCompile(`^\d{5}( \d{5}){5}$`)

func checkSafetyNumberFormat(t *testing.T, who, n string) {
	t.Helper()
	if !safetyNumberFormat.MatchString(n) {
		t.Fatalf("%s's safety number %q is not six groups of five digits", who, n)
	}
}
