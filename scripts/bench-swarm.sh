#!/usr/bin/env bash
# Swarm benchmark (issue #4), all on loopback inside a fresh network namespace (only `lo`), data on
# tmpfs, release build:
#   1. 1 seeder -> 4 `vidswarm node` processes (auto-fetch) of a ~100 MiB video in 10 fragments,
#      the four started at once: time until the last node holds all 10, the CPU time the five
#      processes used (user + system), and each process's peak RSS (VmHWM);
#   2. 1 -> 1: `vidswarm fetch` of the whole video from one seeder: wall time, rate, CPU time of
#      both processes, peak RSS;
#   3. with BENCH_BITTORRENT=1 (default), the BitTorrent anchor (../shared/bench/peer_bittorrent.sh,
#      aria2c + opentracker, 100 MiB, 5 peers) in the same run, for a side-by-side figure;
#   4. with BENCH_LIBTORRENT=1, the libtorrent 1 -> 4 anchor (../shared/bench/peer_libtorrent.py,
#      libtorrent-rasterbar 2.0, 100 MiB, 5 peers told each other's ports) in the same run;
#   5. with BENCH_SENDME=1, iroh's sendme 1 -> 1 anchor (../shared/bench/peer_sendme.sh) in the same
#      run (installs sendme with `cargo install sendme --locked` when missing: ~8 min).
# Usage: scripts/bench-swarm.sh            (TRANSPORT=tcp|quic, default tcp; RUNS=3)
#   BENCH_NODE_ARGS: extra `vidswarm node` arguments in place of the default `--http 127.0.0.1:0`
#   (e.g. BENCH_NODE_ARGS=--no-http to measure the nodes without their HTTP API).
#   BENCH_SECONDS: the test video's length (default 50 s, ~98 MiB; 200 s is ~390 MiB).
#   BENCH_PARTS: which parts run (default "spread fetch"; "fetch" is the 1 -> 1 alone).
#   BENCH_DIR: where the data goes (default /dev/shm, tmpfs; a disk path measures the disk too).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD"

if [[ -z ${VIDSWARM_BENCH_IN_NETNS:-} ]]; then
  source scripts/setup.sh
  command -v /usr/bin/time >/dev/null || apt_install time
  if [[ ${BENCH_BITTORRENT:-1} == 1 ]] && ! command -v aria2c >/dev/null; then
    apt_install aria2 opentracker mktorrent curl
  fi
  if [[ ${BENCH_LIBTORRENT:-0} == 1 ]] && ! python3 -c 'import libtorrent' 2>/dev/null; then
    apt_install python3-libtorrent
  fi
  if [[ ${BENCH_SENDME:-0} == 1 ]] && ! command -v sendme >/dev/null && [[ ! -x $HOME/.cargo/bin/sendme ]]; then
    cargo install sendme --locked
  fi
  # VIDSWARM_BIN: another build to measure (say, an earlier commit's), instead of this tree's.
  [[ -n ${VIDSWARM_BIN:-} ]] || cargo build --quiet --release --locked -p vidswarm
  export VIDSWARM_BENCH_IN_NETNS=1
  exec unshare -n bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi

bin="${VIDSWARM_BIN:-$root/target/release/vidswarm}"
TRANSPORT="${TRANSPORT:-tcp}"
RUNS="${RUNS:-3}"
case "$TRANSPORT" in
  tcp) listen=/ip4/127.0.0.1/tcp/0 ;;
  quic) listen=/ip4/127.0.0.1/udp/0/quic-v1 ;;
  *) echo "TRANSPORT is tcp or quic" >&2; exit 1 ;;
esac
work="$(mktemp -d "${BENCH_DIR:-/dev/shm}/vidswarm-bench.XXXXXX")"
secs="${BENCH_SECONDS:-50}"
parts="${BENCH_PARTS:-spread fetch}"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
now() { date +%s.%N; }
peak_rss_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# cpu_seconds PID...: the user + system CPU time the processes have used so far, in seconds.
cpu_seconds() {
  local p; for p in "$@"; do sed 's/.*) //' "/proc/$p/stat" 2>/dev/null; done |
    awk -v hz="$(getconf CLK_TCK)" '{s += $12 + $13} END {printf "%.2f", s / hz}'
}

# A real video (~100 MiB for the default 50 s): 720p30 test pattern, lossless x264 (keyframe every
# second), AAC.
ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30:duration="$secs" -f lavfi -i sine=duration="$secs" \
  -c:v libx264 -preset ultrafast -qp 0 -g 30 -c:a aac -shortest "$work/video.mp4"
"$bin" split "$work/video.mp4" --fragments 10 --mode copy --no-verify-decode --out "$work/split" >/dev/null
size=$(stat -c %s "$work/video.mp4")
vid=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['video_id'])" "$work/split/manifest.json")
echo "video: $((size / 1048576)) MiB in 10 fragments, transport $TRANSPORT"

