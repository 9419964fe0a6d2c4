#!/usr/bin/env bash
# Fuzzes vidswarm's parsers of untrusted input with cargo-fuzz (libFuzzer); docs/fuzzing.md says
# what each target asserts. Builds every target in fuzz/, then runs each for SECONDS (default
# 60), two at a time, and prints per target the executions run. Fails if any target crashes,
# panics, times out or runs out of memory; the input that did it is in fuzz/artifacts/<target>/.
#   scripts/fuzz.sh [SECONDS]   build and run every target (scripts/test.sh runs it with
#                               CARGO_FUZZ_SECONDS, default 45)
#   scripts/fuzz.sh --seed      rewrite the seed corpora (fuzz/corpus/<target>/seed-*)
# Env: FUZZ_TARGETS="a b" runs only these; FUZZ_JOBS (default 2) targets at once.
# Installs cargo-fuzz if it is missing. It needs nightly flags, so the build runs on the stable
# toolchain with RUSTC_BOOTSTRAP=1. Each target's corpus is fuzz/corpus/<target>/: the committed
# seeds, and whatever the fuzzer adds there (ignored by git). fuzz/Cargo.lock is not --locked:
# when the node gains a dependency, the fuzz build resolves it instead of failing.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

CARGO_FUZZ_VERSION=0.13.2
if [[ "${1:-}" == "--seed" ]]; then
  (cd fuzz && cargo run -q -p vidswarm-fuzz-seed)
  exit 0
fi
seconds="${1:-60}"
jobs="${FUZZ_JOBS:-2}"
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION" >&2
  cargo install --locked --quiet cargo-fuzz --version "$CARGO_FUZZ_VERSION"
fi

# No sanitizer: the code is safe Rust, what the targets look for is panics, overflows (debug
# assertions are on), wrong answers, hangs and runaway memory, and AddressSanitizer would halve
# the executions per second. docs/fuzzing.md has the reasons and how to run with it.
build_flags=(--sanitizer none --debug-assertions)
start=$SECONDS
echo "== fuzz: building the targets"
(cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz build "${build_flags[@]}")
echo "fuzz: built in $((SECONDS - start)) s"
targets=(${FUZZ_TARGETS:-$(cd fuzz && cargo fuzz list)})
bin_dir=fuzz/target/x86_64-unknown-linux-gnu/release
logs=fuzz/target/logs
mkdir -p "$logs"

# Runs one target for $seconds; its log in $logs/<target>.log, "ok" or "failed" in .status.
run_target() {
  local target=$1 extra=()
  case "$target" in
    manifest | collection) extra=(-dict=fuzz/dict/json.dict) ;;
  esac
  mkdir -p "fuzz/corpus/$target" "fuzz/artifacts/$target"
  rm -f "$logs/$target.status"
  if "$bin_dir/$target" "fuzz/corpus/$target" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="fuzz/artifacts/$target/" "${extra[@]}" >"$logs/$target.log" 2>&1; then
    echo ok >"$logs/$target.status"
  else
    echo failed >"$logs/$target.status"
  fi
}

echo "== fuzz: ${#targets[@]} targets, $seconds s each, $jobs at a time"
start=$SECONDS
for target in "${targets[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs)); do wait -n || true; done
  run_target "$target" &
done
wait
echo "fuzz: ran in $((SECONDS - start)) s"

stat() { sed -n "s/^stat::$1: *//p" "$logs/$2.log" | tail -1; }
failed=()
printf '%-20s %12s %10s %8s  %s\n' target executions "execs/s" "corpus" result
for target in "${targets[@]}"; do
  status=$(cat "$logs/$target.status" 2>/dev/null || echo failed)
  corpus=$(find "fuzz/corpus/$target" -type f | wc -l)
  printf '%-20s %12s %10s %8s  %s\n' "$target" "$(stat number_of_executed_units "$target")" \
    "$(stat average_exec_per_sec "$target")" "$corpus" "$status"
  [[ "$status" == ok ]] || failed+=("$target")
done
for target in "${failed[@]}"; do
  echo "---- $target failed; the end of $logs/$target.log:" >&2
  tail -n 40 "$logs/$target.log" >&2
  echo "reproduce: $bin_dir/$target fuzz/artifacts/$target/<file> (inputs: $(ls "fuzz/artifacts/$target" | tr '\n' ' '))" >&2
done
if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} passed, 0 failed"
