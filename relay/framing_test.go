package relay

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"testing"

	"github.com/pion/stun/v4"
)

// follows feeds stream to a tapConn's framing in the chunks cuts gives
// (offsets), and returns the requests it recorded and the error it ended
// with.
func follows(t *testing.T, stream []byte, cuts []int) ([][]byte, error) {
	t.Helper()
	tap := newRequestTap()
	c := &tapConn{tap: tap, src: "client"}
	prev := 0
	for _, cut := range append(cuts, len(stream)) {
		if _, err := c.follow(stream[prev:cut]); err != nil {
			return tap.last["client"], err
		}
		prev = cut
	}
	return tap.last["client"], nil
}

// TestTapFramingFollowsPion: the tap cuts a TCP stream where pion's
// STUNConn does, however the stream is segmented, records the requests,
// and refuses the frames pion would size as 0 (which spin pion's read
// loop), including one hidden behind a frame that only pion's rules
// size right.
func TestTapFramingFollowsPion(t *testing.T) {
	req := func(method stun.Method) []byte {
		return stun.MustBuild(stun.TransactionID, stun.NewType(method, stun.ClassRequest), stun.NewSoftware("sotto")).Raw
	}
	a, b := req(stun.MethodAllocate), req(stun.MethodRefresh)
	chanData := []byte{0x40, 0x00, 0x00, 0x05, 'h', 'e', 'l', 'l', 'o', 0, 0, 0}
	// Magic cookie behind a first byte with the top bits set: pion sizes
	// it as STUN (20 bytes) once it holds 20 bytes; the top bits alone
	// would make it ChannelData.
	cookieFirst := append([]byte{0x80, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 12)...)
	wrapSTUN := append([]byte{0x00, 0x01, 0xff, 0xec, 0x21, 0x12, 0xa4, 0x42}, make([]byte, 12)...)
	wrapChan := []byte{0x40, 0x00, 0xff, 0xfc, 0, 0, 0, 0, 0, 0, 0, 0}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		name   string
		stream []byte
		want   [][]byte
		wrap   bool
	}{
		{"requests and ChannelData", cat(a, chanData, b), [][]byte{a, b}, false},
		{"STUN length wrapping to 0", cat(a, wrapSTUN), nil, true},
		{"ChannelData length wrapping to 0", cat(chanData, wrapChan), nil, true},
		{"wrap behind a cookie-first frame", cat(cookieFirst, wrapSTUN), nil, true},
		{"request behind a cookie-first frame", cat(cookieFirst, a), [][]byte{a}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			segmentations := [][]int{nil}
			for i := 1; i < len(tt.stream); i++ {
				segmentations = append(segmentations, []int{i})
			}
			bytewise := make([]int, 0, len(tt.stream))
			for i := 1; i < len(tt.stream); i++ {
				bytewise = append(bytewise, i)
			}
			segmentations = append(segmentations, bytewise)
			for _, cuts := range segmentations {
				got, err := follows(t, tt.stream, cuts)
				if tt.wrap != errors.Is(err, errWrappingFrame) {
					t.Fatalf("cut at %v: err %v, want wrap %v", cuts, err, tt.wrap)
				}
				if tt.wrap {
					continue
				}
				if len(got) != len(tt.want) {
					t.Fatalf("cut at %v: recorded %d requests, want %d", cuts, len(got), len(tt.want))
				}
				for i := range got {
					if !bytes.Equal(got[i], tt.want[i]) {
						t.Fatalf("cut at %v: request %d is %x, want %x", cuts, i, got[i], tt.want[i])
					}
				}
			}
		})
	}
}

// TestTapDataConnectionIsRaw: once pion has answered a ConnectionBind
// with success, the connection carries a peer's data (RFC 6062), which the
// tap passes on whatever it looks like.
func TestTapDataConnectionIsRaw(t *testing.T) {
	client, server := net.Pipe()
	defer func() { _ = client.Close(); _ = server.Close() }()
	c := &tapConn{Conn: server, tap: newRequestTap(), log: slog.New(slog.DiscardHandler), src: "client"}
	wrap := []byte{0x40, 0x00, 0xff, 0xfc, 0, 0, 0, 0, 0, 0, 0, 0} // a frame pion would size as 0
	done := make(chan error, 1)
	go func() {
		buf := make([]byte, 64)
		if _, err := client.Read(buf); err != nil {
			done <- err
			return
		}
		_, err := client.Write(wrap)
		done <- err
	}()
	resp := stun.MustBuild(stun.TransactionID, stun.NewType(stun.MethodConnectionBind, stun.ClassSuccessResponse))
	if _, err := c.Write(resp.Raw); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	if err != nil || !bytes.Equal(buf[:n], wrap) {
		t.Fatalf("data connection read %x, %v; want %x passed on", buf[:n], err, wrap)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
