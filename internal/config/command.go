package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// ErrUsage means the command line was refused and why has been printed.
var ErrUsage = errors.New("usage")

// Command is what a command can be told: its settings, their defaults
// and its own validation, and the texts of its -h.
type Command[T any] struct {
	Name        string // prefixes messages: "sfu: ..."
	Header      string // -h text before the flags
	EnvPrefix   string // of every derived variable: "SOTTO_"
	ConfigEnv   string // variable naming the YAML file when --config is not given
	ConfigUsage string // help of --config
	ArgsNote    string // after "unexpected argument X": what the command takes instead
	// Hint is printed on a refused command line; empty prints the usage.
	Hint     string
	Defaults func() T
	Settings func() []Setting[T]
	Validate func(*T) error
}

// value only collects the strings given, applied after file and environment.
type value[T any] struct {
	s    Setting[T]
	def  string
	vals []string
}

func (v *value[T]) String() string {
	if v == nil {
		return ""
	}
	return v.def
}

func (v *value[T]) Set(x string) error {
	if v.s.Kind == Repeated {
		v.vals = append(v.vals, splitList(x)...)
	} else {
		v.vals = []string{x}
	}
	return nil
}

func (v *value[T]) IsBoolFlag() bool { return v.s.Kind == Boolean }

func (v *value[T]) argName() string { return v.s.arg }

// Parse turns the command line and environment into a validated
// configuration, and reports whether --check-config was given: -h prints
// the usage on stdout (flag.ErrHelp), a refused command line is ErrUsage,
// and every bad setting is named in one error.
func (c *Command[T]) Parse(args []string, env func(string) string, stdout, stderr io.Writer) (T, bool, error) {
	fs := flag.NewFlagSet(c.Name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", c.ConfigUsage+" ["+c.ConfigEnv+"]")
	check := fs.Bool("check-config", false, `validate the configuration, print "config OK" and exit (status 2 if invalid)`)
	defaults := c.Defaults()
	var given []*value[T]
	for _, s := range c.Settings() {
		v := &value[T]{s: s}
		if !s.hideDefault {
			v.def = s.get(&defaults)
		}
		fs.Var(v, s.Flag, s.Usage+" ["+s.Env(c.EnvPrefix)+"]")
		given = append(given, v)
	}
	fs.Usage = func() {} // printed below, where help and error differ
	var zero T
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			PrintUsage(stdout, c.Header, fs)
			return zero, false, err
		}
		if c.Hint != "" {
			fmt.Fprintln(stderr, c.Hint)
		} else {
			PrintUsage(stderr, c.Header, fs)
		}
		return zero, false, ErrUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "%s: unexpected argument %q%s\n", c.Name, fs.Arg(0), c.ArgsNote)
		return zero, false, ErrUsage
	}
	path := *configPath
	if path == "" {
		path = env(c.ConfigEnv)
	}
	cfg, err := c.load(path, env, given)
	return cfg, *check, err
}

// load applies, over the defaults, the file, the environment and the
// flags given; only a file it cannot read or parse stops it early.
func (c *Command[T]) load(path string, env func(string) string, given []*value[T]) (T, error) {
	cfg := c.Defaults()
	var errs []error
	if path != "" {
		err := LoadFile(path, &cfg)
		var keys *KeysError
		if err != nil && !errors.As(err, &keys) {
			return cfg, err
		}
		errs = append(errs, err)
	}
	for _, s := range c.Settings() {
		raw := env(s.Env(c.EnvPrefix))
		if raw == "" {
			continue
		}
		vals := []string{raw}
		if s.Kind == Repeated {
			vals = splitList(raw)
		}
		if err := s.set(&cfg, vals); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Env(c.EnvPrefix), err))
		}
	}
	for _, v := range given {
		if len(v.vals) == 0 {
			continue
		}
		if err := v.s.set(&cfg, v.vals); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", v.s.Flag, err))
		}
	}
	errs = append(errs, c.Validate(&cfg))
	return cfg, errors.Join(errs...)
}

// Invalid prints a configuration error, one problem per indented line.
func (c *Command[T]) Invalid(w io.Writer, err error) {
	fmt.Fprintf(w, "%s: invalid configuration:\n  %s\n", c.Name, strings.ReplaceAll(err.Error(), "\n", "\n  "))
}

func PrintUsage(w io.Writer, header string, fs *flag.FlagSet) {
	fmt.Fprint(w, header)
	PrintFlags(w, fs)
}

// PrintFlags lists fs's flags GNU style (--name arg) with their defaults.
func PrintFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		if a, ok := f.Value.(interface{ argName() string }); ok && arg == "value" {
			arg = a.argName()
		}
		line := "  --" + f.Name
		if arg != "" {
			line += " " + arg
		}
		line += "\n    \t" + usage
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "0" {
			line += fmt.Sprintf(" (default %s)", f.DefValue)
		}
		fmt.Fprintln(w, line)
	})
}
