package fuzz

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

// readSeed decodes a one-argument seed file in the `go test fuzz v1`
// format: a []byte(...) or a string(...) literal.
func readSeed(path string) ([]byte, error) {
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

// readCorpus returns every seed of a fuzz target by file name.
func readCorpus(t *testing.T, target string) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
	if err != nil {
		t.Fatal(err)
	}
	seeds := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := readSeed(p)
		if err != nil {
			t.Fatal(err)
		}
		seeds[filepath.Base(p)] = b
	}
	return seeds
}

// checkSeedTable fails unless every seed of target has an expectation in
// want and every expectation a seed, so a new seed cannot go unchecked and
// a renamed one cannot silently vanish.
func checkSeedTable[V any](t *testing.T, target string, seeds map[string][]byte, want map[string]V) {
	t.Helper()
	for name := range seeds {
		if _, ok := want[name]; !ok {
			t.Errorf("%s seed %s has no expectation; add it to the table", target, name)
		}
	}
	for name := range want {
		if _, ok := seeds[name]; !ok {
			t.Errorf("%s seed %s is missing from testdata/fuzz/%s", target, name, target)
		}
	}
}

// TestSeedFilesAreValid: every file under testdata/fuzz decodes, so a
// hand-edited seed with a typo fails here and not as a confusing replay.
func TestSeedFilesAreValid(t *testing.T) {
	dirs, err := os.ReadDir(filepath.Join("testdata", "fuzz"))
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, d := range dirs {
		total += len(readCorpus(t, d.Name()))
	}
	if total < 40 {
		t.Fatalf("%d seeds in all, want at least 40 hand-made hostile inputs", total)
	}
}
