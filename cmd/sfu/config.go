package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"

	"gopkg.in/yaml.v3"

	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/relay"
	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// envPrefix starts the name of every environment variable the command
// reads: a setting's variable is envPrefix + its flag name in upper snake
// case (--media-port is SOTTO_MEDIA_PORT).
const envPrefix = "SOTTO_"

// Bounds that validate enforces. They are here, not in signaling or media,
// because they are about what an operator may reasonably ask for; the
// packages below apply whatever they are given.
const (
	maxKeyIDBytes = 128
	// secretPlaceholder starts the secrets in deploy/sfu.yaml, which
	// validate refuses so that the example is never deployed as is.
	secretPlaceholder   = "CHANGE-ME"
	minMaxMessageBytes  = 4 << 10 // an SDP offer with a few tracks is several KiB
	maxMaxMessageBytes  = 1 << 20
	minPacketCacheSize  = 16
	maxPacketCacheSize  = 1 << 16
	defaultHTTPAddr     = "127.0.0.1:7780"
	defaultMediaPort    = 7781
	defaultDrainTimeout = 10 * time.Second
	// defaultDrainGrace is a few health-check periods of a typical load
	// balancer (5 s apart, 2 failures to mark a target down).
	defaultDrainGrace = 10 * time.Second
	// defaultTURNCredentialTTL outlives a long call: the relay refuses a
	// Refresh signed with an expired credential, and the call would lose
	// its relayed path.
	defaultTURNCredentialTTL = 12 * time.Hour
	maxTURNCredentialTTL     = 7 * 24 * time.Hour
)

// config is everything the sfu command can be told, from the YAML file,
// the environment and flags. Field names in errors are the YAML paths.
type config struct {
	// HTTP is the address of the HTTP server: signaling, health, metrics
	// and the web page.
	HTTP string `yaml:"http"`
	// TLSCert and TLSKey are PEM files; when both are set the HTTP server
	// speaks HTTPS (and the signaling URL is wss://).
	TLSCert string `yaml:"tls_cert"`
	TLSKey  string `yaml:"tls_key"`
	// AllowedOrigins are the web pages allowed to open the signaling
	// WebSocket besides the server's own origin: path.Match patterns of
	// the page's host[:port] ("*.example.com", "localhost:5173"), or of
	// scheme://host[:port] to require the scheme too. A trailing slash is
	// dropped.
	AllowedOrigins stringList `yaml:"allowed_origins"`

	// MediaIP is the address the media port binds to.
	MediaIP string `yaml:"media_ip"`
	// MediaPort is the UDP port (ICE mux) and the TCP port of the same
	// number (ICE-TCP) all media uses. 0 picks a free port.
	MediaPort int `yaml:"media_port"`
	// PublicIP replaces the address of host candidates (1:1 NAT).
	PublicIP stringList `yaml:"public_ip"`
	// NoICETCP turns off ICE-TCP on the media port.
	NoICETCP bool `yaml:"no_ice_tcp"`
	// AllowCandidates are ranges of clients' ICE candidates the SFU checks
	// although its candidate policy refuses them (loopback, link-local,
	// its own addresses, ...); RefusePrivateCandidates refuses private
	// ranges, allowed by default for LAN calls.
	AllowCandidates         stringList `yaml:"allow_candidates"`
	RefusePrivateCandidates bool       `yaml:"refuse_private_candidates"`
	// ICEServers are STUN and TURN servers handed to clients in "joined".
	ICEServers []iceServerConfig `yaml:"ice_servers"`
	// TURN is the relay whose fresh REST credentials every joined
	// carries, one set per participant.
	TURN turnConfig `yaml:"turn"`
	// Media holds what the SFU negotiates beyond codecs.
	Media mediaConfig `yaml:"media"`
	// PacketCacheSize is the packets kept per track to answer NACKs.
	PacketCacheSize int `yaml:"packet_cache_size"`
	// KeyframeRequestInterval is the least time between two keyframe
	// requests forwarded to one publisher for one track.
	KeyframeRequestInterval time.Duration `yaml:"keyframe_request_interval"`
	// ICEDisconnectedTimeout and ICEFailedTimeout tune ICE liveness.
	ICEDisconnectedTimeout time.Duration `yaml:"ice_disconnected_timeout"`
	ICEFailedTimeout       time.Duration `yaml:"ice_failed_timeout"`

	// Keys are the API keys access tokens may be signed with; several
	// allow rotation. Empty: a development key is generated at start.
	Keys []keyConfig `yaml:"keys"`
	// APIKey and APISecret come from --api-key/--api-secret or
	// SOTTO_API_KEY/SOTTO_API_SECRET; when set they replace Keys.
	APIKey    string `yaml:"-"`
	APISecret string `yaml:"-"`
	// TokenLeeway is the clock skew tolerated on exp and nbf.
	TokenLeeway time.Duration `yaml:"token_leeway"`
	// JoinTimeout bounds the time from WebSocket accept to "join".
	JoinTimeout time.Duration `yaml:"join_timeout"`
	// PingInterval is how often the server pings an idle connection.
	PingInterval time.Duration `yaml:"ping_interval"`
	// Limits bound what one client, room or address may ask for.
	Limits limitsConfig `yaml:"limits"`

	// DrainGrace is how long a drain keeps serving with /readyz failing,
	// so that load balancers see it, before it ends any session.
	DrainGrace time.Duration `yaml:"drain_grace"`
	// DrainTimeout bounds the graceful shutdown on SIGTERM/SIGINT after
	// the grace.
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	// LogLevel is debug, info, warn or error; LogFormat is text or json.
	LogLevel  string `yaml:"log_level"`
	LogFormat string `yaml:"log_format"`
}

