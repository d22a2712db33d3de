package main

import (
	"time"

	conf "github.com/sotto-rtc/sotto/internal/config"
)

// settings lists every setting a flag or environment variable can change.
func settings() []conf.Setting[config] {
	return append(append(serverSettings(), mediaSettings()...), limitSettings()...)
}

// serverSettings are the HTTP server's, the API keys', the drain's and the logs'.
func serverSettings() []conf.Setting[config] {
	type cfg = config
	return []conf.Setting[config]{
		conf.String("http", "http", "HTTP listen `address`: signaling, /healthz, /readyz, /metrics", func(c *cfg) *string { return &c.HTTP }),
		conf.String("tls-cert", "tls_cert", "PEM certificate `file`; with --tls-key serves HTTPS", func(c *cfg) *string { return &c.TLSCert }),
		conf.String("tls-key", "tls_key", "PEM private key `file` for --tls-cert", func(c *cfg) *string { return &c.TLSKey }),
		conf.List("allowed-origin", "allowed_origins", "origin `pattern` of another web page allowed to open the signaling WebSocket: its host[:port] as in the page's address (app.example.com, *.example.com, localhost:5173), or scheme://host[:port] to require the scheme (repeatable or comma list)", func(c *cfg) *conf.Strings { return &c.AllowedOrigins }),
		conf.String("api-key", "api_key", "API `key` (JWT kid) tokens are signed with; replaces the file's keys (needs --api-secret)", func(c *cfg) *string { return &c.APIKey }),
		conf.String("api-secret", "api_secret", "API `secret` for --api-key, at least 16 bytes (prefer the environment variable)", func(c *cfg) *string { return &c.APISecret }),
		conf.Duration("token-leeway", "token_leeway", "clock skew tolerated on token exp/nbf (at most 60s)", func(c *cfg) *time.Duration { return &c.TokenLeeway }),
		conf.Duration("join-timeout", "join_timeout", "time a new WebSocket has to send join", func(c *cfg) *time.Duration { return &c.JoinTimeout }),
		conf.Duration("ping-interval", "ping_interval", "interval of server pings on idle connections", func(c *cfg) *time.Duration { return &c.PingInterval }),
		conf.Duration("drain-grace", "drain_grace", "on SIGTERM/SIGINT, time /readyz fails while calls go on, so load balancers stop sending callers before any is ended; 0 ends calls at once", func(c *cfg) *time.Duration { return &c.DrainGrace }),
		conf.Duration("drain-timeout", "drain_timeout", "after the grace, bound on ending calls (going_away) and stopping", func(c *cfg) *time.Duration { return &c.DrainTimeout }),
		conf.String("log-level", "log_level", "log `level`: debug, info, warn or error", func(c *cfg) *string { return &c.LogLevel }),
		conf.String("log-format", "log_format", "log `format`: text or json (logs go to stderr)", func(c *cfg) *string { return &c.LogFormat }),
	}
}

// mediaSettings are the media plane's, ICE's and TURN's.
func mediaSettings() []conf.Setting[config] {
	type cfg = config
	return []conf.Setting[config]{
		conf.String("media-ip", "media_ip", "`IP` address the media port binds to", func(c *cfg) *string { return &c.MediaIP }),
		conf.Int("media-port", "media_port", "media port: UDP (ICE mux) and TCP (ICE-TCP) of the same number; 0 picks a free one", func(c *cfg) *int { return &c.MediaPort }),
		conf.List("public-ip", "public_ip", "public `IP` announced in ICE candidates instead of the host's (1:1 NAT; repeatable or comma list)", func(c *cfg) *conf.Strings { return &c.PublicIP }),
		conf.Bool("no-ice-tcp", "no_ice_tcp", "turn off ICE-TCP on the media port", func(c *cfg) *bool { return &c.NoICETCP }),
		conf.List("allow-candidate", "allow_candidates", "`CIDR` range of client ICE candidates checked although the candidate policy refuses it (loopback, link-local, this node's addresses; repeatable or comma list)", func(c *cfg) *conf.Strings { return &c.AllowCandidates }),
		conf.Bool("refuse-private-candidates", "refuse_private_candidates", "do not check client ICE candidates in private ranges (10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7); allowed by default for LAN calls", func(c *cfg) *bool { return &c.RefusePrivateCandidates }),
		conf.ListFunc("ice-server", "ice_servers", "STUN or TURN `URL` handed to clients (repeatable or comma list; TURN credentials only in the config file)",
			func(c *cfg) []string {
				var urls []string
				for _, s := range c.ICEServers {
					urls = append(urls, s.URLs...)
				}
				return urls
			},
			func(c *cfg, v []string) {
				c.ICEServers = nil
				for _, u := range v {
					c.ICEServers = append(c.ICEServers, iceServerConfig{URLs: conf.Strings{u}})
				}
			}),
		conf.List("turn-url", "turn.urls", "TURN relay `URL` (turn: or turns:) handed to clients with fresh REST credentials (repeatable or comma list; needs --turn-secret)", func(c *cfg) *conf.Strings { return &c.TURN.URLs }),
		conf.String("turn-secret", "turn.secret", "TURN REST shared `secret` (cmd/turn --auth-secret, coturn static-auth-secret); prefer the environment variable", func(c *cfg) *string { return &c.TURN.Secret }),
		conf.Duration("turn-credential-ttl", "turn.credential_ttl", "lifetime of the TURN credentials in each joined", func(c *cfg) *time.Duration { return &c.TURN.CredentialTTL }),
		conf.Bool("audio-level-extension", "media.audio_level_extension", "negotiate the RFC 6464 audio-level header extension: a metadata leak, browsers then tell the node who speaks in every audio packet", func(c *cfg) *bool { return &c.Media.AudioLevelExtension }),
		conf.Int("packet-cache-size", "packet_cache_size", "packets kept per published track to answer NACKs", func(c *cfg) *int { return &c.PacketCacheSize }),
		conf.Duration("keyframe-request-interval", "keyframe_request_interval", "least time between keyframe requests to one publisher for one track", func(c *cfg) *time.Duration { return &c.KeyframeRequestInterval }),
		conf.Duration("ice-disconnected-timeout", "ice_disconnected_timeout", "ICE silence before a connection counts as disconnected", func(c *cfg) *time.Duration { return &c.ICEDisconnectedTimeout }),
		conf.Duration("ice-failed-timeout", "ice_failed_timeout", "ICE silence before a connection counts as failed", func(c *cfg) *time.Duration { return &c.ICEFailedTimeout }),
	}
}

