//! `medos installer preflight`: checks every host before a deploy, in parallel over ssh.
//!
//! One probe script per host ([`probe_script`]) prints labelled sections (`@@name` lines) of
//! raw facts: kernel, os-release, PID 1, cgroup mounts and controllers, filesystems, the
//! kernel's socket tables (`/proc/net/{tcp,udp}{,6}`, so no `ss` is needed), free disk under
//! the data dir, memory, hostname and its resolution, addresses, machine-id, and whether the
//! other hosts' SSH ports can be connected to from this host. A second, tiny command reads the
//! clock (`date +%s.%N`) between two local readings.
//!
//! Turning those outputs into [`Check`]s is pure (functions of strings, unit-tested with real
//! outputs); every failure says how to fix it. Checks across hosts (the same address listed
//! twice, two hosts with one machine-id or one address) come last.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::config::Hosts;
use super::ssh::{Outcome, Runner, SshError, SshOptions, shell_quote};

/// The oldest kernel medos runs on: cgroup v1's `oom_kill` counter (4.13) and overlayfs
/// features the runtime uses.
pub const MIN_KERNEL: (u32, u32) = (4, 15);
/// Kernels before this lack pidfds (5.3) and `openat2` (5.6): medos falls back to slower paths.
pub const GOOD_KERNEL: (u32, u32) = (5, 6);
/// The cgroup controllers the agent's runtime uses for limits.
pub const CONTROLLERS: &[&str] = &["cpu", "memory", "pids"];

/// A transport protocol for a port check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// A port that must be free on a host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortCheck {
    pub port: u16,
    pub protocol: Protocol,
    /// What medos will use it for ("master API and Raft").
    pub purpose: String,
}

impl PortCheck {
    pub fn tcp(port: u16, purpose: &str) -> Self {
        PortCheck { port, protocol: Protocol::Tcp, purpose: purpose.into() }
    }

    pub fn udp(port: u16, purpose: &str) -> Self {
        PortCheck { port, protocol: Protocol::Udp, purpose: purpose.into() }
    }
}

/// What a host must offer, by role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirements {
    pub ports: Vec<PortCheck>,
    pub data_dir: PathBuf,
    pub min_disk_bytes: u64,
    pub min_memory_bytes: u64,
}

/// Everything preflight needs besides the hosts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub master: Requirements,
    /// For agents and public agents.
    pub agent: Requirements,
    /// Fail when a host's clock is off by more than this (at least; see [`clock_check`]).
    pub max_clock_skew: Duration,
    /// Per host and command.
    pub timeout: Duration,
    /// How ssh is invoked (the hosts' `ssh` settings plus host-key checking, config file…).
    pub ssh: SshOptions,
}

impl Settings {
    /// Defaults around the hosts' SSH settings and the given requirements: clock skew 2 s,
    /// 60 s per command.
    pub fn new(hosts: &Hosts, master: Requirements, agent: Requirements) -> Self {
        Settings {
            master,
            agent,
            max_clock_skew: Duration::from_secs(2),
            timeout: Duration::from_secs(60),
            ssh: SshOptions::new(hosts.ssh.clone()),
        }
    }
}

/// A host's role in the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Master,
    Agent,
    PublicAgent,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Master => "master",
            Role::Agent => "agent",
            Role::PublicAgent => "public agent",
        })
    }
}

/// A check's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

/// One check on one host (or on the cluster).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// Short name: "kernel", "ports", "clock", …
    pub name: &'static str,
    pub status: Status,
    /// What was found.
    pub detail: String,
    /// How to fix it (for warnings and failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Check { name, status: Status::Pass, detail: detail.into(), fix: None }
    }

    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name, status: Status::Warn, detail: detail.into(), fix: Some(fix.into()) }
    }

    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check { name, status: Status::Fail, detail: detail.into(), fix: Some(fix.into()) }
    }
}

/// The checks of one host.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    pub host: String,
    pub role: Role,
    pub checks: Vec<Check>,
    /// Set when the host could not be probed at all (unreachable, login refused, …).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip)]
    pub ssh_error: Option<SshError>,
    pub elapsed_ms: u64,
    /// Facts the cross-host checks use.
    #[serde(skip)]
    facts: Facts,
}

impl HostReport {
    pub fn passed(&self) -> bool {
        self.error.is_none() && self.checks.iter().all(|c| c.status != Status::Fail)
    }
}

