#!/usr/bin/env bash
# The main job: `vidswarm demo` on the video shipped in assets/. Installs what it needs first.
# Extra arguments go to `vidswarm demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
exec cargo run --quiet --locked -p vidswarm -- demo "$@"