// mediaConfig is what the SFU negotiates that clients might otherwise
// leak to it.
type mediaConfig struct {
	// AudioLevelExtension negotiates the RFC 6464 audio-level extension,
	// with which browsers stamp every audio packet with the speaker's
	// level in clear: the node learns who speaks and when. Off by default;
	// clients show speaking indicators from the audio they decrypt.
	AudioLevelExtension bool `yaml:"audio_level_extension"`
}

// keyConfig is one API key and the secret tokens naming it (kid) are
// signed with.
type keyConfig struct {
	Key    string `yaml:"key"`
	Secret string `yaml:"secret"`
}

// iceServerConfig is a STUN or TURN server clients are told about.
type iceServerConfig struct {
	URLs       stringList `yaml:"urls"`
	Username   string     `yaml:"username"`
	Credential string     `yaml:"credential"`
}

// turnConfig names a TURN relay that accepts TURN REST ephemeral
// credentials (cmd/turn, or coturn with use-auth-secret) and the secret
// shared with it.
type turnConfig struct {
	// URLs are the relay's turn: and turns: URLs, handed to clients.
	URLs stringList `yaml:"urls"`
	// Secret is the shared secret the credentials are signed with.
	Secret string `yaml:"secret"`
	// CredentialTTL is how long a participant's credentials stay valid.
	// The relay checks them on every Refresh too, so this bounds how
	// long a call may keep its relayed path without rejoining.
	CredentialTTL time.Duration `yaml:"credential_ttl"`

	// Listen, when set, runs the relay inside this process, for a
	// single-box deployment: cmd/turn's listen syntax ("host:port" for
	// UDP and TCP, "udp://", "tcp://", "tls://"; TLS uses tls_cert and
	// tls_key), Secret as its secret. The SFU's media endpoints are
	// opened to it, port and all; AllowPeers opens more.
	Listen stringList `yaml:"listen"`
	// Realm is the in-process relay's realm. Default "sotto".
	Realm string `yaml:"realm"`
	// RelayIP, PublicIP, MinPort and MaxPort are cmd/turn's --relay-ip,
	// --public-ip, --min-port and --max-port.
	RelayIP  string `yaml:"relay_ip"`
	PublicIP string `yaml:"public_ip"`
	MinPort  int    `yaml:"min_port"`
	MaxPort  int    `yaml:"max_port"`
	// AllowPeers are cmd/turn's --allow-peer ranges.
	AllowPeers stringList `yaml:"allow_peers"`
}

// limitsConfig mirrors signaling's limits; each is documented in
// docs/PROTOCOL.md, Limits.
type limitsConfig struct {
	MaxMessageBytes      int     `yaml:"max_message_bytes"`
	MessagesPerSecond    float64 `yaml:"messages_per_second"`
	MessageBurst         int     `yaml:"message_burst"`
	ParticipantsPerRoom  int     `yaml:"participants_per_room"`
	RoomsPerNode         int     `yaml:"rooms_per_node"`
	TracksPerParticipant int     `yaml:"tracks_per_participant"`
	JoinsPerSecondPerIP  float64 `yaml:"joins_per_second_per_ip"`
	JoinBurst            int     `yaml:"join_burst"`
	RelayBytesPerSecond  float64 `yaml:"relay_bytes_per_second"`
	RelayBurstBytes      int     `yaml:"relay_burst_bytes"`
	RelayQueueBytes      int     `yaml:"relay_queue_bytes"`
	RelayQueueMessages   int     `yaml:"relay_queue_messages"`
	UnjoinedPerAddress   int     `yaml:"unjoined_per_address"`
	UnjoinedConnections  int     `yaml:"unjoined_connections"`

	// Per published track, the SFU's (sfu.Config): bits and packets per
	// second, 0 for no limit; a track over RateLimitEndFactor times either
	// for RateLimitEndAfter ends its publisher.
	AudioMaxBitrate    int           `yaml:"audio_max_bitrate"`
	AudioMaxPacketRate int           `yaml:"audio_max_packet_rate"`
	VideoMaxBitrate    int           `yaml:"video_max_bitrate"`
	VideoMaxPacketRate int           `yaml:"video_max_packet_rate"`
	RateLimitEndFactor int           `yaml:"rate_limit_end_factor"`
	RateLimitEndAfter  time.Duration `yaml:"rate_limit_end_after"`
}

// stringList is a YAML list of strings that also accepts a single string,
// so `public_ip: 203.0.113.7` and `public_ip: [203.0.113.7]` both work.
type stringList []string

// UnmarshalYAML accepts a scalar or a sequence of scalars.
func (l *stringList) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Tag == "!!null" {
			*l = nil
			return nil
		}
		*l = stringList{n.Value}
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