// limitSettings bound what one client, room, track or address may ask for.
func limitSettings() []conf.Setting[config] {
	type cfg = config
	return []conf.Setting[config]{
		conf.Int("max-message-bytes", "limits.max_message_bytes", "largest signaling message accepted", func(c *cfg) *int { return &c.Limits.MaxMessageBytes }),
		conf.Float("messages-per-second", "limits.messages_per_second", "sustained signaling messages per second per connection", func(c *cfg) *float64 { return &c.Limits.MessagesPerSecond }),
		conf.Int("message-burst", "limits.message_burst", "signaling messages a connection may send at once above the rate", func(c *cfg) *int { return &c.Limits.MessageBurst }),
		conf.Int("participants-per-room", "limits.participants_per_room", "participants in one room", func(c *cfg) *int { return &c.Limits.ParticipantsPerRoom }),
		conf.Int("rooms-per-node", "limits.rooms_per_node", "rooms on this node", func(c *cfg) *int { return &c.Limits.RoomsPerNode }),
		conf.Int("tracks-per-participant", "limits.tracks_per_participant", "tracks one participant may publish at once", func(c *cfg) *int { return &c.Limits.TracksPerParticipant }),
		conf.Float("joins-per-second-per-ip", "limits.joins_per_second_per_ip", "sustained joins per second from one client IP address", func(c *cfg) *float64 { return &c.Limits.JoinsPerSecondPerIP }),
		conf.Int("join-burst", "limits.join_burst", "joins one IP address may make at once above the rate", func(c *cfg) *int { return &c.Limits.JoinBurst }),
		conf.Float("relay-bytes-per-second", "limits.relay_bytes_per_second", "sustained bytes of relay data per second one participant may send (counted once, whatever the recipients)", func(c *cfg) *float64 { return &c.Limits.RelayBytesPerSecond }),
		conf.Int("relay-burst-bytes", "limits.relay_burst_bytes", "relay bytes a participant may send at once above the rate (at least --max-message-bytes)", func(c *cfg) *int { return &c.Limits.RelayBurstBytes }),
		conf.Int("relay-queue-bytes", "limits.relay_queue_bytes", "relay bytes waiting for one receiver, shared fairly among senders; a sender over its share is refused, never the receiver dropped", func(c *cfg) *int { return &c.Limits.RelayQueueBytes }),
		conf.Int("relay-queue-messages", "limits.relay_queue_messages", "relay messages waiting for one receiver, shared likewise", func(c *cfg) *int { return &c.Limits.RelayQueueMessages }),
		conf.Int("unjoined-per-address", "limits.unjoined_per_address", "WebSockets from one client address (IPv6: its /64) that have not joined yet; more are refused with 429", func(c *cfg) *int { return &c.Limits.UnjoinedPerAddress }),
		conf.Int("unjoined-connections", "limits.unjoined_connections", "WebSockets on the node that have not joined yet; more are refused with 503", func(c *cfg) *int { return &c.Limits.UnjoinedConnections }),
		conf.Int("audio-max-bitrate", "limits.audio_max_bitrate", "bits per second one published audio track may send (RTP header and payload; 0: no limit); the excess is dropped", func(c *cfg) *int { return &c.Limits.AudioMaxBitrate }),
		conf.Int("audio-max-packet-rate", "limits.audio_max_packet_rate", "packets per second one published audio track may send (0: no limit)", func(c *cfg) *int { return &c.Limits.AudioMaxPacketRate }),
		conf.Int("video-max-bitrate", "limits.video_max_bitrate", "bits per second one published video track may send (0: no limit)", func(c *cfg) *int { return &c.Limits.VideoMaxBitrate }),
		conf.Int("video-max-packet-rate", "limits.video_max_packet_rate", "packets per second one published video track may send (0: no limit)", func(c *cfg) *int { return &c.Limits.VideoMaxPacketRate }),
		conf.Int("rate-limit-end-factor", "limits.rate_limit_end_factor", "a track sending this many times a limit for --rate-limit-end-after ends its publisher (media_rate_exceeded)", func(c *cfg) *int { return &c.Limits.RateLimitEndFactor }),
		conf.Duration("rate-limit-end-after", "limits.rate_limit_end_after", "how long a track may stay over --rate-limit-end-factor times a limit", func(c *cfg) *time.Duration { return &c.Limits.RateLimitEndAfter }),
	}
}
