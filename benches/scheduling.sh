#!/usr/bin/env bash
# benches/scheduling.sh: benchmark B4 of docs/BENCHMARKS.md (scheduling throughput and app add ->
# RUNNING latency), with the registration, CPU and memory figures of B10.
#
#   bash benches/scheduling.sh       (as root or not; needs jq, installed from Debian if missing)
#
# What it does, all on 127.0.0.1:
#   1. builds `medos` and the driver `examples/schedload.rs` in release mode;
#   2. for each number of masters (1, 3) and of agents (1,000, 10,000): a fresh `medos dev
#      --masters M --agents 0` cluster (real masters: TLS, Raft, fsync'd sled log) and one
#      `medos agent --simulate N` process: N real agents (registration over mTLS, event stream,
#      heartbeats, durable status outbox) with fake containers (a task is RUNNING as soon as it is
#      launched), one shared agent certificate, 8 cpus / 32 GiB each, hostnames sim-00000..,
#      attributes rack=r0..r9, work dirs on tmpfs (/dev/shm);
#   3. waits until every simulated agent has registered and the leader counts exactly N active
#      agents (a retried registration the leader already committed adds a duplicate agent until
#      it is marked unreachable); time, CPU and RSS reported, then CPU and RSS over SCHED_IDLE_SECS
#      with nothing but heartbeats and pings;
#   4. placement runs, each on an empty cluster (the apps are removed and their tasks killed in
#      between; if a run does not finish within SCHED_TIMEOUT, the next one gets a fresh cluster),
#      TASKS tasks each (10,000): one app of TASKS instances without constraints; 10
#      apps of TASKS/10 with ["hostname","MAX_PER","2"]; 10 apps with ["rack","GROUP_BY"]. The
#      clock starts before the POSTs to /v2/apps; the simulated agents time the rest (counters
#      in a file the simulator rewrites every 100 ms, so nothing polls the busy masters):
#      "placed" when the last task's launch reached its agent (the leader sends a launch only
#      after its launch batch is committed through Raft), "RUNNING" when the masters
#      acknowledged the last TASK_RUNNING update (acknowledged once committed); the masters'
#      /v2/apps counts are checked afterwards;
#   5. latency: LATENCY_APPS one-instance apps added one after the other while following
#      /v2/events; app add (POST sent) -> status_update_event TASK_RUNNING, p50/p99/max;
#   6. CPU (% of one core over each phase, from /proc/PID/stat) and RSS of the leader, the other
#      masters and the simulator are sampled during every phase;
#   7. writes the tables with machine, commit and date to bench-results/scheduling.md.
# Everything it started is stopped in a trap (by PID, never by name) and the temp dirs removed.
#
# Knobs (environment): SCHED_MASTERS ("1 3"), SCHED_AGENTS ("1000 10000"), SCHED_TASKS (10000),
# SCHED_RUNS ("plain maxper groupby"), SCHED_LATENCY_APPS (50), SCHED_TIMEOUT (60 s per run),
# SCHED_START_RATE (500 simulated agents started per second), SCHED_REGISTER_TIMEOUT (240 s),
# SCHED_IDLE_SECS (10: CPU/RSS with idle agents, once per configuration), SCHED_OUT
# (bench-results/scheduling.md), SCHED_KEEP=1 keeps the temp dirs (logs), SCHED_BUILD=0 skips the
# build (then SCHED_MEDOS and SCHED_SCHEDLOAD may name the binaries to use).
# Whole run: about 25 minutes plus the build while placement runs time out (each such run costs a
# fresh cluster: 10,000 agents take ~40 s to register); far less once they finish in time.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MASTERS_LIST=${SCHED_MASTERS:-"1 3"}
AGENTS_LIST=${SCHED_AGENTS:-"1000 10000"}
TASKS=${SCHED_TASKS:-10000}
RUNS=${SCHED_RUNS:-"plain maxper groupby"}
LATENCY_APPS=${SCHED_LATENCY_APPS:-50}
TIMEOUT=${SCHED_TIMEOUT:-60}
REGISTER_TIMEOUT=${SCHED_REGISTER_TIMEOUT:-240}
START_RATE=${SCHED_START_RATE:-500}
IDLE_SECS=${SCHED_IDLE_SECS:-10}
OUT=${SCHED_OUT:-$ROOT/bench-results/scheduling.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

BENCH=scheduling.sh
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

if ! command -v jq >/dev/null; then
    [[ $(id -u) -eq 0 ]] || die "need jq (or root to apt-get install it)"
    log "installing jq"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq jq >/dev/null
fi

# ---- 1. build ----
MEDOS=${SCHED_MEDOS:-$TARGET_DIR/release/medos}
SCHEDLOAD=${SCHED_SCHEDLOAD:-$TARGET_DIR/release/examples/schedload}
if [[ ${SCHED_BUILD:-1} == 1 ]]; then
    log "building medos and schedload (release)"
    (cd "$ROOT" && cargo build --release --quiet --bin medos --example schedload)
fi

# ---- processes and cleanup ----
WORK=$(mktemp -d "${TMPDIR:-/tmp}/medos-sched-bench.XXXXXX")
SIMROOT=$(mktemp -d /dev/shm/medos-sched-agents.XXXXXX)
PIDS=()
stop_pids() {
    local pid
    for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 150); do
        local alive=0
        for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "$@"; do kill -KILL "$pid" 2>/dev/null || true; done
    for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    ((${#PIDS[@]})) && stop_pids "${PIDS[@]}"
    if [[ ${SCHED_KEEP:-0} == 1 ]]; then
        log "kept $WORK and $SIMROOT"
    else
        rm -rf "$WORK" "$SIMROOT"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

RESULTS=$WORK/results.jsonl
NOTES=$WORK/notes.md
: >"$RESULTS"
: >"$NOTES"
LOAD_AVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

# ---- 2-6. clusters ----
# The current cluster: set by cluster_up, cleared by cluster_down.
DEV_PID= SIM_PID= CLUSTER_NAME= CLUSTER_LABEL= STATS=
MASTER_PIDS=() TARGET=() WATCH=()
CLUSTER_SEQ=0

# cluster_up MASTERS AGENTS LABEL: fresh masters and simulated agents, all registered.
cluster_up() {
    local masters=$1 agents=$2 label=$3 idle=$4
    CLUSTER_SEQ=$((CLUSTER_SEQ + 1))
    CLUSTER_LABEL=$label
    CLUSTER_NAME=m$masters-a$agents-$CLUSTER_SEQ
    local dir=$WORK/$CLUSTER_NAME
    log "== $label: starting $masters master(s)"
    "$MEDOS" dev --masters "$masters" --agents 0 --dir "$dir" --no-attach --json \
        >"$dir.json" 2>"$dir.log" &
    DEV_PID=$!
    PIDS+=("$DEV_PID")
    for _ in $(seq 120); do
        [[ -s $dir.json ]] && break
        kill -0 "$DEV_PID" 2>/dev/null || die "medos dev exited: $(tail -5 "$dir.log")"
        sleep 0.5
    done
    [[ -s $dir.json ]] || die "medos dev not ready after 60 s"
    local -a endpoints master_args
    mapfile -t MASTER_PIDS < <(jq -r '.nodes[] | select(.role == "master") | .pid' "$dir.json")
    mapfile -t endpoints < <(jq -r '.api[]' "$dir.json")
    PIDS+=("${MASTER_PIDS[@]}")
    local eps ep
    eps=$(
        IFS=,
        echo "${endpoints[*]}"
    )
    for ep in "${endpoints[@]}"; do master_args+=(--master "$ep"); done
    TARGET=(--endpoints "$eps" --ca "$dir/pki/ca.crt" --password-file "$dir/admin-password")

    # One certificate for all simulated agents (the masters check its role, OU=agent, only).
    "$MEDOS" ca issue --role agent --name sim --host 127.0.0.1 --ca-dir "$dir/pki" --out "$dir/pki" 2>/dev/null
    log "$label: starting $agents simulated agents"
    STATS=$SIMROOT/$CLUSTER_NAME.stats.json
    # The agents' sessions log why they register again (lost stream, missed pings, refusals).
    MEDOS_LOG=warn,medos::agent::session=info "$MEDOS" agent --simulate "$agents" --simulate-rate "$START_RATE" \
        --simulate-stats "$STATS" "${master_args[@]}" --work-dir "$SIMROOT/$CLUSTER_NAME" --tls-ca "$dir/pki/ca.crt" --tls-cert "$dir/pki/sim.crt" \
        --tls-key "$dir/pki/sim.key" >"$dir-agents.log" 2>&1 &
    SIM_PID=$!
    PIDS+=("$SIM_PID")

    local leader leader_pid pid i=0
    leader=$("$SCHEDLOAD" leader "${TARGET[@]}")
    leader_pid=$(jq -r --arg api "$leader" '.nodes[] | select(.api == $api) | .pid' "$dir.json")
    [[ -n $leader_pid ]] || die "cannot find the leader's PID ($leader)"
    WATCH=(--watch "leader=$leader_pid")
    for pid in "${MASTER_PIDS[@]}"; do
        if [[ $pid != "$leader_pid" ]]; then
            i=$((i + 1))
            WATCH+=(--watch "follower$i=$pid")
        fi
    done
    WATCH+=(--watch "agents=$SIM_PID")
    "$SCHEDLOAD" wait-agents "${TARGET[@]}" --count "$agents" --timeout "$REGISTER_TIMEOUT" --label "$label" \
        "${WATCH[@]}" --sim-stats "$STATS" --idle-secs "$idle" >>"$RESULTS" ||
        die "agents did not register: $(tail -5 "$dir-agents.log")"
}

# What the logs say about one cluster's agents, appended to $NOTES.
summarize_logs() {
    local dir=$WORK/$CLUSTER_NAME label=$1 regs rereg unreachable reasons
    regs=$(cat "$dir"/master-*/master.log | grep -c "agent registered" || true)
    rereg=$(cat "$dir"/master-*/master.log | grep "agent registered" | grep -c "reregistered=true" || true)
    unreachable=$(cat "$dir"/master-*/master.log | grep -c "missed its heartbeats" || true)
    # The agents' reasons for registering again, by their first words.
    reasons=$(grep -o 'registering again error=.*' "$dir-agents.log" | sed -E 's/registering again error=//; s/https?:[^ ]*//g' |
        awk '{print $1, $2, $3}' | sort | uniq -c | sort -rn | head -4 | awk '{c=$1; $1=""; printf "%s%s x%d", (n++ ? ", " : ""), substr($0, 2), c}' || true)
    echo "- $label (cluster $CLUSTER_SEQ): the leader logged $regs registrations ($rereg of them re-registrations) and marked $unreachable agents unreachable${reasons:+; the agents registered again because: $reasons}" >>"$NOTES"
}

cluster_down() {
    [[ -n $DEV_PID ]] || return 0
    stop_pids "$SIM_PID"
    stop_pids "$DEV_PID" "${MASTER_PIDS[@]}"
    summarize_logs "$CLUSTER_LABEL"
    # Everything this cluster started is stopped: forget the PIDs (they may be reused).
    PIDS=()
    rm -rf "${SIMROOT:?}/$CLUSTER_NAME" "$STATS"
    DEV_PID= SIM_PID=
}

for masters in $MASTERS_LIST; do
    for agents in $AGENTS_LIST; do
        label="$masters master, $agents agents"
        if ((masters > 1)); then label="$masters masters, $agents agents"; fi
        clean=0 idle=$IDLE_SECS
        for run in $RUNS; do
            case $run in
            plain) args=(--apps 1 --instances "$TASKS") ;;
            maxper) args=(--apps 10 --instances $((TASKS / 10)) --constraint '["hostname","MAX_PER","2"]') ;;
            groupby) args=(--apps 10 --instances $((TASKS / 10)) --constraint '["rack","GROUP_BY"]') ;;
            *) die "unknown run $run (plain, maxper, groupby)" ;;
            esac
            ((clean)) || {
                cluster_down
                cluster_up "$masters" "$agents" "$label" "$idle"
                idle=0 # measured once per configuration
            }
            log "$label: placing $TASKS tasks ($run)"
            "$SCHEDLOAD" place "${TARGET[@]}" --label "$label" "${args[@]}" --timeout "$TIMEOUT" "${WATCH[@]}" \
                --sim-stats "$STATS" >>"$RESULTS" || die "placement run $run failed"
            tail -1 "$RESULTS" | jq -c '{placements_per_sec, running_per_sec, raft_entries, cleanup_secs, note}' >&2
            # Reuse the cluster only if every task ran and the apps were removed again.
            clean=$(tail -1 "$RESULTS" | jq -r 'if .running_secs != null and .cleanup_secs != null then 1 else 0 end')
        done
        if ((LATENCY_APPS > 0)); then
            ((clean)) || {
                cluster_down
                cluster_up "$masters" "$agents" "$label" "$idle"
                idle=0
            }
            log "$label: app add -> RUNNING latency over $LATENCY_APPS apps"
            "$SCHEDLOAD" latency "${TARGET[@]}" --label "$label" --apps "$LATENCY_APPS" "${WATCH[@]}" \
                >>"$RESULTS" || die "latency run failed"
            tail -1 "$RESULTS" | jq -c '{p50_ms, p99_ms, max_ms, note}' >&2
        fi
        log "$label: stopping"
        cluster_down
    done
