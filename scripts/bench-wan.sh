#!/usr/bin/env bash
# vidswarm on shaped links, beside BitTorrent, in one run: the emulated WAN of
# ../shared/bench/wan (hosts in network namespaces, HTB rates, an NFQUEUE delay/loss line; see its
# README), host 0 seeding, hosts 1.. fetching, each scenario run RUNS times per implementation,
# interleaved (vidswarm, libtorrent, aria2c, vidswarm, ...) so that drift hits all alike. The
# anchors get the same payload size in whole MiB. Prints every run's RESULT line, then a table of
# medians (docs/performance.md).
#   scripts/bench-wan.sh                       # lan, home, loss; 3 runs each; 8 hosts (~25 min)
#   SCENARIOS="home" RUNS=1 scripts/bench-wan.sh
#   SCALE="16 32" scripts/bench-wan.sh         # also the home scenario with 16 and 32 hosts
#   SCENARIOS= SCALE=32 RUNS=1 scripts/bench-wan.sh   # only home with 32 hosts
#   IMPLS="vidswarm" TRANSPORT=quic scripts/bench-wan.sh
#   VIDSWARM_BIN_B=/tmp/other IMPLS="vidswarm vidswarm-b" scripts/bench-wan.sh  # two builds, A/B
# Scenarios: lan (100/100 Mbit/s, 10 ms one way), home (seeder up 100, peers up 20, down 100,
# 25 ms), loss (home with 1 % loss on every link). BENCH_SECONDS: the test video's length
# (default 33 s: ~64 MiB, the anchors' default size). Needs root (namespaces); installs
# python3-libtorrent, aria2, opentracker when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
WAN_DIR=$ROOT/../shared/bench/wan
[[ -x $WAN_DIR/hosts.sh || -f $WAN_DIR/hosts.sh ]] || { echo "no harness at $WAN_DIR" >&2; exit 1; }
source scripts/setup.sh
[[ $(id -u) == 0 ]] || { echo "bench-wan: needs root (network namespaces, tc, iptables)" >&2; exit 1; }
/usr/bin/python3 -c 'import libtorrent' 2>/dev/null || apt_install python3-libtorrent
for b in aria2c opentracker curl cmp; do command -v "$b" >/dev/null || { apt_install aria2 opentracker curl; break; }; done
[[ -n ${VIDSWARM_BIN:-} ]] || cargo build --quiet --release --locked -p vidswarm
export VIDSWARM_BIN=${VIDSWARM_BIN:-$ROOT/target/release/vidswarm}

SCENARIOS=${SCENARIOS-lan home loss}
SCALE=${SCALE:-}
RUNS=${RUNS:-3}
IMPLS=${IMPLS:-vidswarm libtorrent aria2c}
# Said before the first run, not after it.
[[ " $IMPLS " != *" vidswarm-b "* || -x ${VIDSWARM_BIN_B:-} ]] || { echo "bench-wan: vidswarm-b needs VIDSWARM_BIN_B, an executable" >&2; exit 1; }
secs=${BENCH_SECONDS:-33}
work=$ROOT/target/bench-wan
mkdir -p "$work"
# A real video: 720p30 test pattern, lossless x264 (keyframe every second), AAC; made once.
video=$work/video-${secs}s.mp4
if [[ ! -s $video ]]; then
  ffmpeg -v error -y -f lavfi -i testsrc2=size=1280x720:rate=30:duration="$secs" -f lavfi -i sine=duration="$secs" \
    -c:v libx264 -preset ultrafast -qp 0 -g 30 -c:a aac -shortest "$video.tmp.mp4"
  mv "$video.tmp.mp4" "$video"
