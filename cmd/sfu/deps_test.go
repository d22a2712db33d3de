package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestServerLinksNoMediaKeys holds invariant 1 of DESIGN.md: the server
// binary does not contain the code that could encrypt or decrypt media
// end to end, nor the Go SDK that carries it. `go list -deps` is what the
// linker will be given; if one of these appears, the server could hold a
// media key.
func TestServerLinksNoMediaKeys(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "github.com/sotto-rtc/sotto/cmd/sfu").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/sfu: %v\n%s", err, out)
	}
	deps := map[string]bool{}
	for _, line := range strings.Fields(string(out)) {
		deps[line] = true
	}
	if !deps["github.com/sotto-rtc/sotto/media"] {
		t.Fatalf("go list -deps ./cmd/sfu does not list the SFU; is the module path right?\n%s", out)
	}
	for _, forbidden := range []string{
		"github.com/sotto-rtc/sotto/media/sframe",
		"github.com/sotto-rtc/sotto/media/e2ee",
		"github.com/sotto-rtc/sotto/signaling/client",
	} {
		if deps[forbidden] {
			t.Errorf("cmd/sfu links %s: the server must never hold end-to-end media keys", forbidden)
		}
	}
}
