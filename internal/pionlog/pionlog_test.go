package pionlog

import (
	"context"
	"go/parser"
	"go/token"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type record struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

// recorder keeps every record at or above level.
type recorder struct {
	level slog.Level
	attrs []slog.Attr
	mu    *sync.Mutex
	out   *[]record
}

func newRecorder(level slog.Level) *recorder {
	return &recorder{level: level, mu: &sync.Mutex{}, out: &[]record{}}
}

func (h *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level }
func (h *recorder) Handle(_ context.Context, r slog.Record) error {
	rec := record{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool { rec.attrs[a.Key] = a.Value.String(); return true })
	h.mu.Lock()
	*h.out = append(*h.out, rec)
	h.mu.Unlock()
	return nil
}
func (h *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr{}, h.attrs...), as...)
	return &c
}
func (h *recorder) WithGroup(string) slog.Handler { return h }

func (h *recorder) records() []record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]record(nil), *h.out...)
}

// formatted counts the times it is formatted.
type formatted struct{ n *int }

func (f formatted) String() string { *f.n++; return "x" }

func TestLevelsScopeAndLazyFormatting(t *testing.T) {
	h := newRecorder(slog.LevelDebug)
	l := New(slog.New(h), Options{}).NewLogger("ice")
	n := 0
	l.Tracef("trace %v", formatted{&n})
	l.Debugf("debug %v", formatted{&n})
	l.Info("info")
	l.Warnf("warn %d", 1)
	l.Error("error")
	if n != 1 {
		t.Errorf("formatted %d times, want once (trace is off)", n)
	}
	got := h.records()
	want := []record{{level: slog.LevelDebug, msg: "debug x"}, {level: slog.LevelDebug, msg: "info"},
		{level: slog.LevelWarn, msg: "warn 1"}, {level: slog.LevelError, msg: "error"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i, r := range got {
		if r.level != want[i].level || r.msg != want[i].msg || r.attrs["pion"] != "ice" {
			t.Errorf("line %d: %+v, want %+v with pion=ice", i, r, want[i])
		}
	}

	q := newRecorder(slog.LevelDebug)
	New(slog.New(q), Options{QuietDebug: true}).NewLogger("turn").Debug("per packet")
	if r := q.records(); len(r) != 0 {
		t.Errorf("QuietDebug wrote %+v at debug", r)
	}
}

func TestRepeatsAndHook(t *testing.T) {
	h := newRecorder(slog.LevelDebug)
	suppressed := 0
	var seen []string
	f := New(slog.New(h), Options{
		Repeat:     time.Hour,
		Suppressed: func() { suppressed++ },
		Hook: func(scope string, level slog.Level, format string, args []any) slog.Level {
			seen = append(seen, scope+":"+format)
			if format == "closing %v" {
				return slog.LevelDebug
			}
			return level
		},
	})
	a, b := f.NewLogger("a"), f.NewLogger("b")
	for i := range 3 {
		a.Warnf("dropped %d", i)
		a.Errorf("closing %v", i)
	}
	b.Warnf("dropped %d", 9)
	a.Trace("t")
	if suppressed != 2 {
		t.Errorf("%d lines suppressed, want 2", suppressed)
	}
	if len(seen) != 8 || seen[7] != "a:t" {
		t.Errorf("hook saw %q, want all 8 lines", seen)
	}
	var msgs []string
	for _, r := range h.records() {
		msgs = append(msgs, r.level.String()+" "+r.msg)
	}
	want := "WARN dropped 0|DEBUG closing 0|DEBUG closing 1|DEBUG closing 2|WARN dropped 9"
	if got := strings.Join(msgs, "|"); got != want {
		t.Errorf("wrote %q, want %q", got, want)
	}
}

func TestRepeatCarriesHeldCount(t *testing.T) {
	h := newRecorder(slog.LevelWarn)
	l := New(slog.New(h), Options{Repeat: 20 * time.Millisecond}).NewLogger("mux")
	l.Warn("full")
	l.Warn("full")
	l.Warn("full")
	time.Sleep(30 * time.Millisecond)
	l.Warn("full")
	got := h.records()
	if len(got) != 2 || got[1].attrs["repeats_suppressed"] != "2" {
		t.Errorf("got %+v, want two lines, the second with repeats_suppressed=2", got)
	}
}

// TestImportsNothingOfSotto: the Go SDK links this package, so it must not
// bring the server's dependencies with it.
func TestImportsNothingOfSotto(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(path, ".") && path != "github.com/pion/logging" {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}
