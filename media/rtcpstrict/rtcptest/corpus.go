package rtcptest

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// ReadSeed decodes a one-argument seed file in the `go test fuzz v1`
// format: a []byte(...) or a string(...) literal.
func ReadSeed(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	var lines []string
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			lines = append(lines, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		return nil, fmt.Errorf("%s: want a header and one value, got %d lines", path, len(lines))
	}
	for _, kind := range []string{"[]byte(", "string("} {
		lit, ok := strings.CutPrefix(lines[1], kind)
		if !ok {
			continue
		}
		if lit, ok = strings.CutSuffix(lit, ")"); !ok {
			break
		}
		s, err := strconv.Unquote(lit)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return []byte(s), nil
	}
	return nil, fmt.Errorf("%s: value is not []byte(...) or string(...)", path)
}

// ReadCorpus returns every seed of a fuzz target by file name; dir is the
// testdata/fuzz directory that holds the targets' corpora.
func ReadCorpus(t testing.TB, dir, target string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(filepath.FromSlash(dir), target, "*"))
	if err != nil {
		t.Fatal(err)
	}
	seeds := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := ReadSeed(p)
		if err != nil {
			t.Fatal(err)
		}
		seeds[filepath.Base(p)] = b
	}
	return seeds
}