// defaultConfig is a complete single-node gateway on this machine: what
// `go run ./cmd/sfu` runs with no flags and no file.
func defaultConfig() config {
	return config{
		HTTP:                    defaultHTTPAddr,
		MediaIP:                 "0.0.0.0",
		MediaPort:               defaultMediaPort,
		TURN:                    turnConfig{CredentialTTL: defaultTURNCredentialTTL, Realm: "sotto", RelayIP: "0.0.0.0", MinPort: 49152, MaxPort: 65535},
		PacketCacheSize:         512,
		KeyframeRequestInterval: 500 * time.Millisecond,
		ICEDisconnectedTimeout:  5 * time.Second,
		ICEFailedTimeout:        10 * time.Second,
		TokenLeeway:             wire.DefaultTokenLeeway,
		JoinTimeout:             signaling.DefaultJoinTimeout,
		PingInterval:            signaling.DefaultPingInterval,
		// signaling's defaults, spelt out so that --help, --check-config
		// and deploy/sfu.yaml show real numbers.
		Limits: limitsConfig{
			MaxMessageBytes:      signaling.DefaultMaxMessageBytes,
			MessagesPerSecond:    signaling.DefaultMessagesPerSecond,
			MessageBurst:         signaling.DefaultMessageBurst,
			ParticipantsPerRoom:  signaling.DefaultParticipantsPerRoom,
			RoomsPerNode:         signaling.DefaultRoomsPerNode,
			TracksPerParticipant: signaling.DefaultTracksPerParticipant,
			JoinsPerSecondPerIP:  signaling.DefaultJoinsPerSecondPerIP,
			JoinBurst:            signaling.DefaultJoinBurst,
			RelayBytesPerSecond:  signaling.DefaultRelayBytesPerSecond,
			RelayBurstBytes:      signaling.DefaultRelayBurstBytes,
			RelayQueueBytes:      signaling.DefaultRelayQueueBytes,
			RelayQueueMessages:   signaling.DefaultRelayQueueMessages,
			UnjoinedPerAddress:   signaling.DefaultUnjoinedPerAddress,
			UnjoinedConnections:  signaling.DefaultUnjoinedConnections,
			AudioMaxBitrate:      sfu.DefaultAudioMaxBitrate,
			AudioMaxPacketRate:   sfu.DefaultAudioMaxPacketRate,
			VideoMaxBitrate:      sfu.DefaultVideoMaxBitrate,
			VideoMaxPacketRate:   sfu.DefaultVideoMaxPacketRate,
			RateLimitEndFactor:   sfu.DefaultRateLimitEndFactor,
			RateLimitEndAfter:    sfu.DefaultRateLimitEndAfter,
		},
		DrainGrace:   defaultDrainGrace,
		DrainTimeout: defaultDrainTimeout,
		LogLevel:     "info",
		LogFormat:    "text",
	}
}

// loadFile decodes the YAML file at name over c. Unknown keys are errors,
// so a misspelt setting is never silently ignored. A key that is unknown
// or of the wrong type is a *fileKeysError naming every such key; the
// rest of the file has been applied then, so that validation can report
// its own problems in the same run. Any other error (no file, broken
// YAML) leaves c as it was.
func loadFile(name string, c *config) error {
	raw, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return fmt.Errorf("config %s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	err = dec.Decode(c)
	if err == nil || errors.Is(err, io.EOF) { // an empty file changes nothing
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("config %s: %w", name, err)
	}
	// yaml.v3 names Go types and lines ("line 3: field x not found in
	// type main.config"); an operator needs the key's whole path.
	paths := keyPaths(&root, "", map[int][]string{})
	fe := &fileKeysError{file: name}
	for _, e := range te.Errors {
		line, msg := 0, e
		if m := yamlLine.FindStringSubmatch(e); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = m[2]
		}
		key := ""
		if m := unknownField.FindStringSubmatch(msg); m != nil {
			key, msg = m[1], "unknown key"
			for _, p := range paths[line] {
				if p == key || strings.HasSuffix(p, "."+key) {
					key = p
				}
			}
		} else if ps := paths[line]; len(ps) > 0 {
			key = ps[len(ps)-1] // the innermost key whose value is on this line
		}
		prefix := ""
		if line > 0 {
			prefix = fmt.Sprintf("line %d: ", line)
		}
		if key != "" {
			prefix += key + ": "
		}
		fe.problems = append(fe.problems, prefix+msg)
	}
	return fe
}

var (
	yamlLine     = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownField = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
)

// keyPaths records, line by line, the paths of the mapping keys in n
// ("limits.rooms_per_node", "keys[1].secret"), outermost first.
func keyPaths(n *yaml.Node, prefix string, out map[int][]string) map[int][]string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			keyPaths(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + p
			}
			out[k.Line] = append(out[k.Line], p)
			keyPaths(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			keyPaths(c, fmt.Sprintf("%s[%d]", prefix, i), out)
		}
	}
	return out
}

// fileKeysError lists the keys of a config file that are unknown or hold
// a value of the wrong type, one per line.
type fileKeysError struct {
	file     string
	problems []string
}

func (e *fileKeysError) Error() string {
	return "config " + e.file + ":\n  " + strings.Join(e.problems, "\n  ")
}

// effectiveKeys are the API keys the server verifies tokens with: the
// pair from flags or environment when given, else the file's keys.
func (c *config) effectiveKeys() []keyConfig {
	if c.APIKey != "" || c.APISecret != "" {
		return []keyConfig{{Key: c.APIKey, Secret: c.APISecret}}
	}
	return c.Keys
}

// fieldError is a problem with one setting, named by its YAML path.
type fieldError struct {
	Field string
	Err   error
}

func (e *fieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *fieldError) Unwrap() error { return e.Err }