fi
export SPLIT=$work/split-${secs}s
[[ -s $SPLIT/manifest.json ]] || "$VIDSWARM_BIN" split "$video" --fragments 10 --mode copy --no-verify-decode --out "$SPLIT" --force >/dev/null
bytes=$(python3 -c 'import json,sys; print(sum(f["size"] for f in json.load(open(sys.argv[1]))["fragments"]))' "$SPLIT/manifest.json")
size_mb=$(( (bytes + 524288) / 1048576 ))
echo "bench-wan: a $((bytes / 1048576)) MiB video in 10 fragments; the anchors move $size_mb MiB; $RUNS run(s) each of: ${SCENARIOS:-no 8-host scenario}${SCALE:+, home with $SCALE hosts}"

results=$work/results-$(date +%Y%m%d-%H%M%S).txt
one() {  # impl scenario hosts
  local env=(SIZE_MB="$size_mb" HOSTS="$3") script
  case $2 in
    loss) env+=(SCENARIO=home LOSS=1) ;;
    *) env+=(SCENARIO="$2") ;;
  esac
  case $1 in
    vidswarm) script=$ROOT/scripts/bench-wan-vidswarm.sh ;;
    vidswarm-b) script=$ROOT/scripts/bench-wan-vidswarm.sh; env+=(VIDSWARM_BIN="$VIDSWARM_BIN_B") ;;
    libtorrent) script=$WAN_DIR/libtorrent_wan.sh ;;
    aria2c) script=$WAN_DIR/aria2c_wan.sh ;;
  esac
  local out
  if out=$(env "${env[@]}" WAN_QUIET=1 bash "$script" 2>&1); then
    # The harness's CPU figure goes beside each result: where the two cores bind first.
    local cpu
    cpu=$(grep -o 'cpu_busy_pct=[0-9]*' <<<"$out" | head -1)
    grep '^RESULT' <<<"$out" | sed "s/^RESULT /RESULT name=$2 /; s/ impl=[^ ]*/ impl=$1/; s/\$/ ${cpu:-cpu_busy_pct=-}/" | tee -a "$results"
  else
    echo "bench-wan: $1 $2 hosts=$3 failed:" >&2
    tail -5 <<<"$out" >&2
    echo "RESULT name=$2 impl=$1 hosts=$3 failed=1" >> "$results"
  fi
}
plan=()
for s in $SCENARIOS; do plan+=("$s 8"); done
for h in $SCALE; do plan+=("home $h"); done
for entry in "${plan[@]}"; do
  read -r s h <<<"$entry"
  for ((r = 1; r <= RUNS; r++)); do
    for impl in $IMPLS; do one "$impl" "$s" "$h"; done
  done
done

echo
echo "medians over $RUNS run(s) (results in $results):"
python3 - "$results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split()[1:] if "=" in f)
    rows.setdefault((kv["name"], int(kv["hosts"]), kv["impl"]), []).append(kv)
def med(rs, key):
    vals = [float(r[key]) for r in rs if key in r]
    return f"{statistics.median(vals):.2f}" if vals else "-"
print("| scenario | hosts | impl | last_s | first_s | ratio to T* | T* | seeder copies | seeder MiB | control B/s per node | peak RSS MiB | cpu busy % | failed |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (name, hosts, impl), rs in rows.items():
    ok = [r for r in rs if "failed" not in r]
    size = float(ok[0]["size_mb"]) if ok else 0
    copies = med(ok, "copies")
    if copies == "-" and ok:
        copies = f"{statistics.median(float(r['seed_up_mb']) for r in ok) / size:.2f}"
    print(f"| {name} | {hosts} | {impl} | {med(ok, 'last_s')} | {med(ok, 'first_s')} | {med(ok, 'ratio')} "
          f"| {med(ok, 'bound_s')} | {copies} | {med(ok, 'seed_up_mb')} | {med(ok, 'control_bps')} "
          f"| {med(ok, 'rss_max_mib')} | {med([r for r in ok if r.get('cpu_busy_pct', '-') != '-'], 'cpu_busy_pct')} | {len(rs) - len(ok)} |")
EOF
