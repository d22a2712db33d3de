package rtcptest

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"runtime"
	"testing"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// Checker is what the round-trip checks use of rtcpstrict.Options.
type Checker interface {
	Validate(buf []byte) error
	Parse(buf []byte) ([]rtcp.Packet, error)
}

// LastPacketPadded reports whether Parse strips padding from an accepted
// datagram: its last packet has the P bit and is not transport-wide CC,
// whose padding pion models itself.
func LastPacketPadded(buf []byte) bool {
	off := 0
	for {
		total := (int(binary.BigEndian.Uint16(buf[off+2:])) + 1) * 4
		if off+total == len(buf) {
			twcc := buf[off+1] == 205 && buf[off]&0x1f == 15
			return buf[off]&0x20 != 0 && !twcc
		}
		off += total
	}
}

// CheckRoundTrip asserts what a datagram o accepted promises: Parse reads
// it (as rtcp.Unmarshal does when there is no padding to strip), every
// packet marshals to MarshalSize bytes that parse back to an equal packet,
// and the re-marshalled datagram is accepted again.
func CheckRoundTrip(t *testing.T, o Checker, buf []byte) {
	t.Helper()
	packets, err := o.Parse(buf)
	if err != nil {
		t.Fatalf("Validate accepted but Parse failed: %v\n% x", err, buf)
	}
	if !LastPacketPadded(buf) {
		direct, err := rtcp.Unmarshal(buf)
		if err != nil {
			t.Fatalf("Validate accepted but rtcp.Unmarshal failed: %v\n% x", err, buf)
		}
		if !reflect.DeepEqual(direct, packets) {
			t.Fatalf("Parse differs from rtcp.Unmarshal\n% x", buf)
		}
	}
	// Compare against a second parse: pion's XR Marshal rewrites the
	// packet it is called on.
	pristine, err := o.Parse(buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range packets {
		size := p.MarshalSize()
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("packet %d (%T) does not marshal: %v\n% x", i, p, err, buf)
		}
		// pion's ExtendedReport.MarshalSize leaves out the 4-byte header
		// (TestPionDefects in fuzz/ shows it).
		if _, xr := p.(*rtcp.ExtendedReport); xr {
			size += 4
		}
		if len(out) != size {
			t.Fatalf("packet %d (%T): MarshalSize %d, Marshal wrote %d\n% x", i, p, size, len(out), buf)
		}
		back, err := rtcp.Unmarshal(out)
		if err != nil || len(back) != 1 {
			t.Fatalf("packet %d (%T) re-marshalled does not parse as one packet: %v %v\nin  % x\nout % x", i, p, err, back, buf, out)
		}
		if !reflect.DeepEqual(back[0], pristine[i]) {
			t.Fatalf("packet %d (%T) changes across marshal/unmarshal:\n got %v\nwant %v\nin  % x\nout % x", i, p, back[0], pristine[i], buf, out)
		}
	}
	again, err := rtcp.Marshal(packets)
	if err != nil {
		t.Fatal(err)
	}
	if err := o.Validate(again); err != nil {
		t.Fatalf("re-marshalled datagram refused: %v\nin  % x\nout % x", err, buf, again)
	}
}

// CheckRTPRoundTrip asserts what an RTP packet validate accepted promises:
// rtp.Packet reads it and writes it back unchanged, and validate accepts
// what it wrote.
func CheckRTPRoundTrip(t *testing.T, validate func([]byte) error, buf []byte) {
	t.Helper()
	var p rtp.Packet
	if err := p.Unmarshal(buf); err != nil {
		t.Fatalf("ValidateRTP accepted but rtp.Packet.Unmarshal failed: %v\n% x", err, buf)
	}
	size := p.MarshalSize()
	out, err := p.Marshal()
	if err != nil {
		t.Fatalf("accepted packet does not marshal: %v\n% x", err, buf)
	}
	if len(out) != size {
		t.Fatalf("MarshalSize %d, Marshal wrote %d\n% x", size, len(out), buf)
	}
	var q rtp.Packet
	if err := q.Unmarshal(out); err != nil {
		t.Fatalf("re-marshalled packet does not parse: %v\nin  % x\nout % x", err, buf, out)
	}
	if !reflect.DeepEqual(p.Header, q.Header) || !bytes.Equal(p.Payload, q.Payload) {
		t.Fatalf("packet changes across marshal/unmarshal\n got %+v\nwant %+v\nin  % x\nout % x", q.Header, p.Header, buf, out)
	}
	if err := validate(out); err != nil {
		t.Fatalf("re-marshalled packet refused: %v", err)
	}
}

// Allocs returns how many heap allocations n calls of f make in all, after
// one call to warm up. testing.AllocsPerRun divides by n as an integer, so
// up to n-1 allocations would read as 0. The caller must run nothing
// concurrently; one P keeps the runtime's own work out of the window.
func Allocs(n int, f func()) uint64 {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	f()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		f()
	}
	runtime.ReadMemStats(&after)
	return after.Mallocs - before.Mallocs
}