// validate checks every setting and returns all problems found, each
// naming its field, joined one per line.
func (c *config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &fieldError{Field: field, Err: fmt.Errorf(format, args...)})
	}
	atLeast := func(field string, got, min int) {
		if got < min {
			bad(field, "must be at least %d, got %d", min, got)
		}
	}
	positiveRate := func(field string, got float64) {
		if !(got > 0) { // also refuses NaN
			bad(field, "must be greater than 0, got %v", got)
		}
	}
	positiveDuration := func(field string, got time.Duration) {
		if got <= 0 {
			bad(field, "must be a positive duration, got %v", got)
		}
	}

	if err := checkHostPort(c.HTTP); err != nil {
		bad("http", "invalid address %q: %w", c.HTTP, err)
	}
	switch {
	case c.TLSCert != "" && c.TLSKey == "":
		bad("tls_key", "must be set when tls_cert is")
	case c.TLSCert == "" && c.TLSKey != "":
		bad("tls_cert", "must be set when tls_key is")
	case c.TLSCert != "":
		// Loaded here too, so that --check-config catches an unreadable
		// or mismatched pair before a deploy does.
		if _, err := tls.LoadX509KeyPair(c.TLSCert, c.TLSKey); err != nil {
			bad("tls_cert", "%w", err)
		}
	}
	for i, o := range c.AllowedOrigins {
		if err := checkOriginPattern(o); err != nil {
			bad(fmt.Sprintf("allowed_origins[%d]", i), "%w", err)
		}
	}

	if net.ParseIP(c.MediaIP) == nil {
		bad("media_ip", "%q is not an IP address", c.MediaIP)
	}
	if c.MediaPort < 0 || c.MediaPort > 65535 {
		bad("media_port", "must be 1-65535 (or 0 for any free port), got %d", c.MediaPort)
	}
	for i, p := range c.AllowCandidates {
		if _, err := netip.ParsePrefix(p); err != nil {
			bad(fmt.Sprintf("allow_candidates[%d]", i), "%q is not a CIDR range (e.g. 10.0.0.0/8, 127.0.0.1/32)", p)
		}
	}
	for _, s := range c.PublicIP {
		switch ip := net.ParseIP(s); {
		case ip == nil:
			bad("public_ip", "%q is not an IP address", s)
		case ip.IsUnspecified() || ip.IsLoopback():
			bad("public_ip", "%q cannot be reached by clients on other machines", s)
		}
	}
	for i, s := range c.ICEServers {
		field := fmt.Sprintf("ice_servers[%d]", i)
		if len(s.URLs) == 0 {
			bad(field+".urls", "must list at least one URL")
		}
		needsCredential := false
		for j, u := range s.URLs {
			scheme, _, _ := strings.Cut(u, ":")
			switch strings.ToLower(scheme) {
			case "stun", "stuns":
			case "turn", "turns":
				needsCredential = true
			default:
				bad(fmt.Sprintf("%s.urls[%d]", field, j), "%q is not a stun:, stuns:, turn: or turns: URL", u)
			}
		}
		if needsCredential && (s.Username == "" || s.Credential == "") {
			bad(field, "TURN URLs need username and credential (set them in the config file)")
		}
		if strings.HasPrefix(strings.ToUpper(s.Credential), secretPlaceholder) {
			bad(field+".credential", "is the example's placeholder")
		}
	}
	for i, u := range c.TURN.URLs {
		scheme, _, _ := strings.Cut(u, ":")
		if s := strings.ToLower(scheme); s != "turn" && s != "turns" {
			bad(fmt.Sprintf("turn.urls[%d]", i), "%q is not a turn: or turns: URL", u)
		}
	}
	hasTLS := false
	for i, l := range c.TURN.Listen {
		ls, err := relay.ParseListen(l)
		if err != nil {
			bad(fmt.Sprintf("turn.listen[%d]", i), "%w", err)
			continue
		}
		hasTLS = hasTLS || ls[0].Network == relay.TLS
	}
	if len(c.TURN.Listen) > 0 {
		if hasTLS && c.TLSCert == "" {
			bad("turn.listen", "a tls:// listener uses tls_cert and tls_key, which are not set")
		}
		if c.TURN.Secret == "" {
			bad("turn.secret", "must be set when turn.listen is (--turn-secret or SOTTO_TURN_SECRET)")
		}
		if c.TURN.Realm == "" {
			bad("turn.realm", "must not be empty")
		}
		if _, err := netip.ParseAddr(c.TURN.RelayIP); err != nil {
			bad("turn.relay_ip", "%q is not an IP address", c.TURN.RelayIP)
		}
		if c.TURN.PublicIP != "" {
			if _, err := netip.ParseAddr(c.TURN.PublicIP); err != nil {
				bad("turn.public_ip", "%q is not an IP address", c.TURN.PublicIP)
			}
		}
		if !(c.TURN.MinPort == 0 && c.TURN.MaxPort == 0) && (c.TURN.MinPort < 1 || c.TURN.MaxPort < c.TURN.MinPort || c.TURN.MaxPort > 65535) {
			bad("turn.max_port", "relayed port range %d-%d is not within 1-65535 (or both 0)", c.TURN.MinPort, c.TURN.MaxPort)
		}
		for i, p := range c.TURN.AllowPeers {
			if _, err := netip.ParsePrefix(p); err != nil {
				bad(fmt.Sprintf("turn.allow_peers[%d]", i), "%q is not a CIDR range", p)
			}
		}
	}
	switch t := c.TURN; {
	case len(t.URLs) == 0 && len(t.Listen) > 0:
		// The in-process relay's own addresses are handed out, which
		// needs addresses a client can dial.
		for _, l := range t.Listen {
			ls, err := relay.ParseListen(l)
			if err != nil {
				continue
			}
			ap, err := netip.ParseAddrPort(ls[0].Address)
			if t.PublicIP == "" && (err != nil || ap.Addr().IsUnspecified()) {
				bad("turn.urls", "must be set (or turn.public_ip) when the relay listens on %q: clients cannot dial a wildcard address", l)
				break
			}
		}
	case len(t.URLs) > 0 && t.Secret == "":
		bad("turn.secret", "must be set when turn.urls are (--turn-secret or SOTTO_TURN_SECRET)")
	case len(t.URLs) == 0 && t.Secret != "":
		bad("turn.urls", "must be set when turn.secret is (--turn-url)")
	case strings.HasPrefix(strings.ToUpper(t.Secret), secretPlaceholder):
		bad("turn.secret", "is the example's placeholder; generate a secret with `openssl rand -hex 32`")
	case t.Secret != "" && len(t.Secret) < wire.MinSecretBytes:
		bad("turn.secret", "must be at least %d bytes, got %d", wire.MinSecretBytes, len(t.Secret))
	}
	if c.TURN.CredentialTTL <= 0 || c.TURN.CredentialTTL > maxTURNCredentialTTL {
		bad("turn.credential_ttl", "must be more than 0s and at most %v, got %v", maxTURNCredentialTTL, c.TURN.CredentialTTL)
	}
	atLeast("packet_cache_size", c.PacketCacheSize, minPacketCacheSize)
	if c.PacketCacheSize > maxPacketCacheSize {
		bad("packet_cache_size", "must be at most %d, got %d", maxPacketCacheSize, c.PacketCacheSize)
	}
	positiveDuration("keyframe_request_interval", c.KeyframeRequestInterval)
	positiveDuration("ice_disconnected_timeout", c.ICEDisconnectedTimeout)
	positiveDuration("ice_failed_timeout", c.ICEFailedTimeout)

	if c.APIKey != "" || c.APISecret != "" {
		switch {
		case c.APIKey == "":
			bad("api_key", "must be set when api_secret is (--api-key or SOTTO_API_KEY)")
		case c.APISecret == "":
			bad("api_secret", "must be set when api_key is (--api-secret or SOTTO_API_SECRET)")
		default:
			errs = append(errs, checkKey("api_key", "api_secret", keyConfig{c.APIKey, c.APISecret})...)
		}
	} else {
		seen := make(map[string]int, len(c.Keys))
		for i, k := range c.Keys {
			prefix := fmt.Sprintf("keys[%d]", i)
			errs = append(errs, checkKey(prefix+".key", prefix+".secret", k)...)
			if j, dup := seen[k.Key]; dup && k.Key != "" {
				bad(prefix+".key", "%q is already keys[%d].key", k.Key, j)
			}
			seen[k.Key] = i
		}
	}
	// Zero is refused rather than passed on: the verifier reads 0 as "use
	// the default", which is not what an operator writing 0s means.
	if c.TokenLeeway <= 0 || c.TokenLeeway > wire.MaxTokenLeeway {
		bad("token_leeway", "must be more than 0s and at most %v, got %v", wire.MaxTokenLeeway, c.TokenLeeway)
	}
	positiveDuration("join_timeout", c.JoinTimeout)
	positiveDuration("ping_interval", c.PingInterval)

	l := c.Limits
	atLeast("limits.max_message_bytes", l.MaxMessageBytes, minMaxMessageBytes)
	if l.MaxMessageBytes > maxMaxMessageBytes {
		bad("limits.max_message_bytes", "must be at most %d, got %d", maxMaxMessageBytes, l.MaxMessageBytes)
	}
	positiveRate("limits.messages_per_second", l.MessagesPerSecond)
	atLeast("limits.message_burst", l.MessageBurst, 1)
	atLeast("limits.participants_per_room", l.ParticipantsPerRoom, 1)
	atLeast("limits.rooms_per_node", l.RoomsPerNode, 1)
	atLeast("limits.tracks_per_participant", l.TracksPerParticipant, 1)
	positiveRate("limits.joins_per_second_per_ip", l.JoinsPerSecondPerIP)
	atLeast("limits.join_burst", l.JoinBurst, 1)
	positiveRate("limits.relay_bytes_per_second", l.RelayBytesPerSecond)
	if l.RelayBurstBytes < l.MaxMessageBytes {
		bad("limits.relay_burst_bytes", "must be at least limits.max_message_bytes (%d), or a full-size relay could never pass; got %d", l.MaxMessageBytes, l.RelayBurstBytes)
	}
	if l.RelayQueueBytes < 2*l.MaxMessageBytes {
		bad("limits.relay_queue_bytes", "must be at least twice limits.max_message_bytes (%d); got %d", 2*l.MaxMessageBytes, l.RelayQueueBytes)
	}
	atLeast("limits.relay_queue_messages", l.RelayQueueMessages, 1)
	atLeast("limits.unjoined_per_address", l.UnjoinedPerAddress, 1)
	atLeast("limits.unjoined_connections", l.UnjoinedConnections, 1)
	atLeast("limits.audio_max_bitrate", l.AudioMaxBitrate, 0)
	atLeast("limits.audio_max_packet_rate", l.AudioMaxPacketRate, 0)
	atLeast("limits.video_max_bitrate", l.VideoMaxBitrate, 0)
	atLeast("limits.video_max_packet_rate", l.VideoMaxPacketRate, 0)
	atLeast("limits.rate_limit_end_factor", l.RateLimitEndFactor, 2)
	if l.RateLimitEndAfter < time.Second {
		bad("limits.rate_limit_end_after", "must be at least 1s (whole seconds count), got %v", l.RateLimitEndAfter)
	}

	if c.DrainGrace < 0 {
		bad("drain_grace", "must not be negative, got %v", c.DrainGrace)
	}
	positiveDuration("drain_timeout", c.DrainTimeout)
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("log_level", "%w", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log_format", "must be text or json, got %q", c.LogFormat)
	}
	return errors.Join(errs...)
}

