package fuzz

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// maxReplyOverhead bounds how much longer than the message itself the
// error text sent back for it may be: a refusal must never amplify what
// the client sent (the JSON decoder quotes offending numbers whole, so the
// text can grow with the input, but only by this much).
const maxReplyOverhead = 256

// validMessages are one well-formed message of every client type.
func validMessages() []string {
	return []string{
		`{"type":"join","protocol":1,"token":"eyJ.e30.sig","room":"r","auto_subscribe":false,"public_key":"pk"}`,
		`{"type":"offer","id":"1","target":"publisher","sdp":"v=0\r\n"}`,
		`{"type":"answer","target":"subscriber","sdp":"v=0\r\n"}`,
		`{"type":"candidate","target":"publisher","candidate":{"candidate":"candidate:1 1 udp 2130706431 127.0.0.1 5000 typ host","sdpMid":"0","sdpMLineIndex":0}}`,
		`{"type":"subscribe","id":"2","track_sids":["TR_a","TR_b"]}`,
		`{"type":"unsubscribe","track_sids":["TR_a"]}`,
		`{"type":"unpublish","id":"3","track_sid":"TR_a"}`,
		`{"type":"mute","track_sid":"TR_a","muted":true}`,
		`{"type":"relay","id":"4","to":["bob"],"data":{"k":[1,2,{"x":null}]}}`,
		`{"type":"leave"}`,
		`{"type":"ping","id":"5"}`,
		`{"type":"pong","id":"5"}`,
	}
}

// FuzzSignalingDecode runs the signaling server's decoder on arbitrary
// bytes. It never panics; a refusal is a *DecodeError with a protocol code
// and a reply no more than maxReplyOverhead bytes longer than the input; a
// decoded message has the type its envelope names, and writing it back
// out and decoding it again is stable.
func FuzzSignalingDecode(f *testing.F) {
	for _, m := range validMessages() {
		f.Add([]byte(m))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		typ, msg, err := signaling.DecodeClientMessage(data)
		if err != nil {
			var de *signaling.DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("refusal is not a *DecodeError: %v", err)
			}
			if de.Code != wire.CodeBadMessage && de.Code != wire.CodeUnknownType {
				t.Fatalf("refusal code %q", de.Code)
			}
			if de.Type != typ || msg != nil {
				t.Fatalf("refusal of type %q came with type %q and message %v", de.Type, typ, msg)
			}
			if len(de.Message) > len(data)+maxReplyOverhead {
				t.Fatalf("a %d-byte message gets a %d-byte reply", len(data), len(de.Message))
			}
			return
		}
		checkDecodedStable(t, typ, msg)
	})
}

// checkDecodedStable: the decoded message's own type field agrees with the
// envelope's, and marshal-then-decode reaches a fixed point after one step
// (the first step may normalise: invalid UTF-8 becomes U+FFFD, and relay
// data is compacted).
func checkDecodedStable(t *testing.T, typ string, msg any) {
	t.Helper()
	if got := reflect.ValueOf(msg).Elem().FieldByName("Type").String(); got != typ {
		t.Fatalf("envelope type %q, message type field %q", typ, got)
	}
	once, err := json.Marshal(msg)
	if err != nil {
		t.Fatalf("decoded %T does not marshal: %v", msg, err)
	}
	typ2, msg2, err := signaling.DecodeClientMessage(once)
	if err != nil || typ2 != typ {
		t.Fatalf("re-marshalled %s does not decode: %v\n%s", typ, err, once)
	}
	twice, err := json.Marshal(msg2)
	if err != nil {
		t.Fatal(err)
	}
	if string(once) != string(twice) {
		t.Fatalf("decoding is not stable:\n%s\n%s", once, twice)
	}
}