/// preflight's result.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub hosts: Vec<HostReport>,
    /// Checks across hosts (duplicates).
    pub cluster: Vec<Check>,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.hosts.iter().all(HostReport::passed) && self.cluster.iter().all(|c| c.status != Status::Fail)
    }

    /// Every failure and warning as `(host or "cluster", check)`.
    pub fn problems(&self) -> Vec<(&str, &Check)> {
        let mut found = Vec::new();
        for h in &self.hosts {
            for c in h.checks.iter().filter(|c| c.status != Status::Pass) {
                found.push((h.host.as_str(), c));
            }
        }
        for c in self.cluster.iter().filter(|c| c.status != Status::Pass) {
            found.push(("cluster", c));
        }
        found
    }

    /// A table: host, role, result, time, and the first problem; then one line per problem
    /// with its fix.
    pub fn render(&self) -> String {
        let mut t = comfy_table::Table::new();
        t.load_preset(comfy_table::presets::NOTHING);
        t.set_header(["HOST", "ROLE", "RESULT", "TIME", "PROBLEMS"]);
        for h in &self.hosts {
            let fails = h.checks.iter().filter(|c| c.status == Status::Fail).count();
            let warns = h.checks.iter().filter(|c| c.status == Status::Warn).count();
            let (result, problems) = match &h.error {
                Some(_) => ("FAILED".to_string(), probe_failure(h.ssh_error.as_ref()).to_string()),
                None if fails > 0 => (
                    "FAILED".to_string(),
                    h.checks.iter().filter(|c| c.status == Status::Fail).map(|c| c.name).collect::<Vec<_>>().join(", "),
                ),
                None if warns > 0 => ("ok (warnings)".to_string(), String::new()),
                None => ("ok".to_string(), String::new()),
            };
            t.add_row([
                h.host.clone(),
                h.role.to_string(),
                result,
                format!("{:.1}s", h.elapsed_ms as f64 / 1000.0),
                problems,
            ]);
        }
        let mut out: Vec<String> =
            t.to_string().lines().map(|l| l.strip_prefix(' ').unwrap_or(l).trim_end().to_string()).collect();
        for h in &self.hosts {
            if let Some(e) = &h.error {
                out.push(format!("FAIL {} ssh: {}", h.host, super::ssh::one_line(e, 400)));
            }
        }
        for (host, c) in self.problems() {
            let level = if c.status == Status::Fail { "FAIL" } else { "warn" };
            out.push(format!("{level} {host} {}: {}", c.name, c.detail));
            if let Some(fix) = &c.fix {
                out.push(format!("     fix: {fix}"));
            }
        }
        out.join("\n")
    }
}

/// A word for why a host could not be probed (the table's column; the full error follows it).
fn probe_failure(e: Option<&SshError>) -> &'static str {
    match e {
        Some(SshError::Unreachable { .. }) => "unreachable",
        Some(SshError::AuthFailed { .. }) => "login refused",
        Some(SshError::HostKey { .. }) => "host key mismatch",
        Some(SshError::Timeout { .. }) => "timed out",
        _ => "probe failed",
    }
}

/// What the cross-host checks need from each host.
#[derive(Debug, Clone, Default)]
struct Facts {
    machine_id: Option<String>,
    addresses: Vec<IpAddr>,
}

/// The probe script for one host (run with `bash -s`, script on stdin). `peers`: `(address,
/// ssh port)` of every other host.
pub fn probe_script(req: &Requirements, peers: &[(String, u16)]) -> String {
    let mut s = String::from(
        "set +e\nexport LC_ALL=C\nsection() { printf '\\n@@%s\\n' \"$1\"; }\n\
         section uname; uname -sr\n\
         section os-release; cat /etc/os-release 2>/dev/null\n\
         section pid1; cat /proc/1/comm 2>/dev/null\n\
         section systemd; systemctl --version 2>/dev/null | head -n1\n\
         section cgroupfs; stat -fc %T /sys/fs/cgroup 2>/dev/null\n\
         section cgroup2; cat /sys/fs/cgroup/cgroup.controllers 2>/dev/null\n\
         section cgroup1; cat /proc/cgroups 2>/dev/null\n\
         section filesystems; cat /proc/filesystems 2>/dev/null\n\
         section overlay-module; ls -d /lib/modules/\"$(uname -r)\"/kernel/fs/overlayfs 2>/dev/null\n\
         section tcp; cat /proc/net/tcp /proc/net/tcp6 2>/dev/null\n\
         section udp; cat /proc/net/udp /proc/net/udp6 2>/dev/null\n",
    );
    s.push_str(&format!(
        "section disk; d={}; while [ ! -d \"$d\" ]; do d=$(dirname \"$d\"); done; echo \"$d\"; df -Pk \"$d\" | tail -n1\n",
        shell_quote(&req.data_dir.display().to_string())
    ));
    s.push_str(
        "section meminfo; cat /proc/meminfo\n\
         section hostname; hostname\n\
         section resolve; getent ahosts \"$(hostname)\"\n\
         section addresses; ip -o addr show 2>/dev/null || hostname -I\n\
         section machine-id; cat /etc/machine-id 2>/dev/null\n\
         section reach\n",
    );
    for (addr, port) in peers {
        // Bracket-free: bash's /dev/tcp takes a bare IPv6 address too.
        s.push_str(&format!(
            "if timeout 5 bash -c 'exec 3<>/dev/tcp/'{a}'/{port}' 2>/dev/null; then echo {a} {port} ok; else echo {a} {port} fail; fi\n",
            a = shell_quote(addr)
        ));
    }
    s.push_str("section end\n");
    s
}

/// Splits the probe's output into its sections (pure).
pub fn sections(output: &str) -> BTreeMap<&str, String> {
    let mut map = BTreeMap::new();
    let mut current: Option<&str> = None;
    let mut body = String::new();
    for line in output.lines() {
        if let Some(name) = line.strip_prefix("@@") {
            if let Some(c) = current {
                map.insert(c, body.trim().to_string());
            }
            current = Some(name.trim());
            body.clear();
        } else if current.is_some() {
            body.push_str(line);
            body.push('\n');
        }
    }
    if let Some(c) = current {
        map.insert(c, body.trim().to_string());
    }
    map
}

