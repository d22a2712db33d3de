// Package config is the configuration framework of Sotto's commands. A
// command declares each setting once (flag, environment variable, YAML
// key, help) and gets them applied over its defaults in the order YAML
// file < environment < flags, with every problem reported in one run,
// each naming the flag, variable or key it came from.
package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Kind says how a setting's flag and environment variable parse.
type Kind int

const (
	Scalar   Kind = iota // one value; a later one replaces it
	Boolean              // a flag that may stand alone (--no-ice-tcp)
	Repeated             // repeatable flag; each value may be a comma list
)

// Setting is one value of a command's configuration T that a flag and an
// environment variable can change.
type Setting[T any] struct {
	Flag  string // without dashes
	Key   string // YAML path, e.g. limits.join_burst
	Usage string // a `word` in backquotes names the flag's argument in -h
	Kind  Kind

	env         string
	arg         string
	hideDefault bool
	get         func(*T) string
	set         func(*T, []string) error
}

// WithEnv names the environment variable instead of deriving it.
func (s Setting[T]) WithEnv(name string) Setting[T] { s.env = name; return s }

// HideDefault keeps the default out of -h, for secrets.
func (s Setting[T]) HideDefault() Setting[T] { s.hideDefault = true; return s }

func (s Setting[T]) Get(c *T) string { return s.get(c) }

func (s Setting[T]) Set(c *T, vals []string) error { return s.set(c, vals) }

// Env is prefix and the flag in upper snake case, unless WithEnv named one.
func (s Setting[T]) Env(prefix string) string {
	if s.env != "" {
		return s.env
	}
	return prefix + strings.ToUpper(strings.ReplaceAll(s.Flag, "-", "_"))
}

func scalar[T, V any](flag, key, usage, arg string, p func(*T) *V, format func(V) string, parse func(string) (V, error)) Setting[T] {
	return Setting[T]{Flag: flag, Key: key, Usage: usage, arg: arg,
		get: func(c *T) string { return format(*p(c)) },
		set: func(c *T, v []string) error {
			x, err := parse(v[0])
			if err != nil {
				return err
			}
			*p(c) = x
			return nil
		}}
}

// String, Int, Float, Bool, Duration and List bind a setting to a field
// of T; a Bool flag may stand alone, a List repeats.
func String[T any](flag, key, usage string, p func(*T) *string) Setting[T] {
	return scalar(flag, key, usage, "string", p,
		func(s string) string { return s },
		func(s string) (string, error) { return s, nil })
}

func Int[T any](flag, key, usage string, p func(*T) *int) Setting[T] {
	return scalar(flag, key, usage, "n", p, strconv.Itoa, func(s string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("%q is not an integer", s)
		}
		return n, nil
	})
}

func Float[T any](flag, key, usage string, p func(*T) *float64) Setting[T] {
	format := func(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }
	return scalar(flag, key, usage, "rate", p, format, func(s string) (float64, error) {
		f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", s)
		}
		return f, nil
	})
}

func Bool[T any](flag, key, usage string, p func(*T) *bool) Setting[T] {
	s := scalar(flag, key, usage, "", p, strconv.FormatBool, func(s string) (bool, error) {
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return false, fmt.Errorf("%q is not true or false", s)
		}
		return b, nil
	})
	s.Kind = Boolean
	return s
}

func Duration[T any](flag, key, usage string, p func(*T) *time.Duration) Setting[T] {
	return scalar(flag, key, usage, "duration", p, time.Duration.String, func(s string) (time.Duration, error) {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (e.g. 10s, 1m30s)", s)
		}
		return d, nil
	})
}

func List[T any](flag, key, usage string, p func(*T) *Strings) Setting[T] {
	return ListFunc(flag, key, usage,
		func(c *T) []string { return *p(c) },
		func(c *T, v []string) { *p(c) = v })
}

// ListFunc is a repeatable setting that get and set map onto T.
func ListFunc[T any](flag, key, usage string, get func(*T) []string, set func(*T, []string)) Setting[T] {
	return Setting[T]{Flag: flag, Key: key, Usage: usage, arg: "list", Kind: Repeated,
		get: func(c *T) string { return strings.Join(get(c), ",") },
		set: func(c *T, v []string) error { set(c, v); return nil }}
}

func splitList(s string) []string {
	var out []string
	for item := range strings.SplitSeq(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