// originPatterns are the allowed origins as coder/websocket matches them:
// a page's origin has no path, so "https://app.example/" means
// "https://app.example".
func originPatterns(origins []string) []string {
	out := make([]string, len(origins))
	for i, o := range origins {
		out[i] = strings.TrimSuffix(o, "/")
	}
	return out
}

// checkOriginPattern refuses an allowed origin that could never match a
// page: an origin is scheme://host[:port], nothing more.
func checkOriginPattern(o string) error {
	p := strings.TrimSuffix(o, "/")
	if p == "" {
		return errors.New("must not be empty")
	}
	if _, err := path.Match(p, ""); err != nil {
		return fmt.Errorf("%q is not a valid pattern: %w", o, err)
	}
	host := p
	if scheme, rest, ok := strings.Cut(p, "://"); ok {
		if scheme != "http" && scheme != "https" {
			return fmt.Errorf("%q: a web page's origin is http:// or https://", o)
		}
		host = rest
	}
	if host == "" || strings.ContainsAny(host, "/?#@") {
		return fmt.Errorf("%q is not an origin: give the page's host[:port] (app.example.com, *.example.com, localhost:5173) or scheme://host[:port], without a path", o)
	}
	return nil
}

// checkHostPort accepts "host:port", "[v6]:port" and ":port" with a
// numeric port 0-65535; net.Listen would accept more, but a named port
// in a gateway's config is more likely a mistake than a wish.
func checkHostPort(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("port %q is not a number 0-65535", port)
	}
	return nil
}

