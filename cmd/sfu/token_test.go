package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/signaling"
)

func TestTokenCommand(t *testing.T) {
	configFile := writeFile(t, "sfu.yaml", "keys:\n  - key: first\n    secret: "+testSecret+"\n  - key: second\n    secret: "+strings.Repeat("s", 32)+"\n")
	for _, tc := range []struct {
		name          string
		args          []string
		env           map[string]string
		wantKey       string
		wantPublish   bool
		wantSubscribe bool
		wantTTL       time.Duration
	}{
		{
			name:    "flags",
			args:    []string{"--api-key", "k1", "--api-secret", testSecret, "--room", "r1", "--identity", "alice", "--ttl", "2m"},
			wantKey: "k1", wantPublish: true, wantSubscribe: true, wantTTL: 2 * time.Minute,
		},
		{
			name:    "default ttl",
			args:    []string{"--api-key", "k1", "--api-secret", testSecret, "--room", "r1", "--identity", "alice"},
			wantKey: "k1", wantPublish: true, wantSubscribe: true, wantTTL: defaultTokenTTL,
		},
		{
			name:    "no publish",
			args:    []string{"--api-key", "k1", "--api-secret", testSecret, "--room", "r1", "--identity", "alice", "--no-publish"},
			wantKey: "k1", wantSubscribe: true, wantTTL: defaultTokenTTL,
		},
		{
			name:    "no subscribe",
			args:    []string{"--api-key", "k1", "--api-secret", testSecret, "--room", "r1", "--identity", "alice", "--no-subscribe"},
			wantKey: "k1", wantPublish: true, wantTTL: defaultTokenTTL,
		},
		{
			name:    "key from environment",
			args:    []string{"--room", "r1", "--identity", "alice"},
			env:     map[string]string{"SOTTO_API_KEY": "envkey", "SOTTO_API_SECRET": testSecret},
			wantKey: "envkey", wantPublish: true, wantSubscribe: true, wantTTL: defaultTokenTTL,
		},
		{
			name:    "first key of the config file",
			args:    []string{"--config", configFile, "--room", "r1", "--identity", "alice"},
			wantKey: "first", wantPublish: true, wantSubscribe: true, wantTTL: defaultTokenTTL,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			before := time.Now()
			if code := run(context.Background(), append([]string{"token"}, tc.args...), envMap(tc.env), &stdout, &stderr); code != exitOK {
				t.Fatalf("exit %d; stderr:\n%s", code, stderr.String())
			}
			out := stdout.String()
			if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
				t.Fatalf("stdout = %q, want one line", out)
			}
			secret := testSecret
			v, err := signaling.NewVerifier(map[string]string{tc.wantKey: secret}, 0)
			if err != nil {
				t.Fatal(err)
			}
			claims, err := v.Verify(strings.TrimSpace(out))
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if claims.Subject != "alice" || claims.Room != "r1" {
				t.Errorf("sub %q room %q, want alice r1", claims.Subject, claims.Room)
			}
			if claims.CanPublish != tc.wantPublish || claims.CanSubscribe != tc.wantSubscribe {
				t.Errorf("can_publish %v can_subscribe %v, want %v %v", claims.CanPublish, claims.CanSubscribe, tc.wantPublish, tc.wantSubscribe)
			}
			exp := claims.ExpiresAt.Time
			if lo, hi := before.Add(tc.wantTTL).Add(-time.Second), time.Now().Add(tc.wantTTL).Add(time.Second); exp.Before(lo) || exp.After(hi) {
				t.Errorf("exp %v, want about now + %v", exp, tc.wantTTL)
			}
		})
	}
}

func TestTokenCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want []string
	}{
		{"nothing", nil, nil, []string{"missing required flags", "--api-key", "--api-secret", "--room", "--identity"}},
		{"no room or identity", []string{"--api-key", "k", "--api-secret", testSecret}, nil, []string{"missing required flags: --room, --identity"}},
		{"no secret", []string{"--api-key", "k", "--room", "r", "--identity", "i"}, nil, []string{"missing required flags: --api-secret"}},
		{"short secret", []string{"--api-key", "k", "--api-secret", "short", "--room", "r", "--identity", "i"}, nil, []string{"--api-secret: must be at least 16 bytes"}},
		{"bad ttl", []string{"--api-key", "k", "--api-secret", testSecret, "--room", "r", "--identity", "i", "--ttl", "-1h"}, nil, []string{"--ttl must be positive"}},
		{"unknown flag", []string{"--rooom", "r"}, nil, []string{"flag provided but not defined: -rooom"}},
		{"stray argument", []string{"--room", "r", "extra"}, nil, []string{`unexpected argument "extra"`}},
		{"config without keys", []string{"--config", writeFile(t, "empty.yaml", "media_port: 7781\n"), "--room", "r", "--identity", "i"}, nil, []string{"has no keys: entry"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), append([]string{"token"}, tc.args...), envMap(tc.env), &stdout, &stderr)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr = %q, want it to contain %q", stderr.String(), w)
				}
			}
		})
	}
}
