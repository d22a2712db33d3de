package loadtest

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/pion/webrtc/v4"
)

// Media says which tracks each publisher sends.
type Media int

// The media mixes. The zero value is audio and video.
const (
	AudioVideo Media = iota // one Opus and one VP8 track
	AudioOnly               // one Opus track (--audio-only)
	VideoOnly               // one VP8 track (--video-only)
)

// String names the mix as the report does.
func (m Media) String() string {
	switch m {
	case AudioVideo:
		return "audio+video"
	case AudioOnly:
		return "audio"
	case VideoOnly:
		return "video"
	}
	return fmt.Sprintf("Media(%d)", int(m))
}

func (m Media) audio() bool { return m == AudioVideo || m == AudioOnly }
func (m Media) video() bool { return m == AudioVideo || m == VideoOnly }

// tracks is the number of tracks one publisher sends.
func (m Media) tracks() int {
	n := 0
	if m.audio() {
		n++
	}
	if m.video() {
		n++
	}
	return n
}

// Defaults of Config fields left zero.
const (
	DefaultDuration     = 30 * time.Second
	DefaultVideoBitrate = 500_000
	DefaultRamp         = 5 // joins per second: cmd/sfu's default joins_per_second_per_ip
	DefaultJoinTimeout  = 30 * time.Second
	DefaultSettle       = 15 * time.Second
	DefaultDrain        = 2 * time.Second
)

// ErrSimulcast is returned for Config.Simulcast: the SFU forwards one
// encoding per track, so there is nothing to measure.
var ErrSimulcast = errors.New("loadtest: --simulcast is not supported: the SFU has no simulcast yet (it forwards exactly one encoding per track); run without --simulcast")

// ConfigError is a Config field with a bad value, named by the flag that
// sets it.
type ConfigError struct {
	Flag string // e.g. "--rooms"
	Msg  string
}

func (e *ConfigError) Error() string { return "loadtest: " + e.Flag + ": " + e.Msg }

// Thresholds are the limits a run must stay within (Report.Violations). A
// subscription that never delivered breaks MaxLoss, a participant that
// never joined MaxP95Join: an outage must break a limit.
type Thresholds struct {
	MaxLoss    *float64      // --max-loss, a fraction; nil: no limit
	MaxP95Join time.Duration // --max-p95-join; zero: no limit
}

// Config describes one load run. URL, credentials, Rooms, Publishers and
// Subscribers are required; the rest have usable zero values. Fields are
// set by the cmd/loadtest flag of the same name.
type Config struct {
	URL                            string        // the SFU's base URL, http(s)://host:port
	APIKey, APISecret              string        // sign the participants' tokens
	Rooms, Publishers, Subscribers int           // per room; publishers only send
	Duration                       time.Duration // the measurement window
	VideoBitrate                   int           // bit/s per video track
	Media                          Media         // --audio-only, --video-only
	Simulcast                      bool          // refused with ErrSimulcast
	// Ramp is joins started per second; the default is within the SFU's
	// default join limit per address.
	Ramp        float64
	DisableE2EE bool // --e2ee=false
	Thresholds  Thresholds
	// RoomPrefix names the rooms prefix-0, prefix-1...; the default has a
	// random suffix, so that runs do not meet.
	RoomPrefix  string
	MetricsURL  string        // default URL + "/metrics"; "off" skips them
	JoinTimeout time.Duration // one join, retries and publishing included
	Settle      time.Duration // the wait for every subscription's first frame
	// SettingEngine configures the participants' pion stack; nil means
	// loopback-only ICE when URL is on loopback, pion's defaults otherwise.
	SettingEngine *webrtc.SettingEngine
	Logger        *slog.Logger   // default: discarded
	Progress      func(Progress) // called about once a second until Run returns
}

// Validate reports the first bad field of c: a *ConfigError naming the
// flag that sets it, or ErrSimulcast. Run validates too.
func (c Config) Validate() error {
	_, err := c.withDefaults()
	return err
}

