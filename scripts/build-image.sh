#!/usr/bin/env bash
# Builds the vidswarm Docker image (default tag vidswarm:latest) without pulling anything: the
# release binary is built on this machine, then packed on `scratch` with the shared libraries it
# links against (glibc's loader, libc, libm, libgcc_s: whatever ldd lists), see compose/Dockerfile.
#
#   scripts/build-image.sh                   # cargo build --release, then docker build
#   scripts/build-image.sh --no-build        # use the existing target/release/vidswarm
#   scripts/build-image.sh --bin PATH        # use this binary (built for this machine's glibc)
#   scripts/build-image.sh --tag NAME:TAG    # another tag (also: VIDSWARM_IMAGE=NAME:TAG)
set -euo pipefail
cd "$(dirname "$0")/.."

tag=${VIDSWARM_IMAGE:-vidswarm:latest}
build=1
bin=target/release/vidswarm
while [ $# -gt 0 ]; do
  case $1 in
    --no-build) build=0 ;;
    --bin) bin=${2:?--bin needs a path}; build=0; shift ;;
    --tag) tag=${2:?--tag needs a value}; shift ;;
    -h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "build-image: unknown argument $1 (try --help)" >&2; exit 2 ;;
  esac
  shift
done

if [ "$build" = 1 ]; then
  source scripts/setup.sh # cargo (and ffmpeg, which the image does not need but the tests do)
  echo "build-image: cargo build --release -p vidswarm" >&2
  cargo build --release --locked -p vidswarm
fi
[ -x "$bin" ] || { echo "build-image: $bin is missing; run without --no-build" >&2; exit 1; }
for tool in docker ldd tar strip; do
  command -v "$tool" >/dev/null || { echo "build-image: $tool is missing" >&2; exit 1; }
done

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
root=$stage/rootfs
mkdir -p "$root/data" "$root/tmp"

# The binary, without its line tables (debug = "line-tables-only" in the release profile): they
# are three quarters of its size and only give panic backtraces file:line; function names stay.
strip --strip-debug -o "$root/vidswarm" "$bin"

# Every shared library the binary needs, at the same path as on this machine (the dynamic loader,
# /lib64/ld-linux-x86-64.so.2 on x86-64, is named in the binary itself). `cp -L` copies the file a
# symlink such as libc.so.6 points at, under the symlink's name. Lines look like
# "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux-x86-64.so.2 (0x...)".
mapfile -t libs < <(ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
if ldd "$bin" | grep -q 'not found'; then
  echo "build-image: ldd cannot resolve every library of $bin:" >&2; ldd "$bin" >&2; exit 1
fi
for lib in "${libs[@]}"; do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

# Owners in the tar are what the image gets (ADD keeps them): root for the files, the node's
# unprivileged user (10001, see the Dockerfile's USER) for its data dir, a sticky /tmp. Sorted
# names and fixed mtimes (in the tar, and of the context's files): the same binary gives the same
# context, so docker reuses its cached layers and the image id stays the same.
chmod 1777 "$root/tmp"
chmod 0755 "$root/data"
pack=(tar -C "$root" --sort=name --mtime=@0 --numeric-owner)
"${pack[@]}" --owner=0 --group=0 --exclude=./data -cf "$stage/rootfs.tar" .
"${pack[@]}" --owner=10001 --group=10001 -rf "$stage/rootfs.tar" ./data
cp compose/Dockerfile "$stage/Dockerfile"
touch -d @0 "$stage/rootfs.tar" "$stage/Dockerfile"

# The image this tag named before, removed below once nothing uses it (no dangling <none> pile-up).
previous=$(docker image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "build-image: docker build -t $tag (with ${#libs[@]} libraries: ${libs[*]##*/})" >&2
docker build --quiet --tag "$tag" \
  --label "org.opencontainers.image.title=vidswarm" \
  --label "org.opencontainers.image.revision=$revision" \
  "$stage" >/dev/null

if [ -n "$previous" ] && [ "$previous" != "$(docker image inspect --format '{{.Id}}' "$tag")" ]; then
  docker image rm "$previous" >/dev/null 2>&1 || true # still used by a container: kept
fi
size=$(docker image inspect --format '{{.Size}}' "$tag")
echo "build-image: built $tag, $((size / 1024 / 1024)) MiB ($size bytes)" >&2
