#!/usr/bin/env bash
# install.sh: installs medos on this host from a copy of genconf/serve (what DC/OS's
# dcos_install.sh did). Run as root, from anywhere:
#
#   bash install.sh master|agent|agent_public
#
# It checks the copy against SHA256SUMS, learns this host's address from ip-detect, installs
# the binary (/opt/medos/bin/medos), this host's config, certificates and secrets
# (/etc/medos/) and the systemd unit, then enables and starts the unit. systemd reports the
# unit started only once medos says it is ready (a master serves its API; an agent has
# registered with the leader). Running it again changes nothing when no file changed; when
# one did, the unit is restarted (an agent's tasks keep running).
#
# A host that config.yaml does not list can still become an agent: it joins with the join
# token genconf wrote (join/*.toml.in), and gets its certificate from the masters.
#
# MEDOS_INSTALL_ROOT (install under another root) and MEDOS_SYSTEMCTL (the systemctl command)
# exist for tests.
set -euo pipefail

ROOT=${MEDOS_INSTALL_ROOT:-}
SYSTEMCTL=${MEDOS_SYSTEMCTL:-systemctl}
readonly BIN=/opt/medos/bin/medos
readonly LINK=/usr/local/bin/medos
readonly UNIT_DIR=/etc/systemd/system
readonly UNITS=(medos-master.service medos-agent.service medos-agent-public.service)

log() { echo "install.sh: $*" >&2; }
die() {
    log "error: $*"
    exit 1
}
usage() {
    echo "usage: bash install.sh master|agent|agent_public" >&2
    exit 2
}

[ $# -eq 1 ] || usage
role=$1
case "$role" in
    master) unit=medos-master.service prefix=master template= ;;
    agent) unit=medos-agent.service prefix=agent template=join/agent.toml.in ;;
    agent_public) unit=medos-agent-public.service prefix=public template=join/agent-public.toml.in ;;
    *) usage ;;
esac

if [ -z "$ROOT" ] && [ "$(id -u)" -ne 0 ]; then
    die "run as root: it installs into /opt/medos, /etc/medos and systemd"
fi
for tool in sha256sum install cmp sed awk find stat; do
    command -v "$tool" >/dev/null || die "$tool is missing on this host; install it (coreutils, diffutils, sed, gawk/mawk, findutils)"
done
command -v "$SYSTEMCTL" >/dev/null || die "$SYSTEMCTL is missing: medos runs under systemd"

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here"

for f in SHA256SUMS medos ip-detect ca.crt "units/$unit"; do
    [ -f "$f" ] || die "$here/$f is missing: copy genconf/serve here (all of it but other hosts' nodes/)"
done
# Every file present must match; files of other hosts may be absent.
if ! sha256sum -c --quiet --ignore-missing SHA256SUMS >&2; then
    die "files in $here do not match SHA256SUMS: this copy of genconf/serve is damaged or was changed; copy it again"
fi

# A file install.sh uses must be listed (and so was checked above).
listed() {
    awk -v f="$1" '$2 == f { found = 1 } END { exit !found }' SHA256SUMS
}

changed=0
installed=0
# install_file SRC DEST MODE: copies SRC to DEST under ROOT unless it is there already.
install_file() {
    local src=$1 dest=$ROOT$2 mode=$3
    listed "$src" || die "$src is not listed in SHA256SUMS: rerun genconf and copy serve/ again"
    if [ -f "$dest" ] && cmp -s "$src" "$dest" && [ "$(stat -c %a "$dest")" = "${mode#0}" ]; then
        return 0
    fi
    install -D -m "$mode" "$src" "$dest"
    log "installed $2"
    changed=1
    installed=1
}