done

# ---- 7. report ----
cpu=$(bench_cpu)
commit=$(bench_commit)
fs=$(df --output=fstype "$WORK" | tail -1)
table=$("$SCHEDLOAD" report --results "$RESULTS")
mkdir -p "$(dirname "$OUT")"
# Hand-written analysis below this marker in an existing report is kept.
MARKER='<!-- analysis: kept by benches/scheduling.sh when it rewrites this file -->'
analysis=
if [[ -f $OUT ]] && grep -qF "$MARKER" "$OUT"; then
    analysis=$(awk -v m="$MARKER" 'index($0, m) { keep = 1 } keep' "$OUT")
fi
{
    echo "# Scheduling benchmark: placements/s and app add -> RUNNING latency (B4, with B10 figures)"
    echo
    echo "Generated by \`bash benches/scheduling.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); see docs/BENCHMARKS.md for the goals."
    echo
    echo "- machine: $(nproc) cores, $cpu, kernel $(uname -r); master data dirs on $fs, agent work dirs on tmpfs"
    echo "- commit: $commit"
    echo "- load average (1/5/15 min) before the runs: $LOAD_AVG_BEFORE (the machine is shared)"
    echo "- masters: \`medos dev --masters M --agents 0\` (TLS, Raft log fsync'd before acknowledging, default"
    echo "  settings: agent heartbeats every 2 s); agents: one \`medos agent --simulate N\` process on the same"
    echo "  2 cores (real agent protocol, fake containers, one shared certificate and HTTP client)"
    echo "- anchor: Nomad C1M, 3,750 placements/s on 5 large servers (no peer runs here); goal: >= 5,000"
    echo "  placements/s with 10,000 agents on 2 cores, app add -> first instance RUNNING p99 <= 1 s"
    echo "- tasks: 0.01 cpus, 32 MiB each, \`sleep 100000\` (never run: fake containers); every run starts"
    echo "  from an empty cluster; the clock starts before the POSTs to /v2/apps; \"placed\" = the last"
    echo "  launch reached its agent (launches are sent only once committed through Raft), \"RUNNING\" ="
    echo "  the masters acknowledged the last TASK_RUNNING update (committed); both timed by the agents"
    echo "  (counters rewritten every 100 ms), the masters' /v2/apps counts checked afterwards"
    echo
    echo "$table"
    echo
    echo "### Agent sessions (from the masters' and the simulator's logs)"
    echo
    cat "$NOTES"
    if [[ -n $analysis ]]; then
        echo
        echo "$analysis"
    fi
} >"$OUT"
echo
cat "$OUT"
log "wrote $OUT"
