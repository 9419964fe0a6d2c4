#!/usr/bin/env bash
# One vidswarm run on the emulated WAN of ../shared/bench/wan (network namespaces, shaped links),
# laid out as the harness's BitTorrent anchors are: a seeder `vidswarm node` on host 0 holding the
# split, and on hosts 1.. one `vidswarm fetch VIDEO --seed-after` each, knowing only the seeder (as
# a new user would run it). Called by scripts/bench-wan.sh, which makes the split; by hand:
#   SPLIT=DIR VIDSWARM_BIN=target/release/vidswarm SCENARIO=home scripts/bench-wan-vidswarm.sh
# Variables: the harness's (SCENARIO HOSTS SEED_UP UP DOWN DELAY_MS LOSS TIMEOUT KEEP, WAN_*; see
# its scenario.sh), SIZE_MB is taken from the split; TRANSPORT=tcp|quic (default tcp);
# CONTROL_WINDOW (s, default 10): once every fetch is done, the wire bytes each host moves in this
# window, all of them still seeding and connected, are its control traffic (gossip, DHT, identify,
# ping: no fragment moves then). While the fetches run it also counts what the seeder received
# (it receives no fragment: control traffic and ACKs), the TCP segments all hosts retransmitted,
# and the frames all hosts sent (count, mean size); KEEP=1 keeps the seeder's /metrics beside.
# SEED_ARGS, FETCH_ARGS: more options for the seeder's `vidswarm node` and for each fetch
# (split at spaces), for trying a setting without a build.
# Clock: t=0 when the fetch processes start (as aria2c_wan.sh's). Done = the fetch printed that it
# fetched the video (every fragment verified and committed), timed by its output file's mtime,
# as libtorrent's peers write their own time (lt_peer.py). Output: human lines and one
# "RESULT impl=vidswarm ..." line in the anchors' format, plus rss_max_mib and control_bps.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WAN_DIR=${WAN_DIR:-$ROOT/../shared/bench/wan}
. "$WAN_DIR/hosts.sh"
[[ -n ${SPLIT:-} && -s $SPLIT/manifest.json ]] || { echo "SPLIT=DIR (a vidswarm split) is needed" >&2; exit 1; }
BIN=${VIDSWARM_BIN:-$ROOT/target/release/vidswarm}
TRANSPORT=${TRANSPORT:-tcp}
CONTROL_WINDOW=${CONTROL_WINDOW:-10}
SPLIT_BYTES=$(python3 -c 'import json,sys; print(sum(f["size"] for f in json.load(open(sys.argv[1]))["fragments"]))' "$SPLIT/manifest.json")
VIDEO=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["video_id"])' "$SPLIT/manifest.json")
# The anchors take whole MiB; the bound below uses the split's exact size.
SIZE_MB=${SIZE_MB:-$(( (SPLIT_BYTES + 524288) / 1048576 ))}
. "$WAN_DIR/scenario.sh"
port=4001
listen() {
  case $TRANSPORT in
    tcp) echo "/ip4/$(wan_ip "$1")/tcp/$port" ;;
    quic) echo "/ip4/$(wan_ip "$1")/udp/$port/quic-v1" ;;
    *) die "TRANSPORT is tcp or quic" ;;
  esac
}

WORK=$(mktemp -d "$WORKDIR_BASE/vswan.XXXXXX")
PIDS=()
cleanup() {
  kill_pids "${PIDS[@]}"
  if [[ $KEEP == 1 ]]; then echo "kept $WORK"; else rm -rf "$WORK"; fi
}
wan_atexit cleanup
"$BIN" add "$SPLIT" --data "$WORK/seed" >/dev/null
mkdir -p "$WORK/done"
BOUND=$("$PY" "$WAN_DIR/bound.py" --bytes "$SPLIT_BYTES" --leechers "$LEECHERS" \
  --seed-up "$(_wan_host_val UP 0 "$UP")" --up "$(for ((i = 1; i < HOSTS; i++)); do _wan_host_val UP "$i" "$UP"; done | paste -sd,)" \
  --down "$(for ((i = 1; i < HOSTS; i++)); do _wan_host_val DOWN "$i" "$DOWN"; done | paste -sd,)")
