package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	conf "github.com/sotto-rtc/sotto/internal/config"
	"github.com/sotto-rtc/sotto/signaling"
	"github.com/sotto-rtc/sotto/signaling/wire"
)

// envMap is an environment for run and command.Parse.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes content to a file in a fresh temporary directory and
// returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const testSecret = "0123456789abcdef0123456789abcdef"

func TestDefaultConfig(t *testing.T) {
	c := defaultConfig()
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"http", c.HTTP, "127.0.0.1:7780"},
		{"media_ip", c.MediaIP, "0.0.0.0"},
		{"media_port", c.MediaPort, 7781},
		{"no_ice_tcp", c.NoICETCP, false},
		{"media.audio_level_extension", c.Media.AudioLevelExtension, false},
		{"public_ip", len(c.PublicIP), 0},
		{"keys", len(c.Keys), 0},
		{"drain_timeout", c.DrainTimeout, 10 * time.Second},
		{"token_leeway", c.TokenLeeway, wire.DefaultTokenLeeway},
		{"join_timeout", c.JoinTimeout, signaling.DefaultJoinTimeout},
		{"ping_interval", c.PingInterval, signaling.DefaultPingInterval},
		{"limits.max_message_bytes", c.Limits.MaxMessageBytes, signaling.DefaultMaxMessageBytes},
		{"limits.messages_per_second", c.Limits.MessagesPerSecond, float64(signaling.DefaultMessagesPerSecond)},
		{"limits.message_burst", c.Limits.MessageBurst, signaling.DefaultMessageBurst},
		{"limits.participants_per_room", c.Limits.ParticipantsPerRoom, signaling.DefaultParticipantsPerRoom},
		{"limits.rooms_per_node", c.Limits.RoomsPerNode, signaling.DefaultRoomsPerNode},
		{"limits.tracks_per_participant", c.Limits.TracksPerParticipant, signaling.DefaultTracksPerParticipant},
		{"limits.joins_per_second_per_ip", c.Limits.JoinsPerSecondPerIP, float64(signaling.DefaultJoinsPerSecondPerIP)},
		{"limits.join_burst", c.Limits.JoinBurst, signaling.DefaultJoinBurst},
		{"log_level", c.LogLevel, "info"},
		{"log_format", c.LogFormat, "text"},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("default %s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if err := c.validate(); err != nil {
		t.Errorf("defaults do not validate: %v", err)
	}

	// No flags, no environment, no file: exactly the defaults.
	got, check, err := command.Parse(nil, envMap(nil), &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil || check {
		t.Fatalf("command.Parse(nil) = check %v, err %v", check, err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("command.Parse(nil) =\n%+v\nwant the defaults\n%+v", got, c)
	}
}

func TestPrecedence(t *testing.T) {
	file := writeFile(t, "sfu.yaml", `
http: 127.0.0.1:1001
media_port: 1001
public_ip: 198.51.100.1
limits:
  participants_per_room: 11
keys:
  - key: file-key
    secret: `+testSecret+`
`)
	for _, tc := range []struct {
		name  string
		args  []string
		env   map[string]string
		check func(t *testing.T, c config)
	}{{
		name: "file over defaults, unset keys keep defaults",
		args: []string{"--config", file},
		check: func(t *testing.T, c config) {
			want := defaultConfig()
			want.HTTP, want.MediaPort, want.PublicIP = "127.0.0.1:1001", 1001, conf.Strings{"198.51.100.1"}
			want.Limits.ParticipantsPerRoom = 11
			want.Keys = []keyConfig{{"file-key", testSecret}}
			if !reflect.DeepEqual(c, want) {
				t.Errorf("got\n%+v\nwant\n%+v", c, want)
			}
		},
	}, {
		name: "file named by SOTTO_CONFIG",
		env:  map[string]string{"SOTTO_CONFIG": file},
		check: func(t *testing.T, c config) {
			if c.MediaPort != 1001 {
				t.Errorf("media_port = %d, want 1001 from the file", c.MediaPort)
			}
		},
	}, {
		name: "environment over file",
		args: []string{"--config", file},
		env: map[string]string{
			"SOTTO_HTTP": "127.0.0.1:1002", "SOTTO_MEDIA_PORT": "1002",
			"SOTTO_PUBLIC_IP": "198.51.100.2, 198.51.100.3", "SOTTO_PARTICIPANTS_PER_ROOM": "12",
			"SOTTO_NO_ICE_TCP": "true", "SOTTO_DRAIN_TIMEOUT": "3s", "SOTTO_MESSAGES_PER_SECOND": "7.5",
		},
		check: func(t *testing.T, c config) {
			if c.HTTP != "127.0.0.1:1002" || c.MediaPort != 1002 || c.Limits.ParticipantsPerRoom != 12 ||
				!c.NoICETCP || c.DrainTimeout != 3*time.Second || c.Limits.MessagesPerSecond != 7.5 {
				t.Errorf("environment did not win: %+v", c)
			}
			if want := (conf.Strings{"198.51.100.2", "198.51.100.3"}); !reflect.DeepEqual(c.PublicIP, want) {
				t.Errorf("public_ip = %v, want %v", c.PublicIP, want)
			}
		},
	}, {
		name: "flags over environment over file",
		args: []string{"--config", file, "--http", "127.0.0.1:1003", "--media-port", "1003",
			"--public-ip", "198.51.100.4", "--public-ip", "198.51.100.5,198.51.100.6",
			"--participants-per-room", "13", "--no-ice-tcp=false"},
		env: map[string]string{"SOTTO_HTTP": "127.0.0.1:1002", "SOTTO_MEDIA_PORT": "1002",
			"SOTTO_PUBLIC_IP": "198.51.100.2", "SOTTO_PARTICIPANTS_PER_ROOM": "12", "SOTTO_NO_ICE_TCP": "true"},
		check: func(t *testing.T, c config) {
			if c.HTTP != "127.0.0.1:1003" || c.MediaPort != 1003 || c.Limits.ParticipantsPerRoom != 13 || c.NoICETCP {
				t.Errorf("flags did not win: %+v", c)
			}
			if want := (conf.Strings{"198.51.100.4", "198.51.100.5", "198.51.100.6"}); !reflect.DeepEqual(c.PublicIP, want) {
				t.Errorf("public_ip = %v, want %v", c.PublicIP, want)
			}
		},
	}, {
		name: "api key from the environment replaces the file's keys",
		args: []string{"--config", file},
		env:  map[string]string{"SOTTO_API_KEY": "env-key", "SOTTO_API_SECRET": testSecret},
		check: func(t *testing.T, c config) {
			if want := []keyConfig{{"env-key", testSecret}}; !reflect.DeepEqual(c.effectiveKeys(), want) {
				t.Errorf("keys = %v, want %v", c.effectiveKeys(), want)
			}
		},
	}, {
		name: "api key flag with secret from the environment",
		args: []string{"--api-key", "flag-key"},
		env:  map[string]string{"SOTTO_API_KEY": "env-key", "SOTTO_API_SECRET": testSecret},
		check: func(t *testing.T, c config) {
			if want := []keyConfig{{"flag-key", testSecret}}; !reflect.DeepEqual(c.effectiveKeys(), want) {
				t.Errorf("keys = %v, want %v", c.effectiveKeys(), want)
			}
		},
	}, {
		name: "ice servers from flags",
		args: []string{"--ice-server", "stun:stun.example.org:3478", "--ice-server", "stuns:stun.example.org"},
		check: func(t *testing.T, c config) {
			want := []iceServerConfig{{URLs: conf.Strings{"stun:stun.example.org:3478"}}, {URLs: conf.Strings{"stuns:stun.example.org"}}}
			if !reflect.DeepEqual(c.ICEServers, want) {
				t.Errorf("ice_servers = %+v, want %+v", c.ICEServers, want)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c, _, err := command.Parse(tc.args, envMap(tc.env), &bytes.Buffer{}, &bytes.Buffer{})
			if err != nil {
				t.Fatalf("parseServe: %v", err)
			}
			tc.check(t, c)
		})
	}
}

func TestValidateNamesField(t *testing.T) {
	for _, tc := range []struct {
		mutate func(c *config)
		want   string
	}{
		{func(c *config) { c.HTTP = "foo" }, `http: invalid address "foo": `},
		{func(c *config) { c.HTTP = "127.0.0.1:http" }, `http: invalid address "127.0.0.1:http": port "http" is not a number`},
		{func(c *config) { c.HTTP = "127.0.0.1:70000" }, `http: invalid address "127.0.0.1:70000"`},
		{func(c *config) { c.TLSCert = "cert.pem" }, "tls_key: must be set when tls_cert is"},
		{func(c *config) { c.TLSKey = "key.pem" }, "tls_cert: must be set when tls_key is"},
		{func(c *config) { c.TLSCert, c.TLSKey = "/nonexistent/cert.pem", "/nonexistent/key.pem" }, "tls_cert: open /nonexistent/cert.pem"},
		{func(c *config) { c.AllowedOrigins = conf.Strings{"ok.example.com", "[bad"} }, `allowed_origins[1]: "[bad" is not a valid pattern`},
		{func(c *config) { c.AllowedOrigins = conf.Strings{"https://app.example/call"} }, `allowed_origins[0]: "https://app.example/call" is not an origin`},
		{func(c *config) { c.AllowedOrigins = conf.Strings{"ftp://app.example"} }, `allowed_origins[0]: "ftp://app.example": a web page's origin is http:// or https://`},
		{func(c *config) { c.AllowedOrigins = conf.Strings{"/"} }, `allowed_origins[0]: must not be empty`},
		{func(c *config) { c.MediaIP = "localhost" }, `media_ip: "localhost" is not an IP address`},
		{func(c *config) { c.MediaPort = 65536 }, "media_port: must be 1-65535"},
		{func(c *config) { c.MediaPort = -1 }, "media_port: must be 1-65535"},
		{func(c *config) { c.PublicIP = conf.Strings{"x"} }, `public_ip: "x" is not an IP address`},
		{func(c *config) { c.PublicIP = conf.Strings{"127.0.0.1"} }, `public_ip: "127.0.0.1" cannot be reached`},
		{func(c *config) { c.ICEServers = []iceServerConfig{{}} }, "ice_servers[0].urls: must list at least one URL"},
		{func(c *config) { c.ICEServers = []iceServerConfig{{URLs: conf.Strings{"stun:a", "http://b"}}} }, `ice_servers[0].urls[1]: "http://b" is not a stun:`},
		{func(c *config) { c.ICEServers = []iceServerConfig{{URLs: conf.Strings{"turn:a:3478"}}} }, "ice_servers[0]: TURN URLs need username and credential"},
		{func(c *config) { c.PacketCacheSize = 1 }, "packet_cache_size: must be at least 16, got 1"},
		{func(c *config) { c.PacketCacheSize = 1 << 20 }, "packet_cache_size: must be at most 65536"},
		{func(c *config) { c.KeyframeRequestInterval = 0 }, "keyframe_request_interval: must be a positive duration"},
		{func(c *config) { c.ICEDisconnectedTimeout = -time.Second }, "ice_disconnected_timeout: must be a positive duration"},
		{func(c *config) { c.ICEFailedTimeout = 0 }, "ice_failed_timeout: must be a positive duration"},
		{func(c *config) { c.Keys = []keyConfig{{"", testSecret}} }, "keys[0].key: must not be empty"},
		{func(c *config) { c.Keys = []keyConfig{{"a b", testSecret}} }, `keys[0].key: "a b" must not contain spaces`},
		{func(c *config) { c.Keys = []keyConfig{{strings.Repeat("k", 129), testSecret}} }, "keys[0].key: must be at most 128 bytes"},
		{func(c *config) { c.Keys = []keyConfig{{"k1", testSecret}, {"k2", "short"}} }, "keys[1].secret: must be at least 16 bytes, got 5"},
		{func(c *config) { c.Keys = []keyConfig{{"k1", testSecret}, {"k1", testSecret}} }, `keys[1].key: "k1" is already keys[0].key`},
		{func(c *config) { c.Keys = []keyConfig{{"k1", "CHANGE-ME-to-openssl-rand-hex-32"}} }, "keys[0].secret: is the example's placeholder"},
		{func(c *config) { c.APIKey = "k" }, "api_secret: must be set when api_key is"},
		{func(c *config) { c.APISecret = testSecret }, "api_key: must be set when api_secret is"},
		{func(c *config) { c.APIKey, c.APISecret = "k", "short" }, "api_secret: must be at least 16 bytes"},
		{func(c *config) { c.TokenLeeway = 0 }, "token_leeway: must be more than 0s and at most 1m0s, got 0s"},
		{func(c *config) { c.TokenLeeway = 2 * time.Minute }, "token_leeway: must be more than 0s and at most 1m0s, got 2m0s"},
		{func(c *config) { c.JoinTimeout = 0 }, "join_timeout: must be a positive duration"},
		{func(c *config) { c.PingInterval = 0 }, "ping_interval: must be a positive duration"},
		{func(c *config) { c.Limits.MaxMessageBytes = 100 }, "limits.max_message_bytes: must be at least 4096, got 100"},
		{func(c *config) { c.Limits.MaxMessageBytes = 2 << 20 }, "limits.max_message_bytes: must be at most 1048576"},
		{func(c *config) { c.Limits.MessagesPerSecond = 0 }, "limits.messages_per_second: must be greater than 0, got 0"},
		{func(c *config) { c.Limits.MessageBurst = 0 }, "limits.message_burst: must be at least 1, got 0"},
		{func(c *config) { c.Limits.ParticipantsPerRoom = 0 }, "limits.participants_per_room: must be at least 1, got 0"},
		{func(c *config) { c.Limits.RoomsPerNode = -3 }, "limits.rooms_per_node: must be at least 1, got -3"},
		{func(c *config) { c.Limits.TracksPerParticipant = 0 }, "limits.tracks_per_participant: must be at least 1, got 0"},
		{func(c *config) { c.Limits.JoinsPerSecondPerIP = -1 }, "limits.joins_per_second_per_ip: must be greater than 0, got -1"},
		{func(c *config) { c.Limits.JoinBurst = 0 }, "limits.join_burst: must be at least 1, got 0"},
		{func(c *config) { c.DrainTimeout = 0 }, "drain_timeout: must be a positive duration"},
		{func(c *config) { c.LogLevel = "loud" }, `log_level: must be debug, info, warn or error, got "loud"`},
		{func(c *config) { c.LogFormat = "xml" }, `log_format: must be text or json, got "xml"`},
	} {
		t.Run(tc.want, func(t *testing.T) {
			c := defaultConfig()
			tc.mutate(&c)
			err := c.validate()
			if err == nil {
				t.Fatalf("validate() = nil, want an error containing %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate() = %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := defaultConfig()
	c.MediaPort = -1
	c.Limits.JoinBurst = 0
	err := c.validate()
	if err == nil {
		t.Fatal("validate() = nil")
	}
	for _, field := range []string{"media_port: ", "limits.join_burst: "} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("validate() = %q, missing %q", err, field)
		}
	}
}

func TestConfigFileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown key", "medai_port: 1\n", `line 1: medai_port: unknown key`},
		{"unknown nested key", "limits:\n  participants_per_rom: 3\n", `line 2: limits.participants_per_rom: unknown key`},
		{"unknown flow key", "limits: {rooms: 3}\n", `line 1: limits.rooms: unknown key`},
		{"unknown key in keys", "keys:\n  - key: a\n    secert: b\n", `line 3: keys[0].secert: unknown key`},
		{"wrong type", "media_port: lots\n", "line 1: media_port: cannot unmarshal"},
		{"integer duration", "drain_timeout: 10\n", "line 1: drain_timeout: "},
		{"broken yaml", "media_port: [1\n", "sfu.yaml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig()
			err := conf.LoadFile(writeFile(t, "sfu.yaml", tc.yaml), &c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("conf.LoadFile() = %v, want an error containing %q", err, tc.want)
			}
		})
	}

	t.Run("empty file changes nothing", func(t *testing.T) {
		c := defaultConfig()
		if err := conf.LoadFile(writeFile(t, "sfu.yaml", "# nothing\n"), &c); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c, defaultConfig()) {
			t.Errorf("empty file changed the config: %+v", c)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		c := defaultConfig()
		if err := conf.LoadFile(filepath.Join(t.TempDir(), "nope.yaml"), &c); err == nil {
			t.Error("conf.LoadFile(missing) = nil")
		}
	})
	t.Run("scalar or list", func(t *testing.T) {
		c := defaultConfig()
		yaml := "public_ip: 198.51.100.1\nallowed_origins: [a.example.com, b.example.com]\nice_servers:\n  - urls: stun:stun.example.org\n"
		if err := conf.LoadFile(writeFile(t, "sfu.yaml", yaml), &c); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(c.PublicIP, conf.Strings{"198.51.100.1"}) ||
			!reflect.DeepEqual(c.AllowedOrigins, conf.Strings{"a.example.com", "b.example.com"}) ||
			!reflect.DeepEqual(c.ICEServers[0].URLs, conf.Strings{"stun:stun.example.org"}) {
			t.Errorf("got public_ip %v, allowed_origins %v, ice_servers %+v", c.PublicIP, c.AllowedOrigins, c.ICEServers)
		}
	})
}

func TestCheckConfig(t *testing.T) {
	good := writeFile(t, "good.yaml", "keys:\n  - key: k1\n    secret: "+testSecret+"\n")
	bad := writeFile(t, "bad.yaml", "limits:\n  participants_per_room: 0\n")
	unknown := writeFile(t, "unknown.yaml", "medai_port: 7781\n")
	for _, tc := range []struct {
		name       string
		args       []string
		env        map[string]string
		wantCode   int
		wantStdout string // contained in stdout; "": stdout is empty
		wantStderr string // contained in stderr
	}{
		{"defaults", []string{"--check-config"}, nil, exitOK, "config OK\n", "development key"},
		{"good file", []string{"--check-config", "--config", good}, nil, exitOK, "config OK\n", ""},
		{"bad file", []string{"--check-config", "--config", bad}, nil, exitUsage, "", "limits.participants_per_room: must be at least 1, got 0"},
		{"unknown key", []string{"--check-config", "--config", unknown}, nil, exitUsage, "", `line 1: medai_port: unknown key`},
		{"missing file", []string{"--check-config", "--config", "/nonexistent/sfu.yaml"}, nil, exitUsage, "", "/nonexistent/sfu.yaml"},
		{"bad flag value", []string{"--check-config", "--media-port", "abc"}, nil, exitUsage, "", `--media-port: "abc" is not an integer`},
		{"flag out of range", []string{"--check-config", "--media-port", "70000"}, nil, exitUsage, "", "media_port: must be 1-65535"},
		{"unknown flag", []string{"--check-config", "--media-prot", "1"}, nil, exitUsage, "", "flag provided but not defined: -media-prot"},
		{"stray argument", []string{"--check-config", "serve"}, nil, exitUsage, "", `unexpected argument "serve"`},
		{"bad env value", []string{"--check-config"}, map[string]string{"SOTTO_DRAIN_TIMEOUT": "soon"}, exitUsage, "", `SOTTO_DRAIN_TIMEOUT: "soon" is not a duration`},
		{"bad env setting", []string{"--check-config"}, map[string]string{"SOTTO_PUBLIC_IP": "x"}, exitUsage, "", `public_ip: "x" is not an IP address`},
		{"flag fixes env", []string{"--check-config", "--public-ip", "198.51.100.1"}, map[string]string{"SOTTO_PUBLIC_IP": "x"}, exitOK, "config OK\n", ""},
		{"-h", []string{"-h"}, nil, exitOK, "--media-port n\n", ""},
		{"--help", []string{"--help"}, nil, exitOK, "--media-port n\n", ""},
		{"help", []string{"help"}, nil, exitOK, "--media-port n\n", ""},
		{"token -h", []string{"token", "-h"}, nil, exitOK, "--identity string\n", ""},
		{"token --help", []string{"token", "--help"}, nil, exitOK, "--identity string\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, envMap(tc.env), &stdout, &stderr)
			if code != tc.wantCode {
				t.Errorf("exit %d, want %d; stderr:\n%s", code, tc.wantCode, stderr.String())
			}
			if got := stdout.String(); (tc.wantStdout == "" && got != "") || !strings.Contains(got, tc.wantStdout) {
				t.Errorf("stdout = %q, want %q", got, tc.wantStdout)
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr = %q, want it to contain %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

// TestCheckConfigReportsEverything: unknown keys, values of the wrong
// type, bad environment and flag values and invalid settings all show in
// one run, so an operator fixes a file in one pass.
func TestCheckConfigReportsEverything(t *testing.T) {
	file := writeFile(t, "sfu.yaml", strings.Join([]string{
		"medai_port: 7781",
		"limits:",
		"  participants_per_room: 0",
		"  rooms_per_nod: 5",
		"packet_cache_size: lots",
		"log_format: xml",
		"keys:",
		"  - key: k1",
		"    secert: x",
	}, "\n")+"\n")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"--check-config", "--config", file, "--media-port", "70000"},
		envMap(map[string]string{"SOTTO_DRAIN_TIMEOUT": "soon"}), &stdout, &stderr)
	if code != exitUsage {
		t.Errorf("exit %d, want %d", code, exitUsage)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing", stdout.String())
	}
	for _, want := range []string{
		"line 1: medai_port: unknown key",
		"line 4: limits.rooms_per_nod: unknown key",
		"line 5: packet_cache_size: cannot unmarshal",
		"line 9: keys[0].secert: unknown key",
		`SOTTO_DRAIN_TIMEOUT: "soon" is not a duration`,
		"media_port: must be 1-65535",
		"limits.participants_per_room: must be at least 1, got 0",
		`log_format: must be text or json, got "xml"`,
		"keys[0].secret: must be at least",
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	}
}

// TestSettingsTable keeps the table that drives flags and environment
// honest: unique names, a YAML path for each, and a round trip of each
// default through its own parser.
func TestSettingsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range settings() {
		if seen[s.Flag] {
			t.Errorf("setting %q listed twice", s.Flag)
		}
		seen[s.Flag] = true
		if s.Key == "" || s.Usage == "" {
			t.Errorf("setting %q lacks a field or usage", s.Flag)
		}
		if got, want := s.Env(command.EnvPrefix), "SOTTO_"+strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_")); got != want {
			t.Errorf("setting %q: env %q, want %q", s.Flag, got, want)
		}
		c := defaultConfig()
		def := s.Get(&c)
		if s.Kind == conf.Repeated && def == "" {
			continue
		}
		if s.Flag == "api-key" || s.Flag == "api-secret" || s.Flag == "tls-cert" || s.Flag == "tls-key" {
			continue // empty by default; setting "" is not a round trip
		}
		if err := s.Set(&c, []string{def}); err != nil {
			t.Errorf("setting %q: default %q does not parse: %v", s.Flag, def, err)
		}
		if !reflect.DeepEqual(c, defaultConfig()) {
			t.Errorf("setting %q: default %q does not round-trip", s.Flag, def)
		}
	}
}

// TestExampleConfig keeps deploy/sfu.yaml loadable and valid: it must
// decode with every key known, validate once its placeholder secrets are
// replaced, and refuse to validate while they are not.
func TestExampleConfig(t *testing.T) {
	const example = "../../deploy/sfu.yaml"
	c := defaultConfig()
	if err := conf.LoadFile(example, &c); err != nil {
		t.Fatalf("%s: %v", example, err)
	}
	if len(c.Keys) == 0 {
		t.Fatalf("%s has no keys: example", example)
	}
	err := c.validate()
	if err == nil {
		t.Fatalf("%s validates with its placeholder secrets; it should not", example)
	}
	for i, line := range strings.Split(err.Error(), "\n") {
		if !strings.Contains(line, "placeholder") {
			t.Errorf("%s: problem %d is not about a placeholder secret: %s", example, i, line)
		}
	}
	for i := range c.Keys {
		c.Keys[i].Secret = testSecret
	}
	for i := range c.ICEServers {
		if c.ICEServers[i].Credential != "" {
			c.ICEServers[i].Credential = "turn-password"
		}
	}
	if c.TURN.Secret != "" {
		c.TURN.Secret = testSecret
	}
	if err := c.validate(); err != nil {
		t.Errorf("%s does not validate with real secrets:\n%v", example, err)
	}

	// Every setting the table knows appears in the example, so the
	// example documents them all.
	raw, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings() {
		if s.Key == "api_key" || s.Key == "api_secret" {
			continue // environment and flags only; the file has keys:
		}
		key := s.Key[strings.LastIndex(s.Key, ".")+1:] + ":"
		if !bytes.Contains(raw, []byte(key)) {
			t.Errorf("%s does not mention %s", example, s.Key)
		}
	}
}