/// `os-release`'s `KEY=value` (quotes removed).
fn os_release_value<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(key)?.strip_prefix('=')).map(|v| v.trim_matches('"'))
}

/// The operating system: Linux is required; the distribution is reported.
pub fn check_os(uname: &str, os_release: &str) -> Check {
    if !uname.starts_with("Linux") {
        return Check::fail("os", format!("not Linux: {uname:?}"), "medos runs on Linux hosts only");
    }
    match os_release_value(os_release, "PRETTY_NAME") {
        Some(name) => Check::pass("os", name.to_string()),
        None => Check::warn(
            "os",
            "no /etc/os-release",
            "medos is tested on Debian 12; install a distribution with /etc/os-release and systemd",
        ),
    }
}

/// `(major, minor)` of a kernel release such as `6.1.0-28-amd64`.
pub fn kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// The kernel: at least [`MIN_KERNEL`]; below [`GOOD_KERNEL`] a warning.
pub fn check_kernel(uname: &str) -> Check {
    let release = uname.split_whitespace().nth(1).unwrap_or_default();
    let fix = format!("upgrade the kernel to {}.{} or later", GOOD_KERNEL.0, GOOD_KERNEL.1);
    match kernel_version(release) {
        None => Check::fail("kernel", format!("cannot read the kernel version from {uname:?}"), fix),
        Some(v) if v < MIN_KERNEL => {
            Check::fail("kernel", format!("{release} is older than {}.{}", MIN_KERNEL.0, MIN_KERNEL.1), fix)
        }
        Some(v) if v < GOOD_KERNEL => Check::warn(
            "kernel",
            format!(
                "{release}: no pidfds/openat2 before {}.{}; medos uses slower fallbacks",
                GOOD_KERNEL.0, GOOD_KERNEL.1
            ),
            fix,
        ),
        Some(_) => Check::pass("kernel", release.to_string()),
    }
}

/// systemd present and PID 1.
pub fn check_systemd(pid1: &str, version: &str) -> Check {
    let fix = "medos installs systemd units: boot the host with systemd as init (apt-get install systemd-sysv)";
    if version.is_empty() {
        return Check::fail("systemd", "systemctl not found", fix);
    }
    if pid1.trim() != "systemd" {
        return Check::fail("systemd", format!("PID 1 is {:?}, not systemd ({version})", pid1.trim()), fix);
    }
    Check::pass("systemd", version.trim().to_string())
}

/// Controllers enabled in `/proc/cgroups` (`#subsys_name hierarchy num_cgroups enabled`).
fn v1_controllers(proc_cgroups: &str) -> BTreeSet<&str> {
    proc_cgroups
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 4 && f[3] == "1").then_some(f[0])
        })
        .collect()
}

/// cgroups v1 or v2 with [`CONTROLLERS`]. `fs_type` is `stat -fc %T /sys/fs/cgroup`:
/// `cgroup2fs` for pure v2, `tmpfs` for v1 or hybrid.
pub fn check_cgroups(fs_type: &str, v2_controllers: &str, proc_cgroups: &str) -> Check {
    let (version, available): (&str, BTreeSet<&str>) = match fs_type.trim() {
        "cgroup2fs" => ("v2", v2_controllers.split_whitespace().collect()),
        "tmpfs" => ("v1", v1_controllers(proc_cgroups)),
        other => {
            return Check::fail(
                "cgroups",
                format!("/sys/fs/cgroup is {other:?}, not a cgroup mount"),
                "mount cgroups (systemd does this at boot; check the kernel command line for cgroup_disable=)",
            );
        }
    };
    let missing: Vec<&str> = CONTROLLERS.iter().copied().filter(|c| !available.contains(c)).collect();
    if missing.is_empty() {
        Check::pass("cgroups", format!("{version} with {}", CONTROLLERS.join(", ")))
    } else {
        Check::fail(
            "cgroups",
            format!("cgroup {version} lacks the {} controller(s)", missing.join(", ")),
            "enable them: remove cgroup_disable= from the kernel command line (and on v2 check that systemd delegates them)",
        )
    }
}

/// overlayfs: in `/proc/filesystems`, or a loadable module.
pub fn check_overlay(filesystems: &str, module: &str) -> Check {
    if filesystems.lines().any(|l| l.split_whitespace().last() == Some("overlay")) {
        Check::pass("overlayfs", "supported")
    } else if !module.trim().is_empty() {
        Check::pass("overlayfs", "module available (loaded on first use)")
    } else {
        Check::fail(
            "overlayfs",
            "the kernel has no overlay filesystem",
            "load it (`modprobe overlay`) or use a kernel built with CONFIG_OVERLAY_FS",
        )
    }
}

/// Ports in use from `/proc/net/{tcp,tcp6}` (state 0A, listening) and `/proc/net/{udp,udp6}`
/// (any bound socket).
pub fn ports_in_use(tcp: &str, udp: &str) -> BTreeSet<(Protocol, u16)> {
    let mut used = BTreeSet::new();
    for (proto, text) in [(Protocol::Tcp, tcp), (Protocol::Udp, udp)] {
        for line in text.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            // sl local_address rem_address st …
            if f.len() < 4 || !f[0].ends_with(':') {
                continue;
            }
            if proto == Protocol::Tcp && f[3] != "0A" {
                continue;
            }
            if let Some(port) = f[1].rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok()) {
                used.insert((proto, port));
            }
        }
    }
    used
}

