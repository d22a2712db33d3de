package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestHelpOnStdout: usage asked for goes to stdout with status 0; a
// mistake goes to stderr with status 2.
func TestHelpOnStdout(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		wantCode   int
		wantStdout bool
	}{
		{[]string{"-h"}, exitOK, true},
		{[]string{"--help"}, exitOK, true},
		{[]string{"--no-such-flag"}, exitUsage, false},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, func(string) string { return "" }, &stdout, &stderr)
		if code != tc.wantCode {
			t.Errorf("%v: exit %d, want %d", tc.args, code, tc.wantCode)
		}
		out, other := stdout.String(), stderr.String()
		if !tc.wantStdout {
			out, other = other, out
		}
		if !strings.Contains(out, "-auth-secret") || other != "" {
			t.Errorf("%v: stdout %q, stderr %q", tc.args, stdout.String(), stderr.String())
		}
	}
}
