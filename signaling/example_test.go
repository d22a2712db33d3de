package signaling_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"time"

	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// An application's backend mints a token for each caller; the caller
// presents it in its join message.
func ExampleNewToken() {
	tok, err := wire.NewToken("APIkey1", "a-secret-of-at-least-16-bytes", wire.Grant{
		Room:         "standup",
		Identity:     "alice@example.org",
		CanPublish:   true,
		CanSubscribe: true,
		TTL:          time.Hour,
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(tok) > 0)
	// Output: true
}

// A node serves signaling at signaling.Path in front of its SFU, and
// drains it on the way down.
func ExampleServer() {
	sfu, err := sfu.New(sfu.Config{ListenIP: "127.0.0.1"})
	if err != nil {
		log.Fatal(err)
	}
	defer sfu.Close()
	srv, err := signaling.NewServer(signaling.Config{
		Keys: map[string]string{"APIkey1": "a-secret-of-at-least-16-bytes"},
	}, sfu)
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(wire.Path, srv)
	hs := &http.Server{Addr: ":7780", Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.ListenAndServe() }()

	// On SIGTERM: refuse new joins, tell everyone to reconnect elsewhere,
	// then stop the HTTP server (which does not track WebSockets).
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	_ = hs.Shutdown(ctx)
}