# launch_node DATA [BOOTSTRAP] [extra args...]: starts a node, sets $node_pid.
launch_node() {
  local data=$1 boot=${2:-}; shift 2 || true
  local args=(node --data "$data" --listen "$listen" --announce-every 1 ${BENCH_NODE_ARGS:---http 127.0.0.1:0} "$@")
  [[ -n $boot ]] && args+=(--bootstrap "$boot")
  "$bin" "${args[@]}" >"$data.addr" 2>"$data.log" &
  node_pid=$!; pids+=("$node_pid")
}
# start_node DATA [BOOTSTRAP] [extra args...]: launch_node, then waits for its address ($node_addr).
start_node() {
  launch_node "$@"
  for _ in $(seq 200); do [[ -s $1.addr ]] && break; sleep 0.05; done
  node_addr=$(head -1 "$1.addr")
}

# Sets $held to how many fragments DATA holds; a glob, not a process per look, so the polling
# loop takes no CPU from the nodes it measures.
shopt -s nullglob
count_held() { local files=("$1"/fragments/*); held=${#files[@]}; }

for run in $(seq "$RUNS"); do
  rm -rf "$work"/seed* "$work"/leech* "$work"/got*
  "$bin" add "$work/split" --data "$work/seed" >/dev/null
  if [[ " $parts " == *" spread "* ]]; then
    start_node "$work/seed" "" --no-auto-fetch
    seed_pid=$node_pid seed_addr=$node_addr
    t0=$(now)
    leech_pids=()
    # All four at once, as the anchors launch theirs: waiting for each one's address before the
    # next put up to 4 x 50 ms of polling into the clock.
    for i in 1 2 3 4; do launch_node "$work/leech$i" "$seed_addr"; leech_pids+=("$node_pid"); done
    for _ in $(seq 6000); do
      all=1
      for i in 1 2 3 4; do count_held "$work/leech$i"; [[ $held -ge 10 ]] || all=0; done
      [[ $all == 1 ]] && break
      sleep 0.01
    done
    t1=$(now)
    [[ $all == 1 ]] || { echo "run $run: leechers did not finish"; exit 1; }
    cpu=$(cpu_seconds "$seed_pid" "${leech_pids[@]}")
    rss="seed $(( $(peak_rss_kib "$seed_pid") / 1024 )) MiB"
    for i in 0 1 2 3; do rss="$rss, node$((i + 1)) $(( $(peak_rss_kib "${leech_pids[$i]}") / 1024 )) MiB"; done
    echo "run $run: 1 -> 4 done in $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", b - a}') s, CPU $cpu s (five processes); peak RSS: $rss"
    for p in "$seed_pid" "${leech_pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    pids=()
  fi

  # 1 -> 1 with the fetch CLI.
  [[ " $parts " == *" fetch "* ]] || continue
  start_node "$work/seed" "" --no-auto-fetch
  seed_pid=$node_pid
  /usr/bin/time -f "%e %M %U %S" -o "$work/time1" "$bin" fetch "$vid" --bootstrap "$node_addr" \
    --listen "$listen" --out "$work/got" >/dev/null 2>"$work/fetch.log"
  read -r wall rss_kib user sys <"$work/time1"
  cpu=$(awk -v u="$user" -v s="$sys" -v seed="$(cpu_seconds "$seed_pid")" 'BEGIN {printf "%.2f", u + s + seed}')
  echo "run $run: 1 -> 1 fetch $(awk -v s="$size" -v t="$wall" 'BEGIN {printf "%.2f s, %.0f MiB/s", t, s / 1048576 / t}') (whole process, start to exit), CPU $cpu s (both processes); peak RSS fetcher $((rss_kib / 1024)) MiB, seeder $(( $(peak_rss_kib "$seed_pid") / 1024 )) MiB"
  cmp -s "$work/got/fragment_9.mp4" "$work/split/fragment_9.mp4" || { echo "fetched bytes differ"; exit 1; }
  kill "$seed_pid" 2>/dev/null || true; wait 2>/dev/null || true; pids=()
done

if [[ ${BENCH_BITTORRENT:-1} == 1 && -x "$root/../shared/bench/peer_bittorrent.sh" ]]; then
  echo "BitTorrent anchor (aria2c + opentracker, 1 -> 4, 100 MiB), same machine, same run:"
  for run in $(seq "$RUNS"); do
    ISOLATE=0 SIZE_MB=100 PEERS=5 "$root/../shared/bench/peer_bittorrent.sh" 2>&1 | grep -E "^RESULT|last leecher|peak" | sed "s/^/  run $run: /"
  done
fi

if [[ ${BENCH_LIBTORRENT:-0} == 1 ]]; then
  echo "libtorrent anchor (1 -> 4, 100 MiB), same machine, same run:"
  for run in $(seq "$RUNS"); do
    SIZE_MB=100 PEERS=5 /usr/bin/python3 "$root/../shared/bench/peer_libtorrent.py" 2>&1 | grep -E "^RESULT" | sed "s/^/  run $run: /"
  done
fi

if [[ ${BENCH_SENDME:-0} == 1 ]]; then
  echo "iroh sendme anchor (1 -> 1, 100 MiB), same machine, same run:"
  # Already inside a loopback-only namespace: tell the anchor script not to make another.
  PEERBENCH_IN_NETNS=1 SIZE_MB=100 RUNS="$RUNS" "$root/../shared/bench/peer_sendme.sh" 2>&1 | grep -E "^RESULT|RSS" | sed 's/^/  /'
fi
