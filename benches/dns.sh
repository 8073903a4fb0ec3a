#!/usr/bin/env bash
# benches/dns.sh: benchmarks B5 (cluster DNS throughput and latency against knot) and B9 (how
# soon a new task's name resolves) of docs/BENCHMARKS.md.
#
#   bash benches/dns.sh     (as root; installs dnsperf, knot, dnsutils and jq from Debian if missing)
#
# What it does, all on loopback:
#   1. builds `medos` in release mode;
#   2. starts `medos dev --masters 1 --agents 0` (as root its DNS listens on port 53 of a
#      loopback address of its own) and `medos agent --simulate SIMS` (real agent sessions,
#      fake containers: a task is RUNNING once launched); deploys APPS Marathon apps of
#      INSTANCES instances with one port each (`/bench/appN`, names `appN-bench.marathon.mesos`);
#   3. builds the equivalent static zone for knot: for every benchmarked name (each app's A
#      name and its `_appN-bench._tcp` SRV name) and every SRV target, the records medos
#      answers, with the same TTLs, plus SOA and NS; knot (`knotd`, its default workers)
#      serves it on another loopback port;
#   4. B5: `dnsperf` with the same query file (A and SRV names, alternating), the same clients
#      (CLIENTS), outstanding queries (OUTSTANDING) and duration (SECS) against knot and
#      medos, interleaved over ROUNDS rounds so that load changes hit both alike; queries per
#      second, average latency and lost queries per server; medos/knot ratios of the medians;
#   5. B9: FRESH_RUNS times, a new one-instance app is posted and `dig` asks for its name every
#      few milliseconds until it resolves; the time from the POST to the first answer (an
#      upper bound of TASK_RUNNING -> resolvable, since it includes placing and starting the
#      task) and, from the masters' status history, TASK_RUNNING -> first answer;
#   6. writes the tables with machine, commit and date to bench-results/dns.md.
# Everything it started is stopped in a trap (by PID, never by name) and the temp dir removed.
#
# Knobs (environment): APPS (20), INSTANCES (5), SIMS (10), CLIENTS (8), OUTSTANDING (200),
# SECS (10), ROUNDS (3), FRESH_RUNS (20), DNS_OUT (bench-results/dns.md), DNS_BUILD=0 skips the
# build (DNS_MEDOS names the binary then), DNS_KEEP=1 keeps the temp dir. About 3 minutes plus
# the build.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APPS=${APPS:-20}
INSTANCES=${INSTANCES:-5}
SIMS=${SIMS:-10}
CLIENTS=${CLIENTS:-8}
OUTSTANDING=${OUTSTANDING:-200}
SECS=${SECS:-10}
ROUNDS=${ROUNDS:-3}
FRESH_RUNS=${FRESH_RUNS:-20}
OUT=${DNS_OUT:-$ROOT/bench-results/dns.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

BENCH=dns.sh
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

[[ $(id -u) -eq 0 ]] || die "run as root: the cluster DNS of medos dev uses port 53 as root, and packages may need installing"
ensure_tools dnsperf:dnsperf knotd:knot dig:bind9-dnsutils jq:jq curl:curl

MEDOS=${DNS_MEDOS:-$TARGET_DIR/release/medos}
if [[ ${DNS_BUILD:-1} == 1 ]]; then
    log "building medos (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin medos)
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/medos-dns-bench.XXXXXX")
PIDS=()
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 100); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    if [[ ${DNS_KEEP:-0} == 1 ]]; then log "kept $WORK"; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
LOAD_AVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 2. cluster, simulated agents, apps ----
DIR=$WORK/cluster
log "starting medos dev (1 master)"
"$MEDOS" dev --masters 1 --agents 0 --dir "$DIR" --no-attach --json >"$WORK/dev.json" 2>"$WORK/dev.log" &
PIDS+=($!)
for _ in $(seq 120); do
    [[ -s $WORK/dev.json ]] && break
    sleep 0.5
