#!/usr/bin/env bash
# benches/containers.sh: benchmarks B3 (container start) and B6 (footprint) of docs/BENCHMARKS.md.
#
#   bash benches/containers.sh    (as root; installs runc, crun, busybox-static if missing)
#
# What it does, all on 127.0.0.1:
#   1. installs `runc crun busybox-static` from Debian if missing;
#   2. builds `medos` and the `containerbench` example in release mode;
#   3. builds one OCI bundle: a rootfs holding the static busybox with sh and true as symlinks,
#      config.json from `runc spec` with args ["/bin/true"] and terminal false;
#   4. B3, the same busybox root for all three, interleaved in ROUNDS rounds (each round runs a
#      block of runc, then crun, then medos) so that load changes on a shared machine hit all
#      three alike:
#      - runc / crun: `<runtime> run --bundle B id` (create + start + wait for exit) followed by
#        `<runtime> delete -f id`, wall time of the pair per run;
#      - medos: `containerbench run` (examples/containerbench.rs) drives the agent's container
#        runtime directly, as the agent does for an image task: launch (overlayfs root whose one
#        read-only layer is the bundle's rootfs, `/bin/true` as argv, cpu/memory/pids limits),
#        wait for the exit, destroy (cgroups and state removed); the helper processes are the
#        release `medos` binary re-executed as the agent does. Wall time of the three calls, and
#        each call apart;
#   5. B3 through the API: a `medos dev` cluster (1 master, 1 agent), the busybox test image of
#      src/image/testing.rs (same static busybox) loaded with `medos image load`, the CLI logged
#      in as admin, E2E_RUNS times `medos task run --image busybox:bench --wait -- /bin/true`.
#      Figures: the CLI call's wall time ("end-to-end API latency": CLI start, TLS, API round
#      trips, status polling every 200 ms) and, from each task's status history (`medos task
#      show`), the agent-side start TASK_STARTING -> TASK_RUNNING, submit -> TASK_RUNNING and
#      submit -> TASK_FINISHED (ms resolution, timestamps taken by master and agent); then the
#      agent-side start of E2E_RUNS host-command tasks (`-- /bin/true bench`, no image);
#   6. B6: stripped size of the release binary; after the B3 runs and IDLE_SECS (20) of idle,
#      VmRSS of the master and agent processes (PIDs from the cluster's cluster.json) and their
#      CPU use over CPU_SECS (10) from /proc/PID/stat utime+stime;
#   7. prints the table and writes it with machine, commit and date to bench-results/containers.md.
# Everything it started is stopped in a trap (by PID, never by name; `medos dev` gets SIGTERM and
# stops its masters and agents) and the temp dir removed.
#
# Cgroups: crun refuses to run on a hybrid cgroup host whose cgroup2 hierarchy
# (/sys/fs/cgroup/unified) has controllers enabled ("cgroups in hybrid mode not supported").
# On such a host the crun loop runs inside one private mount namespace (`unshare -m`) in which
# /sys/fs/cgroup/unified is unmounted, so crun sees plain cgroup v1, as runc does; the namespace
# is set up once, outside the timed region. The report says whether this was needed.
#
# Knobs (environment): RUNS (100 per system), ROUNDS (5), WARMUP (3 untimed runs per system
# before the first round), E2E_RUNS (RUNS), IDLE_SECS (20), CPU_SECS (10), CB_OUT
# (bench-results/containers.md), CB_KEEP=1 keeps the temp dir. Whole run: ~3 minutes plus the
# build.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${RUNS:-100}
ROUNDS=${ROUNDS:-5}
WARMUP=${WARMUP:-3}
E2E_RUNS=${E2E_RUNS:-$RUNS}
IDLE_SECS=${IDLE_SECS:-20}
CPU_SECS=${CPU_SECS:-10}
OUT=${CB_OUT:-$ROOT/bench-results/containers.md}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

BENCH=containers.sh
# shellcheck source=benches/lib.sh
source "$ROOT/benches/lib.sh"

