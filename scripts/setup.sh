#!/usr/bin/env bash
# Installs what vidswarm needs on a Debian/Ubuntu machine, skipping what is already there:
# ffmpeg (ffmpeg + ffprobe) from the distribution, and a Rust toolchain when cargo is missing.
# Safe to run again. Used by scripts/demo.sh, scripts/test.sh and .ci/run.
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "setup: need root (or sudo) to run: $*" >&2; exit 1
  fi
}

apt_install() {
  if ! command -v apt-get >/dev/null; then
    echo "setup: please install $* with your package manager (no apt-get here)" >&2; exit 1
  fi
  echo "setup: installing $* with apt-get" >&2
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

if ! command -v ffmpeg >/dev/null || ! command -v ffprobe >/dev/null; then
  apt_install ffmpeg
fi

if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
  export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
  command -v curl >/dev/null || apt_install curl ca-certificates
  command -v cc >/dev/null || apt_install build-essential
  echo "setup: installing Rust with rustup (minimal profile)" >&2
  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
  export PATH="$HOME/.cargo/bin:$PATH"
fi