// withDefaults validates c and fills its zero fields. Errors are
// *ConfigError naming the flag, or ErrSimulcast.
func (c Config) withDefaults() (Config, error) {
	bad := func(flag, format string, args ...any) (Config, error) {
		return c, &ConfigError{Flag: flag, Msg: fmt.Sprintf(format, args...)}
	}
	if c.Simulcast {
		return c, ErrSimulcast
	}
	if c.URL == "" {
		return bad("--url", "required: the SFU's base URL, e.g. http://127.0.0.1:7780")
	}
	u, err := url.Parse(c.URL)
	if err != nil {
		return bad("--url", "%v", err)
	}
	switch strings.ToLower(u.Scheme) {
	case "http", "https", "ws", "wss":
	default:
		return bad("--url", "scheme must be http or https (got %q)", c.URL)
	}
	if u.Host == "" {
		return bad("--url", "%q has no host", c.URL)
	}
	if c.APIKey == "" {
		return bad("--api-key", "required (or set SOTTO_API_KEY)")
	}
	if c.APISecret == "" {
		return bad("--api-secret", "required (or set SOTTO_API_SECRET)")
	}
	counts := []struct {
		flag string
		v    int
		min  int
	}{
		{"--rooms", c.Rooms, 1},
		{"--publishers", c.Publishers, 0},
		{"--subscribers", c.Subscribers, 0},
	}
	for _, f := range counts {
		if f.v < f.min {
			return bad(f.flag, "must be at least %d (got %d)", f.min, f.v)
		}
	}
	if c.Publishers+c.Subscribers == 0 {
		return bad("--publishers", "a room needs at least one publisher or subscriber")
	}
	if c.Subscribers > 0 && c.Publishers == 0 {
		return bad("--publishers", "subscribers need at least one publisher to receive from")
	}
	switch {
	case c.Duration < 0:
		return bad("--duration", "must be positive (got %v)", c.Duration)
	case c.Duration == 0:
		c.Duration = DefaultDuration
	}
	switch {
	case c.VideoBitrate < 0:
		return bad("--video-bitrate", "must be positive (got %d)", c.VideoBitrate)
	case c.VideoBitrate == 0:
		c.VideoBitrate = DefaultVideoBitrate
	case c.VideoBitrate < 8*videoFPS*(vp8PrefixLen(false)+headerLen):
		return bad("--video-bitrate", "%d bit/s is below the least the synthetic encoder sends (%d)", c.VideoBitrate, 8*videoFPS*(vp8PrefixLen(false)+headerLen))
	}
	if c.Media < AudioVideo || c.Media > VideoOnly {
		return bad("--audio-only", "unknown media mix %v", c.Media)
	}
	switch {
	case c.Ramp < 0 || math.IsNaN(c.Ramp) || math.IsInf(c.Ramp, 0):
		return bad("--ramp", "must be a positive rate (got %v)", c.Ramp)
	case c.Ramp == 0:
		c.Ramp = DefaultRamp
	}
	if l := c.Thresholds.MaxLoss; l != nil && (*l < 0 || *l > 1 || math.IsNaN(*l)) {
		return bad("--max-loss", "must be a fraction from 0 to 1 (got %v)", *l)
	}
	if c.Thresholds.MaxP95Join < 0 {
		return bad("--max-p95-join", "must be positive (got %v)", c.Thresholds.MaxP95Join)
	}
	if c.JoinTimeout < 0 {
		return bad("--join-timeout", "must be positive (got %v)", c.JoinTimeout)
	}
	if c.JoinTimeout == 0 {
		c.JoinTimeout = DefaultJoinTimeout
	}
	if c.Settle <= 0 {
		c.Settle = DefaultSettle
	}
	if c.MetricsURL == "" {
		m := *u
		m.Scheme = strings.NewReplacer("ws", "http").Replace(strings.ToLower(u.Scheme))
		m.Path, m.RawQuery = "/metrics", ""
		c.MetricsURL = m.String()
	}
	return c, nil
}

// participants is the number of participants the run joins.
func (c Config) participants() int { return c.Rooms * (c.Publishers + c.Subscribers) }

// expectedTracks is the number of subscriptions that should deliver media.
func (c Config) expectedTracks() int {
	return c.Rooms * c.Subscribers * c.Publishers * c.Media.tracks()
}