// checkKey validates one API key and its secret, naming the fields
// keyField and secretField.
func checkKey(keyField, secretField string, k keyConfig) []error {
	var errs []error
	switch {
	case k.Key == "":
		errs = append(errs, &fieldError{keyField, errors.New("must not be empty")})
	case len(k.Key) > maxKeyIDBytes:
		errs = append(errs, &fieldError{keyField, fmt.Errorf("must be at most %d bytes, got %d", maxKeyIDBytes, len(k.Key))})
	case strings.ContainsFunc(k.Key, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }):
		errs = append(errs, &fieldError{keyField, fmt.Errorf("%q must not contain spaces or control characters", k.Key)})
	}
	switch {
	case strings.HasPrefix(strings.ToUpper(k.Secret), secretPlaceholder):
		errs = append(errs, &fieldError{secretField, errors.New("is the example's placeholder; generate a secret with `openssl rand -hex 32`")})
	case len(k.Secret) < wire.MinSecretBytes:
		errs = append(errs, &fieldError{secretField, fmt.Errorf("must be at least %d bytes, got %d (use 32 random bytes, e.g. `openssl rand -hex 32`)", wire.MinSecretBytes, len(k.Secret))})
	}
	return errs
}

// parseLevel maps a log level name to its slog level.
func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("must be debug, info, warn or error, got %q", s)
}

// settingKind says how a setting's flag and environment variable parse.
type settingKind int

const (
	kindValue settingKind = iota // one value; a later one replaces it
	kindBool                     // a boolean flag (--no-ice-tcp)
	kindList                     // repeatable flag; each value may be a comma list
)

// setting is one configurable value: its flag, its environment variable
// (derived from the flag name), the YAML path it overrides, and how to
// apply a string form of it. One table drives flags, environment and the
// documentation, so the three never disagree.
type setting struct {
	name  string // flag name, without dashes
	field string // YAML path
	usage string // a `word` in backquotes names the flag's argument in -h
	arg   string // the argument's name when usage names none
	kind  settingKind
	get   func(c *config) string               // current value, for the flag default
	set   func(c *config, vals []string) error // vals has one element unless kindList
}

// env is the setting's environment variable.
func (s setting) env() string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
}