pub fn check_ports(used: &BTreeSet<(Protocol, u16)>, wanted: &[PortCheck]) -> Check {
    let busy: Vec<&PortCheck> = wanted.iter().filter(|p| used.contains(&(p.protocol, p.port))).collect();
    if busy.is_empty() {
        let list: Vec<String> = wanted.iter().map(|p| format!("{}/{}", p.port, p.protocol)).collect();
        return Check::pass("ports", format!("free: {}", list.join(", ")));
    }
    let list: Vec<String> = busy.iter().map(|p| format!("{}/{} ({})", p.port, p.protocol, p.purpose)).collect();
    let first = busy[0];
    Check::fail(
        "ports",
        format!("in use: {}", list.join(", ")),
        format!(
            "stop what listens there (`ss -lp{} sport = :{}` shows it) or choose other ports in config.yaml",
            if first.protocol == Protocol::Tcp { "tn" } else { "un" },
            first.port
        ),
    )
}

/// Free space from the disk section: the directory checked, then `df -Pk`'s line.
pub fn check_disk(section: &str, data_dir: &Path, min_bytes: u64) -> Check {
    let mut lines = section.lines();
    let dir = lines.next().unwrap_or_default();
    let avail_kib = lines.next().and_then(|l| l.split_whitespace().nth(3)).and_then(|v| v.parse::<u64>().ok());
    let Some(kib) = avail_kib else {
        return Check::fail(
            "disk",
            format!("cannot read free space under {}", data_dir.display()),
            "check that df works there",
        );
    };
    let bytes = kib * 1024;
    let shown =
        if dir == data_dir.to_string_lossy() { dir.to_string() } else { format!("{dir} (for {})", data_dir.display()) };
    if bytes < min_bytes {
        Check::fail(
            "disk",
            format!("{} free on {shown}, need {}", gib(bytes), gib(min_bytes)),
            "free space there or put the data dir on a larger filesystem",
        )
    } else {
        Check::pass("disk", format!("{} free on {shown}", gib(bytes)))
    }
}

fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

/// `MemTotal` from `/proc/meminfo`, in bytes.
pub fn mem_total(meminfo: &str) -> Option<u64> {
    meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .map(|kib| kib * 1024)
}

pub fn check_memory(meminfo: &str, min_bytes: u64) -> Check {
    match mem_total(meminfo) {
        None => Check::fail("memory", "cannot read MemTotal from /proc/meminfo", "check /proc is mounted"),
        Some(total) if total < min_bytes => Check::fail(
            "memory",
            format!("{} of memory, need {}", gib(total), gib(min_bytes)),
            "use a host with more memory",
        ),
        Some(total) => Check::pass("memory", format!("{} total", gib(total))),
    }
}

/// The hostname resolves (`getent ahosts $(hostname)`), and not only to loopback.
pub fn check_hostname(hostname: &str, resolved: &str) -> Check {
    let hostname = hostname.trim();
    let fix = format!("add \"ADDRESS {hostname}\" to /etc/hosts or to DNS");
    if hostname.is_empty() {
        return Check::fail("hostname", "the host has no hostname", "set one with hostnamectl set-hostname NAME");
    }
    let addrs: BTreeSet<IpAddr> =
        resolved.lines().filter_map(|l| l.split_whitespace().next()).filter_map(|a| a.parse().ok()).collect();
    if addrs.is_empty() {
        return Check::fail("hostname", format!("{hostname} does not resolve"), fix);
    }
    if addrs.iter().all(|a| a.is_loopback()) {
        return Check::warn("hostname", format!("{hostname} resolves only to loopback ({})", join(&addrs)), fix);
    }
    Check::pass("hostname", format!("{hostname} → {}", join(&addrs)))
}

fn join(addrs: &BTreeSet<IpAddr>) -> String {
    addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(", ")
}

/// Non-loopback, non-link-local addresses from `ip -o addr show` (or `hostname -I`).
pub fn addresses(text: &str) -> Vec<IpAddr> {
    let mut found = Vec::new();
    for line in text.lines() {
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let candidates: Vec<&str> = match tokens.iter().position(|t| *t == "inet" || *t == "inet6") {
            Some(i) => tokens.get(i + 1).into_iter().copied().collect(),
            None => tokens,
        };
        for c in candidates {
            let Ok(ip) = c.split('/').next().unwrap_or_default().parse::<IpAddr>() else { continue };
            let link_local = match ip {
                IpAddr::V4(v4) => v4.is_link_local(),
                IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) == 0xfe80,
            };
            if !ip.is_loopback() && !link_local && !found.contains(&ip) {
                found.push(ip);
            }
        }
    }
    found
}

