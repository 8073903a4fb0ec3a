#!/usr/bin/env bash
# benches/kv.sh: benchmarks B1, B2 and B7 of docs/BENCHMARKS.md, medos vs etcd 3.4 in one run.
#
#   bash benches/kv.sh            (as root; installs etcd-server/etcd-client if missing)
#
# What it does, all on 127.0.0.1:
#   1. installs `etcd-server etcd-client` from Debian if missing;
#   2. builds `medos` and the load generator `examples/kvload.rs` in release mode;
#   3. starts a 3-member etcd 3.4 cluster (TLS for clients and peers, certificates issued by
#      `medos ca`, default fsync behaviour) and a 3-master `medos dev` cluster (TLS, fsync
#      before every ack), data dirs in one temp dir;
#   4. B1: durable writes, B2: linearizable reads, 100-byte values, 1/64/256 concurrent clients,
#      each run against etcd and then medos with the same client (reqwest + rustls, HTTP/1.1,
#      all clients on the leader): ops/s, p50, p99;
#   5. B7: 16 writers write unique keys; the script kills the leader with kill -9 (etcd leader
#      found with `etcdctl endpoint status`); reported: time from the kill until the first write
#      sent after it is acknowledged, and acknowledged writes lost (every one is read back);
#   6. prints the table and writes it with machine, commit and date to bench-results/kv.md.
# Everything it started is stopped in a trap (by PID, never by name) and the temp dir removed.
#
# Knobs (environment): KV_DURATION measured seconds per load run (6), KV_WARMUP (1),
# KV_ROUNDS (2), KV_CLIENTS ("1 64 256"), KV_KEYS (10000), KV_FAILOVER_SECS (12), KV_KILL_AFTER (4),
# KV_OUT (bench-results/kv.md), KV_KEEP=1 keeps the temp dir (logs) for inspection.
# Whole run: ~6 minutes plus the build.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DURATION=${KV_DURATION:-6}
ROUNDS=${KV_ROUNDS:-2}
WARMUP=${KV_WARMUP:-1}
CLIENTS=${KV_CLIENTS:-"1 64 256"}
KEYS=${KV_KEYS:-10000}
FAILOVER_SECS=${KV_FAILOVER_SECS:-12}
KILL_AFTER=${KV_KILL_AFTER:-4}
OUT=${KV_OUT:-$ROOT/bench-results/kv.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

BENCH=kv.sh
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

# ---- 1. peers from Debian ----
missing=()
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || die "need root to apt-get install ${missing[*]}"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export ETCDCTL_API=3

# ---- 2. build ----
log "building medos and kvload (release)"
(cd "$ROOT" && cargo build --release --quiet --bin medos --example kvload)
MEDOS=$TARGET_DIR/release/medos
KVLOAD=$TARGET_DIR/release/examples/kvload

# ---- processes and cleanup ----
WORK=$(mktemp -d "${TMPDIR:-/tmp}/medos-kv-bench.XXXXXX")
PIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 100); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ ${KV_KEEP:-0} == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A base port with 6 free ports after it (3 client, 3 peer ports for etcd).
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
BASE=
for _ in $(seq 50); do
    candidate=$((20000 + RANDOM % 20000))
    ok=1
    for off in 0 1 2 3 4 5; do port_free $((candidate + off)) || ok=0; done
    if ((ok)); then
        BASE=$candidate
        break
    fi
done
[[ -n $BASE ]] || die "no free port range found"

# ---- 3a. etcd: 3 members, TLS everywhere ----
# Clients: server-authenticated TLS only, as with medos (etcd 3.4 demands client certificates
# as soon as --trusted-ca-file is given, so it is not). Peers: mutual TLS, as medos masters.
PKI=$WORK/etcd-pki
"$MEDOS" ca init --dir "$PKI" --cluster-name etcd-bench 2>/dev/null
initial=
ETCD_EPS=()
for i in 1 2 3; do
    "$MEDOS" ca issue --role master --name "etcd-$i" --host 127.0.0.1 --host localhost --ca-dir "$PKI" --out "$PKI" 2>/dev/null
    initial+="${initial:+,}etcd-$i=https://127.0.0.1:$((BASE + 2 + i))"
    ETCD_EPS+=("https://127.0.0.1:$((BASE + i - 1))")