ip_out=$(./ip-detect) || die "ip-detect failed (its message is above); fix genconf/ip-detect, rerun genconf, copy serve/ again"
ip=$(printf '%s' "$ip_out" | tr -d '[:space:]')
if [ "$(printf '%s\n' "$ip_out" | grep -c .)" -ne 1 ] || [ -z "$ip" ] || [[ "$ip" == *[!0-9a-fA-F.:]* ]]; then
    die "ip-detect must print this host's IP address on one line; it printed: $ip_out"
fi

# Refuse to turn a host of one role into another in passing.
for other in "${UNITS[@]}"; do
    if [ "$other" != "$unit" ] && "$SYSTEMCTL" is-enabled --quiet "$other" 2>/dev/null; then
        die "this host already runs $other; uninstall medos first to give it another role"
    fi
done

node=nodes/$ip
if [ -d "$node" ]; then
    listed_role=$(cat "$node/role")
    if [ "$listed_role" != "$role" ]; then
        die "config.yaml lists $ip as $listed_role, not $role: run 'bash install.sh $listed_role', or change config.yaml and rerun genconf"
    fi
    listed "$node/role" || die "$node/role is not listed in SHA256SUMS"
    install -d -m 0755 "$ROOT/etc/medos"
    if [ "$role" = master ]; then
        install -d -m 0700 "$ROOT/etc/medos/secrets"
    fi
    while IFS= read -r -d '' file; do
        dest=${file#"$node/root"}
        case "$dest" in
            *.key | */secrets/*) mode=0600 ;;
            *) mode=0644 ;;
        esac
        install_file "$file" "$dest" "$mode"
    done < <(find "$node/root" -type f -print0 | sort -z)
else
    if [ "$role" = master ]; then
        die "$ip (from ip-detect) is not in master_list: list every master in config.yaml and rerun genconf (or fix ip-detect)"
    fi
    [ -f "$template" ] || die "$ip is not in config.yaml and $here/$template (to join with a token) is missing"
    listed "$template" || die "$template is not listed in SHA256SUMS"
    name=$(printf '%s-%s' "$prefix" "$ip" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9' '-')
    rendered=$(mktemp)
    trap 'rm -f "$rendered"' EXIT
    sed -e "s/@NAME@/$name/g" -e "s/@ADDRESS@/$ip/g" "$template" >"$rendered"
    dest=$ROOT/etc/medos/agent.toml
    if ! { [ -f "$dest" ] && cmp -s "$rendered" "$dest"; }; then
        install -D -m 0600 "$rendered" "$dest"
        log "installed /etc/medos/agent.toml ($ip is not listed: it joins with a token as $name)"
        changed=1
    fi
fi

install_file medos "$BIN" 0755
if [ "$(readlink "$ROOT$LINK" 2>/dev/null || true)" != "$BIN" ]; then
    install -d -m 0755 "$ROOT$(dirname "$LINK")"
    ln -sfn "$BIN" "$ROOT$LINK"
fi
installed=0
install_file "units/$unit" "$UNIT_DIR/$unit" 0644

if [ "$installed" = 1 ]; then
    "$SYSTEMCTL" daemon-reload
fi
"$SYSTEMCTL" enable --quiet "$unit"
# start_failed: the unit's last log lines (why it did not start), then the error.
start_failed() {
    if [ -z "$ROOT" ] && command -v journalctl >/dev/null; then
        # What medos itself printed last (systemd's own lines say only that it failed).
        journalctl _SYSTEMD_UNIT="$unit" -n 3 --no-pager -o cat >&2 2>/dev/null || true
    fi
    die "$unit did not start (its last log lines are above); see: journalctl -u $unit"
}
if [ "$changed" = 1 ]; then
    log "starting $unit (it reports ready once $([ "$role" = master ] && echo "the API serves" || echo "the agent has registered"))"
    "$SYSTEMCTL" restart "$unit" || start_failed
else
    "$SYSTEMCTL" start "$unit" || start_failed
    log "nothing changed"
fi
status=$("$SYSTEMCTL" show -p StatusText --value "$unit" 2>/dev/null || true)
log "$unit is running as $role on $ip${status:+: $status}"
