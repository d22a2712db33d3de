package rtcpstrict_test

import (
	"fmt"

	"github.com/pion/rtcp"

	"github.com/sotto-rtc/sotto/media/rtcpstrict"
)

// The SFU parses every decrypted RTCP datagram this way: reduced-size mode
// because browsers send lone feedback, and the rule of a refusal labels a
// counter.
func ExampleOptions_Parse() {
	sfu := rtcpstrict.Options{ReducedSize: true}

	pli := []byte{0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2}
	packets, err := sfu.Parse(pli)
	fmt.Println(packets[0].(*rtcp.PictureLossIndication).MediaSSRC, err)

	// The same PLI claiming 64 KiB: pion never sees it.
	hostile := []byte{0x81, 206, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 2}
	_, err = sfu.Parse(hostile)
	if rule, ok := rtcpstrict.RuleOf(err); ok {
		fmt.Println("refused:", rule)
	}
	fmt.Println(err)
	// Output:
	// 2 <nil>
	// refused: length_mismatch
	// rtcpstrict: RTCP datagram refused by rule length_mismatch at byte 0: packet 1 (type 206) claims 262144 bytes, only 12 remain
}

func ExampleValidateRTP() {
	// Padding bit set, padding count 200, in a 16-byte packet.
	packet := []byte{0xa0, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7, 1, 2, 3, 200}
	fmt.Println(rtcpstrict.ValidateRTP(packet))
	// Output:
	// rtcpstrict: RTP packet refused by rule rtp_padding_overrun at byte 15: padding count 200 exceeds the 4 bytes after the header
}
