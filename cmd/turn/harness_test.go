package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sotto-rtc/sotto/internal/testneeds"
)

const testSecret = "cmd-turn-test-secret-0123456789"

// testCert and testKey are PEM files of a certificate for 127.0.0.1 and
// localhost, signed by a CA that TestMain makes the process's only trust
// anchor (SSL_CERT_FILE): pion's ICE agent verifies a turns: server
// against the system roots and offers no way to pass others, so this is
// how a relay-only call over TLS can be tested without turning
// verification off.
var testCert, testKey string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sotto-turn-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ca, err := writeTestPKI(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "test PKI:", err)
		os.Exit(1)
	}
	os.Setenv("SSL_CERT_FILE", ca)
	os.Setenv("SSL_CERT_DIR", dir)
	testCert, testKey = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// writeTestPKI writes ca.pem, cert.pem and key.pem to dir and returns the
// CA's path.
func writeTestPKI(dir string) (string, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sotto test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return "", err
	}
	files := map[string]*pem.Block{
		"ca.pem":   {Type: "CERTIFICATE", Bytes: caDER},
		"cert.pem": {Type: "CERTIFICATE", Bytes: der},
		"key.pem":  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(b), 0o600); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "ca.pem"), nil
}

// runningRelay is cmd/turn run in-process, as main runs it.
type runningRelay struct {
	// listen maps "udp", "tcp" and "tls" to the bound address.
	listen  map[string]string
	metrics string // the /metrics URL, when on
	stderr  *lockedBuffer
}

// startCmd runs the turn command with args (plus loopback defaults the
// test need not repeat) until the test ends, and waits until it serves.
func startCmd(t *testing.T, args ...string) *runningRelay {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	outR, outW := io.Pipe()
	r := &runningRelay{listen: map[string]string{}, stderr: &lockedBuffer{}}
	full := append([]string{"--relay-ip", "127.0.0.1", "--min-port", "0", "--max-port", "0", "--metrics", "127.0.0.1:0"}, args...)
	done := make(chan int, 1)
	go func() {
		code := run(ctx, full, func(string) string { return "" }, outW, r.stderr)
		_ = outW.CloseWithError(fmt.Errorf("exited %d", code))
		done <- code
	}()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != exitOK {
			t.Errorf("turn exited %d after shutdown; stderr:\n%s", code, r.stderr)
		}
	})
	sc := bufio.NewScanner(outR)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 3 && f[0] == "listening":
			r.listen[f[1]] = f[2]
		case len(f) == 2 && f[0] == "metrics":
			r.metrics = f[1]
		case len(f) == 1 && f[0] == "ready":
			go func() { _, _ = io.Copy(io.Discard, outR) }()
			return r
		}
	}
	t.Fatalf("turn did not start: %v; stderr:\n%s", sc.Err(), r.stderr)
	return nil
}

// lockedBuffer is a strings.Builder safe for the relay's logger and the
// test to share.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// requireProgram returns the path of a program a test needs. Missing, it
// fails the test naming the Debian package, unless the user opted out of
// the TURN interop tests (SOTTO_TEST_SKIP=turn).
func requireProgram(t *testing.T, name, pkg string) string {
	t.Helper()
	return testneeds.Program(t, testneeds.TURN, pkg, name)
}

// udpEcho is a peer that sends every datagram back: what
// turnutils_peer does, in process so its port is known.
func udpEcho(t *testing.T) *net.UDPAddr {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			_, _ = c.WriteTo(buf[:n], from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr)
}
