#!/usr/bin/env bash
# Fuzzes every fuzz target in the module, one after another, for
# FUZZTIME each (default 30s), wherever its package lives: fuzz/ and any
# other package with a Fuzz* function in its tests. FUZZFLAGS goes to
# go test as is (e.g. FUZZFLAGS=-parallel=2). A crasher stops the run and
# is written to <package>/testdata/fuzz/<target>/. With --list it only
# prints the targets, as "package target". docs/FUZZING.md has the rest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

fuzztime="${FUZZTIME:-30s}"
read -r -a flags <<<"${FUZZFLAGS:-}"

# The packages are found from the source, so a target added anywhere is
# fuzzed without editing this file; each package then lists its own
# targets, as go test declares them.
mapfile -t pkgs < <(grep -rl --include='*_test.go' -E '^func Fuzz[A-Z0-9_]' . |
  xargs -n1 dirname | sort -u)
if ((${#pkgs[@]} == 0)); then
  echo "no fuzz targets found: expected at least ./fuzz" >&2
  exit 1
fi

# Each package must list every Fuzz function its test files define: a
# target that does not build (a build tag, a -race or CGO setting that
# drops its file) would otherwise be skipped without a word.
targets=()
for pkg in "${pkgs[@]}"; do
  listed=$(go test -list '^Fuzz' "$pkg") || {
    echo "go test -list failed for $pkg" >&2
    exit 1
  }
  found=0
  for t in $(grep '^Fuzz' <<<"$listed" || true); do
    targets+=("$pkg $t")
    found=$((found + 1))
  done
  defined=$(cat "$pkg"/*_test.go | grep -cE '^func Fuzz[A-Z0-9_]' || true)
  if [ "$found" -ne "$defined" ]; then
    echo "$pkg defines $defined fuzz targets but go test lists $found: is one behind a build tag?" >&2
    exit 1
  fi
done
if ((${#targets[@]} == 0)); then
  echo "no fuzz targets listed" >&2
  exit 1
fi

if [ "${1:-}" = "--list" ]; then
  printf '%s\n' "${targets[@]}"
  exit 0
fi

echo "${#targets[@]} fuzz targets in ${#pkgs[@]} packages, ${fuzztime} each"
for entry in "${targets[@]}"; do
  read -r pkg t <<<"$entry"
  echo "+ go test $pkg -run '^\$' -fuzz '^$t\$' -fuzztime $fuzztime ${flags[*]:-}"
  go test "$pkg" -run '^$' -fuzz "^$t\$" -fuzztime "$fuzztime" ${flags[@]+"${flags[@]}"}
done
