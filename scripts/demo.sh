#!/usr/bin/env bash
# The main job: `vidswarm demo` on the video shipped in assets/. Installs what it needs first.
# Extra arguments go to `vidswarm demo` (try --help).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# The build shows its progress: a first one takes several minutes, later ones seconds.
echo "demo: building vidswarm" >&2
cargo build --locked -p vidswarm
exec "${CARGO_TARGET_DIR:-target}/debug/vidswarm" demo "$@"
