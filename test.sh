#!/usr/bin/env bash
# Sotto's whole test suite: the command README.md gives under "Test", and
# what CI runs (.ci/run). It behaves the same for a user as for CI:
#
#  - It needs Go 1.26 or later, gcc (the race detector needs cgo), and
#    real programs: chromium, ffmpeg, coturn's turnutils_uclient,
#    iproute2/iptables/curl and root for the kernel NAT call, npx (npm)
#    for the JS SDK's type check. Run as root, it installs the missing
#    ones with apt-get; otherwise it names them with the install line and
#    fails before testing anything.
#  - A user who knowingly runs without some of them opts out by group:
#    SOTTO_TEST_SKIP=browser,turn,netns,js (any of them). Those tests then
#    skip with a message, and the end of the run lists what did not run.
#    Under CI=true no opt-out is honoured.
#  - The Go tests themselves fail, not skip, when a program is missing
#    (internal/testneeds), so `go test ./...` alone cannot pass vacuously
#    either.
#
# Steps: go vet; the JS SDK's types (tsc, strict, and the committed
# declarations); the allocation checks of the forwarding path (without
# -race, where sync.Pool drops items on purpose); the kernel NAT call in
# network namespaces (root); then every package's tests under the race
# detector, which replay every fuzz seed. gotestsum (a tool dependency in
# go.mod) prints each package's result and, at the end, every skipped
# and failed test with its message.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

say() { printf '\n== %s\n' "$*"; }
groups=(browser turn netns js)

# What the tests need: program, Debian packages (comma list), test group
# ("-": every run). README.md's "Test" section lists the same.
needs=(
  "gcc gcc,libc6-dev -"
  "chromium chromium browser"
  "ffmpeg ffmpeg browser"
  "ffprobe ffmpeg browser"
  "turnutils_uclient coturn turn"
  "ip iproute2 netns"
  "iptables iptables netns"
  "curl curl netns"
  "npx npm js"
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

go_min=$(awk '$1 == "go" { print $2; exit }' go.mod)
if ! command -v go >/dev/null 2>&1; then
  echo "go is not on PATH: install Go ${go_min} or later (https://go.dev/doc/install), then run $0 again" >&2
  exit 1
fi
go_have=$(cd / && GOTOOLCHAIN=local go env GOVERSION)
go_have=${go_have#go}
if [ "$(printf '%s\n%s\n' "$go_min" "$go_have" | sort -V | head -n1)" != "$go_min" ]; then
  echo "go is ${go_have}; go.mod needs ${go_min} or later (https://go.dev/doc/install)" >&2
  exit 1
fi

say "what the tests need"
missing_pkgs=() missing_lines=()
not_run=()
for entry in "${needs[@]}"; do
  read -r prog pkg group <<<"$entry"
  if [ "$group" != "-" ] && skipped "$group"; then
    command -v "$prog" >/dev/null 2>&1 || not_run+=("the $group tests that need $prog")
    continue
  fi
  if ! command -v "$prog" >/dev/null 2>&1; then
    for p in ${pkg//,/ }; do
      [[ " ${missing_pkgs[*]-} " == *" $p "* ]] || missing_pkgs+=("$p")
    done
    if [ "$group" = "-" ]; then
      missing_lines+=("  $prog (Debian ${pkg//,/ }; every run)")
    else
      missing_lines+=("  $prog (Debian ${pkg//,/ }; the $group tests)")
    fi
  fi
done
root=1
[ "${EUID:-$(id -u)}" -eq 0 ] || root=
if ((${#missing_pkgs[@]} > 0)) && [ -n "$root" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing_pkgs[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing_pkgs[@]}"
  missing_pkgs=()
fi
if ! skipped netns && [ -z "$root" ]; then
  missing_lines+=("  root (the netns test: network namespaces and iptables)")
fi
if ((${#missing_lines[@]} > 0 && (${#missing_pkgs[@]} > 0 || ${#root} == 0))); then
  {
    echo "Missing what the tests need:"
    printf '%s\n' "${missing_lines[@]}"
    if ((${#missing_pkgs[@]} > 0)); then
      echo "Install it:  sudo apt-get install ${missing_pkgs[*]}"
    fi
    if [ -z "$root" ] && ! skipped netns; then
      echo "Run as root:  sudo $0"
    fi
    echo "or leave a group's tests out knowingly, e.g. SOTTO_TEST_SKIP=browser,turn,netns,js $0 (gcc cannot be left out)"
  } >&2
  exit 1
fi
echo "ok${skipping[*]:+ (left out by SOTTO_TEST_SKIP: ${skipping[*]})}"

say "go vet"
go vet ./...

if skipped js; then
  not_run+=("the JS SDK's type check")
  say "JS SDK types: left out (SOTTO_TEST_SKIP=js)"
else
  # web/sdk is plain JavaScript with JSDoc types; tsc checks them
  # (strict), and the committed declarations must be what the JSDoc says.
  say "JS SDK types"
  npx -y -p typescript@5 tsc --noEmit -p web/sdk
  decl=$(mktemp -d)
  npx -y -p typescript@5 tsc -p web/sdk --noEmit false --declaration --emitDeclarationOnly --outDir "$decl"
  # Every top-level module's declarations are committed, in web/sdk/types
  # (client.d.ts re-exports from the modules client.js is made of).
  for f in "$decl"/*.d.ts web/sdk/types/*.d.ts; do
    f=${f##*/}
    if ! diff -u "web/sdk/types/$f" "$decl/$f"; then
      echo "web/sdk/types/$f is stale or missing: run 'npm run types' in web/sdk" >&2
      exit 1
    fi
  done
  rm -rf "$decl"
  echo "ok"
fi

say "allocations on the forwarding path (without -race)"
go tool gotestsum --format testname -- -count=1 -run 'Alloc' ./media/sfu

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
