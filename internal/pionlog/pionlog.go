// Package pionlog writes pion's logs to a slog.Logger. It is shared by the
// SFU, the TURN relay and the Go SDK, so it imports nothing of Sotto and
// no metrics library: callers count through Options' hooks.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/pion/logging"
)

// LevelTrace is the level of pion's trace lines, below slog's debug:
// pion traces per packet in places.
const LevelTrace = slog.LevelDebug - 4

// maxKeys bounds the messages whose repeats are tracked; beyond it, the
// messages of a scope and level share one entry.
const maxKeys = 512

// Options are a Factory's optional behaviours; the zero value writes
// every line.
type Options struct {
	// Hook sees every line before it is written, trace included, and
	// returns the level to write it at. format is the format string, or
	// the message of an unformatted call (then args is empty).
	Hook func(scope string, level slog.Level, format string, args []any) slog.Level
	// Repeat, when positive, writes a warning or error line at most once
	// per Repeat for each scope, format and level; the next line written
	// carries repeats_suppressed, how many were held back.
	Repeat time.Duration
	// Suppressed is called for each line Repeat holds back.
	Suppressed func()
	// QuietDebug writes pion's debug lines at LevelTrace too.
	QuietDebug bool
}

// Factory is a logging.LoggerFactory. pion's info and below are library
// internals, so they are written at debug or lower.
type Factory struct {
	log  *slog.Logger
	opts Options
	rep  *repeats
}

// New returns a factory writing to log.
func New(log *slog.Logger, opts Options) *Factory {
	f := &Factory{log: log, opts: opts}
	if opts.Repeat > 0 {
		f.rep = &repeats{window: opts.Repeat, seen: make(map[repeatKey]*repeat)}
	}
	return f
}

// NewLogger returns the logger of one pion subsystem; its lines carry
// the attribute pion=scope.
func (f *Factory) NewLogger(scope string) logging.LeveledLogger {
	return logger{f: f, log: f.log.With("pion", scope), scope: scope}
}

type logger struct {
	f     *Factory
	log   *slog.Logger
	scope string
}

func (l logger) write(level slog.Level, format string, args []any) {
	if h := l.f.opts.Hook; h != nil {
		level = h(l.scope, level, format, args)
	}
	ctx := context.Background()
	if !l.log.Enabled(ctx, level) {
		return // formatting is skipped: pion logs per packet in places
	}
	msg := format
	if len(args) > 0 {
		msg = fmt.Sprintf(format, args...)
	}
	if level < slog.LevelWarn || l.f.rep == nil {
		l.log.Log(ctx, level, msg)
		return
	}
	ok, held := l.f.rep.admit(repeatKey{scope: l.scope, format: format, level: level})
	if !ok {
		if s := l.f.opts.Suppressed; s != nil {
			s()
		}
		return
	}
	if held > 0 {
		l.log.Log(ctx, level, msg, "repeats_suppressed", held)
		return
	}
	l.log.Log(ctx, level, msg)
}

func (l logger) debugLevel() slog.Level {
	if l.f.opts.QuietDebug {
		return LevelTrace
	}
	return slog.LevelDebug
}

func (l logger) Trace(msg string)                  { l.write(LevelTrace, msg, nil) }
func (l logger) Tracef(format string, args ...any) { l.write(LevelTrace, format, args) }
func (l logger) Debug(msg string)                  { l.write(l.debugLevel(), msg, nil) }
func (l logger) Debugf(format string, args ...any) { l.write(l.debugLevel(), format, args) }
func (l logger) Info(msg string)                   { l.write(slog.LevelDebug, msg, nil) }
func (l logger) Infof(format string, args ...any)  { l.write(slog.LevelDebug, format, args) }
func (l logger) Warn(msg string)                   { l.write(slog.LevelWarn, msg, nil) }
func (l logger) Warnf(format string, args ...any)  { l.write(slog.LevelWarn, format, args) }
func (l logger) Error(msg string)                  { l.write(slog.LevelError, msg, nil) }
func (l logger) Errorf(format string, args ...any) { l.write(slog.LevelError, format, args) }

// repeats is what every logger of a Factory shares for Options.Repeat.
type repeats struct {
	window time.Duration

	mu   sync.Mutex
	seen map[repeatKey]*repeat
}

type repeatKey struct {
	scope, format string
	level         slog.Level
}

type repeat struct {
	last time.Time // when a line was last written
	held int       // repeats not written since
}

// admit decides whether a line of k is written now, and how many repeats
// it stands for besides itself.
func (r *repeats) admit(k repeatKey) (bool, int) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.seen[k]
	if e == nil {
		if len(r.seen) >= maxKeys {
			for key, old := range r.seen {
				if now.Sub(old.last) >= r.window {
					delete(r.seen, key)
				}
			}
		}
		if len(r.seen) >= maxKeys {
			k.format = ""
			e = r.seen[k]
		}
		if e == nil {
			e = &repeat{}
			r.seen[k] = e
		}
	}
	if !e.last.IsZero() && now.Sub(e.last) < r.window {
		e.held++
		return false, 0
	}
	held := e.held
	e.last, e.held = now, 0
	return true, held
}
