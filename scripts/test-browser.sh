#!/usr/bin/env bash
# The web UI in real browsers: Debian's Chromium, headless, driven by Selenium (from PyPI) with
# Debian's chromium-driver, then Debian's firefox-esr, headless, driven over Marionette (Debian has
# no geckodriver). Two nodes on 127.0.0.1: a seeder of a 60 s video, and an empty node started
# with --no-auto-fetch whose player, video, swarm and home pages are tried (tests/browser/test_ui.py,
# test_firefox.py). Then desktop players on the HLS playlist: mpv and VLC (test_players.py).
# Screenshots go to target/browser-artifacts/.
#   BROWSER_TTFF=1: also measure time to first frame and resume after a seek on a 100 MiB video
#   (docs/performance.md), median of 5.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh

skip() {
  if [[ -n "${CI:-}" ]]; then
    echo "test-browser: $1 (CI must not skip this)" >&2
    exit 1
  fi
  echo "SKIPPED: test-browser: $1" >&2
  exit 0
}

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  command -v apt-get >/dev/null || skip "no chromium/chromedriver and no apt-get to install them"
  apt_install chromium chromium-driver
fi
missing=()
for tool in firefox-esr:firefox-esr mpv:mpv cvlc:vlc-bin runuser:util-linux; do
  command -v "${tool%%:*}" >/dev/null || missing+=("${tool#*:}")
done
if [[ " ${missing[*]} " == *" vlc-bin "* ]]; then missing+=(vlc-plugin-base); fi
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || skip "no ${missing[*]} and no apt-get to install them"
  apt_install "${missing[@]}"
fi
python=$(command -v python3) || skip "no python3 to run Selenium with"
venv=target/browser-venv
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c 'import selenium' 2>/dev/null; then
  echo "== installing selenium into $venv"
  "$python" -m venv "$venv" || skip "cannot create a Python venv (python3-venv)"
  "$venv/bin/pip" install -q "selenium==4.27.1" || skip "cannot install selenium from PyPI"
fi
bin=target/debug/vidswarm
if [[ -n "${BROWSER_TTFF:-}" ]]; then
  # Figures are taken with the release build, as users run it.
  cargo build --locked -q --release -p vidswarm
  bin=target/release/vidswarm
else
  cargo build --locked -q -p vidswarm
fi
"$venv/bin/python" tests/browser/test_ui.py --bin "$bin" \
  --work target/browser --artifacts target/browser-artifacts "$@"
[[ -n "${BROWSER_TTFF:-}" ]] && exit 0
"$venv/bin/python" tests/browser/test_firefox.py --bin "$bin" \
  --work target/browser --artifacts target/browser-artifacts
"$venv/bin/python" tests/browser/test_players.py --bin "$bin" --work target/browser
