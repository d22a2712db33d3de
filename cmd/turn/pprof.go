//go:build pprof

package main

import (
	"log"
	"net/http"
	_ "net/http/pprof" //nolint:gosec // only in binaries built with -tags pprof
	"os"
	"runtime/pprof"
	"strconv"
	"time"
)

// A binary built with -tags pprof, for profiling the relay under load
// (deploy/bench/turn-vs-coturn.sh): it serves net/http/pprof on
// $SOTTO_TURN_PPROF (e.g. 127.0.0.1:6060), and writes a CPU profile to
// $SOTTO_TURN_CPUPROFILE from $SOTTO_TURN_CPUPROFILE_AFTER seconds after
// start for $SOTTO_TURN_CPUPROFILE_SECONDS (default 0 and 10).
func init() {
	if addr := os.Getenv("SOTTO_TURN_PPROF"); addr != "" {
		go func() { log.Println(http.ListenAndServe(addr, nil)) }() //nolint:gosec
	}
	if name := os.Getenv("SOTTO_TURN_CPUPROFILE"); name != "" {
		after, _ := strconv.Atoi(os.Getenv("SOTTO_TURN_CPUPROFILE_AFTER"))
		secs, err := strconv.Atoi(os.Getenv("SOTTO_TURN_CPUPROFILE_SECONDS"))
		if err != nil {
			secs = 10
		}
		go func() {
			time.Sleep(time.Duration(after) * time.Second)
			f, err := os.Create(name)
			if err != nil {
				log.Println(err)
				return
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				log.Println(err)
				return
			}
			time.Sleep(time.Duration(secs) * time.Second)
			pprof.StopCPUProfile()
			_ = f.Close()
		}()
	}
}
