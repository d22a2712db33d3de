# Developer shortcuts. CI does not need make: .ci/run is self-contained.

# FUZZTIME is how long each fuzz target runs; FUZZFLAGS goes to go test
# as is (e.g. FUZZFLAGS=-parallel=4). docs/FUZZING.md has the details.
FUZZTIME ?= 30s
FUZZFLAGS ?=

.PHONY: fuzz fuzz-list

# fuzz runs every fuzz target in fuzz/, one after another. The list comes
# from the package itself, so a new target is picked up without editing
# this file. A crasher stops the run and is written to
# fuzz/testdata/fuzz/<target>/.
fuzz:
	@set -e; for t in $$(go test -list '^Fuzz' ./fuzz | grep '^Fuzz'); do \
		echo "== $$t for $(FUZZTIME)"; \
		go test ./fuzz -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME) $(FUZZFLAGS); \
	done

fuzz-list:
	@go test -list '^Fuzz' ./fuzz | grep '^Fuzz'