// settings lists every setting a flag or environment variable can change.
func settings() []setting {
	str := func(name, field, usage string, p func(c *config) *string) setting {
		return setting{name: name, field: field, usage: usage, arg: "string",
			get: func(c *config) string { return *p(c) },
			set: func(c *config, v []string) error { *p(c) = v[0]; return nil }}
	}
	integer := func(name, field, usage string, p func(c *config) *int) setting {
		return setting{name: name, field: field, usage: usage, arg: "n",
			get: func(c *config) string { return strconv.Itoa(*p(c)) },
			set: func(c *config, v []string) error {
				n, err := strconv.Atoi(strings.TrimSpace(v[0]))
				if err != nil {
					return fmt.Errorf("%q is not an integer", v[0])
				}
				*p(c) = n
				return nil
			}}
	}
	float := func(name, field, usage string, p func(c *config) *float64) setting {
		return setting{name: name, field: field, usage: usage, arg: "rate",
			get: func(c *config) string { return strconv.FormatFloat(*p(c), 'g', -1, 64) },
			set: func(c *config, v []string) error {
				f, err := strconv.ParseFloat(strings.TrimSpace(v[0]), 64)
				if err != nil {
					return fmt.Errorf("%q is not a number", v[0])
				}
				*p(c) = f
				return nil
			}}
	}
	boolean := func(name, field, usage string, p func(c *config) *bool) setting {
		return setting{name: name, field: field, usage: usage, kind: kindBool,
			get: func(c *config) string { return strconv.FormatBool(*p(c)) },
			set: func(c *config, v []string) error {
				b, err := strconv.ParseBool(strings.TrimSpace(v[0]))
				if err != nil {
					return fmt.Errorf("%q is not true or false", v[0])
				}
				*p(c) = b
				return nil
			}}
	}
	duration := func(name, field, usage string, p func(c *config) *time.Duration) setting {
		return setting{name: name, field: field, usage: usage, arg: "duration",
			get: func(c *config) string { return p(c).String() },
			set: func(c *config, v []string) error {
				d, err := time.ParseDuration(strings.TrimSpace(v[0]))
				if err != nil {
					return fmt.Errorf("%q is not a duration (e.g. 10s, 1m30s)", v[0])
				}
				*p(c) = d
				return nil
			}}
	}
	list := func(name, field, usage string, p func(c *config) *stringList) setting {
		return setting{name: name, field: field, usage: usage, arg: "list", kind: kindList,
			get: func(c *config) string { return strings.Join(*p(c), ",") },
			set: func(c *config, v []string) error { *p(c) = v; return nil }}
	}

	return []setting{
		str("http", "http", "HTTP listen `address`: signaling, /healthz, /readyz, /metrics", func(c *config) *string { return &c.HTTP }),
		str("tls-cert", "tls_cert", "PEM certificate `file`; with --tls-key serves HTTPS", func(c *config) *string { return &c.TLSCert }),
		str("tls-key", "tls_key", "PEM private key `file` for --tls-cert", func(c *config) *string { return &c.TLSKey }),
		list("allowed-origin", "allowed_origins", "origin `pattern` of another web page allowed to open the signaling WebSocket: its host[:port] as in the page's address (app.example.com, *.example.com, localhost:5173), or scheme://host[:port] to require the scheme (repeatable or comma list)", func(c *config) *stringList { return &c.AllowedOrigins }),

		str("media-ip", "media_ip", "`IP` address the media port binds to", func(c *config) *string { return &c.MediaIP }),
		integer("media-port", "media_port", "media port: UDP (ICE mux) and TCP (ICE-TCP) of the same number; 0 picks a free one", func(c *config) *int { return &c.MediaPort }),
		list("public-ip", "public_ip", "public `IP` announced in ICE candidates instead of the host's (1:1 NAT; repeatable or comma list)", func(c *config) *stringList { return &c.PublicIP }),
		boolean("no-ice-tcp", "no_ice_tcp", "turn off ICE-TCP on the media port", func(c *config) *bool { return &c.NoICETCP }),
		list("allow-candidate", "allow_candidates", "`CIDR` range of client ICE candidates checked although the candidate policy refuses it (loopback, link-local, this node's addresses; repeatable or comma list)", func(c *config) *stringList { return &c.AllowCandidates }),
		boolean("refuse-private-candidates", "refuse_private_candidates", "do not check client ICE candidates in private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7); allowed by default for LAN calls", func(c *config) *bool { return &c.RefusePrivateCandidates }),
		{name: "ice-server", field: "ice_servers", usage: "STUN or TURN `URL` handed to clients (repeatable or comma list; TURN credentials only in the config file)", kind: kindList,
			get: func(c *config) string {
				var urls []string
				for _, s := range c.ICEServers {
					urls = append(urls, s.URLs...)
				}
				return strings.Join(urls, ",")
			},
			set: func(c *config, v []string) error {
				c.ICEServers = nil
				for _, u := range v {
					c.ICEServers = append(c.ICEServers, iceServerConfig{URLs: stringList{u}})
				}
				return nil
			}},
		list("turn-url", "turn.urls", "TURN relay `URL` (turn: or turns:) handed to clients with fresh REST credentials (repeatable or comma list; needs --turn-secret)", func(c *config) *stringList { return &c.TURN.URLs }),
		str("turn-secret", "turn.secret", "TURN REST shared `secret` (cmd/turn --auth-secret, coturn static-auth-secret); prefer the environment variable", func(c *config) *string { return &c.TURN.Secret }),
		duration("turn-credential-ttl", "turn.credential_ttl", "lifetime of the TURN credentials in each joined", func(c *config) *time.Duration { return &c.TURN.CredentialTTL }),
		boolean("audio-level-extension", "media.audio_level_extension", "negotiate the RFC 6464 audio-level header extension: a metadata leak, browsers then tell the node who speaks in every audio packet", func(c *config) *bool { return &c.Media.AudioLevelExtension }),
		integer("packet-cache-size", "packet_cache_size", "packets kept per published track to answer NACKs", func(c *config) *int { return &c.PacketCacheSize }),
		duration("keyframe-request-interval", "keyframe_request_interval", "least time between keyframe requests to one publisher for one track", func(c *config) *time.Duration { return &c.KeyframeRequestInterval }),
		duration("ice-disconnected-timeout", "ice_disconnected_timeout", "ICE silence before a connection counts as disconnected", func(c *config) *time.Duration { return &c.ICEDisconnectedTimeout }),
		duration("ice-failed-timeout", "ice_failed_timeout", "ICE silence before a connection counts as failed", func(c *config) *time.Duration { return &c.ICEFailedTimeout }),

		str("api-key", "api_key", "API `key` (JWT kid) tokens are signed with; replaces the file's keys (needs --api-secret)", func(c *config) *string { return &c.APIKey }),
		str("api-secret", "api_secret", "API `secret` for --api-key, at least 16 bytes (prefer the environment variable)", func(c *config) *string { return &c.APISecret }),
		duration("token-leeway", "token_leeway", "clock skew tolerated on token exp/nbf (at most 60s)", func(c *config) *time.Duration { return &c.TokenLeeway }),
		duration("join-timeout", "join_timeout", "time a new WebSocket has to send join", func(c *config) *time.Duration { return &c.JoinTimeout }),
		duration("ping-interval", "ping_interval", "interval of server pings on idle connections", func(c *config) *time.Duration { return &c.PingInterval }),

		integer("max-message-bytes", "limits.max_message_bytes", "largest signaling message accepted", func(c *config) *int { return &c.Limits.MaxMessageBytes }),
		float("messages-per-second", "limits.messages_per_second", "sustained signaling messages per second per connection", func(c *config) *float64 { return &c.Limits.MessagesPerSecond }),
		integer("message-burst", "limits.message_burst", "signaling messages a connection may send at once above the rate", func(c *config) *int { return &c.Limits.MessageBurst }),
		integer("participants-per-room", "limits.participants_per_room", "participants in one room", func(c *config) *int { return &c.Limits.ParticipantsPerRoom }),
		integer("rooms-per-node", "limits.rooms_per_node", "rooms on this node", func(c *config) *int { return &c.Limits.RoomsPerNode }),
		integer("tracks-per-participant", "limits.tracks_per_participant", "tracks one participant may publish at once", func(c *config) *int { return &c.Limits.TracksPerParticipant }),
		float("joins-per-second-per-ip", "limits.joins_per_second_per_ip", "sustained joins per second from one client IP address", func(c *config) *float64 { return &c.Limits.JoinsPerSecondPerIP }),
		integer("join-burst", "limits.join_burst", "joins one IP address may make at once above the rate", func(c *config) *int { return &c.Limits.JoinBurst }),
		float("relay-bytes-per-second", "limits.relay_bytes_per_second", "sustained bytes of relay data per second one participant may send (counted once, whatever the recipients)", func(c *config) *float64 { return &c.Limits.RelayBytesPerSecond }),
		integer("relay-burst-bytes", "limits.relay_burst_bytes", "relay bytes a participant may send at once above the rate (at least --max-message-bytes)", func(c *config) *int { return &c.Limits.RelayBurstBytes }),
		integer("relay-queue-bytes", "limits.relay_queue_bytes", "relay bytes waiting for one receiver, shared fairly among senders; a sender over its share is refused, never the receiver dropped", func(c *config) *int { return &c.Limits.RelayQueueBytes }),
		integer("relay-queue-messages", "limits.relay_queue_messages", "relay messages waiting for one receiver, shared likewise", func(c *config) *int { return &c.Limits.RelayQueueMessages }),
		integer("unjoined-per-address", "limits.unjoined_per_address", "WebSockets from one client address (IPv6: its /64) that have not joined yet; more are refused with 429", func(c *config) *int { return &c.Limits.UnjoinedPerAddress }),
		integer("unjoined-connections", "limits.unjoined_connections", "WebSockets on the node that have not joined yet; more are refused with 503", func(c *config) *int { return &c.Limits.UnjoinedConnections }),
		integer("audio-max-bitrate", "limits.audio_max_bitrate", "bits per second one published audio track may send (RTP header and payload; 0: no limit); the excess is dropped", func(c *config) *int { return &c.Limits.AudioMaxBitrate }),
		integer("audio-max-packet-rate", "limits.audio_max_packet_rate", "packets per second one published audio track may send (0: no limit)", func(c *config) *int { return &c.Limits.AudioMaxPacketRate }),
		integer("video-max-bitrate", "limits.video_max_bitrate", "bits per second one published video track may send (0: no limit)", func(c *config) *int { return &c.Limits.VideoMaxBitrate }),
		integer("video-max-packet-rate", "limits.video_max_packet_rate", "packets per second one published video track may send (0: no limit)", func(c *config) *int { return &c.Limits.VideoMaxPacketRate }),
		integer("rate-limit-end-factor", "limits.rate_limit_end_factor", "a track sending this many times a limit for --rate-limit-end-after ends its publisher (media_rate_exceeded)", func(c *config) *int { return &c.Limits.RateLimitEndFactor }),
		duration("rate-limit-end-after", "limits.rate_limit_end_after", "how long a track may stay over --rate-limit-end-factor times a limit", func(c *config) *time.Duration { return &c.Limits.RateLimitEndAfter }),

		duration("drain-grace", "drain_grace", "on SIGTERM/SIGINT, time /readyz fails while calls go on, so load balancers stop sending callers before any is ended; 0 ends calls at once", func(c *config) *time.Duration { return &c.DrainGrace }),
		duration("drain-timeout", "drain_timeout", "after the grace, bound on ending calls (going_away) and stopping", func(c *config) *time.Duration { return &c.DrainTimeout }),
		str("log-level", "log_level", "log `level`: debug, info, warn or error", func(c *config) *string { return &c.LogLevel }),
		str("log-format", "log_format", "log `format`: text or json (logs go to stderr)", func(c *config) *string { return &c.LogFormat }),
	}
}

