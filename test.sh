#!/usr/bin/env bash
# Sotto's whole test suite: the command README.md gives under "Test", and
# what CI runs (.ci/run). It behaves the same for a user as for CI:
#
#  - It needs real programs (chromium, ffmpeg, coturn's turnutils_uclient,
#    iproute2/iptables for the kernel NAT call). Run as root, it installs
#    the missing ones with apt-get; otherwise it names them with the
#    install line and fails before testing anything.
#  - A user who knowingly runs without some of them opts out by group:
#    SOTTO_TEST_SKIP=browser,turn,netns (any of them). Those tests then
#    skip with a message, and the end of the run lists what did not run.
#    Under CI=true no opt-out is honoured.
#  - The Go tests themselves fail, not skip, when a program is missing
#    (internal/testneeds), so `go test ./...` alone cannot pass vacuously
#    either.
#
# Steps: go vet; the allocation checks of the forwarding path (without
# -race, where sync.Pool drops items on purpose); the kernel NAT call in
# network namespaces (root); then every package's tests under the race
# detector, which replay every fuzz seed. gotestsum (a tool dependency in
# go.mod) prints each package's result and, at the end, every skipped
# and failed test with its message.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

say() { printf '\n== %s\n' "$*"; }
groups=(browser turn netns)

# What the tests need: program, Debian package, test group.
needs=(
  "chromium chromium browser"
  "ffmpeg ffmpeg browser"
  "ffprobe ffmpeg browser"
  "turnutils_uclient coturn turn"
  "ip iproute2 netns"
  "iptables iptables netns"
  "curl curl netns"
)

skipping=()
IFS=',' read -r -a requested <<<"${SOTTO_TEST_SKIP:-}"
for g in ${requested[@]+"${requested[@]}"}; do
  g="${g// /}"
  [ -z "$g" ] && continue
  if [[ " ${groups[*]} " != *" $g "* ]]; then
    echo "SOTTO_TEST_SKIP names \"$g\", which is not a test group; the groups are: ${groups[*]}" >&2
    exit 2
  fi
  skipping+=("$g")
done
if ((${#skipping[@]} > 0)) && [ "${CI:-}" = "true" ]; then
  echo "SOTTO_TEST_SKIP=${SOTTO_TEST_SKIP} is not honoured under CI=true: CI runs every test" >&2
  exit 2
fi
skipped() { [[ " ${skipping[*]-} " == *" $1 "* ]]; }

if ! command -v go >/dev/null 2>&1; then
  echo "go is not on PATH: install Go 1.26 or later (https://go.dev/doc/install), then run $0 again" >&2
  exit 1
fi

say "what the tests need"
missing_pkgs=() missing_lines=()
not_run=()
for entry in "${needs[@]}"; do
  read -r prog pkg group <<<"$entry"
  if skipped "$group"; then
    command -v "$prog" >/dev/null 2>&1 || not_run+=("the $group tests that need $prog")
    continue
  fi
  if ! command -v "$prog" >/dev/null 2>&1; then
    [[ " ${missing_pkgs[*]-} " == *" $pkg "* ]] || missing_pkgs+=("$pkg")
    missing_lines+=("  $prog (Debian package $pkg; the $group tests)")
  fi
done
if ! skipped netns && [ "$(id -u)" -ne 0 ]; then
  echo "The kernel NAT call (deploy/netns/nat-call.sh) needs root: run 'sudo $0', or SOTTO_TEST_SKIP=netns to leave it out knowingly." >&2
  exit 1
fi
if ((${#missing_pkgs[@]} > 0)); then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing ${missing_pkgs[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing_pkgs[@]}"
  else
    {
      echo "Missing what the tests need:"
      printf '%s\n' "${missing_lines[@]}"
      echo "Install it:  sudo apt-get install ${missing_pkgs[*]}"
      echo "or leave those tests out knowingly, e.g. SOTTO_TEST_SKIP=browser,turn $0"
    } >&2
    exit 1
  fi
fi
echo "ok${skipping[*]:+ (left out by SOTTO_TEST_SKIP: ${skipping[*]})}"

say "go vet"
go vet ./...

say "allocations on the forwarding path (without -race)"
go tool gotestsum --format testname -- -count=1 -run 'Alloc' ./media

if skipped netns; then
  not_run+=("the kernel NAT call (deploy/netns/nat-call.sh)")
  say "kernel NAT call: left out (SOTTO_TEST_SKIP=netns)"
else
  say "kernel NAT call (deploy/netns/nat-call.sh)"
  deploy/netns/nat-call.sh
fi

say "tests, with the race detector"
go tool gotestsum --format pkgname-and-test-fails -- -race -count=1 -timeout 20m ./...

# What SOTTO_TEST_SKIP left out, last, so it cannot scroll away: a group
# whose programs are all here ran anyway.
if ((${#not_run[@]} > 0)); then
  say "NOT RUN (SOTTO_TEST_SKIP=${SOTTO_TEST_SKIP}); gotestsum listed each skipped test above"
  printf '  %s\n' "${not_run[@]}"
fi