done
ETCD_PIDS=()
for i in 1 2 3; do
    cport=$((BASE + i - 1))
    pport=$((BASE + 2 + i))
    etcd --name "etcd-$i" --data-dir "$WORK/etcd-$i" \
        --listen-client-urls "https://127.0.0.1:$cport" --advertise-client-urls "https://127.0.0.1:$cport" \
        --listen-peer-urls "https://127.0.0.1:$pport" --initial-advertise-peer-urls "https://127.0.0.1:$pport" \
        --initial-cluster "$initial" --initial-cluster-state new --initial-cluster-token "kv-bench-$$" \
        --cert-file "$PKI/etcd-$i.crt" --key-file "$PKI/etcd-$i.key" \
        --peer-cert-file "$PKI/etcd-$i.crt" --peer-key-file "$PKI/etcd-$i.key" \
        --peer-trusted-ca-file "$PKI/ca.crt" --peer-client-cert-auth \
        --logger zap --log-outputs stderr >"$WORK/etcd-$i.log" 2>&1 &
    PIDS+=("$!")
    ETCD_PIDS+=("$!")
done
ETCD_LIST=$(
    IFS=,
    echo "${ETCD_EPS[*]}"
)
etcdctl_() { etcdctl --endpoints "$ETCD_LIST" --cacert "$PKI/ca.crt" --dial-timeout 1s --command-timeout 2s "$@"; }

# ---- 3b. medos: 3 masters ----
"$MEDOS" dev --masters 3 --agents 0 --dir "$WORK/medos" --no-attach --json >"$WORK/medos-dev.json" 2>"$WORK/medos-dev.log" &
PIDS+=("$!")
MEDOS_DEV_PID=$!

log "waiting for both clusters"
for _ in $(seq 120); do
    [[ -s $WORK/medos-dev.json ]] && break
    kill -0 "$MEDOS_DEV_PID" 2>/dev/null || die "medos dev exited: $(tail -5 "$WORK/medos-dev.log")"
    sleep 0.5
done
[[ -s $WORK/medos-dev.json ]] || die "medos dev cluster not ready after 60 s"
# The masters are children of `medos dev`; record their PIDs so the trap can stop them too.
mapfile -t MASTER_PIDS < <(grep -o '"pid":[0-9]*' "$WORK/medos-dev.json" | cut -d: -f2)
PIDS+=("${MASTER_PIDS[@]}")
# The masters' URLs: the top-level "api" array (nodes may include agents in later versions).
mapfile -t MEDOS_EPS < <(grep -o '"api":\[[^]]*\]' "$WORK/medos-dev.json" | grep -o 'https://[^"]*')
MEDOS_LIST=$(
    IFS=,
    echo "${MEDOS_EPS[*]}"
)
for _ in $(seq 60); do
    etcdctl_ endpoint health >/dev/null 2>&1 && break
    sleep 0.5
done
etcdctl_ endpoint health >/dev/null 2>&1 || die "etcd not healthy after 30 s: $(tail -3 "$WORK/etcd-1.log")"

MEDOS_ARGS=(--target medos --endpoints "$MEDOS_LIST" --ca "$WORK/medos/pki/ca.crt" --password-file "$WORK/medos/admin-password")
ETCD_ARGS=(--target etcd --endpoints "$ETCD_LIST" --ca "$PKI/ca.crt")
RESULTS=$WORK/results.jsonl
: >"$RESULTS"

# ---- 4. B1 and B2 ----
# Every run goes to both systems back to back, in alternating order from round to round, so
# that noise from this shared machine hits both alike; the report takes the median of rounds.
LOAD_AVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for op in put get; do
    for round in $(seq "$ROUNDS"); do
        for c in $CLIENTS; do
            if ((round % 2)); then order=(etcd medos); else order=(medos etcd); fi
            for system in "${order[@]}"; do
                if [[ $system == etcd ]]; then args=("${ETCD_ARGS[@]}"); else args=("${MEDOS_ARGS[@]}"); fi
                extra=()
                if [[ $op == get && $round == 1 && $c == "${CLIENTS%% *}" ]]; then extra=(--prefill); fi
                log "round $round/$ROUNDS: $op, $c client(s), $system"
                "$KVLOAD" load "${args[@]}" --op "$op" --clients "$c" --duration "$DURATION" --warmup "$WARMUP" \
                    --keys "$KEYS" --value-size 100 "${extra[@]}" >>"$RESULTS"
                sleep 1
            done
        done
    done
