#!/usr/bin/env bash
# End-to-end test of the Docker setup (compose/): builds the image, starts a gateway and 5 nodes
# with `up --scale node=5`, publishes assets/demo.mp4 to one node over HTTP, waits until every
# node holds every fragment, checks the bytes on every node, kills the node that was published to
# and checks the others keep serving, then scales up and checks the new nodes get the whole video.
# Also starts one node with plain `docker run` and JSON logs, as on another host. Last, cuts two
# nodes off the network, publishes a second video on the other side, and reconnects them (one
# with a new IP): both must get it. The swarm is private (compose/private-swarm.yml): every
# container has the same swarm key.
#
# Without a usable docker (daemon and compose) it prints SKIPPED, or fails when CI is set.
# Everything it starts is removed on exit, pass or fail; VIDSWARM_E2E_KEEP=1 keeps it to look at.
# Works with `docker compose` (the plugin) and docker-compose v1; VIDSWARM_COMPOSE="docker-compose"
# picks one. VIDSWARM_E2E_BIN=PATH packs that binary instead of building the release one: CI passes
# the debug build `cargo test` just made, which saves a release build (10 minutes on a 2-core
# machine) for a test that checks behaviour, not speed.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "test-compose: $*" >&2; }
skip_or_fail() {
  if [ -n "${CI:-}" ]; then
    say "FAILED: $* (CI must run this test: install Docker's engine and compose, see docs/deploy.md)"
    exit 1
  fi
  echo "test-compose: SKIPPED: $*"
  exit 0
}

# --- What the test needs -------------------------------------------------------------------
command -v docker >/dev/null || skip_or_fail "docker is not installed"
if ! docker_err=$(docker info 2>&1 >/dev/null); then
  skip_or_fail "the docker daemon is not usable: $(echo "$docker_err" | tail -1)"
fi
if [ -n "${VIDSWARM_COMPOSE:-}" ]; then
  read -r -a compose <<<"$VIDSWARM_COMPOSE"
elif docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
elif command -v docker-compose >/dev/null; then
  compose=(docker-compose)
else
  skip_or_fail "neither \`docker compose\` nor docker-compose is installed"
fi

source scripts/setup.sh # cargo, ffmpeg (publish splits on the host; join checks what came back)
for tool in curl jq; do command -v "$tool" >/dev/null || apt_install "$tool"; done

started=$SECONDS
run=$$-$RANDOM
project=vidswarm-e2e-$run
image=vidswarm:e2e-$run
work=$(mktemp -d)
vidswarm=${VIDSWARM_E2E_BIN:-$PWD/target/release/vidswarm}
extra= # the container started with plain `docker run`
squatters=() # containers that take a cut-off node's IP, so it comes back with another

export VIDSWARM_IMAGE=$image
export VIDSWARM_GATEWAY_PORT=0 # a free host port; `port gateway 8080` says which
unset VIDSWARM_LOG_FORMAT      # the compose nodes log readable lines; the extra node, JSON
# Uploads need this token: compose hands it to every node, `vidswarm publish` reads it too.
export VIDSWARM_API_TOKEN=e2e-$RANDOM$RANDOM
# The swarm is private (compose/private-swarm.yml): every container gets the same pre-shared key,
# the plain `docker run` ones below through the same mount and variables.
export VIDSWARM_SWARM_KEY_FILE=$work/swarm.key
keyed=(-v "$VIDSWARM_SWARM_KEY_FILE:/run/secrets/swarm_key:ro"
  -e VIDSWARM_SWARM_KEY=/run/secrets/swarm_key -e VIDSWARM_LISTEN=/ip4/0.0.0.0/tcp/4001)