T_BOUND=$(sed -n 's/.*BOUND t_s=\([0-9.]*\).*/\1/p' <<<"$BOUND")

wan_up "$HOSTS" "$UP" "$DOWN" "$DELAY_MS" "$LOSS"
export VIDSWARM_LOG=${VIDSWARM_LOG:-warn}
wan_spawn 0 timeout -k 5 $((TIMEOUT + 120)) "$BIN" node --data "$WORK/seed" --listen "$(listen 0)" \
  --http 127.0.0.1:8000 --no-auto-fetch ${SEED_ARGS:-} > "$WORK/seed.out" 2> "$WORK/seed.log"
PIDS+=("$WAN_PID")
for ((k = 0; k < 300; k++)); do
  [[ $(wc -l < "$WORK/seed.out") -ge 2 ]] && break
  kill -0 "${PIDS[0]}" 2>/dev/null || die "the seeder exited: $(tail -3 "$WORK/seed.log")"
  sleep 0.05
done
SEED_ADDR=$(head -1 "$WORK/seed.out")
[[ $SEED_ADDR == /ip4/* ]] || die "the seeder printed no address: $(cat "$WORK/seed.out")"
read -r TX0 SRX0 <<<"$(wan_counters 0)"
declare -a RX0 RX1
for ((i = 1; i < HOSTS; i++)); do read -r _ RX0[i] <<<"$(wan_counters "$i")"; done

# TCP segments every host sent and retransmitted, summed: "out retrans".
tcp_segments() {
  local i
  for ((i = 0; i < HOSTS; i++)); do wan_exec "$i" awk '/^Tcp: [0-9]/ {print $12, $13}' /proc/net/snmp; done |
    awk '{o += $1; r += $2} END {print o, r}'
}
# Packets and bytes every host sent, as the switch's ports received them: "packets bytes".
sent_packets() {
  ip netns exec "$(_wan_sw)" bash -c 'p=0 b=0; for ((i = 0; i < $0; i++)); do
    read -r x < /sys/class/net/p$i/statistics/rx_packets; read -r y < /sys/class/net/p$i/statistics/rx_bytes
    p=$((p + x)) b=$((b + y)); done; echo "$p $b"' "$HOSTS"
}
read -r SEG0 RETR0 <<<"$(tcp_segments)"
read -r PK0 PB0 <<<"$(sent_packets)"
CPU0=$(cpu_ticks)
T0=$(now)
for ((i = 1; i <= LEECHERS; i++)); do
  wan_spawn "$i" timeout -k 5 $((TIMEOUT + 120)) "$BIN" fetch "$VIDEO" --bootstrap "$SEED_ADDR" \
    --listen "$(listen "$i")" --out "$WORK/leech$i" --seed-after $((TIMEOUT + 60)) ${FETCH_ARGS:-} \
    > "$WORK/leech$i.out" 2> "$WORK/leech$i.log"
  PIDS+=("$WAN_PID")
done
DEADLINE=$(awk -v t="$T0" -v d="$TIMEOUT" 'BEGIN{printf "%.3f", t + d}')
next_sample=0
ndone=0
while :; do
  t=$(now)
  # TIMELINE=1: each host's upload, sampled every TIMELINE_STEP s (default 1; where the links sit idle).
  if [[ ${TIMELINE:-0} == 1 ]] && awk -v n="$t" -v s="$next_sample" 'BEGIN{exit !(n >= s)}'; then
    next_sample=$(awk -v n="$t" -v d="${TIMELINE_STEP:-1}" 'BEGIN{printf "%.3f", n + d}')
    # Each host's upload as its switch port received it: one process per sample, not one per host.
    echo "$(awk -v n="$t" -v t0="$T0" 'BEGIN{printf "%.1f", n - t0}') $(ip netns exec "$(_wan_sw)" bash -c \
      'for ((i = 0; i < $0; i++)); do read -r b < /sys/class/net/p$i/statistics/rx_bytes; printf "%s " "$b"; done' "$HOSTS")" >> "$WORK/timeline"
  fi
  # One grep over all the outputs per round: with 32 hosts a grep per fetch per round cost the
  # machine's two cores more than the anchors' loops do, and made the done times late.
  while read -r f; do
    i=${f##*/leech}; i=${i%.out}
    # When the fetch printed it (its output's mtime: it prints nothing more while it seeds),
    # not when this loop saw it: with 32 hosts the busy cores delay a round by up to a second.
    [[ -e $WORK/done/$i ]] || { stat -c %.9Y "$f" > "$WORK/done/$i"; (( ++ndone )); }
  done < <(grep -l '^fetched ' "$WORK"/leech*.out 2>/dev/null)
  for ((i = 1; i <= LEECHERS; i++)); do
    [[ -e $WORK/done/$i ]] || kill -0 "${PIDS[$i]}" 2>/dev/null || die "fetch $i exited: $(tail -3 "$WORK/leech$i.log")"
  done
  (( ndone >= LEECHERS )) && break
  kill -0 "${PIDS[0]}" 2>/dev/null || die "the seeder exited: $(tail -3 "$WORK/seed.log")"
  awk -v n="$t" -v d="$DEADLINE" 'BEGIN{exit !(n > d)}' && die "timeout: $(find "$WORK/done" -type f | wc -l)/$LEECHERS done after ${TIMEOUT}s"
  sleep 0.05
done
read -r TX1 SRX1 <<<"$(wan_counters 0)"
T_END=$(now)
read -r SEG1 RETR1 <<<"$(tcp_segments)"
read -r PK1 PB1 <<<"$(sent_packets)"
# Frames as the switch sees them: ACKs and gossip are small, GSO frames larger than 1514 bytes.
PACKET_MEAN=$(( (PB1 - PB0) / (PK1 - PK0 > 0 ? PK1 - PK0 : 1) ))
RETRANS_PCT=$(awk -v o=$((SEG1 - SEG0)) -v r=$((RETR1 - RETR0)) 'BEGIN{printf "%.2f", o ? 100 * r / o : 0}')
for ((i = 1; i < HOSTS; i++)); do read -r _ RX1[i] <<<"$(wan_counters "$i")"; done
# What each fetch received on the wire until the last one finished (duplicates, headers and
# control traffic included), beside the video's size.
RX_MEDIAN_MB=$(for ((i = 1; i < HOSTS; i++)); do echo $(( RX1[i] - RX0[i] )); done | sort -n |
  awk '{a[NR] = $1} END {printf "%.1f", a[int((NR + 1) / 2)] / 1048576}')
SEED_UP_BYTES=$(wan_exec 0 curl -sf http://127.0.0.1:8000/api/v1/traffic | python3 -c 'import json,sys; print(json.load(sys.stdin)["bytes_out"])')
wan_exec 0 curl -sf http://127.0.0.1:8000/metrics > "$WORK/seed.metrics" || true
SEED_DECLINED=$(awk '/^vidswarm_chunks_declined_total/ {print $2}' "$WORK/seed.metrics")
# The seeder receives no fragment: what reaches it while the fetches run is control traffic
# (gossip, DHT, identify, chunk requests) and the ACKs of its uploads.
SEED_RX_KBPS=$(awk -v a="$SRX0" -v b="$SRX1" -v t0="$T0" -v t1="$T_END" 'BEGIN{printf "%.1f", (b - a) / (t1 - t0) / 1000}')

# Control traffic: every host's wire bytes (both ways) over a window in which no fragment moves.
declare -a C0 C1
for ((i = 0; i < HOSTS; i++)); do C0[i]=$(wan_counters "$i" | awk '{print $1 + $2}'); done
sleep "$CONTROL_WINDOW"
for ((i = 0; i < HOSTS; i++)); do C1[i]=$(wan_counters "$i" | awk '{print $1 + $2}'); done
CONTROL=$(for ((i = 0; i < HOSTS; i++)); do echo $(( (C1[i] - C0[i]) / CONTROL_WINDOW )); done | sort -n)
CONTROL_MEDIAN=$(awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}' <<<"$CONTROL")
CONTROL_MAX=$(tail -1 <<<"$CONTROL")
# Peak RSS of each vidswarm process (the child of its `timeout`).
RSS=$(for p in "${PIDS[@]}"; do
  c=$(awk '{print $1}' "/proc/$p/task/$p/children" 2>/dev/null)
  awk '/VmHWM/ {printf "%.1f\n", $2 / 1024}' "/proc/${c:-$p}/status" 2>/dev/null
done)
RSS_SEED=$(head -1 <<<"$RSS")
RSS_MAX=$(sort -n <<<"$RSS" | tail -1)

finish_network "$CPU0"
for ((i = 1; i <= LEECHERS; i++)); do
  for f in "$SPLIT"/fragment_*; do
    cmp -s "$f" "$WORK/leech$i/$(basename "$f")" || die "fetch $i: $(basename "$f") differs from the seeder's"
  done
done
TIMES=$(done_times "$T0" "$WORK")
FIRST=$(head -1 <<<"$TIMES"); LAST=$(tail -1 <<<"$TIMES")
SEED_UP_MB=$(awk -v b="$SEED_UP_BYTES" 'BEGIN{printf "%.1f", b / 1048576}')
COPIES=$(awk -v b="$SEED_UP_BYTES" -v s="$SPLIT_BYTES" 'BEGIN{printf "%.2f", b / s}')
SEED_TX_MB=$(awk -v a="$TX0" -v b="$TX1" 'BEGIN{printf "%.1f", (b - a) / 1048576}')
RATIO=$(awk -v l="$LAST" -v b="$T_BOUND" 'BEGIN{printf "%.2f", l / b}')
echo "tool=vidswarm $("$BIN" --version | awk '{print $2}') transport=$TRANSPORT scenario=$SCENARIO_TAG, fragments verified on all $LEECHERS fetches"
echo "$BOUND"
echo "completion times (s from start): $(tr '\n' ' ' <<<"$TIMES")"
echo "seeder uploaded $SEED_UP_MB MiB of fragments = $COPIES copies ($SEED_TX_MB MiB on the wire until the last fetch finished); it declined ${SEED_DECLINED:-?} requests"
echo "each fetch received (median) $RX_MEDIAN_MB MiB on the wire for a $(awk -v b="$SPLIT_BYTES" 'BEGIN{printf "%.1f", b / 1048576}') MiB video"
echo "the seeder received $SEED_RX_KBPS kB/s while the fetches ran (control traffic and ACKs: it receives no fragment)"
echo "TCP segments retransmitted while the fetches ran: $RETRANS_PCT % of those sent, all hosts ($((RETR1 - RETR0)) of $((SEG1 - SEG0)))"
echo "all hosts sent $(( (PK1 - PK0) / 1000 ))k frames, $(( (PB1 - PB0) / 1048576 )) MiB, $PACKET_MEAN bytes per frame on average, while the fetches ran"
echo "control traffic per host, idle ${CONTROL_WINDOW} s window, bytes/s: median $CONTROL_MEDIAN, max $CONTROL_MAX"
echo "last fetch $LAST s = $RATIO x bound $T_BOUND s; peak RSS seeder $RSS_SEED MiB, max $RSS_MAX MiB"
echo "$HARNESS"
if [[ -s $WORK/timeline ]]; then
  echo "upload per host, Mbit/s, every ${TIMELINE_STEP:-1} s (host 0 = seeder):"
  awk '{ if (NR > 1) { printf "  t=%5.1f", $1; for (i = 2; i <= NF; i++) printf " %5.1f", ($i - p[i]) * 8 / 1e6 / ($1 - pt); print "" } for (i = 2; i <= NF; i++) p[i] = $i; pt = $1 }' "$WORK/timeline"
fi
echo "RESULT impl=vidswarm hosts=$HOSTS size_mb=$SIZE_MB last_s=$LAST first_s=$FIRST seed_up_mb=$SEED_UP_MB" \
  "seed_tx_mb=$SEED_TX_MB bound_s=$T_BOUND ratio=$RATIO scenario=$SCENARIO_TAG transport=$TRANSPORT" \
  "up=$UP seed_up=$WAN_UP_0 down=$DOWN delay_ms=$DELAY_MS loss_pct=$LOSS copies=$COPIES declined=${SEED_DECLINED:-0}" \
  "control_bps=$CONTROL_MEDIAN rx_per_fetch_mb=$RX_MEDIAN_MB rss_seed_mib=$RSS_SEED rss_max_mib=$RSS_MAX seed_rx_kbps=$SEED_RX_KBPS retrans_pct=$RETRANS_PCT frames_k=$(( (PK1 - PK0) / 1000 )) frame_mean_b=$PACKET_MEAN"
