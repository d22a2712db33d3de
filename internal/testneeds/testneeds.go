// Package testneeds decides what a test does when something real it needs
// is not on the machine: a program such as chromium or turnutils_uclient,
// or root for network namespaces.
//
// Sotto's tests use the real programs, never stand-ins. A test that cannot
// find one fails, naming what to install, so a green run always means the
// whole suite ran. A user who knowingly runs without some of them opts
// out by group with SOTTO_TEST_SKIP (comma-separated, e.g.
// SOTTO_TEST_SKIP=browser,turn); those tests then skip with a message that
// says what was not checked. Under CI=true the opt-out is refused: CI
// installs everything.
package testneeds

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// EnvSkip names the groups of tests a user has chosen not to run.
const EnvSkip = "SOTTO_TEST_SKIP"

// The groups a user can opt out of, by what they need.
const (
	// Browser tests need Debian's chromium, and ffmpeg/ffprobe for media
	// fixtures.
	Browser = "browser"
	// TURN tests need coturn's turnutils_uclient.
	TURN = "turn"
	// NetNS is the kernel NAT scenario: network namespaces, iptables, root.
	NetNS = "netns"
	// JS is test.sh's type check of the JS SDK: npx (Node.js), and the
	// npm registry for TypeScript. No Go test belongs to it.
	JS = "js"
)

// Groups lists every group SOTTO_TEST_SKIP may name.
var Groups = []string{Browser, TURN, NetNS, JS}

// Skipping reports whether the user opted out of group. An unknown group
// name in SOTTO_TEST_SKIP, or any opt-out under CI=true, fails the test:
// a typo must not silently run nothing, nor CI skip anything.
func Skipping(t testing.TB, group string) bool {
	t.Helper()
	skip, err := parse(os.Getenv(EnvSkip))
	if err != nil {
		t.Fatal(err)
	}
	if len(skip) > 0 && os.Getenv("CI") == "true" {
		t.Fatalf("%s=%s is not honoured under CI=true: CI runs every test", EnvSkip, os.Getenv(EnvSkip))
	}
	return slices.Contains(skip, group)
}

func parse(v string) ([]string, error) {
	var out []string
	for g := range strings.SplitSeq(v, ",") {
		g = strings.TrimSpace(g)
		if g == "" {
			continue
		}
		if !slices.Contains(Groups, g) {
			return nil, fmt.Errorf("%s names %q, which is not a test group; the groups are %s",
				EnvSkip, g, strings.Join(Groups, ", "))
		}
		out = append(out, g)
	}
	return out, nil
}

// Missing ends a test that cannot find what it needs. what says what is
// missing and how to get it ("chromium is not installed: apt-get install
// chromium"). The test fails, unless the user opted out of group, when it
// skips loudly.
func Missing(t testing.TB, group, what string) {
	t.Helper()
	if Skipping(t, group) {
		t.Skipf("SKIPPED (%s=%s): %s; this test did NOT run", EnvSkip, os.Getenv(EnvSkip), what)
	}
	t.Fatalf("%s (or set %s=%s to skip the %s tests knowingly)", what, EnvSkip, group, group)
}

// Program returns the path of the first of names found on PATH (a name
// with a slash is taken as a path), or ends the test through Missing,
// naming the Debian package that provides it. An empty name is ignored,
// so an unset override variable can come first.
func Program(t testing.TB, group, pkg string, names ...string) string {
	t.Helper()
	var tried []string
	for _, n := range names {
		if n == "" {
			continue
		}
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
		tried = append(tried, n)
	}
	if len(tried) == 0 {
		t.Fatal("testneeds.Program: no program name given")
	}
	what := filepath.Base(tried[0]) + " is not installed"
	if len(tried) > 1 {
		what += " (looked for " + strings.Join(tried, ", ") + ")"
	}
	Missing(t, group, what+": apt-get install "+pkg)
	return ""
}
