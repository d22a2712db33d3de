package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path"
	"strings"
	"time"
	"unicode"

	conf "github.com/sotto-rtc/sotto/internal/config"
	"github.com/sotto-rtc/sotto/relay"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// validate returns every problem found, one per line, each naming its
// YAML path.
func (c *config) validate() error {
	var p conf.Problems
	c.validateHTTP(&p)
	c.validateMedia(&p)
	c.validateICEServers(&p)
	c.validateTURN(&p)
	c.validateKeys(&p)
	c.Limits.validate(&p)
	if c.DrainGrace < 0 {
		p.Add("drain_grace", "must not be negative, got %v", c.DrainGrace)
	}
	p.PositiveDuration("drain_timeout", c.DrainTimeout)
	p.Logging(c.LogLevel, c.LogFormat)
	return p.Err()
}

func (c *config) validateHTTP(p *conf.Problems) {
	if err := conf.CheckHostPort(c.HTTP); err != nil {
		p.Add("http", "invalid address %q: %w", c.HTTP, err)
	}
	p.CertPair(c.TLSCert, c.TLSKey)
	for i, o := range c.AllowedOrigins {
		p.AddErr(fmt.Sprintf("allowed_origins[%d]", i), checkOriginPattern(o))
	}
}

func (c *config) validateMedia(p *conf.Problems) {
	if net.ParseIP(c.MediaIP) == nil {
		p.Add("media_ip", "%q is not an IP address", c.MediaIP)
	}
	if c.MediaPort < 0 || c.MediaPort > 65535 {
		p.Add("media_port", "must be 1-65535 (or 0 for any free port), got %d", c.MediaPort)
	}
	for i, s := range c.AllowCandidates {
		if _, err := netip.ParsePrefix(s); err != nil {
			p.Add(fmt.Sprintf("allow_candidates[%d]", i), "%q is not a CIDR range (e.g. 10.0.0.0/8, 127.0.0.1/32)", s)
		}
	}
	for _, s := range c.PublicIP {
		switch ip := net.ParseIP(s); {
		case ip == nil:
			p.Add("public_ip", "%q is not an IP address", s)
		case ip.IsUnspecified() || ip.IsLoopback():
			p.Add("public_ip", "%q cannot be reached by clients on other machines", s)
		}
	}
	p.AtLeast("packet_cache_size", c.PacketCacheSize, minPacketCacheSize)
	if c.PacketCacheSize > maxPacketCacheSize {
		p.Add("packet_cache_size", "must be at most %d, got %d", maxPacketCacheSize, c.PacketCacheSize)
	}
	p.PositiveDuration("keyframe_request_interval", c.KeyframeRequestInterval)
	p.PositiveDuration("ice_disconnected_timeout", c.ICEDisconnectedTimeout)
	p.PositiveDuration("ice_failed_timeout", c.ICEFailedTimeout)
}

func (c *config) validateICEServers(p *conf.Problems) {
	for i, s := range c.ICEServers {
		field := fmt.Sprintf("ice_servers[%d]", i)
		if len(s.URLs) == 0 {
			p.Add(field+".urls", "must list at least one URL")
		}
		needsCredential := false
		for j, u := range s.URLs {
			scheme, _, _ := strings.Cut(u, ":")
			switch strings.ToLower(scheme) {
			case "stun", "stuns":
			case "turn", "turns":
				needsCredential = true
			default:
				p.Add(fmt.Sprintf("%s.urls[%d]", field, j), "%q is not a stun:, stuns:, turn: or turns: URL", u)
			}
		}
		if needsCredential && (s.Username == "" || s.Credential == "") {
			p.Add(field, "TURN URLs need username and credential (set them in the config file)")
		}
		if conf.IsPlaceholder(s.Credential) {
			p.Add(field+".credential", "is the example's placeholder")
		}
	}
}

func (c *config) validateTURN(p *conf.Problems) {
	t := c.TURN
	for i, u := range t.URLs {
		scheme, _, _ := strings.Cut(u, ":")
		if s := strings.ToLower(scheme); s != "turn" && s != "turns" {
			p.Add(fmt.Sprintf("turn.urls[%d]", i), "%q is not a turn: or turns: URL", u)
		}
	}
	if len(t.Listen) > 0 {
		rs := c.relaySettings()
		rs.Check(func(field, format string, args ...any) { p.Add("turn."+field, format, args...) })
		if rs.HasTLS() && c.TLSCert == "" {
			p.Add("turn.listen", "a tls:// listener uses tls_cert and tls_key, which are not set")
		}
		if t.Secret == "" {
			p.Add("turn.secret", "must be set when turn.listen is (--turn-secret or SOTTO_TURN_SECRET)")
		}
	}
	switch {
	case len(t.URLs) == 0 && len(t.Listen) > 0:
		// The relay's own addresses are handed out: a client cannot dial
		// a wildcard.
		for _, l := range t.Listen {
			ls, err := relay.ParseListen(l)
			if err != nil {
				continue
			}
			ap, err := netip.ParseAddrPort(ls[0].Address)
			if t.PublicIP == "" && (err != nil || ap.Addr().IsUnspecified()) {
				p.Add("turn.urls", "must be set (or turn.public_ip) when the relay listens on %q: clients cannot dial a wildcard address", l)
				break
			}
		}
	case len(t.URLs) > 0 && t.Secret == "":
		p.Add("turn.secret", "must be set when turn.urls are (--turn-secret or SOTTO_TURN_SECRET)")
	case len(t.URLs) == 0 && t.Secret != "":
		p.Add("turn.urls", "must be set when turn.secret is (--turn-url)")
	case t.Secret != "":
		p.AddErr("turn.secret", conf.CheckSecret(t.Secret, wire.MinSecretBytes))
	}
	if t.CredentialTTL <= 0 || t.CredentialTTL > maxTURNCredentialTTL {
		p.Add("turn.credential_ttl", "must be more than 0s and at most %v, got %v", maxTURNCredentialTTL, t.CredentialTTL)
	}
}