# ---- 1. peers from Debian ----
missing=()
command -v runc >/dev/null || missing+=(runc)
command -v crun >/dev/null || missing+=(crun)
[[ -x /bin/busybox || -x /usr/bin/busybox ]] || missing+=(busybox-static)
command -v jq >/dev/null || missing+=(jq)
if ((${#missing[@]})); then
    [[ $(id -u) -eq 0 ]] || die "need root to apt-get install ${missing[*]}"
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
[[ $(id -u) -eq 0 ]] || die "runc, crun and the medos agent need root"
BUSYBOX=$(command -v busybox)
file -L "$BUSYBOX" 2>/dev/null | grep -q 'statically linked' ||
    log "warning: $BUSYBOX may not be static (install busybox-static)"

# ---- 2. build ----
log "building medos and containerbench (release)"
(cd "$ROOT" && cargo build --release --quiet --bin medos --example containerbench)
MEDOS=$TARGET_DIR/release/medos
CBENCH=$TARGET_DIR/release/examples/containerbench
LOAD_AVG_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)

# ---- processes and cleanup ----
WORK=$(mktemp -d "${TMPDIR:-/tmp}/medos-containers-bench.XXXXXX")
PIDS=()
CIDS=()
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local pid cid
    for cid in "${CIDS[@]}"; do
        runc delete -f "$cid" >/dev/null 2>&1 || true
        crun delete -f "$cid" >/dev/null 2>&1 || true
    done
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for _ in $(seq 150); do
        local alive=0
        for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
        ((alive)) || break
        sleep 0.1
    done
    for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ ${CB_KEEP:-0} == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Milliseconds (3 decimals) between two $EPOCHREALTIME readings; no fork inside the timed region.
elapsed_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }'; }
# "median p90 p99" (nearest rank) of the numbers in a file, one per line.
stats() {
    sort -g "$1" | awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "n/a n/a n/a"; exit }
        m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
        r = int(0.9 * NR + 0.999999); if (r < 1) r = 1
        q = int(0.99 * NR + 0.999999); if (q < 1) q = 1
        printf "%.1f %.1f %.1f\n", m, v[r], v[q] }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "n/a" }'; }

# ---- 3. the OCI bundle ----
BUNDLE=$WORK/bundle
mkdir -p "$BUNDLE/rootfs/bin"
cp "$BUSYBOX" "$BUNDLE/rootfs/bin/busybox"
ln -s busybox "$BUNDLE/rootfs/bin/sh"
ln -s busybox "$BUNDLE/rootfs/bin/true"
(cd "$BUNDLE" && runc spec)
jq '.process.args = ["/bin/true"] | .process.terminal = false' "$BUNDLE/config.json" >"$WORK/config.json"
mv "$WORK/config.json" "$BUNDLE/config.json"

# ---- 4. B3 runc, crun and the medos runtime, interleaved ----
# Runs inside `bash -c` so that crun's loop can sit in a private mount namespace; appends one
# wall time (ms) per timed run to $3.
# shellcheck disable=SC2016 # expanded by the inner bash, not here
RUNTIME_LOOP='
rt=$1 bundle=$2 out=$3 runs=$4 warmup=$5 id=$6
if [[ ${HIDE_UNIFIED:-0} == 1 ]]; then umount /sys/fs/cgroup/unified || exit 1; fi
for ((i = 0; i < warmup + runs; i++)); do
    s=$EPOCHREALTIME
    "$rt" run --bundle "$bundle" "$id" </dev/null >/dev/null || { echo "$rt run failed" >&2; exit 1; }
    "$rt" delete -f "$id" >/dev/null 2>&1 || true
    e=$EPOCHREALTIME
    ((i < warmup)) || awk -v a="$s" -v b="$e" "BEGIN { printf \"%.3f\n\", (b - a) * 1000 }" >>"$out"
