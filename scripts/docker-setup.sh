#!/usr/bin/env bash
# Makes Docker usable for scripts/test-compose.sh on a Debian/Ubuntu machine (CI runs it): installs
# Docker's engine (docker.io) and docker-compose from the distribution when they are missing, starts
# the daemon when it is not running, and waits until it answers. Exits non-zero, saying why, when
# Docker cannot be made usable (say, in a container without the privileges dockerd needs).
# Safe to run again; does nothing when `docker info` and a compose command already work.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh # as_root, apt_install

say() { echo "docker-setup: $*" >&2; }

command -v docker >/dev/null || apt_install docker.io
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
  apt_install docker-compose
fi

if ! docker info >/dev/null 2>&1; then
  # With an init system, its service; without one (a bare CI container), dockerd in the background.
  # A start that fails is reported, and the wait below says whether the daemon answers anyway.
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    say "starting docker.service"
    as_root systemctl start docker || say "systemctl start docker failed"
  elif command -v service >/dev/null && [ -e /etc/init.d/docker ]; then
    say "starting docker (service docker start)"
    as_root service docker start || say "service docker start failed"
  else
    say "starting dockerd in the background (log: /tmp/dockerd.log)"
    as_root sh -c 'nohup dockerd >/tmp/dockerd.log 2>&1 &'
  fi
  deadline=$((SECONDS + 60))
  until docker info >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      say "FAILED: the docker daemon does not answer after 60 s: $(docker info 2>&1 | tail -1)"
      [ ! -e /tmp/dockerd.log ] || tail -5 /tmp/dockerd.log >&2
      exit 1
    fi
    sleep 1
  done
fi
say "docker $(docker version --format '{{.Server.Version}}') is usable"
