// Package rtcpstrict keeps the strict checks every RTCP datagram and RTP
// packet passes before anything in Sotto parses it.
//
// Why it exists: CVE-2019-3568 was remote code execution through a crafted
// SRTCP packet in a VoIP stack. In Go a bad length is a panic rather than a
// write past a buffer, but a panic in the SFU is an outage for every call on
// the node. pion/rtcp has had slice-bounds panics, ignores RTCP padding,
// allocates by count fields before checking them against the buffer, and
// never enforces compound rules (rtcp.Unmarshal only splits). So the SFU
// checks every packet at the head of its interceptor chains (media/strict.go)
// before any interceptor or SFU code parses it, and Parse validates first and
// hands pion only datagrams it has proved pion reads completely and can
// write back unchanged; a refused datagram never reaches pion through it.
// (pion/srtp itself parses each decrypted datagram before any interceptor
// runs; docs/FUZZING.md says what that means.) Validate and ValidateRTP do
// not allocate when they accept; Check and CheckRTP, which return only the
// rule, never allocate, so a flood of hostile packets costs no garbage.
//
// # Modes
//
// Validate and Parse use strict RFC 3550 rules: a compound starts with SR or
// RR and carries an SDES CNAME. The SFU instead uses
//
//	rtcpstrict.Options{ReducedSize: true}
//
// because WebRTC negotiates a=rtcp-rsize (RFC 5506) and browsers send lone
// PLI, NACK and transport-wide CC packets, and because pion/srtp hands the
// SFU's interceptors each packet of a compound on its own. ReducedSize lifts
// only those two compound rules; every per-packet rule below still applies.
//
// # Rules
//
// Every refusal is an *Error naming a Rule; Rules lists them all so callers
// can pre-create one counter per rule. For the datagram (RFC 3550 A.2):
// version 2 in every packet; the length fields add up exactly to the
// datagram; at most Options.MaxPackets packets and Options.MaxDatagram
// bytes; padding only on the last packet, with a count of at least 1 that
// fits the packet's body and is a multiple of 4 (RFC 3550 6.4.1).
// Transport-wide CC is the one exception to the multiple of 4: libwebrtc
// pads it by 1-3 bytes with the P bit set, and pion models that padding.
// Per type:
//
//   - SR: 28+24·RC bytes at least; the rest is profile extension data.
//   - RR: exactly 8+24·RC bytes. RFC 3550 allows profile extensions here
//     too, but pion v1.2.17 marshals an RR's extensions with a length
//     field that leaves them out, and no WebRTC stack sends them.
//   - SDES: exactly SC chunks, each item inside the packet, each item list
//     null-terminated and null-padded to 32 bits, nothing after the last.
//   - BYE: SC SSRCs, then an optional reason inside the packet, null-padded
//     to 32 bits and nothing after.
//   - APP: at least 12 bytes.
//   - RTPFB: generic NACK with 1 to Options.MaxNACKEntries entries; TMMBR
//     with a non-empty FCI, TMMBN with any, both in 8-byte entries; RRR
//     with no FCI; transport-wide CC walked chunk by chunk (status count 1
//     to Options.MaxTWCCStatusCount, no reserved symbols, runs inside the
//     count, deltas inside the packet, nothing after the deltas but the
//     alignment to 32 bits); RFC 8888 CCFB walked block by block with
//     num_reports at most 16384.
//   - PSFB: PLI of exactly 12 bytes; FIR with 8-byte entries, at least one;
//     application-layer feedback only as REMB, with a zero media SSRC, an
//     SSRC count that matches the length exactly and a non-zero mantissa.
//   - XR: every report block inside the packet, the RFC 3611 block types
//     at exactly their lengths and with reserved bits zero.
//
// # Decisions
//
// Unknown packet types inside 192-223, the range RFC 5761 reserves for RTCP
// (RFC 5760 RSI, RFC 6284 TOKEN, and whatever comes next), are accepted as
// long as their length is consistent: pion returns them as RawPacket and the
// SFU ignores them. Refusing them would drop a whole compound, and with it a
// receiver's reports, for a type the SFU would ignore anyway. Types outside
// 192-223 cannot be RTCP and are refused (RuleUnknownType).
//
// Feedback formats the SFU does not use (RTPFB other than 1, 3, 4, 5, 11,
// 15; PSFB other than 1, 2, 4, 15) are accepted as RawPacket when they hold
// the 12-byte common feedback header, for the same reason. Two formats are
// refused even when well-formed because pion v1.2.17 cannot parse them: SLI
// (PSFB FMT 2, dispatched to a parser that then demands PT 205), and
// application-layer feedback that is not REMB (PSFB FMT 15, always parsed as
// REMB). A REMB whose mantissa is 0 is refused because pion decodes it as
// 2^(23+exp) bit/s.
//
// Some rules are stricter than the RFCs for pion's sake: the exact SDES,
// BYE, XR and transport-wide CC layouts, and the RR rule above. Each is
// there because pion, given anything looser, reads something other than
// what was sent or cannot write back what it read.
//
// pion ignores RTCP padding and reads it as data, so Parse gives pion the
// datagram with the last packet's padding removed (a copy; the caller's
// buffer is never changed). Transport-wide CC keeps its padding, because
// pion models it there.
//
// Padding on any packet but the last is refused in both modes, as RFC 3550
// A.2 asks. libwebrtc pads transport-wide CC; should a stack ever pack
// several padded ones into one datagram, they show up under
// RulePaddingNotLast.
//
// One pion defect no rule can shield: ExtendedReport.MarshalSize leaves out
// the 4-byte header for every XR. Nothing in pion or the SFU sizes a buffer
// with it; do not start.
//
// # Limits
//
// The defaults are the Default* constants: 1500-byte datagrams (one
// Ethernet MTU, libwebrtc's IP_PACKET_SIZE), 32 packets per compound,
// 64 NACK entries (each names up to 17 packets, so 1088 in all: twice the
// SFU's default packet cache; more only buys an attacker retransmission
// work) and 8192 transport-wide CC statuses (eight seconds of 1000 packet/s
// media without feedback; more only buys work in the bandwidth estimator).
// No check allocates, and Parse's one copy is sized by the datagram, never
// by a length field.
//
// # RTP
//
// ValidateRTP checks an RTP header the same way: version 2, the CSRC list,
// the header extension and its RFC 8285 one-byte or two-byte elements, and
// the padding all inside the packet, so rtp.Packet.Unmarshal reads nothing
// past it and can write back what it read.
package rtcpstrict
