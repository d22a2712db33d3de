package main

import (
	"time"

	conf "github.com/sotto-rtc/sotto/internal/config"
	"github.com/sotto-rtc/sotto/media/sfu"
	"github.com/sotto-rtc/sotto/relay"
	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// Bounds of what an operator may reasonably ask for; the packages below
// apply whatever they are given.
const (
	maxKeyIDBytes       = 128
	minMaxMessageBytes  = 4 << 10 // an SDP offer with a few tracks is several KiB
	maxMaxMessageBytes  = 1 << 20
	minPacketCacheSize  = 16
	maxPacketCacheSize  = 1 << 16
	defaultHTTPAddr     = "127.0.0.1:7780"
	defaultMediaPort    = 7781
	defaultDrainTimeout = 10 * time.Second
	// A few health-check periods of a typical load balancer.
	defaultDrainGrace = 10 * time.Second
	// Outlives a long call: the relay refuses a Refresh signed with an
	// expired credential, and the call would lose its relayed path.
	defaultTURNCredentialTTL = 12 * time.Hour
	maxTURNCredentialTTL     = 7 * 24 * time.Hour
)

// config is everything the sfu command can be told; errors name the YAML
// paths. deploy/sfu.yaml documents every key.
type config struct {
	HTTP           string       `yaml:"http"`
	TLSCert        string       `yaml:"tls_cert"`
	TLSKey         string       `yaml:"tls_key"`
	AllowedOrigins conf.Strings `yaml:"allowed_origins"`

	MediaIP                 string            `yaml:"media_ip"`
	MediaPort               int               `yaml:"media_port"`
	PublicIP                conf.Strings      `yaml:"public_ip"`
	NoICETCP                bool              `yaml:"no_ice_tcp"`
	AllowCandidates         conf.Strings      `yaml:"allow_candidates"`
	RefusePrivateCandidates bool              `yaml:"refuse_private_candidates"`
	ICEServers              []iceServerConfig `yaml:"ice_servers"`
	TURN                    turnConfig        `yaml:"turn"`
	Media                   mediaConfig       `yaml:"media"`
	PacketCacheSize         int               `yaml:"packet_cache_size"`
	KeyframeRequestInterval time.Duration     `yaml:"keyframe_request_interval"`
	ICEDisconnectedTimeout  time.Duration     `yaml:"ice_disconnected_timeout"`
	ICEFailedTimeout        time.Duration     `yaml:"ice_failed_timeout"`

	Keys []keyConfig `yaml:"keys"`
	// APIKey and APISecret come from flags or environment only; when set
	// they replace Keys.
	APIKey       string        `yaml:"-"`
	APISecret    string        `yaml:"-"`
	TokenLeeway  time.Duration `yaml:"token_leeway"`
	JoinTimeout  time.Duration `yaml:"join_timeout"`
	PingInterval time.Duration `yaml:"ping_interval"`
	Limits       limitsConfig  `yaml:"limits"`

	DrainGrace   time.Duration `yaml:"drain_grace"`
	DrainTimeout time.Duration `yaml:"drain_timeout"`
	LogLevel     string        `yaml:"log_level"`
	LogFormat    string        `yaml:"log_format"`
}

type mediaConfig struct {
	// The RFC 6464 extension has browsers stamp every audio packet with
	// the speaker's level in clear: off by default.
	AudioLevelExtension bool `yaml:"audio_level_extension"`
}

// keyConfig is one API key (a token's kid) and its secret.
type keyConfig struct {
	Key    string `yaml:"key"`
	Secret string `yaml:"secret"`
}

// iceServerConfig is a STUN or TURN server clients are told about.
type iceServerConfig struct {
	URLs       conf.Strings `yaml:"urls"`
	Username   string       `yaml:"username"`
	Credential string       `yaml:"credential"`
}

// turnConfig names a TURN relay that accepts TURN REST credentials, and
// may run one in this process (Listen and below, as cmd/turn's flags).
type turnConfig struct {
	URLs          conf.Strings  `yaml:"urls"`
	Secret        string        `yaml:"secret"`
	CredentialTTL time.Duration `yaml:"credential_ttl"`

	Listen     conf.Strings `yaml:"listen"`
	Realm      string       `yaml:"realm"`
	RelayIP    string       `yaml:"relay_ip"`
	PublicIP   string       `yaml:"public_ip"`
	MinPort    int          `yaml:"min_port"`
	MaxPort    int          `yaml:"max_port"`
	AllowPeers conf.Strings `yaml:"allow_peers"`
}

// limitsConfig mirrors signaling's limits and the SFU's per-track rates
// (docs/PROTOCOL.md, Limits); a rate of 0 is no limit.
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

	AudioMaxBitrate    int           `yaml:"audio_max_bitrate"`
	AudioMaxPacketRate int           `yaml:"audio_max_packet_rate"`
	VideoMaxBitrate    int           `yaml:"video_max_bitrate"`
	VideoMaxPacketRate int           `yaml:"video_max_packet_rate"`
	RateLimitEndFactor int           `yaml:"rate_limit_end_factor"`
	RateLimitEndAfter  time.Duration `yaml:"rate_limit_end_after"`
}

var command = conf.Command[config]{
	Name:        "sfu",
	Header:      usageHeader,
	EnvPrefix:   "SOTTO_",
	ConfigEnv:   "SOTTO_CONFIG",
	ConfigUsage: "YAML config file",
	ArgsNote:    " (flags only; subcommands: token, help)",
	Hint:        "sfu: 'sfu -h' lists every flag",
	Defaults:    defaultConfig,
	Settings:    settings,
	Validate:    (*config).validate,
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
		// Spelt out so that -h and deploy/sfu.yaml show real numbers.
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

// effectiveKeys are the API keys tokens are verified with: the pair from
// flags or environment when given, else the file's keys.
func (c *config) effectiveKeys() []keyConfig {
	if c.APIKey != "" || c.APISecret != "" {
		return []keyConfig{{Key: c.APIKey, Secret: c.APISecret}}
	}
	return c.Keys
}

// relaySettings is the in-process relay of the turn: section, with
// cmd/turn's default quotas and the HTTP server's certificate for tls://.
func (c *config) relaySettings() relay.Settings {
	t := c.TURN
	return relay.Settings{
		Realm: t.Realm, Secrets: []string{t.Secret}, Listen: t.Listen,
		TLSCert: c.TLSCert, TLSKey: c.TLSKey, RelayIP: t.RelayIP, PublicIP: t.PublicIP,
		MinPort: t.MinPort, MaxPort: t.MaxPort, AllowPeers: t.AllowPeers,
		MaxAllocationsPerUser: relay.DefaultMaxAllocationsPerUser,
		MaxAllocations:        relay.DefaultMaxAllocations,
		BandwidthKbps:         relay.DefaultBandwidth * 8 / 1000,
		MaxLifetime:           relay.DefaultMaxLifetime,
	}
}
