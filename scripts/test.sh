#!/usr/bin/env bash
# Every test of the workspace. Installs what the tests need first (ffmpeg), so that no test has
# to skip; tests that still cannot run say SKIPPED, and fail instead when CI is set.
#   1. cargo test: unit, property and integration tests (in-process swarms, node processes);
#   2. scripts/test-browser.sh: the web UI and its player in headless Chromium (Selenium);
#   3. scripts/api-fuzz.sh: schemathesis against a live node's OpenAPI spec;
#   4. scripts/fuzz.sh: cargo-fuzz on the wire decoders, the manifest, the collection file, Range
#      and upload names, CARGO_FUZZ_SECONDS (default 45) per target, two at a time (docs/fuzzing.md);
#   5. scripts/test-compose.sh: the Docker swarm end to end (release build, image, 5 nodes; docs/deploy.md).
# Arguments go to cargo test; with arguments (a filter), only the cargo tests run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# Each step says how long it took: CI has a time budget, and this is where it goes.
timed() {
  local start=$SECONDS
  "$@"
  echo "== test.sh: $1 took $((SECONDS - start)) s"
}
timed cargo test --locked --workspace "$@"
if [[ $# -eq 0 ]]; then
  timed scripts/test-browser.sh
  timed scripts/api-fuzz.sh
  timed scripts/fuzz.sh "${CARGO_FUZZ_SECONDS:-45}"
  timed scripts/test-compose.sh
fi
