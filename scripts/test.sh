#!/usr/bin/env bash
# Every test of the workspace. Installs what the tests need first (ffmpeg), so that no test has
# to skip; tests that still cannot run say SKIPPED, and fail instead when CI is set.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec cargo test --locked --workspace "$@"