done
'
CRUN_NOTE="crun ran directly"
crun_hybrid=0
# (cgroupfs files report size 0, so read the file rather than test -s.)
if [[ -f /sys/fs/cgroup/unified/cgroup.controllers && -n $(cat /sys/fs/cgroup/unified/cgroup.controllers) ]]; then
    crun_hybrid=1
    CRUN_NOTE="hybrid cgroup host with controllers on /sys/fs/cgroup/unified ($(tr '\n' ' ' </sys/fs/cgroup/unified/cgroup.controllers | sed 's/ $//')): crun ran in a private mount namespace with that cgroup2 mount hidden (set up once per round, untimed); runc and medos ran directly"
fi
for rt in runc crun; do CIDS+=("cbench-$rt-$$"); done
: >"$WORK/runc.ms"
: >"$WORK/crun.ms"
: >"$WORK/medos-rt.jsonl"
mkdir -p "$WORK/medos-rt"
log "B3: $ROUNDS rounds of runc, crun and the medos runtime, $RUNS timed runs each ($WARMUP warm-up first)"
done_runs=0
for ((round = 0; round < ROUNDS; round++)); do
    n=$(((RUNS - done_runs) / (ROUNDS - round)))
    w=0
    ((round > 0)) || w=$WARMUP
    for rt in runc crun; do
        if [[ $rt == crun && $crun_hybrid == 1 ]]; then
            HIDE_UNIFIED=1 unshare -m --propagation private bash -c "$RUNTIME_LOOP" loop "$rt" "$BUNDLE" "$WORK/$rt.ms" "$n" "$w" "cbench-$rt-$$"
        else
            bash -c "$RUNTIME_LOOP" loop "$rt" "$BUNDLE" "$WORK/$rt.ms" "$n" "$w" "cbench-$rt-$$"
        fi
    done
    "$CBENCH" run --medos "$MEDOS" --rootfs "$BUNDLE/rootfs" --runs "$n" --warmup "$w" \
        --work "$WORK/medos-rt" --out "$WORK/medos-rt.jsonl" >/dev/null 2>>"$WORK/medos-rt.err" ||
        die "containerbench failed: $(tail -3 "$WORK/medos-rt.err")"
    done_runs=$((done_runs + n))
done
for key in total launch wait destroy; do
    jq -r ".${key}_ms" "$WORK/medos-rt.jsonl" >"$WORK/medos-rt-$key.ms"
done

# ---- 5. B3 through the API on medos dev ----
CLUSTER=$WORK/medos
"$MEDOS" dev --masters 1 --agents 1 --dir "$CLUSTER" --no-attach --json >"$WORK/medos-dev.json" 2>"$WORK/medos-dev.log" &
MEDOS_DEV_PID=$!
PIDS+=("$MEDOS_DEV_PID")
log "waiting for the medos dev cluster"
for _ in $(seq 120); do
    [[ -s $WORK/medos-dev.json ]] && break
    kill -0 "$MEDOS_DEV_PID" 2>/dev/null || die "medos dev exited: $(tail -5 "$WORK/medos-dev.log")"
    sleep 0.5
done
[[ -s $WORK/medos-dev.json ]] || die "medos dev cluster not ready after 60 s"
MASTER_PID=$(jq -r '[.nodes[] | select(.role == "master")][0].pid' "$CLUSTER/cluster.json")
AGENT_PID=$(jq -r '[.nodes[] | select(.role == "agent")][0].pid' "$CLUSTER/cluster.json")
API=$(jq -r '[.nodes[] | select(.role == "master")][0].api' "$CLUSTER/cluster.json")
# Children of `medos dev`; recorded so the trap can stop them should `medos dev` not.
PIDS+=("$MASTER_PID" "$AGENT_PID")

export MEDOS_CONFIG_DIR=$CLUSTER/cli
PW=$(cat "$CLUSTER/admin-password")
export PW
"$MEDOS" cluster setup "$API" --ca-fingerprint "$("$MEDOS" ca fingerprint --ca-dir "$CLUSTER/pki")" \
    --username admin --password-env PW >/dev/null