/// The reach section: `ADDRESS PORT ok|fail` per peer.
pub fn check_reach(section: &str) -> Check {
    let mut ok = Vec::new();
    let mut failed = Vec::new();
    for line in section.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        match f.as_slice() {
            [addr, port, "ok"] => ok.push(format!("{addr}:{port}")),
            [addr, port, _] => failed.push(format!("{addr}:{port}")),
            _ => {}
        }
    }
    if !failed.is_empty() {
        return Check::fail(
            "reachability",
            format!("cannot connect to {}", failed.join(", ")),
            "open the network path between the hosts (routes, firewalls, security groups): every host must reach every other",
        );
    }
    if ok.is_empty() {
        Check::pass("reachability", "no other hosts")
    } else {
        Check::pass("reachability", format!("reaches {}", ok.len()))
    }
}

/// The clock check from a remote `date +%s.%N` read between local times `before` and
/// `after` (seconds since the epoch). The remote reading happened somewhere in between, so
/// the skew is at least the distance from that interval; it fails when that exceeds `max`.
pub fn clock_check(remote: &str, before: f64, after: f64, max: Duration) -> Check {
    let Ok(remote) = remote.trim().parse::<f64>() else {
        return Check::fail(
            "clock",
            format!("cannot read the clock: {:?}", remote.trim()),
            "check that `date +%s.%N` works there",
        );
    };
    let skew = if remote < before {
        remote - before
    } else if remote > after {
        remote - after
    } else {
        0.0
    };
    let detail = format!(
        "{:+.3} s against this machine (±{:.3} s measurement window)",
        remote - (before + after) / 2.0,
        (after - before) / 2.0
    );
    if skew.abs() > max.as_secs_f64() {
        Check::fail(
            "clock",
            format!("off by at least {:.1} s: {detail}", skew.abs()),
            "synchronise the clocks: enable NTP (timedatectl set-ntp true, chrony or systemd-timesyncd) on every host and on this machine",
        )
    } else {
        Check::pass("clock", detail)
    }
}

/// Every check of one host from its probe output (pure).
pub fn host_checks(output: &str, req: &Requirements) -> (Vec<Check>, Vec<IpAddr>, Option<String>) {
    let s = sections(output);
    let get = |k: &str| s.get(k).map(String::as_str).unwrap_or_default();
    if !s.contains_key("end") {
        let check = Check::fail(
            "probe",
            "the probe did not run to the end",
            "check that bash and coreutils are installed; the host log has the full output",
        );
        return (vec![check], Vec::new(), None);
    }
    let used = ports_in_use(get("tcp"), get("udp"));
    let checks = vec![
        check_os(get("uname"), get("os-release")),
        check_kernel(get("uname")),
        check_systemd(get("pid1"), get("systemd")),
        check_cgroups(get("cgroupfs"), get("cgroup2"), get("cgroup1")),
        check_overlay(get("filesystems"), get("overlay-module")),
        check_ports(&used, &req.ports),
        check_disk(get("disk"), &req.data_dir, req.min_disk_bytes),
        check_memory(get("meminfo"), req.min_memory_bytes),
        check_hostname(get("hostname"), get("resolve")),
        check_reach(get("reach")),
    ];
    let id = get("machine-id").trim();
    (checks, addresses(get("addresses")), (!id.is_empty()).then(|| id.to_string()))
}

/// Checks across hosts: a host listed twice, hosts sharing a machine-id (cloned images) or an
/// address (pure).
pub fn cluster_checks(listed: &[(String, Role)], facts: &[(String, Option<String>, Vec<IpAddr>)]) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut seen: BTreeMap<&str, Vec<Role>> = BTreeMap::new();
    for (host, role) in listed {
        seen.entry(host.as_str()).or_default().push(*role);
    }
    let dups: Vec<String> = seen
        .iter()
        .filter(|(_, roles)| roles.len() > 1)
        .map(|(h, roles)| format!("{h} ({})", roles.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(", ")))
        .collect();
    if dups.is_empty() {
        checks.push(Check::pass("duplicate hosts", "every host is listed once"));
    } else {
        checks.push(Check::fail(
            "duplicate hosts",
            format!("listed more than once: {}", dups.join("; ")),
            "list each host once in master_list, agent_list or public_agent_list",
        ));
    }
    let mut by_id: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut by_addr: BTreeMap<IpAddr, Vec<&str>> = BTreeMap::new();
    for (host, id, addrs) in facts {
        if let Some(id) = id {
            by_id.entry(id.as_str()).or_default().push(host);
        }
        for a in addrs {
            by_addr.entry(*a).or_default().push(host);
        }
    }
    let shared_ids: Vec<String> = by_id.values().filter(|h| h.len() > 1).map(|h| h.join(" and ")).collect();
    if shared_ids.is_empty() {
        checks.push(Check::pass("machine-id", "unique"));
    } else {
        checks.push(Check::fail(
            "machine-id",
            format!("the same /etc/machine-id on {}", shared_ids.join("; ")),
            "hosts cloned from one image: run `rm /etc/machine-id && systemd-machine-id-setup` on each copy",
        ));
    }
    let shared_addrs: Vec<String> =
        by_addr.iter().filter(|(_, h)| h.len() > 1).map(|(a, h)| format!("{a} on {}", h.join(" and "))).collect();
    if shared_addrs.is_empty() {
        checks.push(Check::pass("duplicate addresses", "none"));
    } else {
        checks.push(Check::fail(
            "duplicate addresses",
            shared_addrs.join("; "),
            "give every host its own address (an address conflict breaks the cluster's traffic)",
        ));
    }
    checks
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or_default()
}

