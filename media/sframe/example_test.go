package sframe_test

import (
	"errors"
	"fmt"
	"log"

	"github.com/sotto-rtc/sotto/media/sframe"
)

// A sender encrypts frames under its KID; a receiver that holds the same
// base key for that KID decrypts them, once each. The metadata (here a
// stand-in for the RTP header extension the SFU reads) is authenticated
// but not encrypted: both sides must pass the same bytes.
func Example() {
	const suite = sframe.AES128GCMSHA256_128
	baseKey := []byte("from the key exchange, never the SFU") // 16+ random bytes in practice

	sender, err := sframe.NewSender(suite, 42, baseKey)
	if err != nil {
		log.Fatal(err)
	}
	receiver := sframe.NewReceiver(suite, sframe.ReceiverOptions{})
	if err := receiver.SetKey(42, baseKey); err != nil {
		log.Fatal(err)
	}

	metadata := []byte{0xbe, 0xde}
	frame, err := sender.Encrypt(nil, metadata, []byte("an encoded video frame"))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d bytes on the wire: header %d, payload 22, tag %d\n",
		len(frame), sframe.Header{KID: 42}.MarshalSize(), suite.TagSize())

	plaintext, header, err := receiver.Decrypt(nil, metadata, frame)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("KID %d CTR %d: %s\n", header.KID, header.CTR, plaintext)

	_, _, err = receiver.Decrypt(nil, metadata, frame)
	fmt.Println("again:", errors.Is(err, sframe.ErrReplay))

	// Output:
	// 40 bytes on the wire: header 2, payload 22, tag 16
	// KID 42 CTR 0: an encoded video frame
	// again: true
}
