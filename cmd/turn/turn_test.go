package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	conf "github.com/sotto-rtc/sotto/internal/config"
)

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", "realm: example.org\nauth_secrets: ["+testSecret+"]\nallow_peers: [10.0.0.5/32]\nlisten: [\"127.0.0.1:3478\", \"tls://127.0.0.1:5349\"]\ntls_cert: "+testCert+"\ntls_key: "+testKey+"\n")
	unknown := write("unknown.yaml", "realm: x\nauth_secret: "+testSecret+"\n")
	tests := []struct {
		name      string
		args      []string
		env       map[string]string
		wantCode  int
		wantField string // must appear in stderr
	}{
		{name: "secret flag", args: []string{"--auth-secret", testSecret}, wantCode: exitOK},
		{name: "secret from SOTTO_TURN_SECRET", env: map[string]string{"SOTTO_TURN_SECRET": testSecret}, wantCode: exitOK},
		{name: "two secrets", args: []string{"--auth-secret", testSecret, "--auth-secret", testSecret + "-next"}, wantCode: exitOK},
		{name: "config file", args: []string{"--config", good}, wantCode: exitOK},
		{name: "no credentials", wantCode: exitUsage, wantField: "auth_secrets"},
		{name: "short secret", args: []string{"--auth-secret", "short"}, wantCode: exitUsage, wantField: "auth_secrets[0]"},
		{name: "placeholder secret", args: []string{"--auth-secret", "CHANGE-ME-0123456789abcdef"}, wantCode: exitUsage, wantField: "auth_secrets[0]"},
		{name: "bad listen", args: []string{"--auth-secret", testSecret, "--listen", "quic://1.2.3.4:1"}, wantCode: exitUsage, wantField: "listen[0]"},
		{name: "tls without cert", args: []string{"--auth-secret", testSecret, "--listen", "tls://127.0.0.1:5349"}, wantCode: exitUsage, wantField: "tls_cert"},
		{name: "bad allow-peer", args: []string{"--auth-secret", testSecret, "--allow-peer", "10.0.0.300/8"}, wantCode: exitUsage, wantField: "allow_peers[0]"},
		{name: "bad port range", args: []string{"--auth-secret", testSecret, "--min-port", "60000", "--max-port", "50000"}, wantCode: exitUsage, wantField: "max_port"},
		{name: "bad public ip", args: []string{"--auth-secret", testSecret, "--public-ip", "nope"}, wantCode: exitUsage, wantField: "public_ip"},
		{name: "negative quota", args: []string{"--auth-secret", testSecret, "--max-allocations", "-1"}, wantCode: exitUsage, wantField: "max_allocations"},
		{name: "bad metrics", args: []string{"--auth-secret", testSecret, "--metrics", "nowhere"}, wantCode: exitUsage, wantField: "metrics"},
		{name: "unknown yaml key", args: []string{"--config", unknown}, wantCode: exitUsage, wantField: "line 2: auth_secret: unknown key"},
		{name: "not a duration", args: []string{"--auth-secret", testSecret, "--max-lifetime", "forever"}, wantCode: exitUsage, wantField: "--max-lifetime"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			env := func(k string) string { return tt.env[k] }
			code := run(context.Background(), append([]string{"--check-config"}, tt.args...), env, &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tt.wantCode, stderr.String())
			}
			if tt.wantCode == exitOK && strings.TrimSpace(stdout.String()) != "config OK" {
				t.Errorf("stdout %q, want config OK", stdout.String())
			}
			if tt.wantField != "" && !strings.Contains(stderr.String(), tt.wantField) {
				t.Errorf("stderr does not name %q:\n%s", tt.wantField, stderr.String())
			}
		})
	}
}

