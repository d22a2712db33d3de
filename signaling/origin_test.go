package signaling

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestOriginLog(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	patterns := []string{"app.example:5173", "https://secure.example"}
	var l originLog
	try := func(origin string) string {
		buf.Reset()
		r := httptest.NewRequest("GET", "http://node.example/v1/signal", nil)
		if origin != "" {
			r.Header.Set("Origin", origin)
		}
		l.refused(log, r, patterns)
		return buf.String()
	}
	for _, tc := range []struct {
		origin, want string // want "": nothing logged
	}{
		{"", ""},
		{"http://node.example", ""}, // its own origin
		{"http://app.example:5173", ""},
		{"https://secure.example", ""},
		{"http://app.example", "--allowed-origin app.example"},
		{"http://app.example", ""}, // once per origin
		{"http://secure.example", "--allowed-origin secure.example"},
		{"https://other.example:8443", "--allowed-origin other.example:8443"},
	} {
		got := try(tc.origin)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("Origin %q logged %q, want %q", tc.origin, got, tc.want)
		}
	}

	// The Origin header is the client's: past originLogMax origins one
	// line stands for all of them, and memory stays bounded.
	lines := 0
	for i := range 3 * originLogMax {
		if try(fmt.Sprintf("https://x%d.example", i)) != "" {
			lines++
		}
	}
	if len(l.seen) > originLogMax || lines > originLogMax+1 {
		t.Errorf("%d origins remembered, %d lines logged; want at most %d and %d", len(l.seen), lines, originLogMax, originLogMax+1)
	}
}
