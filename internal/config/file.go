package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Strings is a YAML list of strings that also accepts a single string, so
// `public_ip: 203.0.113.7` and `public_ip: [203.0.113.7]` both work.
type Strings []string

func (l *Strings) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		if n.Tag == "!!null" {
			*l = nil
		} else {
			*l = Strings{n.Value}
		}
		return nil
	}
	var s []string
	if err := n.Decode(&s); err != nil {
		return err
	}
	*l = s
	return nil
}

// KeysError lists a file's unknown or mistyped keys, one per line.
type KeysError struct {
	File     string
	Problems []string
}

func (e *KeysError) Error() string {
	return "config " + e.File + ":\n  " + strings.Join(e.Problems, "\n  ")
}

// LoadFile decodes the YAML file at name over v; an unknown key is an
// error, so a misspelt setting is never ignored. Unknown or mistyped keys
// give a *KeysError with the rest of the file applied; any other error
// leaves v as it was.
func LoadFile(name string, v any) error {
	raw, err := os.ReadFile(name)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(raw, &root); err != nil {
		return fmt.Errorf("config %s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	err = dec.Decode(v)
	if err == nil || errors.Is(err, io.EOF) { // an empty file changes nothing
		return nil
	}
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return fmt.Errorf("config %s: %w", name, err)
	}
	paths := keyPaths(&root, "", map[int][]string{})
	ke := &KeysError{File: name}
	for _, e := range te.Errors {
		ke.Problems = append(ke.Problems, describe(e, paths))
	}
	return ke
}

var (
	yamlLine     = regexp.MustCompile(`^line (\d+): (.*)$`)
	unknownField = regexp.MustCompile(`^field (\S+) not found in type \S+$`)
)

// describe names the key's whole path where yaml.v3 names Go types:
// "line 3: limits.rooms: unknown key".
func describe(e string, paths map[int][]string) string {
	line, msg := 0, e
	if m := yamlLine.FindStringSubmatch(e); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	key := ""
	if m := unknownField.FindStringSubmatch(msg); m != nil {
		key, msg = m[1], "unknown key"
		for _, p := range paths[line] {
			if p == key || strings.HasSuffix(p, "."+key) {
				key = p
			}
		}
	} else if ps := paths[line]; len(ps) > 0 {
		key = ps[len(ps)-1] // the innermost key whose value is on this line
	}
	prefix := ""
	if line > 0 {
		prefix = fmt.Sprintf("line %d: ", line)
	}
	if key != "" {
		prefix += key + ": "
	}
	return prefix + msg
}

// keyPaths records, line by line, the paths of the mapping keys in n
// ("limits.rooms_per_node", "keys[1].secret"), outermost first.
func keyPaths(n *yaml.Node, prefix string, out map[int][]string) map[int][]string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			keyPaths(c, prefix, out)
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + p
			}
			out[k.Line] = append(out[k.Line], p)
			keyPaths(v, p, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			keyPaths(c, fmt.Sprintf("%s[%d]", prefix, i), out)
		}
	}
	return out
}