func (c *config) validateKeys(p *conf.Problems) {
	if c.APIKey != "" || c.APISecret != "" {
		switch {
		case c.APIKey == "":
			p.Add("api_key", "must be set when api_secret is (--api-key or SOTTO_API_KEY)")
		case c.APISecret == "":
			p.Add("api_secret", "must be set when api_key is (--api-secret or SOTTO_API_SECRET)")
		default:
			checkKey(p, "api_key", "api_secret", keyConfig{c.APIKey, c.APISecret})
		}
	} else {
		seen := make(map[string]int, len(c.Keys))
		for i, k := range c.Keys {
			prefix := fmt.Sprintf("keys[%d]", i)
			checkKey(p, prefix+".key", prefix+".secret", k)
			if j, dup := seen[k.Key]; dup && k.Key != "" {
				p.Add(prefix+".key", "%q is already keys[%d].key", k.Key, j)
			}
			seen[k.Key] = i
		}
	}
	// 0 is refused: the verifier reads it as "use the default", which is
	// not what an operator writing 0s means.
	if c.TokenLeeway <= 0 || c.TokenLeeway > wire.MaxTokenLeeway {
		p.Add("token_leeway", "must be more than 0s and at most %v, got %v", wire.MaxTokenLeeway, c.TokenLeeway)
	}
	p.PositiveDuration("join_timeout", c.JoinTimeout)
	p.PositiveDuration("ping_interval", c.PingInterval)
}

func (l *limitsConfig) validate(p *conf.Problems) {
	p.AtLeast("limits.max_message_bytes", l.MaxMessageBytes, minMaxMessageBytes)
	if l.MaxMessageBytes > maxMaxMessageBytes {
		p.Add("limits.max_message_bytes", "must be at most %d, got %d", maxMaxMessageBytes, l.MaxMessageBytes)
	}
	p.PositiveRate("limits.messages_per_second", l.MessagesPerSecond)
	p.AtLeast("limits.message_burst", l.MessageBurst, 1)
	p.AtLeast("limits.participants_per_room", l.ParticipantsPerRoom, 1)
	p.AtLeast("limits.rooms_per_node", l.RoomsPerNode, 1)
	p.AtLeast("limits.tracks_per_participant", l.TracksPerParticipant, 1)
	p.PositiveRate("limits.joins_per_second_per_ip", l.JoinsPerSecondPerIP)
	p.AtLeast("limits.join_burst", l.JoinBurst, 1)
	p.PositiveRate("limits.relay_bytes_per_second", l.RelayBytesPerSecond)
	if l.RelayBurstBytes < l.MaxMessageBytes {
		p.Add("limits.relay_burst_bytes", "must be at least limits.max_message_bytes (%d), or a full-size relay could never pass; got %d", l.MaxMessageBytes, l.RelayBurstBytes)
	}
	if l.RelayQueueBytes < 2*l.MaxMessageBytes {
		p.Add("limits.relay_queue_bytes", "must be at least twice limits.max_message_bytes (%d); got %d", 2*l.MaxMessageBytes, l.RelayQueueBytes)
	}
	p.AtLeast("limits.relay_queue_messages", l.RelayQueueMessages, 1)
	p.AtLeast("limits.unjoined_per_address", l.UnjoinedPerAddress, 1)
	p.AtLeast("limits.unjoined_connections", l.UnjoinedConnections, 1)
	p.AtLeast("limits.audio_max_bitrate", l.AudioMaxBitrate, 0)
	p.AtLeast("limits.audio_max_packet_rate", l.AudioMaxPacketRate, 0)
	p.AtLeast("limits.video_max_bitrate", l.VideoMaxBitrate, 0)
	p.AtLeast("limits.video_max_packet_rate", l.VideoMaxPacketRate, 0)
	p.AtLeast("limits.rate_limit_end_factor", l.RateLimitEndFactor, 2)
	if l.RateLimitEndAfter < time.Second {
		p.Add("limits.rate_limit_end_after", "must be at least 1s (whole seconds count), got %v", l.RateLimitEndAfter)
	}
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
	pat := strings.TrimSuffix(o, "/")
	if pat == "" {
		return errors.New("must not be empty")
	}
	if _, err := path.Match(pat, ""); err != nil {
		return fmt.Errorf("%q is not a valid pattern: %w", o, err)
	}
	host := pat
	if scheme, rest, ok := strings.Cut(pat, "://"); ok {
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

// checkKey validates one API key and its secret, naming the fields
// keyField and secretField.
func checkKey(p *conf.Problems, keyField, secretField string, k keyConfig) {
	switch {
	case k.Key == "":
		p.Add(keyField, "must not be empty")
	case len(k.Key) > maxKeyIDBytes:
		p.Add(keyField, "must be at most %d bytes, got %d", maxKeyIDBytes, len(k.Key))
	case strings.ContainsFunc(k.Key, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }):
		p.Add(keyField, "%q must not contain spaces or control characters", k.Key)
	}
	p.AddErr(secretField, conf.CheckSecret(k.Secret, wire.MinSecretBytes))
}