// settingValue is the flag.Value of a setting: it only collects the
// strings given, so they can be applied after the file and the
// environment (flags win over both).
type settingValue struct {
	s    setting
	def  string
	vals []string
}

func (v *settingValue) String() string {
	if v == nil {
		return ""
	}
	return v.def
}

func (v *settingValue) Set(x string) error {
	switch v.s.kind {
	case kindList:
		v.vals = append(v.vals, splitList(x)...)
	default:
		v.vals = []string{x}
	}
	return nil
}

// IsBoolFlag lets --no-ice-tcp stand alone, without =true.
func (v *settingValue) IsBoolFlag() bool { return v.s.kind == kindBool }

// splitList splits a comma list, dropping empty items and spaces.
func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

// applyEnv overrides c with every setting's environment variable that is
// set and not empty.
func applyEnv(c *config, env func(string) string) error {
	var errs []error
	for _, s := range settings() {
		raw := env(s.env())
		if raw == "" {
			continue
		}
		vals := []string{raw}
		if s.kind == kindList {
			vals = splitList(raw)
		}
		if err := s.set(c, vals); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.env(), err))
		}
	}
	return errors.Join(errs...)
}

// applyFlags overrides c with the flags given on the command line.
func applyFlags(c *config, given []*settingValue) error {
	var errs []error
	for _, v := range given {
		if len(v.vals) == 0 {
			continue
		}
		if err := v.s.set(c, v.vals); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", v.s.name, err))
		}
	}
	return errors.Join(errs...)
}