/// Probes one host: the probe script, then the clock.
async fn probe_host(
    runner: &Runner,
    host: &str,
    req: &Requirements,
    peers: &[(String, u16)],
    settings: &Settings,
) -> Result<(Vec<Check>, Facts), SshError> {
    let script = probe_script(req, peers);
    let out = runner.run(host, "preflight probe", "bash -s", Some(script.as_bytes()), settings.timeout).await?;
    let (mut checks, addresses, machine_id) = host_checks(&out.stdout, req);
    let before = now_secs();
    let clock = runner.run(host, "clock", "date +%s.%N", None, settings.timeout).await?;
    let after = now_secs();
    checks.push(clock_check(&clock.stdout, before, after, settings.max_clock_skew));
    Ok((checks, Facts { machine_id, addresses }))
}

/// Runs every check on every host in parallel (per-host logs under `log_dir`, a progress line
/// per host) and the cross-host checks.
pub async fn preflight(hosts: &Hosts, settings: &Settings, log_dir: &Path) -> Result<Report, SshError> {
    let runner = Runner::new(settings.ssh.clone(), log_dir)?;
    let mut listed: Vec<(String, Role)> = Vec::new();
    listed.extend(hosts.masters.iter().map(|h| (h.clone(), Role::Master)));
    listed.extend(hosts.agents.iter().map(|h| (h.clone(), Role::Agent)));
    listed.extend(hosts.public_agents.iter().map(|h| (h.clone(), Role::PublicAgent)));
    let names: Vec<String> = listed.iter().map(|(h, _)| h.clone()).collect();
    let port = settings.ssh.settings.port;
    let outcomes: Vec<Outcome<(Vec<Check>, Facts)>> = runner
        .on_hosts(&names, "preflight", |host| {
            let role = listed.iter().find(|(h, _)| h == host).map(|(_, r)| *r).unwrap_or(Role::Agent);
            let req = if role == Role::Master { &settings.master } else { &settings.agent };
            let peers: Vec<(String, u16)> = names
                .iter()
                .filter(|h| h.as_str() != host)
                .collect::<BTreeSet<_>>()
                .into_iter()
                .map(|h| (h.clone(), port))
                .collect();
            let runner = &runner;
            async move { probe_host(runner, host, req, &peers, settings).await }
        })
        .await;
    let mut reports = Vec::new();
    for (o, (_, role)) in outcomes.into_iter().zip(&listed) {
        let elapsed_ms = o.elapsed.as_millis() as u64;
        let report = match o.result {
            Ok((checks, facts)) => {
                HostReport { host: o.host, role: *role, checks, error: None, ssh_error: None, elapsed_ms, facts }
            }
            Err(e) => HostReport {
                host: o.host,
                role: *role,
                checks: Vec::new(),
                error: Some(e.to_string()),
                ssh_error: Some(e),
                elapsed_ms,
                facts: Facts::default(),
            },
        };
        tracing::info!(host = %report.host, passed = report.passed(), "preflight");
        reports.push(report);
    }
    let facts: Vec<(String, Option<String>, Vec<IpAddr>)> =
        reports.iter().map(|r| (r.host.clone(), r.facts.machine_id.clone(), r.facts.addresses.clone())).collect();
    let cluster = cluster_checks(&listed, &facts);
    Ok(Report { hosts: reports, cluster })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_OS_RELEASE: &str =
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nID=debian\n";

    const PROC_CGROUPS_V1: &str = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpuset\t3\t1\t1\ncpu\t1\t77\t1\ncpuacct\t2\t1\t1\nblkio\t7\t1\t1\nmemory\t4\t90\t1\ndevices\t5\t1\t1\nfreezer\t6\t1\t1\nnet_cls\t0\t1\t1\nperf_event\t0\t1\t1\nhugetlb\t0\t1\t1\npids\t8\t77\t1\nrdma\t0\t1\t1\n";

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 0 1\n  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000000000000:20FB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n  123: 00000000:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2 2 0\n";

    fn req() -> Requirements {
        Requirements {
            ports: vec![
                PortCheck::tcp(8443, "master API and Raft"),
                PortCheck::udp(53, "cluster DNS"),
                PortCheck::tcp(8080, "x"),
            ],
            data_dir: PathBuf::from("/var/lib/medos"),
            min_disk_bytes: 1 << 30,
            min_memory_bytes: 1 << 30,
        }
    }

    #[test]
    fn sections_split_the_probe_output() {
        let s = sections("\n@@a\none\ntwo\n\n@@b\n\n@@c\nthree\n");
        assert_eq!(s.get("a").map(String::as_str), Some("one\ntwo"));
        assert_eq!(s.get("b").map(String::as_str), Some(""));
        assert_eq!(s.get("c").map(String::as_str), Some("three"));
    }

    #[test]
    fn os_and_kernel() {
        assert_eq!(check_os("Linux 6.1.0-28-amd64", DEBIAN_OS_RELEASE).detail, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(check_os("Linux 6.1.0", "").status, Status::Warn);
        assert_eq!(check_os("FreeBSD 14.0-RELEASE", "").status, Status::Fail);
        assert_eq!(kernel_version("6.1.0-28-amd64"), Some((6, 1)));
        assert_eq!(kernel_version("4.19.0"), Some((4, 19)));
        assert_eq!(kernel_version("garbage"), None);
        assert_eq!(check_kernel("Linux 6.1.0-28-amd64").status, Status::Pass);
        assert_eq!(check_kernel("Linux 5.4.0-150-generic").status, Status::Warn);
        let old = check_kernel("Linux 3.10.0-1160.el7.x86_64");
        assert_eq!(old.status, Status::Fail);
        assert!(old.detail.contains("older than 4.15") && old.fix.unwrap().contains("upgrade"), "{}", old.detail);
        assert_eq!(check_kernel("Linux").status, Status::Fail);
    }

    #[test]
    fn systemd_must_be_pid_1() {
        assert_eq!(check_systemd("systemd\n", "systemd 252 (252.36-1~deb12u1)").status, Status::Pass);
        let c = check_systemd("bash", "systemd 252 (252.36-1~deb12u1)");
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("PID 1 is \"bash\""), "{}", c.detail);
        assert!(check_systemd("init", "").detail.contains("systemctl not found"));
    }

    #[test]
    fn cgroups_v1_and_v2() {
        assert_eq!(check_cgroups("tmpfs", "", PROC_CGROUPS_V1).detail, "v1 with cpu, memory, pids");
        assert_eq!(check_cgroups("cgroup2fs", "cpuset cpu io memory hugetlb pids rdma misc", "").status, Status::Pass);
        let c = check_cgroups("cgroup2fs", "cpuset io memory", "");
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("lacks the cpu, pids controller(s)"), "{}", c.detail);
        let no_memory = PROC_CGROUPS_V1.replace("memory\t4\t90\t1", "memory\t0\t1\t0");
        assert!(check_cgroups("tmpfs", "", &no_memory).detail.contains("memory"));
        assert_eq!(check_cgroups("ext4", "", "").status, Status::Fail);
    }

    #[test]
    fn overlay() {
        assert_eq!(check_overlay("nodev\tsysfs\nnodev\toverlay\n\text4\n", "").status, Status::Pass);
        assert_eq!(check_overlay("nodev\tsysfs\n", "/lib/modules/6.1.0/kernel/fs/overlayfs").status, Status::Pass);
        assert_eq!(check_overlay("nodev\tsysfs\n", "").status, Status::Fail);
    }

    #[test]
    fn ports_from_the_kernel_tables() {
        let used = ports_in_use(TCP, UDP);
        // 0x0016 = 22 and 0x20FB = 8443 listen; 0x1F90 = 8080 is an established connection.
        assert!(used.contains(&(Protocol::Tcp, 22)) && used.contains(&(Protocol::Tcp, 8443)), "{used:?}");
        assert!(!used.contains(&(Protocol::Tcp, 8080)), "{used:?}");
        assert!(used.contains(&(Protocol::Udp, 53)), "{used:?}");
        let c = check_ports(&used, &req().ports);
        assert_eq!(c.status, Status::Fail);
        assert_eq!(c.detail, "in use: 8443/tcp (master API and Raft), 53/udp (cluster DNS)");
        assert!(c.fix.unwrap().contains("sport = :8443"));
        let free = check_ports(&BTreeSet::new(), &req().ports);
        assert_eq!(free.status, Status::Pass);
        assert_eq!(free.detail, "free: 8443/tcp, 53/udp, 8080/tcp");
    }

    #[test]
    fn disk_and_memory() {
        let df = "/var/lib\n/dev/vda 263174212 41000000 55000000 43% /";
        let c = check_disk(df, Path::new("/var/lib/medos"), 1 << 30);
        assert_eq!(c.status, Status::Pass);
        assert!(c.detail.contains("/var/lib (for /var/lib/medos)"), "{}", c.detail);
        let c = check_disk("/var/lib/medos\n/dev/vda 1000 900 100 90% /", Path::new("/var/lib/medos"), 1 << 30);
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.starts_with("0.0 GiB free on /var/lib/medos, need 1.0 GiB"), "{}", c.detail);
        assert_eq!(check_disk("", Path::new("/x"), 1).status, Status::Fail);
        let meminfo = "MemTotal:       24589288 kB\nMemFree:         1000000 kB\n";
        assert_eq!(mem_total(meminfo), Some(24589288 * 1024));
        assert_eq!(check_memory(meminfo, 1 << 30).status, Status::Pass);
        assert_eq!(check_memory(meminfo, 64 << 30).status, Status::Fail);
        assert_eq!(check_memory("", 1).status, Status::Fail);
    }

    #[test]
    fn hostname_resolution() {
        let ok = check_hostname("h1\n", "10.77.1.1       STREAM h1\n10.77.1.1       DGRAM  \n");
        assert_eq!(ok.status, Status::Pass);
        assert_eq!(ok.detail, "h1 → 10.77.1.1");
        let none = check_hostname("h1", "");
        assert_eq!(none.status, Status::Fail);
        assert!(none.fix.unwrap().contains("/etc/hosts"));
        assert_eq!(check_hostname("h1", "127.0.1.1 STREAM h1").status, Status::Warn);
    }

    #[test]
    fn addresses_from_ip_or_hostname() {
        let ip = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
                  1: lo    inet6 ::1/128 scope host \\       valid_lft forever\n\
                  2: eth0    inet 10.77.1.2/24 scope global eth0\\       valid_lft forever\n\
                  2: eth0    inet6 fe80::1/64 scope link \\       valid_lft forever\n";
        assert_eq!(addresses(ip), vec!["10.77.1.2".parse::<IpAddr>().unwrap()]);
        assert_eq!(addresses("10.0.0.1 192.168.1.5 \n").len(), 2);
    }

    #[test]
    fn reachability() {
        assert_eq!(check_reach("10.0.0.2 22 ok\n10.0.0.3 22 ok").status, Status::Pass);
        let c = check_reach("10.0.0.2 22 ok\n10.0.0.3 22 fail");
        assert_eq!(c.status, Status::Fail);
        assert_eq!(c.detail, "cannot connect to 10.0.0.3:22");
    }

    #[test]
    fn clock_skew_is_judged_against_the_measurement_window() {
        let max = Duration::from_secs(2);
        assert_eq!(clock_check("1000.5\n", 1000.0, 1001.0, max).status, Status::Pass);
        // A slow round trip alone never fails the check.
        assert_eq!(clock_check("1004.0", 1000.0, 1010.0, max).status, Status::Pass);
        let ahead = clock_check("1010.0", 1000.0, 1000.2, max);
        assert_eq!(ahead.status, Status::Fail);
        assert!(ahead.detail.starts_with("off by at least 9.8 s"), "{}", ahead.detail);
        assert!(ahead.fix.unwrap().contains("NTP"));
        assert_eq!(clock_check("990.0", 1000.0, 1000.2, max).status, Status::Fail);
        assert_eq!(clock_check("soon", 1000.0, 1000.2, max).status, Status::Fail);
    }

    #[test]
    fn a_cut_probe_is_one_failure() {
        let (checks, _, _) = host_checks("@@uname\nLinux 6.1.0\n", &req());
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].name, "probe");
    }

    #[test]
    fn duplicates_across_hosts() {
        let listed =
            vec![("a".to_string(), Role::Master), ("b".to_string(), Role::Agent), ("a".to_string(), Role::Agent)];
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let facts = vec![
            ("a".to_string(), Some("m1".to_string()), vec![ip("10.0.0.1")]),
            ("b".to_string(), Some("m1".to_string()), vec![ip("10.0.0.1"), ip("10.0.0.2")]),
        ];
        let checks = cluster_checks(&listed, &facts);
        assert!(checks.iter().all(|c| c.status == Status::Fail), "{checks:#?}");
        assert_eq!(checks[0].detail, "listed more than once: a (master, agent)");
        assert_eq!(checks[1].detail, "the same /etc/machine-id on a and b");
        assert_eq!(checks[2].detail, "10.0.0.1 on a and b");
        let facts = vec![("a".to_string(), Some("m1".to_string()), vec![ip("10.0.0.1")])];
        let checks = cluster_checks(&listed[..2], &facts);
        assert!(checks.iter().all(|c| c.status == Status::Pass), "{checks:#?}");
    }

    #[test]
    fn render_names_each_problem_with_its_fix() {
        let auth = SshError::AuthFailed { host: "b".into(), user: "nobody".into(), detail: "Permission denied".into() };
        let report = Report {
            hosts: vec![
                HostReport {
                    host: "a".into(),
                    role: Role::Master,
                    checks: vec![
                        Check::pass("os", "Debian"),
                        Check::fail("ports", "in use: 53/udp (cluster DNS)", "stop it"),
                    ],
                    error: None,
                    ssh_error: None,
                    elapsed_ms: 1200,
                    facts: Facts::default(),
                },
                HostReport {
                    host: "b".into(),
                    role: Role::Agent,
                    checks: Vec::new(),
                    error: Some(auth.to_string()),
                    ssh_error: Some(auth),
                    elapsed_ms: 300,
                    facts: Facts::default(),
                },
            ],
            cluster: vec![Check::pass("machine-id", "unique")],
        };
        assert!(!report.passed());
        let text = report.render();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[1].starts_with("a") && lines[1].contains("FAILED") && lines[1].ends_with("ports"), "{text}");
        assert!(lines[2].starts_with("b") && lines[2].ends_with("login refused"), "{text}");
        assert!(lines[3].starts_with("FAIL b ssh: b refused the login as \"nobody\""), "{text}");
        assert_eq!(lines[4], "FAIL a ports: in use: 53/udp (cluster DNS)");
        assert_eq!(lines[5], "     fix: stop it");
    }

    #[test]
    fn probe_script_checks_each_peer_and_quotes_the_data_dir() {
        let mut r = req();
        r.data_dir = PathBuf::from("/var/lib/my medos");
        let s = probe_script(&r, &[("10.0.0.2".into(), 22), ("10.0.0.3".into(), 2222)]);
        assert!(s.contains("d='/var/lib/my medos'"), "{s}");
        assert!(s.contains("/dev/tcp/'10.0.0.3'/2222"), "{s}");
        assert!(s.trim_end().ends_with("section end"));
    }
}
