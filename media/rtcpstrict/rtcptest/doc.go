// Package rtcptest is test support for media/rtcpstrict and the fuzz
// targets in fuzz/: RTCP and RTP packets as real peers send them, the
// round-trip checks an accepted packet must pass, and a reader for the
// seed corpus. Only tests import it. It does not import rtcpstrict, so
// rtcpstrict's in-package tests can use it too.
package rtcptest
