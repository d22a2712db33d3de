package testneeds

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "", want: nil},
		{in: "browser", want: []string{"browser"}},
		{in: " browser , turn,", want: []string{"browser", "turn"}},
		{in: "netns", want: []string{"netns"}},
		{in: "browsers", wantErr: `names "browsers", which is not a test group`},
		{in: "all", wantErr: "the groups are browser, turn, netns, js"},
	} {
		got, err := parse(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parse(%q) error = %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("parse(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}

// fakeT records how a test ended; Fatal and Skip stop the goroutine as
// testing.T's do.
type fakeT struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (f *fakeT) Helper() {}
func (f *fakeT) Fatalf(format string, args ...any) {
	f.failed, f.msg = true, format
	panic(f)
}
func (f *fakeT) Fatal(args ...any) { f.Fatalf("%v", args...) }
func (f *fakeT) Skipf(format string, args ...any) {
	f.skipped, f.msg = true, format
	panic(f)
}

func run(f func(t testing.TB)) (ft *fakeT) {
	ft = &fakeT{}
	defer func() {
		if r := recover(); r != nil && r != any(ft) {
			panic(r)
		}
	}()
	f(ft)
	return ft
}

func TestMissing(t *testing.T) {
	for _, tc := range []struct {
		name, skip, ci string
		wantSkip       bool
	}{
		{name: "no opt-out fails", skip: "", wantSkip: false},
		{name: "another group's opt-out fails", skip: "turn", wantSkip: false},
		{name: "opted out skips", skip: "browser,turn", wantSkip: true},
		{name: "CI refuses the opt-out", skip: "browser", ci: "true", wantSkip: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(EnvSkip, tc.skip)
			t.Setenv("CI", tc.ci)
			ft := run(func(t testing.TB) { Missing(t, Browser, "chromium is not installed") })
			if ft.skipped != tc.wantSkip || ft.failed == tc.wantSkip {
				t.Errorf("skipped=%v failed=%v (%s), want skipped=%v", ft.skipped, ft.failed, ft.msg, tc.wantSkip)
			}
		})
	}
}

func TestProgram(t *testing.T) {
	t.Setenv(EnvSkip, "")
	t.Setenv("CI", "")
	var path string
	ft := run(func(t testing.TB) { path = Program(t, TURN, "coreutils", "", "no-such-program-sotto", "sh") })
	if ft.failed || ft.skipped || path == "" {
		t.Fatalf("Program found nothing (%s)", ft.msg)
	}
	ft = run(func(t testing.TB) { Program(t, TURN, "coturn", "no-such-program-sotto") })
	if !ft.failed {
		t.Fatal("a missing program did not fail the test")
	}
}
