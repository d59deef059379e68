#!/usr/bin/env bash
# Smoke run of every fuzz target (CI: `./x fuzz-smoke`, part of `./x ci`).
#
# Installs cargo-fuzz if it is missing, builds every target once, then runs each for
# ${FUZZ_SECONDS:-60} seconds on a scratch copy of its seed corpus (fuzz/corpus/<target>/ is
# never written to). Fails on the first target that crashes, leaks, times out or runs out of
# memory, printing the artifact libFuzzer wrote (fuzz/artifacts/<target>/...) and the command
# that replays it. The toolchain is stable: RUSTC_BOOTSTRAP=1 lets it take cargo-fuzz's
# nightly-only flags (-Zsanitizer=address, sanitizer-coverage passes). See fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# The fuzz workspace builds into fuzz/target with its own flags; never into the main build's
# target directory (./x exports one).
unset CARGO_TARGET_DIR
secs="${FUZZ_SECONDS:-60}"
CARGO_FUZZ_VERSION=0.13.2

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz/smoke.sh: installing cargo-fuzz $CARGO_FUZZ_VERSION"
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

# In memory when /dev/shm exists: the footer and recovery targets write files on every input
# (15x faster than on this machine's disk).
base="${TMPDIR:-/tmp}"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then base=/dev/shm; fi
scratch="$(mktemp -d "$base/portlog-fuzz-smoke.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT
# The targets' own scratch files (segments, data directories) go here too.
export PORTLOG_FUZZ_SCRATCH="$scratch"

start=$SECONDS
cargo fuzz build
echo "fuzz/smoke.sh: built every target in $((SECONDS - start)) s"

failed=()
for t in $(cargo fuzz list); do
  corpus="$scratch/corpus-$t"
  mkdir -p "$corpus"
  if [ -d "corpus/$t" ]; then cp -R "corpus/$t/." "$corpus/"; fi
  log="$scratch/$t.log"
  t0=$SECONDS
  # -timeout: one input running 10 s is a hang; -rss_limit_mb: libFuzzer's default, explicit.
  if cargo fuzz run "$t" "$corpus" -- -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 >"$log" 2>&1; then
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
    echo "fuzz/smoke.sh: $t ok: $runs inputs in $((SECONDS - t0)) s"
  else
    failed+=("$t")
    echo "fuzz/smoke.sh: $t FAILED after $((SECONDS - t0)) s; the end of its log:" >&2
    tail -n 60 "$log" >&2
    # libFuzzer: "Test unit written to fuzz/artifacts/<target>/crash-<sha1>" (also oom-, leak-,
    # timeout-); cargo-fuzz adds the command that replays it.
    echo "fuzz/smoke.sh: $t artifact(s):" >&2
    grep -ho 'Test unit written to .*' "$log" | sed "s/^Test unit written to /  /" >&2 || true
    grep -h -A2 'Reproduce with' "$log" >&2 || true
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz/smoke.sh: FAILED: ${failed[*]} (fuzz/README.md: turning a crash into a regression test)" >&2
  exit 1
fi
echo "fuzz/smoke.sh: every target ran ${secs} s without a crash"
