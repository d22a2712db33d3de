package e2ee

import (
	"bytes"
	"encoding/base64"
	"testing"
)

// FuzzParseAnnouncement: whatever a node puts in a participant's
// public_key, parsing never panics, and what it accepts has exactly one
// text form: Announce's layout of the fields it returned.
func FuzzParseAnnouncement(f *testing.F) {
	id, _ := NewIdentity()
	sk, _ := NewSessionKey()
	good := Announce(id, sk)
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(announcePrefix)
	f.Add("x25519:" + base64.RawURLEncoding.EncodeToString(sk.PublicKey()))
	f.Add(announcePrefix + base64.RawURLEncoding.EncodeToString(make([]byte, announceSize+64)))
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAnnouncement(s)
		if err != nil {
			return
		}
		raw, _ := base64.RawURLEncoding.DecodeString(s[len(announcePrefix):])
		if !bytes.Equal(raw[:PublicKeySize], a.Identity) || !bytes.Equal(raw[PublicKeySize:2*PublicKeySize], a.HPKE) ||
			!bytes.Equal(raw[2*PublicKeySize:announceSize], a.SessionID[:]) {
			t.Fatalf("accepted %q as %+v, which is not what it says", s, a)
		}
		if !verify(a.Identity, announceLabel, raw[:announceSize], raw[announceSize:]) {
			t.Fatalf("accepted %q without a valid signature", s)
		}
	})
}

// FuzzUnmarshalKeyBody: the parser of a box's body (run on what a sender,
// possibly hostile, signed) never panics, and what it accepts marshals
// back to exactly the same bytes: one body, one encoding.
func FuzzUnmarshalKeyBody(f *testing.F) {
	b := KeyBody{
		Suite: DefaultSuite, KID: 0x123400, Seq: 42, Room: "room", Sender: "alice", SenderKey: make([]byte, 32),
		Recipient: "bob", RecipientKey: make([]byte, 32), BaseKey: make([]byte, 32),
	}
	good, _ := b.marshal()
	f.Add(good)
	f.Add(good[:len(good)-1])
	f.Add(append(bytes.Clone(good), 0))
	f.Add([]byte{BoxVersion})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		kb, err := unmarshalKeyBody(p)
		if err != nil {
			return
		}
		again, err := kb.marshal()
		if err != nil {
			t.Fatalf("a parsed body does not marshal: %v", err)
		}
		if !bytes.Equal(again, p) {
			t.Fatalf("body %x parsed and marshalled to %x", p, again)
		}
	})
}