done

# ---- 5. B7: kill -9 the leader under write load ----
etcd_leader() {
    # `endpoint status` prints: endpoint, id, version, db size, is leader, ...
    etcdctl_ endpoint status 2>/dev/null | awk -F', ' '$5 == "true" { print $1 }'
}
failover() {
    local system=$1 killfile=$WORK/kill-$1 pid name url i
    local -a args
    if [[ $system == etcd ]]; then args=("${ETCD_ARGS[@]}"); else args=("${MEDOS_ARGS[@]}"); fi
    "$KVLOAD" failover "${args[@]}" --clients 16 --duration "$FAILOVER_SECS" --kill-time-file "$killfile" \
        >>"$RESULTS" &
    local load=$!
    PIDS+=("$load")
    sleep "$KILL_AFTER"
    if [[ $system == etcd ]]; then
        url=$(etcd_leader)
        [[ -n $url ]] || die "no etcd leader found"
        for i in 0 1 2; do
            if [[ ${ETCD_EPS[$i]} == "$url" ]]; then
                pid=${ETCD_PIDS[$i]}
                name=etcd-$((i + 1))
            fi
        done
    else
        read -r pid name < <("$KVLOAD" leader "${MEDOS_ARGS[@]}" --dev-json "$WORK/medos-dev.json") || true
    fi
    [[ -n ${pid:-} ]] || die "cannot find the $system leader's PID"
    log "failover: kill -9 $system leader $name (pid $pid)"
    local t
    t=$(date +%s%N)
    kill -KILL "$pid"
    echo "$t $name" >"$killfile"
    # Reap a killed etcd quietly (the medos masters are children of `medos dev`).
    if [[ $system == etcd ]]; then wait "$pid" 2>/dev/null || true; fi
    wait "$load" || die "kvload failover against $system failed"
}
failover etcd
failover medos

# ---- 6. report ----
cpu=$(bench_cpu)
commit=$(bench_commit)
etcd_version=$(etcd --version | awk 'NR == 1 { print $3 }')
fs=$(df --output=fstype "$WORK" | tail -1)
table=$("$KVLOAD" report --results "$RESULTS")
mkdir -p "$(dirname "$OUT")"
{
    echo "# KV benchmarks: medos vs etcd (B1, B2, B7)"
    echo
    echo "Generated by \`bash benches/kv.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); see docs/BENCHMARKS.md for the goals."
    echo
    echo "- machine: $(nproc) cores, $cpu, kernel $(uname -r), data dirs on $fs"
    echo "- commit: $commit; etcd $etcd_version (Debian \`etcd-server\`)"
    echo "- load average (1/5/15 min) before the load runs: $LOAD_AVG_BEFORE (the machine is shared)"
    echo "- both clusters: 3 members on 127.0.0.1, TLS for clients and between members, fsync before"
    echo "  acknowledging (etcd's default; medos always); etcd without auth, medos with an admin token"
    echo "- client: \`examples/kvload.rs\`, the same reqwest + rustls stack for both (HTTP/1.1, one"
    echo "  connection per client, all clients on the leader); etcd through its v3 JSON gateway"
    echo "  (\`/v3/kv/put\`, \`/v3/kv/range\`, linearizable), medos through \`/v1/kv\` (linearizable GET)"
    echo "- load runs: ${WARMUP} s warm-up + ${DURATION} s measured each, 100-byte values, ${KEYS} keys picked"
    echo "  at random, ${ROUNDS} round(s) in alternating order (figures: median of the rounds); failover:"
    echo "  one run per system: 16 writers of unique keys for ${FAILOVER_SECS} s, leader killed with"
    echo "  kill -9 after ${KILL_AFTER} s, every acknowledged write read back afterwards"
    echo
    echo "$table"
} >"$OUT"
echo
cat "$OUT"
log "wrote $OUT"