// TestSignalingSeeds: every hostile signaling seed is decoded the way its
// name says: refused with the code given, or accepted as the type given
// when the attack is on the server's checks after decoding (or on the
// decoder's leniency, documented here).
func TestSignalingSeeds(t *testing.T) {
	type want struct {
		code string // refusal code; "" when accepted
		typ  string // the type, accepted or refused ("" if none)
	}
	bad := func(typ string) want { return want{wire.CodeBadMessage, typ} }
	unknown := func(typ string) want { return want{wire.CodeUnknownType, typ} }
	ok := func(typ string) want { return want{"", typ} }
	expect := map[string]want{
		"msg_empty":                    bad(""),
		"msg_not_json":                 bad(""),
		"msg_json_array":               bad(""),
		"msg_type_number":              bad(""),
		"msg_type_null":                unknown(""), // null leaves the type empty
		"msg_type_missing":             unknown(""),
		"msg_type_10000_bytes":         unknown(strings.Repeat("A", 10000)),
		"msg_server_type_joined":       unknown(wire.TypeJoined),
		"msg_type_with_nul":            unknown("ping\x00"),
		"msg_type_invalid_utf8":        unknown("pi\uFFFDng"),
		"msg_duplicate_type_key":       ok(wire.TypeJoin), // encoding/json keeps the last; envelope and body agree
		"msg_type_key_uppercase":       ok(wire.TypePing), // encoding/json matches keys case-insensitively
		"msg_trailing_garbage":         bad(""),
		"msg_byte_order_mark":          bad(""),
		"msg_nested_10001":             bad(""), // encoding/json's nesting limit, before the type is read
		"msg_join_protocol_string":     bad(wire.TypeJoin),
		"msg_join_protocol_1e400":      bad(wire.TypeJoin),
		"msg_join_protocol_negative":   ok(wire.TypeJoin), // the server refuses the version
		"msg_join_token_object":        bad(wire.TypeJoin),
		"msg_join_auto_subscribe_str":  bad(wire.TypeJoin),
		"msg_offer_sdp_number":         bad(wire.TypeOffer),
		"msg_offer_sdp_null_bytes":     ok(wire.TypeOffer), // the SDP parser refuses it
		"msg_candidate_string":         bad(wire.TypeCandidate),
		"msg_candidate_null":           ok(wire.TypeCandidate), // end of candidates
		"msg_candidate_mline_overflow": bad(wire.TypeCandidate),
		"msg_subscribe_sids_string":    bad(wire.TypeSubscribe),
		"msg_subscribe_sids_numbers":   bad(wire.TypeSubscribe),
		"msg_mute_muted_string":        bad(wire.TypeMute),
		"msg_relay_without_data":       ok(wire.TypeRelay), // the server refuses empty data
		"msg_relay_to_object":          bad(wire.TypeRelay),
		"msg_ping_id_1e99999999":       bad(wire.TypePing),
		"msg_pong_id_object":           bad(wire.TypePong), // the server ignores pongs whatever they hold
	}
	seeds := readCorpus(t, "FuzzSignalingDecode")
	checkSeedTable(t, "FuzzSignalingDecode", seeds, expect)
	for name, data := range seeds {
		w, found := expect[name]
		if !found {
			continue
		}
		t.Run(name, func(t *testing.T) {
			typ, msg, err := signaling.DecodeClientMessage(data)
			var de *signaling.DecodeError
			code := ""
			if errors.As(err, &de) {
				code = de.Code
				if len(de.Message) > len(data)+maxReplyOverhead {
					t.Errorf("reply of %d bytes to %d", len(de.Message), len(data))
				}
			}
			if code != w.code || typ != w.typ {
				t.Fatalf("got code %q type %.40q (%v); want code %q type %.40q", code, typ, err, w.code, w.typ)
			}
			if err == nil {
				checkDecodedStable(t, typ, msg)
			}
		})
	}
}

// The fuzz verifier's key; the signed seeds in testdata/fuzz/FuzzTokenVerify
// were made with it.
const (
	fuzzAPIKey    = "fuzz-key"
	fuzzAPISecret = "fuzz-secret-0123456789abcdef"
)

