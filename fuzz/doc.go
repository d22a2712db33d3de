// Package fuzz keeps Sotto's native Go fuzz targets and their hostile seed
// corpora: everything a peer or a caller can send before anything has
// trusted it.
//
// The targets live in this package's test files, one per input that
// crosses a trust boundary:
//
//   - FuzzRTCP: a decrypted RTCP datagram, through pion's SRTCP demux
//     (which parses it before any Sotto code can) and rtcpstrict.
//   - FuzzSRTCPUnprotect: an SRTCP packet off the wire, through pion/srtp's
//     decryption under both profiles the SFU offers.
//   - FuzzRTP: a decrypted RTP packet, through pion's header parser (which
//     pion/srtp runs before authenticating) and rtcpstrict.ValidateRTP.
//   - FuzzSignalingDecode: a WebSocket message, through
//     signaling.DecodeClientMessage, the server's own decoder.
//   - FuzzTokenVerify: an access token, through signaling.Verifier.
//   - FuzzTURNMessage: a datagram or TCP stream to the TURN relay, through
//     a running relay.Server and the peer policy.
//   - FuzzSFrameHeader and FuzzSFrameDecrypt: an end-to-end encrypted
//     frame as a client receives it, through media/sframe.
//
// Each seed in testdata/fuzz/<target>/ is a hand-made hostile input named
// for what it attacks, or a crasher kept as a regression seed. `go test
// ./fuzz` replays all of them, and the seed tests check that each is
// refused the way its name says. docs/FUZZING.md says how to run a
// campaign, how to keep a crasher, and what the campaigns found.
//
// The package has no non-test code: it imports what it fuzzes and nothing
// imports it.
package fuzz