unset PW
"$CBENCH" image "$WORK/busybox.tar" --name busybox:bench
"$MEDOS" image load "$WORK/busybox.tar" >/dev/null 2>>"$WORK/task.err" || die "image load failed: $(tail -3 "$WORK/task.err")"

log "B3 medos API: $WARMUP warm-up + $E2E_RUNS timed \`medos task run --image busybox:bench --wait -- /bin/true bench\`"
: >"$WORK/medos.ids"
for ((i = 0; i < WARMUP + E2E_RUNS; i++)); do
    s=$EPOCHREALTIME
    "$MEDOS" task run --image busybox:bench --wait -- /bin/true bench >"$WORK/task.out" 2>>"$WORK/task.err" ||
        die "task run failed: $(tail -3 "$WORK/task.err")"
    e=$EPOCHREALTIME
    if ((i >= WARMUP)); then
        elapsed_ms "$s" "$e" >>"$WORK/medos-e2e.ms"
        head -1 "$WORK/task.out" >>"$WORK/medos.ids"
    fi
done
while read -r id; do
    "$MEDOS" task show "$id" --json | jq -r '
        def at(s): [.statuses[] | select(.state == s) | .timestamp_ms][0];
        [at("TASK_RUNNING") - at("TASK_STARTING"), at("TASK_RUNNING") - .created_at_ms,
         at("TASK_FINISHED") - .created_at_ms] | @tsv'
done <"$WORK/medos.ids" >"$WORK/medos-statuses.tsv"
cut -f1 "$WORK/medos-statuses.tsv" >"$WORK/medos-start.ms"
cut -f2 "$WORK/medos-statuses.tsv" >"$WORK/medos-torunning.ms"
cut -f3 "$WORK/medos-statuses.tsv" >"$WORK/medos-tofinished.ms"
# The same without an image (the task runs on the host file system): no layers to prepare.
log "B3 medos API: $E2E_RUNS timed host-command \`medos task run --wait -- /bin/true bench\`"
: >"$WORK/medos-host.ids"
for ((i = 0; i < E2E_RUNS; i++)); do
    "$MEDOS" task run --wait -- /bin/true bench >"$WORK/task.out" 2>>"$WORK/task.err" ||
        die "task run failed: $(tail -3 "$WORK/task.err")"
    head -1 "$WORK/task.out" >>"$WORK/medos-host.ids"
done
while read -r id; do
    "$MEDOS" task show "$id" --json | jq -r '
        [.statuses[] | select(.state == "TASK_RUNNING") | .timestamp_ms][0] -
        [.statuses[] | select(.state == "TASK_STARTING") | .timestamp_ms][0]'
done <"$WORK/medos-host.ids" >"$WORK/medos-host-start.ms"

