# benches/lib.sh: what every benchmark script shares. Sourced after ROOT is set:
#   BENCH=name.sh; source "$ROOT/benches/lib.sh"

# log MESSAGE: a timestamped line on stderr, prefixed with the script's name.
log() { printf '[%s %s] %s\n' "${BENCH:-bench}" "$(date +%T)" "$*" >&2; }

# die MESSAGE: logs it as an error and exits 1 (the script's trap cleans up).
die() {
    log "ERROR: $*"
    exit 1
}

# bench_cpu: the processor's model name, for the report.
bench_cpu() { grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'; }

# bench_commit: the checked-out commit, noting uncommitted changes, for the report.
bench_commit() {
    local commit
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [[ -n $(git -C "$ROOT" status --porcelain 2>/dev/null) ]]; then commit+=" (with uncommitted changes)"; fi
    echo "$commit"
}

# ensure_tools COMMAND:PACKAGE ...: installs (apt-get) the Debian package of every command that
# is not on the PATH.
ensure_tools() {
    local missing=() pair
    for pair in "$@"; do
        command -v "${pair%%:*}" >/dev/null || missing+=("${pair#*:}")
    done
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}
