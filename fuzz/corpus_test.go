package fuzz

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sotto-rtc/sotto/media/rtcpstrict/rtcptest"
)

// readCorpus returns every seed of a fuzz target by file name.
func readCorpus(t *testing.T, target string) map[string][]byte {
	return rtcptest.ReadCorpus(t, filepath.Join("testdata", "fuzz"), target)
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