# ---- 6. B6 ----
log "B6: ${IDLE_SECS} s idle, then RSS and ${CPU_SECS} s of CPU accounting"
sleep "$IDLE_SECS"
rss_mb() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
hwm_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# utime + stime in clock ticks (fields 14 and 15; the command name in field 2 has no spaces here).
ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
MASTER_RSS=$(rss_mb "$MASTER_PID")
AGENT_RSS=$(rss_mb "$AGENT_PID")
MASTER_HWM=$(hwm_mb "$MASTER_PID")
AGENT_HWM=$(hwm_mb "$AGENT_PID")
m0=$(ticks "$MASTER_PID")
a0=$(ticks "$AGENT_PID")
t0=$EPOCHREALTIME
sleep "$CPU_SECS"
m1=$(ticks "$MASTER_PID")
a1=$(ticks "$AGENT_PID")
t1=$EPOCHREALTIME
HZ=$(getconf CLK_TCK)
cpu_pct() { awk -v d="$1" -v hz="$HZ" -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", 100 * d / hz / (b - a) }'; }
MASTER_CPU=$(cpu_pct $((m1 - m0)))
AGENT_CPU=$(cpu_pct $((a1 - a0)))
strip -o "$WORK/medos.stripped" "$MEDOS"
BIN_MB=$(awk -v b="$(stat -c %s "$WORK/medos.stripped")" 'BEGIN { printf "%.1f", b / 1048576 }')
RAW_MB=$(awk -v b="$(stat -c %s "$MEDOS")" 'BEGIN { printf "%.1f", b / 1048576 }')

# ---- 7. report ----
read -r runc_med runc_p90 runc_p99 < <(stats "$WORK/runc.ms")
read -r crun_med crun_p90 crun_p99 < <(stats "$WORK/crun.ms")
read -r rt_med rt_p90 rt_p99 < <(stats "$WORK/medos-rt-total.ms")
read -r rl_med rl_p90 rl_p99 < <(stats "$WORK/medos-rt-launch.ms")
read -r rw_med rw_p90 rw_p99 < <(stats "$WORK/medos-rt-wait.ms")
read -r rd_med rd_p90 rd_p99 < <(stats "$WORK/medos-rt-destroy.ms")
read -r e2e_med e2e_p90 e2e_p99 < <(stats "$WORK/medos-e2e.ms")
read -r st_med st_p90 st_p99 < <(stats "$WORK/medos-start.ms")
read -r hs_med hs_p90 hs_p99 < <(stats "$WORK/medos-host-start.ms")
read -r tr_med tr_p90 tr_p99 < <(stats "$WORK/medos-torunning.ms")
read -r tf_med tf_p90 tf_p99 < <(stats "$WORK/medos-tofinished.ms")
verdict() { awk -v a="$1" -v b="$2" 'BEGIN { print (a <= b) ? "yes" : "no" }'; }
below() { awk -v a="$1" -v b="$2" 'BEGIN { print (a < b) ? "yes" : "no" }'; }
row() { echo "| $1 | $2 | $3 | $4 | $(ratio "$2" "$crun_med") | $(ratio "$2" "$runc_med") |"; }

cpu=$(bench_cpu)
commit=$(bench_commit)
runc_version=$(runc --version | awk 'NR == 1 { print $3 }')
crun_version=$(crun --version | awk 'NR == 1 { print $3 }')
LOAD_AVG_AFTER=$(cut -d" " -f1-3 /proc/loadavg)
# A hand-written part below this marker in an earlier report is kept.
NOTES_MARKER='<!-- notes below are kept by benches/containers.sh -->'
notes=""
if [[ -f $OUT ]]; then
    notes=$(awk -v m="$NOTES_MARKER" 'index($0, m) == 1 { f = 1 } f' "$OUT")
fi
mkdir -p "$(dirname "$OUT")"
{
    echo "# Container benchmarks: medos vs runc and crun (B3), footprint (B6)"
    echo
    echo "Generated by \`bash benches/containers.sh\` on $(date -u '+%Y-%m-%d %H:%M UTC'); see docs/BENCHMARKS.md for the goals."
    echo
    echo "- machine: $(nproc) cores, $cpu, kernel $(uname -r); load average before: $LOAD_AVG_BEFORE, after: $LOAD_AVG_AFTER (the machine is shared)"
    echo "- commit: $commit; runc $runc_version, crun $crun_version (Debian packages)"
    echo "- B3 bundle: rootfs with the static \`$BUSYBOX\` and sh/true symlinks, \`runc spec\` config, args \`/bin/true\`."
    echo "  runc / crun per run: \`<rt> run --bundle B id\` + \`<rt> delete -f id\`. $RUNS timed runs per system after"
    echo "  $WARMUP warm-up, interleaved in $ROUNDS rounds (a block of runc, of crun, of medos per round)."
    echo "- crun: $CRUN_NOTE"
    echo "- medos runtime: \`containerbench run\` (examples/containerbench.rs) drives the agent's container runtime"
    echo "  on the same rootfs (the one read-only layer of the task's overlayfs root), \`/bin/true\` as argv, with"
    echo "  cpu/memory/pids limits: launch (until the task process runs) + wait (exit seen) + destroy (cgroups"
    echo "  and state removed), the helpers being the release \`medos\` binary as the agent runs them. In-process"
    echo "  wall time: unlike the runc/crun rows it has no CLI process start; like them it has no API."
    echo "- medos API: \`medos dev\` with 1 master and 1 agent on 127.0.0.1 (TLS, admin token), the busybox test"
    echo "  image (src/image/testing.rs, the same static busybox) loaded with \`medos image load\`, $E2E_RUNS timed"
    echo "  \`medos task run --image busybox:bench --wait -- /bin/true bench\` (argv, no shell) after $WARMUP warm-up."
    echo "  Then $E2E_RUNS host-command tasks \`medos task run --wait -- /bin/true bench\` (no image, no layers)."
    echo "  *Agent start* is TASK_STARTING -> TASK_RUNNING from the task's status history (ms resolution);"
    echo "  *end-to-end API latency* is the CLI call's wall time: process start, TLS, submit, status polling"
    echo "  every 200 ms until the end."
    echo "- B6: after the B3 runs and ${IDLE_SECS} s idle; CPU over ${CPU_SECS} s from /proc/PID/stat (utime+stime),"
    echo "  % of one core; RSS is VmRSS of the master and agent processes (VmHWM: peak during the run)"
    echo
    echo "## B3: container start, ms ($RUNS runs each)"
    echo
    echo "| what | median | p90 | p99 | median vs crun | median vs runc |"
    echo "|---|---:|---:|---:|---:|---:|"
    row "runc run + delete" "$runc_med" "$runc_p90" "$runc_p99"
    row "crun run + delete" "$crun_med" "$crun_p90" "$crun_p99"
    row "**medos runtime launch + wait + destroy**" "$rt_med" "$rt_p90" "$rt_p99"
    row "medos runtime: launch (until the task runs)" "$rl_med" "$rl_p90" "$rl_p99"
    row "medos runtime: wait (task exit seen)" "$rw_med" "$rw_p90" "$rw_p99"
    row "medos runtime: destroy" "$rd_med" "$rd_p90" "$rd_p99"
    row "medos API: agent start (STARTING -> RUNNING)" "$st_med" "$st_p90" "$st_p99"
    row "medos API: agent start, host-command task (no image)" "$hs_med" "$hs_p90" "$hs_p99"
    row "medos API: submit -> RUNNING (master + agent)" "$tr_med" "$tr_p90" "$tr_p99"
    row "medos API: submit -> FINISHED (master + agent)" "$tf_med" "$tf_p90" "$tf_p99"
    row "medos API: end-to-end latency (\`task run --wait\`)" "$e2e_med" "$e2e_p90" "$e2e_p99"
    echo
    echo "Goal (B3): medos median <= crun's. Runtime launch + wait + destroy: $(verdict "$rt_med" "$crun_med") ($rt_med vs"
    echo "$crun_med ms); agent start through the API: $(verdict "$st_med" "$crun_med") ($st_med ms); end-to-end through the"
    echo "API: $(verdict "$e2e_med" "$crun_med") ($e2e_med ms)."
    echo
    echo "## B6: footprint"
    echo
    echo "| what | value | goal | met |"
    echo "|---|---:|---:|---|"
    echo "| binary, stripped (unstripped $RAW_MB MB) | $BIN_MB MB | <= 30 MB | $(verdict "$BIN_MB" 30) |"
    echo "| master idle RSS (peak $MASTER_HWM MB) | $MASTER_RSS MB | <= 50 MB | $(verdict "$MASTER_RSS" 50) |"
    echo "| agent idle RSS (peak $AGENT_HWM MB) | $AGENT_RSS MB | <= 25 MB | $(verdict "$AGENT_RSS" 25) |"
    echo "| master idle CPU | $MASTER_CPU % | < 1% | $(below "$MASTER_CPU" 1) |"
    echo "| agent idle CPU | $AGENT_CPU % | < 1% | $(below "$AGENT_CPU" 1) |"
    if [[ -n $notes ]]; then
        echo
        printf '%s\n' "$notes"
    fi
} >"$OUT"
echo
cat "$OUT"
log "wrote $OUT"
