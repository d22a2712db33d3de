package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

type testConfig struct {
	Name   string        `yaml:"name"`
	N      int           `yaml:"n"`
	On     bool          `yaml:"on"`
	Wait   time.Duration `yaml:"wait"`
	Items  Strings       `yaml:"items"`
	Secret string        `yaml:"secret"`
}

func testCommand() *Command[testConfig] {
	type c = testConfig
	return &Command[testConfig]{
		Name: "t", Header: "Usage of t.\n", EnvPrefix: "T_", ConfigEnv: "T_CONFIG", ConfigUsage: "YAML config `file`",
		Defaults: func() testConfig { return testConfig{Name: "def", N: 1, Wait: time.Second} },
		Settings: func() []Setting[testConfig] {
			return []Setting[testConfig]{
				String("name", "name", "a `name`", func(c *c) *string { return &c.Name }),
				Int("n", "n", "a count", func(c *c) *int { return &c.N }),
				Bool("on", "on", "turn it on", func(c *c) *bool { return &c.On }),
				Duration("wait", "wait", "a wait", func(c *c) *time.Duration { return &c.Wait }),
				List("item", "items", "an `item` (repeatable)", func(c *c) *Strings { return &c.Items }),
				String("secret", "secret", "a secret", func(c *c) *string { return &c.Secret }).WithEnv("T_KEY").HideDefault(),
			}
		},
		Validate: func(c *testConfig) error {
			var p Problems
			p.AtLeast("n", c.N, 0)
			return p.Err()
		},
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPrecedence(t *testing.T) {
	file := writeTemp(t, "name: file\nn: 2\nitems: one\nwait: 3s\n")
	env := map[string]string{"T_CONFIG": file, "T_N": "3", "T_ITEM": "a, b", "T_KEY": "s"}
	got, check, err := testCommand().Parse([]string{"--n", "4", "--on", "--check-config"},
		func(k string) string { return env[k] }, &bytes.Buffer{}, &bytes.Buffer{})
	if err != nil || !check {
		t.Fatalf("Parse: check %v, err %v", check, err)
	}
	want := testConfig{Name: "file", N: 4, On: true, Wait: 3 * time.Second, Items: Strings{"a", "b"}, Secret: "s"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestEveryProblemNamesItsSource(t *testing.T) {
	file := writeTemp(t, "nam: x\nn: lots\n")
	env := map[string]string{"T_WAIT": "soon"}
	_, _, err := testCommand().Parse([]string{"--config", file, "--n", "-1"},
		func(k string) string { return env[k] }, &bytes.Buffer{}, &bytes.Buffer{})
	for _, want := range []string{"line 1: nam: unknown key", "line 2: n: cannot unmarshal", `T_WAIT: "soon" is not a duration`, "n: must be at least 0, got -1"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v lacks %q", err, want)
		}
	}
}

func TestHelpAndUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	_, _, err := testCommand().Parse([]string{"-h"}, func(string) string { return "" }, &stdout, &stderr)
	if !errors.Is(err, flag.ErrHelp) || stderr.Len() != 0 {
		t.Fatalf("-h: err %v, stderr %q", err, stderr.String())
	}
	for _, want := range []string{"Usage of t.\n", "  --n n\n", "  --on\n", "  --wait duration\n", "(default 1s)", "  --item item\n", "[T_KEY]", "  --config file\n"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("-h lacks %q:\n%s", want, stdout.String())
		}
	}
	stdout.Reset()
	_, _, err = testCommand().Parse([]string{"--nope"}, func(string) string { return "" }, &stdout, &stderr)
	if !errors.Is(err, ErrUsage) || stdout.Len() != 0 || !strings.Contains(stderr.String(), "--name name") {
		t.Errorf("--nope: err %v, stdout %q, stderr %q", err, stdout.String(), stderr.String())
	}
}