func fuzzVerifier(t testing.TB) *signaling.Verifier {
	t.Helper()
	v, err := signaling.NewVerifier(map[string]string{fuzzAPIKey: fuzzAPISecret}, 0)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// tokenCodes are the codes a token refusal may carry.
func tokenCodes() map[string]bool {
	return map[string]bool{
		wire.CodeTokenMissing: true, wire.CodeTokenMalformed: true, wire.CodeTokenAlgorithm: true,
		wire.CodeTokenUnknownKey: true, wire.CodeTokenSignature: true, wire.CodeTokenExpired: true,
		wire.CodeTokenNotYetValid: true,
	}
}

// FuzzTokenVerify runs the access-token verifier on arbitrary strings. It
// never panics; a refusal is a *TokenError with a protocol code and a text
// no more than maxReplyOverhead bytes longer than the token; an accepted
// token names an identity and a room within MaxClaimBytes, and verifying
// it again gives the same claims. The fuzzer cannot forge an HMAC, so
// acceptance comes only from mutations that leave the signed bytes alone.
func FuzzTokenVerify(f *testing.F) {
	for _, g := range []wire.Grant{
		{Room: "r", Identity: "alice", CanPublish: true, CanSubscribe: true},
		{Room: strings.Repeat("r", wire.MaxClaimBytes), Identity: "bob", TTL: time.Minute},
	} {
		tok, err := wire.NewToken(fuzzAPIKey, fuzzAPISecret, g)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(tok)
	}
	v := fuzzVerifier(f)
	codes := tokenCodes()
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := v.Verify(token)
		if err != nil {
			var te *signaling.TokenError
			if !errors.As(err, &te) || !codes[te.Code] {
				t.Fatalf("refusal is not a *TokenError with a token code: %v", err)
			}
			if len(err.Error()) > len(token)+maxReplyOverhead {
				t.Fatalf("a %d-byte token gets a %d-byte refusal", len(token), len(err.Error()))
			}
			return
		}
		if claims.Subject == "" || claims.Room == "" || len(claims.Subject) > wire.MaxClaimBytes || len(claims.Room) > wire.MaxClaimBytes {
			t.Fatalf("accepted claims out of bounds: sub %d bytes, room %d bytes", len(claims.Subject), len(claims.Room))
		}
		again, err := v.Verify(token)
		if err != nil || !reflect.DeepEqual(again, claims) {
			t.Fatalf("verifying again: %v, %+v; first %+v", err, again, claims)
		}
	})
}

// TestTokenSeeds: every hostile token seed is refused with the code its
// name promises.
func TestTokenSeeds(t *testing.T) {
	expect := map[string]string{
		"token_expired":              wire.CodeTokenExpired,
		"token_not_before_2100":      wire.CodeTokenNotYetValid,
		"token_issued_in_2100":       wire.CodeTokenNotYetValid,
		"token_without_exp":          wire.CodeTokenMalformed,
		"token_without_sub":          wire.CodeTokenMalformed,
		"token_without_room":         wire.CodeTokenMalformed,
		"token_sub_300_bytes":        wire.CodeTokenMalformed,
		"token_room_not_string":      wire.CodeTokenMalformed,
		"token_exp_as_string":        wire.CodeTokenMalformed,
		"token_exp_1e400":            wire.CodeTokenMalformed, // signed; exp overflows float64
		"token_unknown_kid":          wire.CodeTokenUnknownKey,
		"token_kid_not_string":       wire.CodeTokenUnknownKey,
		"token_kid_10000_bytes":      wire.CodeTokenUnknownKey,
		"token_without_kid":          wire.CodeTokenUnknownKey,
		"token_wrong_secret":         wire.CodeTokenSignature,
		"token_alg_none":             wire.CodeTokenAlgorithm,
		"token_alg_none_with_sig":    wire.CodeTokenAlgorithm,
		"token_alg_rs256":            wire.CodeTokenAlgorithm,
		"token_alg_hs512":            wire.CodeTokenAlgorithm,
		"token_alg_lowercase_hs256":  wire.CodeTokenAlgorithm,
		"token_alg_duplicate_key":    wire.CodeTokenAlgorithm,
		"token_signature_cut":        wire.CodeTokenMalformed, // 33 base64 characters cannot be a signature
		"token_payload_swapped":      wire.CodeTokenSignature,
		"token_two_segments":         wire.CodeTokenMalformed,
		"token_four_segments":        wire.CodeTokenMalformed,
		"token_empty":                wire.CodeTokenMissing,
		"token_spaces":               wire.CodeTokenMalformed,
		"token_base64_padding":       wire.CodeTokenMalformed,
		"token_header_not_json":      wire.CodeTokenMalformed,
		"token_payload_not_base64":   wire.CodeTokenMalformed,
		"token_payload_nested_20000": wire.CodeTokenMalformed,
		"token_bearer_prefix":        wire.CodeTokenMalformed,
	}
	seeds := readCorpus(t, "FuzzTokenVerify")
	checkSeedTable(t, "FuzzTokenVerify", seeds, expect)
	v := fuzzVerifier(t)
	for name, tok := range seeds {
		want, found := expect[name]
		if !found {
			continue
		}
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(string(tok))
			var te *signaling.TokenError
			if !errors.As(err, &te) || te.Code != want {
				t.Fatalf("got %v, want %s", err, want)
			}
			if len(err.Error()) > len(tok)+maxReplyOverhead {
				t.Errorf("refusal of %d bytes for a %d-byte token", len(err.Error()), len(tok))
			}
		})
	}
}
