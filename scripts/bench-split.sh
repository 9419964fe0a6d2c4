#!/usr/bin/env bash
# Split time of the demo video: vidswarm in copy and re-encode mode next to a bare `ffmpeg -f
# segment` doing the same job, on this machine, median of RUNS runs each. Copy mode needs keyframes
# near the cuts, so the copy runs use the demo video re-encoded with a keyframe every second
# (made once, not timed). Prints a Markdown table for docs/performance.md.
#   RUNS=5 scripts/bench-split.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
RUNS="${RUNS:-5}"
cargo build --quiet --locked -p vidswarm
bin="$PWD/target/debug/vidswarm"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

demo="$PWD/assets/demo.mp4"
dense="$work/demo-gop25.mp4"
ffmpeg -hide_banner -v error -y -i "$demo" -c:v libx264 -preset slow -crf 30 -g 25 -keyint_min 25 \
  -sc_threshold 0 -c:a copy "$dense"

# median_seconds CMD...: runs CMD $RUNS times in a fresh output dir, prints the median wall time.
median_seconds() {
  local times=()
  for _ in $(seq "$RUNS"); do
    rm -rf "$work/out"; mkdir -p "$work/out"
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || { echo "failed: $*" >&2; exit 1; }
    end=$(date +%s.%N)
    times+=("$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')")
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]}'
}

seg="$work/out/fragment_%d.mp4"
echo "| what | input | median wall time (s) over $RUNS runs |"
echo "|---|---|---|"
echo "| bare \`ffmpeg -c copy -f segment -segment_time 3\` | gop25 | $(median_seconds ffmpeg -v error -y -i "$dense" -map 0 -c copy -f segment -segment_time 3 -reset_timestamps 1 "$seg") |"
echo "| \`vidswarm split --mode copy --no-verify-decode\` | gop25 | $(median_seconds "$bin" split "$dense" --mode copy --force --no-verify-decode --out "$work/out") |"
echo "| \`vidswarm split --mode copy\` (decodes every fragment to verify) | gop25 | $(median_seconds "$bin" split "$dense" --mode copy --force --out "$work/out") |"
echo "| bare \`ffmpeg\` libx264 veryfast, forced keyframes every 3 s, \`-f segment\` | demo (1 keyframe) | $(median_seconds ffmpeg -v error -y -i "$demo" -map 0 -c:v libx264 -preset veryfast -crf 20 -force_key_frames 'expr:gte(t,n_forced*3)' -c:a copy -f segment -segment_time 3 -reset_timestamps 1 "$seg") |"
echo "| \`vidswarm split --mode reencode --no-verify-decode\` | demo (1 keyframe) | $(median_seconds "$bin" split "$demo" --mode reencode --force --no-verify-decode --out "$work/out") |"
echo "| \`vidswarm split --mode reencode\` (decodes every fragment to verify) | demo (1 keyframe) | $(median_seconds "$bin" split "$demo" --mode reencode --force --out "$work/out") |"
