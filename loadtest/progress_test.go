package loadtest

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestDisplay(t *testing.T) {
	p := Progress{Phase: "measuring", Measured: 3 * time.Second, Duration: 10 * time.Second,
		Connected: 4, Participants: 5, Receiving: 12, Subscriptions: 12, MbpsOut: 1.5, MbpsIn: 4.25, Loss: 0.0012, Errors: 2}
	tests := []struct {
		name string
		tty  bool
		want []string
	}{
		{"plain lines without a terminal", false, []string{"loadtest: measuring 3/10s", "4/5 connected", "in 4.25 Mbps", "loss 0.12%", "errors 2\n"}},
		{"a redrawn line on a terminal", true, []string{"\r", "measuring 3/10s", "4/5 connected", "out 1.50 Mbps"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			d := NewDisplay(&buf, tt.tty)
			d.Update(p)
			d.Update(p) // within plainEvery: no second plain line
			d.Close()
			out := buf.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%q", w, out)
				}
			}
			if !tt.tty && strings.Count(out, "\n") != 1 {
				t.Errorf("plain output should be one line, got %q", out)
			}
		})
	}
}

func TestProgressLineFlagsDecryptFailures(t *testing.T) {
	if s := progressLine(Progress{DecryptFailures: 3}); !strings.Contains(s, "DECRYPT FAILURES 3") {
		t.Errorf("progressLine = %q", s)
	}
}