// TestTurnutilsUclient has coturn's own test client allocate on cmd/turn
// with REST credentials computed from the shared secret (-W), and relay
// datagrams to a peer and back, over UDP, TCP and TLS. A relay with the
// default policy must refuse the same loopback peer.
func TestTurnutilsUclient(t *testing.T) {
	uclient := requireProgram(t, "turnutils_uclient", "coturn")
	r := startCmd(t, "--auth-secret", testSecret, "--allow-peer", "127.0.0.0/8",
		"--listen", "127.0.0.1:0", "--listen", "tls://127.0.0.1:0", "--tls-cert", testCert, "--tls-key", testKey)
	peer := udpEcho(t)
	const messages = 10
	tests := []struct {
		name   string
		listen string
		flags  []string
	}{
		{"udp", r.listen["udp"], nil},
		{"tcp", r.listen["tcp"], []string{"-t"}},
		{"tls", r.listen["tls"], []string{"-t", "-S"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := runUclient(t, uclient, tt.listen, peer.Port, messages, tt.flags...)
			if err != nil {
				t.Fatalf("turnutils_uclient: %v\n%s", err, out)
			}
			m := regexp.MustCompile(`start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)`).FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no totals in output:\n%s", out)
			}
			sent, _ := strconv.Atoi(m[1])
			recv, _ := strconv.Atoi(m[2])
			if sent == 0 || recv != sent {
				t.Fatalf("sent %d, received %d back through the relay:\n%s", sent, recv, out)
			}
			if !strings.Contains(out, "Total lost packets 0 ") {
				t.Errorf("packets lost:\n%s", out)
			}
		})
	}

	t.Run("default policy refuses loopback", func(t *testing.T) {
		closed := startCmd(t, "--auth-secret", testSecret, "--listen", "127.0.0.1:0")
		out, err := runUclient(t, uclient, closed.listen["udp"], peer.Port, messages)
		if err == nil && !strings.Contains(out, "tot_recv_msgs=0") {
			t.Fatalf("uclient relayed to a loopback peer through a relay with the default policy:\n%s", out)
		}
		if !strings.Contains(closed.stderr.String(), "peer refused") {
			t.Errorf("no refusal logged:\n%s", closed.stderr)
		}
	})
}

// runUclient runs turnutils_uclient against the relay at listen with REST
// credentials from the test secret, relaying to 127.0.0.1:peerPort.
func runUclient(t *testing.T, uclient, listen string, peerPort, messages int, flags ...string) (string, error) {
	t.Helper()
	return runUclientSecret(t, uclient, testSecret, listen, peerPort, messages, flags...)
}

// runUclientSecret is runUclient with the REST secret given.
func runUclientSecret(t *testing.T, uclient, secret, listen string, peerPort, messages int, flags ...string) (string, error) {
	t.Helper()
	host, port, _ := strings.Cut(listen, ":")
	args := append([]string{"-W", secret, "-u", "uclient", "-e", "127.0.0.1", "-r", strconv.Itoa(peerPort),
		"-p", port, "-n", strconv.Itoa(messages), "-z", "5", "-c"}, flags...)
	args = append(args, host)
	// A deadline only bounds a hung program; the run takes well under a
	// second.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, uclient, args...).CombinedOutput()
	return string(out), err
}

// TestMetricsAndShutdown checks /metrics shows the relay's series, and
// that a cancelled context (SIGTERM) ends the command with status 0 (the
// harness checks the status).
func TestMetricsAndShutdown(t *testing.T) {
	r := startCmd(t, "--auth-secret", testSecret, "--listen", "udp://127.0.0.1:0")
	resp, err := http.Get(r.metrics)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		"sotto_turn_allocations 0", "sotto_turn_allocations_total 0",
		`sotto_turn_relayed_bytes_total{direction="to_peer"}`, `sotto_turn_relayed_packets_total{direction="from_peer"}`,
		`sotto_turn_refusals_total{reason="peer_denied"}`, `sotto_turn_refusals_total{reason="expired"}`,
		`sotto_turn_dropped_packets_total{reason="bandwidth"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if _, ok := r.listen["tcp"]; ok {
		t.Errorf("udp:// listen also opened TCP: %v", r.listen)
	}
}

// TestExampleConfig keeps deploy/turn.yaml loadable and valid: it decodes
// with every key known, is refused while its placeholder secrets stand,
// validates once they are replaced, and mentions every setting.
func TestExampleConfig(t *testing.T) {
	const example = "../../deploy/turn.yaml"
	c := defaultConfig()
	if err := conf.LoadFile(example, &c); err != nil {
		t.Fatalf("%s: %v", example, err)
	}
	err := c.validate()
	if err == nil {
		t.Fatalf("%s validates with its placeholder secrets; it should not", example)
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		if !strings.Contains(line, "placeholder") && !strings.Contains(line, "password") && !strings.Contains(line, "tls_cert") {
			t.Errorf("%s: unexpected problem: %s", example, line)
		}
	}
	c.AuthSecrets = conf.Strings{testSecret}
	for u := range c.Users {
		c.Users[u] = "a-real-password"
	}
	c.TLSCert, c.TLSKey = testCert, testKey
	if err := c.validate(); err != nil {
		t.Errorf("%s does not validate with real secrets:\n%v", example, err)
	}
	raw, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range settings() {
		if !strings.Contains(string(raw), s.Key+":") {
			t.Errorf("%s does not mention %s", example, s.Key)
		}
	}
}
