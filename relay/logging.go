package relay

import (
	"log/slog"

	"github.com/pion/logging"
	"github.com/sotto-rtc/sotto/internal/pionlog"
)

// pionLoggerFactory sends pion's logs to slog. pion logs every refusal at
// info level, and the relay logs those itself with the reason, so pion's
// info goes to debug; its debug lines, one per relayed packet, go lower.
type pionLoggerFactory struct{ log *slog.Logger }

func (f pionLoggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionlog.New(f.log, pionlog.Options{QuietDebug: true}).NewLogger(scope)
}
