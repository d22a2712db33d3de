package main

import (
	"strings"
	"testing"
)

// TestSidesStayApart keeps the client side free of the server: an app that
// embeds the Go SDK links the contract, not the signaling server, the SFU,
// the relay or Prometheus (the load tool may read the node's metrics
// format). And the other way: nothing the node runs links the SDK, so the
// two meet only in package wire.
func TestSidesStayApart(t *testing.T) {
	goCmd := goTool(t)
	const mod = "github.com/sotto-rtc/sotto/"
	server := []string{mod + "signaling", mod + "media/sfu", mod + "relay", mod + "cmd/", "github.com/prometheus/"}
	for _, pkg := range []string{mod + "signaling/wire", mod + "signaling/client", mod + "loadtest"} {
		for dep := range goListDeps(t, goCmd, pkg) {
			for _, s := range server {
				if dep == s || strings.HasPrefix(dep, s+"/") || strings.HasSuffix(s, "/") && strings.HasPrefix(dep, s) {
					if dep == mod+"signaling/wire" || dep == mod+"signaling/client" ||
						pkg == mod+"loadtest" && strings.HasPrefix(dep, "github.com/prometheus/") && !strings.Contains(dep, "client_golang") {
						continue
					}
					t.Errorf("%s links %s: the client side must not link the server", pkg, dep)
				}
			}
		}
	}
	for dep := range goListDeps(t, goCmd, mod+"signaling/wire") {
		if strings.HasPrefix(dep, mod) && dep != mod+"signaling/wire" {
			t.Errorf("signaling/wire links %s: the contract imports nothing of Sotto's", dep)
		}
	}
	for _, pkg := range []string{mod + "cmd/sfu", mod + "cmd/turn", mod + "signaling", mod + "media/sfu"} {
		for dep := range goListDeps(t, goCmd, pkg) {
			if dep == mod+"signaling/client" || strings.HasPrefix(dep, mod+"loadtest") {
				t.Errorf("%s links %s: the node must not link a client", pkg, dep)
			}
		}
	}
}
