# Developer shortcuts. CI does not need make: .ci/run is self-contained.

# FUZZTIME is how long each fuzz target runs; FUZZFLAGS goes to go test
# as is (e.g. FUZZFLAGS=-parallel=4). docs/FUZZING.md has the details.
FUZZTIME ?= 30s
FUZZFLAGS ?=

.PHONY: fuzz fuzz-list

# fuzz runs every fuzz target in the module, one after another, wherever
# its package lives (fuzz/all.sh finds them, so a new target is picked up
# without editing this file). A crasher stops the run and is written to
# <package>/testdata/fuzz/<target>/.
fuzz:
	@FUZZTIME=$(FUZZTIME) FUZZFLAGS='$(FUZZFLAGS)' fuzz/all.sh

fuzz-list:
	@fuzz/all.sh --list
