package client

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/interceptor"
	"github.com/pion/logging"
	"github.com/pion/webrtc/v4"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// newAPI builds the pion stack every peer connection of a client is made
// from: the codecs and header extensions of package wire, with the audio
// level, and pion's default interceptors (NACK generator and responder,
// RTCP reports, TWCC).
func newAPI(se *webrtc.SettingEngine, log *slog.Logger) (*webrtc.API, error) {
	me := &webrtc.MediaEngine{}
	if err := wire.RegisterCodecs(me, true); err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	reg := &interceptor.Registry{}
	if err := webrtc.RegisterDefaultInterceptors(me, reg); err != nil {
		return nil, fmt.Errorf("client: interceptors: %w", err)
	}

	var s webrtc.SettingEngine
	if se != nil {
		s = *se
	}
	if s.LoggerFactory == nil {
		s.LoggerFactory = pionLoggerFactory{log: log}
	}
	return webrtc.NewAPI(
		webrtc.WithSettingEngine(s),
		webrtc.WithMediaEngine(me),
		webrtc.WithInterceptorRegistry(reg),
	), nil
}

// pionLoggerFactory sends pion's logs to the client's slog logger. pion's
// info and below are library internals, so they go to debug.
type pionLoggerFactory struct{ log *slog.Logger }

// NewLogger returns the logger of one pion subsystem.
func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{log: f.log.With("pion", scope)}
}

type pionLogger struct{ log *slog.Logger }

func (l pionLogger) logf(level slog.Level, format string, args ...any) {
	// Formatting is skipped when the level is off: pion logs per packet
	// at debug in places.
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l pionLogger) Trace(string)                      {}
func (l pionLogger) Tracef(string, ...any)             {}
func (l pionLogger) Debug(msg string)                  { l.logf(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Debugf(format string, args ...any) { l.logf(slog.LevelDebug, format, args...) }
func (l pionLogger) Info(msg string)                   { l.logf(slog.LevelDebug, "%s", msg) }
func (l pionLogger) Infof(format string, args ...any)  { l.logf(slog.LevelDebug, format, args...) }
func (l pionLogger) Warn(msg string)                   { l.logf(slog.LevelWarn, "%s", msg) }
func (l pionLogger) Warnf(format string, args ...any)  { l.logf(slog.LevelWarn, format, args...) }
func (l pionLogger) Error(msg string)                  { l.logf(slog.LevelError, "%s", msg) }
func (l pionLogger) Errorf(format string, args ...any) { l.logf(slog.LevelError, format, args...) }
