#!/usr/bin/env bash
# Property-based fuzzing of the HTTP API against its own OpenAPI spec: schemathesis (from PyPI)
# against a live node holding the demo video, bounded in examples and time. Fails on any 5xx, any
# status, content type, header or body that breaks the spec, and (see scripts/schemathesis.toml)
# schema-valid requests refused or schema-invalid ones accepted.
#   FUZZ_SECONDS (default 90): the time budget; FUZZ_EXAMPLES (default 25): examples per operation.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() {
  if [[ -n "${CI:-}" ]]; then
    echo "api-fuzz: $1 (CI must not skip this)" >&2
    exit 1
  fi
  echo "SKIPPED: api-fuzz: $1" >&2
  exit 0
}

# CPython 3.11 trips over its own AST recursion check inside Hypothesis ("AST constructor
# recursion depth mismatch"); a newer interpreter, where the machine has one, avoids it.
python=""
for candidate in "$HOME"/.pyenv/versions/3.13*/bin/python3 "$HOME"/.pyenv/versions/3.12*/bin/python3 \
  python3.13 python3.12 python3; do
  # pyenv's shims exist for versions that are not selected: check that it really runs.
  if "$candidate" -c 'import venv' >/dev/null 2>&1; then
    python="$candidate"
    break
  fi
done
[[ -n "$python" ]] || skip "no python3 to install schemathesis with"

venv=target/schemathesis-venv
if [[ ! -x "$venv/bin/st" ]]; then
  echo "== installing schemathesis into $venv (with $python)"
  "$python" -m venv "$venv" || skip "cannot create a Python venv"
  "$venv/bin/pip" install -q "schemathesis==4.32.5" || skip "cannot install schemathesis from PyPI"
fi

cargo build --locked -q -p vidswarm
bin=target/debug/vidswarm
work=$(mktemp -d)
node_pid=""
cleanup() {
  [[ -n "$node_pid" ]] && kill "$node_pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

"$bin" node --data "$work/data" --listen /ip4/127.0.0.1/tcp/0 --http 127.0.0.1:0 \
  --no-auto-fetch >"$work/node.out" 2>"$work/node.err" &
node_pid=$!
url=""
for _ in $(seq 100); do
  url=$(grep -m1 '^http://' "$work/node.out" || true)
  [[ -n "$url" ]] && break
  kill -0 "$node_pid" 2>/dev/null || { cat "$work/node.err" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$url" ]] || { echo "the node did not print its HTTP URL" >&2; exit 1; }
# A video in the store, so paths with real ids reach the handlers' core, not only their 404s.
"$bin" publish assets/demo.mp4 --node "$url" >/dev/null

echo "== schemathesis against $url (${FUZZ_SECONDS:-90} s, ${FUZZ_EXAMPLES:-25} examples per operation)"
# /events is an endless stream: its spec is checked by the Rust tests instead.
"$venv/bin/st" --config-file scripts/schemathesis.toml run "$url/api-docs/openapi.json" \
  --exclude-path /events \
  --max-examples "${FUZZ_EXAMPLES:-25}" --max-time "${FUZZ_SECONDS:-90}" \
  --request-timeout 20 --workers 2 --no-color
