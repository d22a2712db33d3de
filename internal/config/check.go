package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"time"
)

// Placeholder starts the secrets of the examples in deploy/, refused so
// that an example is never deployed as is.
const Placeholder = "CHANGE-ME"

// FieldError is a problem with one setting, named by its YAML path.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Problems collects a validation's findings, to report all in one run.
type Problems struct{ errs []error }

// Add records a problem with field; format may wrap an error with %w.
func (p *Problems) Add(field, format string, args ...any) {
	p.errs = append(p.errs, &FieldError{Field: field, Err: fmt.Errorf(format, args...)})
}

func (p *Problems) AddErr(field string, err error) {
	if err != nil {
		p.errs = append(p.errs, &FieldError{Field: field, Err: err})
	}
}

func (p *Problems) Err() error { return errors.Join(p.errs...) }

func (p *Problems) AtLeast(field string, got, least int) {
	if got < least {
		p.Add(field, "must be at least %d, got %d", least, got)
	}
}

// PositiveRate also refuses NaN.
func (p *Problems) PositiveRate(field string, got float64) {
	if !(got > 0) {
		p.Add(field, "must be greater than 0, got %v", got)
	}
}

func (p *Problems) PositiveDuration(field string, got time.Duration) {
	if got <= 0 {
		p.Add(field, "must be a positive duration, got %v", got)
	}
}

// Logging checks the log_level and log_format settings.
func (p *Problems) Logging(level, format string) {
	if _, err := ParseLevel(level); err != nil {
		p.AddErr("log_level", err)
	}
	if format != "text" && format != "json" {
		p.Add("log_format", "must be text or json, got %q", format)
	}
}

// CertPair checks tls_cert and tls_key: both or neither, and loadable.
func (p *Problems) CertPair(cert, key string) {
	switch {
	case cert != "" && key == "":
		p.Add("tls_key", "must be set when tls_cert is")
	case cert == "" && key != "":
		p.Add("tls_cert", "must be set when tls_key is")
	case cert != "":
		if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
			p.AddErr("tls_cert", err)
		}
	}
}

// CheckSecret refuses a placeholder and a secret shorter than least.
func CheckSecret(s string, least int) error {
	switch {
	case IsPlaceholder(s):
		return errors.New("is the example's placeholder; generate a secret with `openssl rand -hex 32`")
	case len(s) < least:
		return fmt.Errorf("must be at least %d bytes, got %d (use 32 random bytes, e.g. `openssl rand -hex 32`)", least, len(s))
	}
	return nil
}

func IsPlaceholder(s string) bool {
	return strings.HasPrefix(strings.ToUpper(s), Placeholder)
}

// CheckHostPort wants a numeric port 0-65535: a named one in a config is
// more likely a mistake than a wish.
func CheckHostPort(addr string) error {
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

func ParseLevel(s string) (slog.Level, error) {
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

// NewLogger is a logger on w at a level Logging has accepted.
func NewLogger(level, format string, w io.Writer) *slog.Logger {
	l, _ := ParseLevel(level)
	opts := &slog.HandlerOptions{Level: l}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
