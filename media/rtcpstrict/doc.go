// Package rtcpstrict holds the strict checks every RTCP datagram and RTP
// packet passes in the SFU before anything parses it: pion/rtcp and
// pion/rtp trust length and count fields, ignore RTCP padding and never
// enforce compound rules, and a panic in the SFU ends every call on the
// node. Validate and Parse apply RFC 3550 (Options{ReducedSize: true}, as
// the SFU uses, accepts RFC 5506 reduced-size RTCP); Parse hands pion only
// datagrams it reads completely and can write back unchanged. Check and
// CheckRTP never allocate. Every refusal names a Rule.
//
// docs/FUZZING.md ("The strict check") lists the rules and why each is as
// strict as it is.
package rtcpstrict