dc() { "${compose[@]}" -p "$project" -f compose/docker-compose.yml -f compose/private-swarm.yml "$@"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" -ne 0 ]; then
    say "FAILED after $((SECONDS - started)) s; the containers and their last log lines:"
    dc ps >&2 || true
    dc logs --no-color --tail=40 >&2 || true
    [ -z "$extra" ] || docker logs --tail=20 "$extra" >&2 || true
  fi
  if [ -n "${VIDSWARM_E2E_KEEP:-}" ]; then
    say "kept: project $project (${compose[*]} -p $project -f compose/docker-compose.yml -f compose/private-swarm.yml ...), image $image, $work"
    exit "$rc"
  fi
  [ -z "$extra" ] || docker rm -f -v "$extra" >/dev/null 2>&1 || true
  for id in "${squatters[@]}"; do docker rm -f -v "$id" >/dev/null 2>&1 || true; done
  dc down -v --remove-orphans -t 5 >/dev/null 2>&1 || say "warning: ${compose[*]} down failed"
  docker image rm "$image" >/dev/null 2>&1 || true
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM # through cleanup

# --- Helpers -------------------------------------------------------------------------------

# The id of the container with compose number N of SERVICE (labels are the same in v1 and v2).
container() {
  docker ps -aq --no-trunc --filter "label=com.docker.compose.project=$project" \
    --filter "label=com.docker.compose.service=$1" \
    --filter "label=com.docker.compose.container-number=$2"
}

# Waits until every container in "$@" reports healthy (its HEALTHCHECK runs `vidswarm status`).
wait_healthy() {
  local deadline=$((SECONDS + 90)) id status pending
  while :; do
    pending=()
    for id in "$@"; do
      status=$(docker inspect --format '{{.State.Health.Status}}' "$id")
      [ "$status" = healthy ] || pending+=("${id:0:12}:$status")
    done
    [ ${#pending[@]} -eq 0 ] && return 0
    if [ $SECONDS -ge $deadline ]; then say "not healthy after 90 s: ${pending[*]}"; return 1; fi
    sleep 1
  done
}

# Waits until every node named in "$@" is connected to at least 2 peers: the gateway it
# bootstrapped from and at least one node it found on its own (through the DHT).
wait_peers() {
  local deadline=$((SECONDS + 30)) name line done_all n
  while :; do
    done_all=1 line=
    for name in "$@"; do
      n=$(curl -fsS --max-time 5 "${urls[$name]}/api/v1/peers" | jq length) || n=-
      line+=" $name=$n"
      [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 2 ] || done_all=
    done
    if [ -n "$done_all" ]; then say "connected peers:$line"; return 0; fi
    if [ $SECONDS -ge $deadline ]; then say "too few peers after 30 s:$line"; return 1; fi
    sleep 1
  done
}

# How many fragments of video $2 the container $1 holds, asked from inside it (so it works while
# the container is cut off from every network; "-" when it does not answer).
held_inside() {
  docker exec "$1" /vidswarm status --node http://127.0.0.1:8080 2>/dev/null |
    awk -v v="video ${2:0:8} " 'index($0, v) == 1 && match($0, /[0-9]+\/[0-9]+ fragments held/) {
        split(substr($0, RSTART, RLENGTH), n, "/"); print n[1]; found = 1 }
      END { if (!found) print 0 }' || echo -
}

# The IP address of container $1 on network $2 (empty when it is not on it).
ip_on() {
  docker inspect --format "{{with index .NetworkSettings.Networks \"$2\"}}{{.IPAddress}}{{end}}" "$1"
}

# How many fragments of video $2 the node at URL $1 holds ("-" when it does not answer).
held() {
  curl -fsS --max-time 5 "$1/api/v1/videos" 2>/dev/null |
    jq --arg id "$2" '[.videos[] | select(.video_id == $id) | .fragments[] | select(.held)] | length' ||
    echo -
}

# Waits until every node named in "$@" (keys of the urls array) holds all $count fragments.
wait_replicated() {
  local deadline=$((SECONDS + 120)) next_report=$((SECONDS + 5)) name line done_all n
  while :; do
    done_all=1 line=
    for name in "$@"; do
      n=$(held "${urls[$name]}" "$video")
      line+=" $name=$n/$count"
      [ "$n" = "$count" ] || done_all=
    done
    if [ -n "$done_all" ]; then say "every node holds the whole video:$line"; return 0; fi
    if [ $SECONDS -ge $deadline ]; then say "not replicated after 120 s:$line"; return 1; fi
    if [ $SECONDS -ge $next_report ]; then say "waiting:$line"; next_report=$((SECONDS + 5)); fi
    sleep 1
  done
}

# Downloads the manifest and every fragment from node $1 and joins them: `vidswarm join` checks
# each fragment's size and BLAKE3 against the manifest (whose id is checked too) before joining.
# The joined video must be byte-identical on every node.
check_bytes() {
  local name=$1 url=${urls[$1]} dir=$work/from-$1 i
  mkdir -p "$dir"
  curl -fsS --max-time 10 "$url/api/v1/videos/$video/manifest" -o "$dir/manifest.json"
  for ((i = 0; i < count; i++)); do
    curl -fsS --max-time 10 "$url/api/v1/videos/$video/fragments/$i" -o "$dir/fragment_$i.mp4"
  done
  "$vidswarm" join "$dir" --out "$dir.mp4" >/dev/null
  if [ -e "$work/reference.mp4" ]; then
    cmp -s "$work/reference.mp4" "$dir.mp4" || { say "$name: joined video differs"; return 1; }
  else
    cp "$dir.mp4" "$work/reference.mp4"
  fi
  say "$name: $count fragments verified against the manifest, joined video identical"
}

# --- The test ------------------------------------------------------------------------------

if [ -n "${VIDSWARM_E2E_BIN:-}" ]; then
  [ -x "$vidswarm" ] || { say "FAILED: VIDSWARM_E2E_BIN=$vidswarm is not an executable"; exit 1; }
  say "building the image $image ($vidswarm + scratch image)"
  VIDSWARM_IMAGE=$image scripts/build-image.sh --bin "$vidswarm"
else
  say "building the image $image (release binary + scratch image)"
  VIDSWARM_IMAGE=$image scripts/build-image.sh
fi
"$vidswarm" swarm-key >"$VIDSWARM_SWARM_KEY_FILE"
chmod 644 "$VIDSWARM_SWARM_KEY_FILE" # read by the containers' uid 10001; $work itself is 0700

say "${compose[*]} -p $project up -d --scale node=5"
dc up -d --scale node=5 2>&1 | sed 's/^/  /' >&2
declare -A urls ids
ids[gateway]=$(container gateway 1)
for i in 1 2 3 4 5; do ids[node$i]=$(container node "$i"); done
wait_healthy "${ids[@]}"
# Host ports as `docker compose port` reports them: the gateway's, and each scaled node's.
urls[gateway]=http://$(dc port gateway 8080)
for i in 1 2 3 4 5; do urls[node$i]=http://$(dc port --index="$i" node 8080); done
for name in gateway node1 node2 node3 node4 node5; do say "$name healthy at ${urls[$name]}"; done
wait_peers gateway node1 node2 node3 node4 node5
# The key is in effect: every node says so, and none listens on QUIC (pnet is TCP only).
for name in gateway node1 node2 node3 node4 node5; do
  docker logs "${ids[$name]}" 2>&1 | grep "private swarm" >/dev/null || # not -q: pipefail and SIGPIPE
    { say "$name does not run a private swarm"; exit 1; }
  ! curl -fsS "${urls[$name]}/api/v1/info" | jq -e '.addresses | any(contains("quic"))' >/dev/null ||
    { say "$name listens on QUIC in a private swarm"; exit 1; }
done
# A node without the key, on the same network with the same bootstrap address: it must stay
# alone for the whole test (checked at the end).
outsider=$(docker run -d --network "$(docker network ls -q --filter "label=com.docker.compose.project=$project" | head -1)" \
  -p 127.0.0.1::8080 -e VIDSWARM_BOOTSTRAP=/dns4/gateway/tcp/4001 "$image")
squatters+=("$outsider") # removed on exit with them
say "private swarm: every node runs with the key; a keyless node $outsider tries to join"

say "vidswarm publish assets/demo.mp4 --node ${urls[node1]}"
"$vidswarm" publish assets/demo.mp4 --node "${urls[node1]}" 2>&1 | sed 's/^/  /' >&2
# The swarm is new: the one video it holds is the one just published.
video=$(curl -fsS "${urls[node1]}/api/v1/videos" | jq -r '.videos[0].video_id')
count=$(curl -fsS "${urls[node1]}/api/v1/videos/$video/manifest" | jq '.fragments | length')
[ "$count" = 10 ] || { say "expected 10 fragments in the manifest, got $count"; exit 1; }
say "published video $video ($count fragments)"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST "${urls[gateway]}/api/v1/videos/$video/fetch")
[ "$code" = 401 ] || { say "a state-changing request without the token got $code, not 401"; exit 1; }
wait_replicated gateway node1 node2 node3 node4 node5
for name in gateway node1 node2 node3 node4 node5; do check_bytes "$name"; done

# node1 got the video from the host; the others copied it from the swarm. Kill it (no clean
# shutdown) and remove it, so that the scale-up below does not start it again.
say "killing node1 (${ids[node1]:0:12}), the node the video was published to"
docker kill "${ids[node1]}" >/dev/null
docker rm -v "${ids[node1]}" >/dev/null
for name in gateway node2 node3 node4 node5; do
  curl -fsS --max-time 5 "${urls[$name]}/health" >/dev/null
  curl -fsS --max-time 10 "${urls[$name]}/api/v1/videos/$video/fragments/3" -o "$work/f3-$name"
  cmp -s "$work/f3-$name" "$work/from-gateway/fragment_3.mp4" ||
    { say "$name serves other bytes for fragment 3 after node1 died"; exit 1; }
done
say "gateway, node2..node5 still healthy and serving the same bytes"

say "scaling up: up -d --no-recreate --scale node=6 (4 left, so 2 new nodes)"
before=" ${ids[*]} "
dc up -d --no-recreate --scale node=6 2>&1 | sed 's/^/  /' >&2
new=()
for id in $(docker ps -q --no-trunc --filter "label=com.docker.compose.project=$project" \
  --filter "label=com.docker.compose.service=node"); do
  [[ $before == *" $id "* ]] && continue
  n=$(docker inspect --format '{{index .Config.Labels "com.docker.compose.container-number"}}' "$id")
  ids[node$n]=$id
  urls[node$n]=http://$(dc port --index="$n" node 8080)
  new+=("node$n")
done
[ ${#new[@]} -eq 2 ] || { say "expected 2 new nodes, got: ${new[*]:-none}"; exit 1; }
for name in "${new[@]}"; do wait_healthy "${ids[$name]}"; done
say "new nodes: ${new[*]}"
wait_peers "${new[@]}"
wait_replicated gateway node2 node3 node4 node5 "${new[@]}"
for name in "${new[@]}"; do check_bytes "$name"; done

# The same image without compose, as on another host: a bootstrap address and JSON logs.
network=$(docker network ls -q --filter "label=com.docker.compose.project=$project" | head -1)
say "docker run: one more node on the project's network, VIDSWARM_LOG_FORMAT=json"
extra=$(docker run -d --network "$network" -p 127.0.0.1::8080 "${keyed[@]}" \
  -e VIDSWARM_BOOTSTRAP=/dns4/gateway/tcp/4001 -e VIDSWARM_LOG_FORMAT=json "$image")
wait_healthy "$extra"
urls[extra]=http://$(docker port "$extra" 8080/tcp | head -1)
wait_replicated extra
check_bytes extra
# Every line it logged is a JSON object (stdout carries its listen addresses, not logs).
docker logs "$extra" 2>&1 >/dev/null | jq -e -s 'length > 0 and all(type == "object")' >/dev/null ||
  { say "the node's logs are not JSON lines:"; docker logs "$extra" 2>&1 >/dev/null | head -5 >&2; exit 1; }
say "its $(docker logs "$extra" 2>&1 >/dev/null | wc -l) log lines are JSON"

# --- A partition heals; a node that comes back with another IP rejoins ---------------------
# node4 and node5 lose the network (docker network disconnect); a second video is published on
# the other side; node5's IP is taken meanwhile, so it comes back with a new one. Within a
# deadline both hold the new video: dead connections are closed (failed pings), the nodes with
# no peer re-dial their bootstrap address, announcements and auto-fetch do the rest.
netname=$(docker network inspect --format '{{.Name}}' "$network")
cut=(node4 node5)
old_ip=$(ip_on "${ids[node5]}" "$netname")
say "partition: cutting ${cut[*]} off $netname (node5 was $old_ip)"
for name in "${cut[@]}"; do docker network disconnect "$network" "${ids[$name]}"; done
# Containers take free addresses until one holds node5's old one (docker hands them out in order).
# They are vidswarm nodes of their own that join nothing and log every connection they take, so
# the one at node5's old address sees who still dials it.
for _ in 1 2 3 4 5 6 7 8; do
  squatters+=("$(docker run -d --network "$network" "${keyed[@]}" -e VIDSWARM_LOG_FORMAT=json \
    -e VIDSWARM_LOG=info,vidswarm_node::net=debug "$image" node --no-auto-fetch)")
  [ "$(ip_on "${squatters[-1]}" "$netname")" = "$old_ip" ] && break
done
squatter=${squatters[-1]}
say "vidswarm publish assets/demo.mp4 --fragments 4 --node ${urls[node2]} (the other side)"
"$vidswarm" publish assets/demo.mp4 --fragments 4 --node "${urls[node2]}" 2>&1 | sed 's/^/  /' >&2
first_video=$video
video=$(curl -fsS "${urls[node2]}/api/v1/videos" |
  jq -r --arg old "$first_video" '[.videos[] | select(.video_id != $old)][0].video_id')
count=4
say "published video $video ($count fragments) while ${cut[*]} are cut off"
wait_replicated gateway node2 node3
for name in "${cut[@]}"; do
  n=$(held_inside "${ids[$name]}" "$video")
  [ "$n" = 0 ] || { say "$name holds $n fragments of a video published while it was cut off"; exit 1; }
done
for name in "${cut[@]}"; do docker network connect "$network" "${ids[$name]}"; done
new_ip=$(ip_on "${ids[node5]}" "$netname")
if [ "$new_ip" = "$old_ip" ]; then
  say "warning: node5 came back with the same IP $new_ip (docker reassigned it)"
else
  say "reconnected: node5 now at $new_ip (was $old_ip)"
fi
reconnected=$SECONDS
deadline=$((SECONDS + 120))
while :; do
  line= done_all=1
  for name in "${cut[@]}"; do
    n=$(held_inside "${ids[$name]}" "$video")
    line+=" $name=$n/$count"
    [ "$n" = "$count" ] || done_all=
  done
  [ -n "$done_all" ] && break
  [ $SECONDS -lt $deadline ] || { say "the partition did not heal within 120 s:$line"; exit 1; }
  sleep 1
done
say "the partition healed $((SECONDS - reconnected)) s after reconnecting:$line"

# node5's old address is the squatter's now: a node that dials it there meets another peer's
# identity and forgets the address, and a live node5's identify replaces it, so once the swarm
# has settled nobody dials it. (While node5 is cut off, lookups still pass the old address
# between nodes that have not tried it yet: the counts printed say how often.)
dials_of_old_address() {
  docker logs "$squatter" 2>&1 >/dev/null |
    jq -r 'select(.fields.message? == "incoming connection") | .fields.from | split("/")[2]' |
    sort | uniq -c | awk '{ printf " %s:%s", $2, $1 }'
}
if [ "$new_ip" != "$old_ip" ] && [ "$(ip_on "$squatter" "$netname")" = "$old_ip" ]; then
  sleep 5
  settled=$(dials_of_old_address)
  sleep 10
  later=$(dials_of_old_address)
  say "dials of node5's old address $old_ip, by dialer:${later:- none}"
  [ "$later" = "$settled" ] ||
    { say "the old address was still dialed after the swarm settled:$settled ->$later"; exit 1; }
fi

outsider_peers=$(curl -fsS "http://$(docker port "$outsider" 8080/tcp | head -1)/api/v1/peers" | jq 'length')
[ "$outsider_peers" = 0 ] ||
  { say "the node without the swarm key got $outsider_peers peers"; exit 1; }
say "the node without the swarm key stayed alone through the whole test"

say "PASSED in $((SECONDS - started)) s"