done
[[ -s $WORK/dev.json ]] || die "medos dev not ready: $(tail -5 "$WORK/dev.log")"
mapfile -t MASTER_PIDS < <(jq -r '.nodes[] | select(.role == "master") | .pid' "$WORK/dev.json")
PIDS+=("${MASTER_PIDS[@]}")
API=$(jq -r '.api[0]' "$WORK/dev.json")
MEDOS_DNS=$(jq -r '.nodes[] | select(.role == "master") | .dns' "$WORK/dev.json")
MEDOS_DNS_IP=${MEDOS_DNS%:*}
MEDOS_DNS_PORT=${MEDOS_DNS##*:}
CA=$DIR/pki/ca.crt
TOKEN=$(curl -sf --cacert "$CA" -X POST "$API/acs/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"uid\":\"admin\",\"password\":\"$(cat "$DIR/admin-password")\"}" | jq -r .token)
[[ -n $TOKEN && $TOKEN != null ]] || die "cannot log in"
api() { curl -sf --cacert "$CA" -H "Authorization: token=$TOKEN" -H 'Content-Type: application/json' "$@"; }

"$MEDOS" ca issue --role agent --name sim --host 127.0.0.1 --ca-dir "$DIR/pki" --out "$DIR/pki" 2>/dev/null
log "starting $SIMS simulated agents"
"$MEDOS" agent --simulate "$SIMS" --master "$API" --work-dir "$WORK/agents" --tls-ca "$CA" \
    --tls-cert "$DIR/pki/sim.crt" --tls-key "$DIR/pki/sim.key" >"$WORK/agents.log" 2>&1 &
PIDS+=($!)

TOTAL=$((APPS * INSTANCES))
log "deploying $APPS apps of $INSTANCES instances"
for i in $(seq 0 $((APPS - 1))); do
    api -X POST "$API/v2/apps" -d "{\"id\":\"/bench/app$i\",\"cmd\":\"sleep 100000\",\"cpus\":0.01,\"mem\":8,\"instances\":$INSTANCES,\"portDefinitions\":[{\"port\":0}]}" >/dev/null ||
        die "POST /v2/apps failed"
done
for _ in $(seq 240); do
    running=$(api "$API/v2/apps?id=/bench" | jq '[.apps[].tasksRunning] | add // 0')
    ((running == TOTAL)) && break
    sleep 0.5
done
((running == TOTAL)) || die "only $running of $TOTAL tasks running"

# ---- 3. the equivalent zone for knot ----
digm() { dig "@$MEDOS_DNS_IP" -p "$MEDOS_DNS_PORT" +noall +answer "$@"; }
QUERIES=$WORK/queries.txt
ZONE_DIR=$WORK/knot
mkdir -p "$ZONE_DIR/db" "$ZONE_DIR/run"
ZONE=$ZONE_DIR/mesos.zone
{
    echo '$ORIGIN mesos.'
    echo '@ 60 IN SOA ns1.mesos. root.ns1.mesos. 1 60 60 86400 5'
    echo '@ 60 IN NS ns1.mesos.'
    echo 'ns1 60 IN A 127.0.0.1'
} >"$ZONE"
: >"$QUERIES"
for i in $(seq 0 $((APPS - 1))); do
    echo "app$i-bench.marathon.mesos A" >>"$QUERIES"
    echo "_app$i-bench._tcp.marathon.mesos SRV" >>"$QUERIES"
done
while read -r name type; do
    digm "$name" "$type" >>"$ZONE"
    if [[ $type == SRV ]]; then
        digm "$name" SRV | awk '{print $NF}' | sort -u | while read -r target; do digm "$target" A >>"$ZONE"; done
    fi
done <"$QUERIES"
sort -u -o "$ZONE.body" <(grep -v '^\$ORIGIN\|^@\|^ns1' "$ZONE")
{ head -4 "$ZONE"; cat "$ZONE.body"; } >"$ZONE.new" && mv "$ZONE.new" "$ZONE"
records=$(($(wc -l <"$ZONE") - 4))
((records >= APPS * 2)) || die "the zone has $records records; medos answered too little (see $ZONE)"

KNOT_PORT=$(python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$ZONE_DIR/knot.conf" <<EOF
server:
    rundir: "$ZONE_DIR/run"
    listen: 127.0.0.1@$KNOT_PORT
database:
    storage: "$ZONE_DIR/db"
template:
  - id: default
    storage: "$ZONE_DIR"
    file: "%s.zone"
    zonefile-load: whole
    journal-content: none
zone:
  - domain: mesos
EOF
knotd -c "$ZONE_DIR/knot.conf" >"$WORK/knot.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
    dig @127.0.0.1 -p "$KNOT_PORT" +short app0-bench.marathon.mesos A | grep -q . && break
    sleep 0.2
done
dig @127.0.0.1 -p "$KNOT_PORT" +short app0-bench.marathon.mesos A | grep -q . || die "knot does not answer: $(tail -5 "$WORK/knot.log")"

# ---- 4. B5 ----
RESULTS=$WORK/b5.tsv
: >"$RESULTS"
perf() { # perf SERVER IP PORT
    local out
    out=$(dnsperf -s "$2" -p "$3" -d "$QUERIES" -c "$CLIENTS" -q "$OUTSTANDING" -l "$SECS" 2>&1)
    local qps avg lost
    qps=$(awk '/Queries per second:/ {print $4}' <<<"$out")
    avg=$(awk '/Average Latency/ {print $4}' <<<"$out")
    lost=$(awk '/Queries lost:/ {print $3}' <<<"$out")
    [[ -n $qps ]] || die "dnsperf against $1 failed: $out"
    printf '%s\t%s\t%s\t%s\n' "$1" "$qps" "$avg" "$lost" >>"$RESULTS"
    log "$1: $qps queries/s, average latency $avg s, lost $lost"
}
for round in $(seq "$ROUNDS"); do
    log "B5 round $round of $ROUNDS"
    perf knot 127.0.0.1 "$KNOT_PORT"
    perf medos "$MEDOS_DNS_IP" "$MEDOS_DNS_PORT"
done

# ---- 5. B9 ----
FRESH=$WORK/b9.tsv
: >"$FRESH"
for i in $(seq 0 $((FRESH_RUNS - 1))); do
    name=fresh$i-bench.marathon.mesos
    t0=$(date +%s%N)
    api -X POST "$API/v2/apps" -d "{\"id\":\"/bench/fresh$i\",\"cmd\":\"sleep 100000\",\"cpus\":0.01,\"mem\":8,\"instances\":1}" >/dev/null
    until [[ -n $(dig "@$MEDOS_DNS_IP" -p "$MEDOS_DNS_PORT" +short +tries=1 +time=1 "$name" A) ]]; do
        (($(date +%s%N) - t0 < 30000000000)) || die "$name did not resolve within 30 s"
    done
    t1=$(date +%s%N)
    # TASK_RUNNING as the masters recorded it (the agent's timestamp of the update).
    running_ms=$(api "$API/v2/apps/bench/fresh$i/tasks" | jq -r '.tasks[0].startedAt // empty')
    running_ns=$([[ -n $running_ms ]] && date -d "$running_ms" +%s%N || echo "")
    post_ms=$(((t1 - t0) / 1000000))
    if [[ -n $running_ns ]]; then run_ms=$(((t1 - running_ns) / 1000000)); else run_ms=-; fi
    printf '%s\t%s\n' "$post_ms" "$run_ms" >>"$FRESH"
    api -X DELETE "$API/v2/apps/bench/fresh$i?force=true" >/dev/null
done

# ---- 6. report ----
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) {print "-"} else if (NR % 2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
pct() { sort -g | awk -v p="$1" '{a[NR]=$1} END {if (NR == 0) {print "-"} else {i=int(NR*p/100+0.999); if (i<1) i=1; print a[i]}}'; }
col() { awk -F'\t' -v s="$1" -v c="$2" '$1 == s {print $c}' "$RESULTS"; }
knot_qps=$(col knot 2 | median | xargs printf '%.0f')
medos_qps=$(col medos 2 | median | xargs printf '%.0f')
knot_lat=$(col knot 3 | median)
medos_lat=$(col medos 3 | median)
ratio=$(awk -v m="$medos_qps" -v k="$knot_qps" 'BEGIN {printf "%.2f", m / k}')
LOAD_AVG_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
cpu=$(bench_cpu)
commit=$(bench_commit)
goal_qps=$(awk -v m="$medos_qps" -v r="$ratio" 'BEGIN {print (m >= 100000 && r >= 0.5) ? "met" : "NOT met"}')
post_p50=$(cut -f1 "$FRESH" | median)
post_max=$(cut -f1 "$FRESH" | pct 100)
run_p50=$(cut -f2 "$FRESH" | grep -v '^-$' | median)
run_max=$(cut -f2 "$FRESH" | grep -v '^-$' | pct 100)
goal_fresh=$(awk -v m="$post_max" 'BEGIN {print (m != "-" && m <= 1000) ? "met" : "NOT met"}')

{
    echo "# Cluster DNS benchmark: throughput vs knot (B5) and freshness (B9)"
    echo
    echo "Generated by \`bash benches/dns.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); see docs/BENCHMARKS.md for the goals."
    echo
    echo "- machine: $(nproc) cores, $cpu, kernel $(uname -r); load average before: $LOAD_AVG_BEFORE, after: $LOAD_AVG_AFTER (the machine is shared)"
    echo "- commit: $commit; $(knotd --version 2>&1 | head -1); dnsperf $(dnsperf -h 2>&1 | awk '/^Version/ {print $2}')"
    echo "- medos: one master of \`medos dev\` (release build) answering from its replicated state, $APPS apps x $INSTANCES instances on $SIMS simulated agents; knot: the same records as a static zone (what medos answered for every benchmarked name and SRV target), default settings"
    echo "- dnsperf: $CLIENTS clients, $OUTSTANDING queries outstanding, $SECS s per run, $ROUNDS rounds interleaved (knot, then medos); queries alternate A (the app's name) and SRV (\`_appN-bench._tcp\`); everything on the same 2 cores, dnsperf included"
    echo
    echo "### B5: queries per second and latency (medians over the rounds)"
    echo
    echo "| server | queries/s | average latency (ms) | lost (per run) |"
    echo "| --- | ---: | ---: | --- |"
    echo "| knot | $knot_qps | $(awk -v l="$knot_lat" 'BEGIN {printf "%.3f", l * 1000}') | $(col knot 4 | paste -sd, -) |"
    echo "| medos | $medos_qps | $(awk -v l="$medos_lat" 'BEGIN {printf "%.3f", l * 1000}') | $(col medos 4 | paste -sd, -) |"
    echo
    echo "medos / knot: **${ratio}x**; goal (>= 100k queries/s and >= 0.5x knot): **$goal_qps**."
    echo
    echo "Every run:"
    echo
    echo "| server | queries/s | average latency (s) | lost |"
    echo "| --- | ---: | ---: | ---: |"
    awk -F'\t' '{printf "| %s | %.0f | %s | %s |\n", $1, $2, $3, $4}' "$RESULTS"
    echo
    echo "### B9: a new task's name resolves"
    echo
    echo "| measure | runs | p50 (ms) | max (ms) |"
    echo "| --- | ---: | ---: | ---: |"
    echo "| POST /v2/apps -> name resolves (placement, launch and RUNNING included) | $FRESH_RUNS | $post_p50 | $post_max |"
    echo "| TASK_RUNNING (agent's timestamp) -> name resolves | $(cut -f2 "$FRESH" | grep -vc '^-$' || true) | $run_p50 | $run_max |"
    echo
    echo "Goal (<= 1 s): **$goal_fresh** (judged on the POST -> resolvable maximum, an upper bound). \`dig\` is started again as soon as it returns, so the figures include up to one dig round trip (a few ms)."
} >"$OUT.tmp"
if [[ -f $OUT ]] && grep -q '<!-- analysis' "$OUT"; then
    sed -n '/<!-- analysis/,$p' "$OUT" >>"$OUT.tmp"
fi
mv "$OUT.tmp" "$OUT"
log "wrote $OUT"
cat "$OUT"
