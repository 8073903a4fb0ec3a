//! Simulated bare-metal hosts: Debian machines booted with systemd (`systemd-nspawn -b`), each
//! in a network namespace of its own on a Linux bridge, with a real sshd that accepts a key
//! generated for the run. The installer reaches them exactly as it reaches real hosts: with the
//! system's `ssh` client, as root, at `10.77.X.N`.
//!
//! The recipe is the one in the project's test-bed notes:
//! - the golden root filesystem (`hostsim-image.sh`, mmdebstrap minbase + [`PACKAGES`]) is
//!   built once and cached under `target/tmp/hostsim-cache/<hash of packages and script>`,
//!   and unpacked there once; each host's root is an overlay of that shared read-only tree
//!   and an upper dir of its own (so a host costs no copy), with a fresh machine-id and SSH
//!   host keys, root's `authorized_keys`, its hostname and an `/etc/hosts` naming every host;
//!   a plain directory is bound at `/var/lib/medos` (an overlay upper dir, as agents make for
//!   image tasks, cannot sit on an overlay root);
//! - network: one bridge (`mhsXbr`, `10.77.X.254/24` on this machine) and per host a netns
//!   (`mhsX-hN`) joined by a veth (`mhsXhN` ↔ `eth0`, `10.77.X.N/24`). `X` is a subnet taken
//!   with a `flock` on `/run/medos-hostsim/X.lock`, so concurrent simulations never collide;
//! - each host runs `systemd-nspawn -b --register=no --keep-unit` from a launcher that first
//!   moves itself into a cgroup of its own in every hierarchy (`<own cgroup>/mhsX/hN`), since
//!   all `--keep-unit` hosts would otherwise share one; a supervisor thread boots the host
//!   again when nspawn exits with 133 (`systemctl reboot` inside);
//! - after every boot, on cgroup v1, the controllers are remounted read-write inside the host
//!   and systemd re-executed, so units' limits are enforced and agents can nest containers.
//!
//! `Drop` powers every host off hard (SIGKILL of its PID 1 ends its pid namespace), stops the
//! launchers, removes the cgroups, netns, veths and bridge, unmounts the roots, removes the
//! temp dir (after detaching any mount still found below it) and releases the subnet lock.
//! Nothing is found or killed by name.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::fcntl::{Flock, FlockArg};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use sha2::{Digest, Sha256};

/// Packages on top of mmdebstrap's minbase. `socat` lets tests hold ports open on a host.
pub const PACKAGES: &[&str] = &[
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "iproute2",
    "iptables",
    "iputils-ping",
    "procps",
    "curl",
    "ca-certificates",
    "socat",
];

/// The image script; its text is part of the cache key.
const IMAGE_SCRIPT: &str = include_str!("hostsim-image.sh");

/// How long a boot (nspawn start → sshd answering) may take on a loaded machine.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long building the image may take (mmdebstrap downloads ~100 packages).
const IMAGE_TIMEOUT: Duration = Duration::from_secs(900);

static IMAGE_LOCK: Mutex<()> = Mutex::new(());

/// One simulated host as the tests see it.
#[derive(Debug, Clone)]
pub struct Host {
    /// Hostname and nspawn machine name: `h1`, `h2`, …
    pub name: String,
    pub ip: Ipv4Addr,
    /// PID (in this machine's pid namespace) of the host's PID 1; 0 while powered off.
    pub pid: u32,
}

/// Everything a simulation creates on this machine.
#[derive(Debug, Clone)]
pub struct Footprint {
    pub bridge: String,
    pub veths: Vec<String>,
    pub netns: Vec<String>,
    pub cgroups: Vec<PathBuf>,
    pub dir: PathBuf,
    /// The hosts' PID 1s.
    pub pids: Vec<u32>,
    /// The hosts' overlay roots.
    pub mounts: Vec<PathBuf>,
}

/// A per-host supervisor: the running launcher (systemd-nspawn) and whether to boot again.
#[derive(Default)]
struct Power {
    child: Option<Child>,
    /// Set before a deliberate power-off so an exit is not taken for a reboot.
    off: bool,
    /// Boots so far (a reboot increments it).
    boots: u32,
    /// Why the last launcher ended, when it was not a reboot.
    ended: Option<String>,
}

struct Machine {
    power: Arc<Mutex<Power>>,
    thread: Option<JoinHandle<()>>,
}

/// The running simulation; see the module docs.
pub struct HostSim {
    tmp: Option<tempfile::TempDir>,
    dir: PathBuf,
    subnet: u8,
    /// Held while the simulation lives; see [`take_subnet`].
    lock: Option<Flock<std::fs::File>>,
    bridge: String,
    hosts: Vec<Host>,
    machines: Vec<Machine>,
    /// Per-host cgroup directories created in each hierarchy, deepest last.
    cgroup_parents: Vec<PathBuf>,
    netns: Vec<String>,
    veths: Vec<String>,
    /// The hosts' overlay roots mounted on this machine.
    mounts: Vec<PathBuf>,
    key: PathBuf,
    ssh_config: PathBuf,
}

/// Runs a command and fails with its stderr unless it exits 0.
fn run(cmd: &mut Command) -> Result<Output, String> {
    let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(format!(
            "{cmd:?}: {}\nstdout: {}\nstderr: {}",
            out.status,
            String::from_utf8_lossy(&out.stdout).trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    run(Command::new("ip").args(args)).map(|_| ())
}

/// Why simulated hosts cannot run here, if they cannot (tests print it and skip): only when
/// not root. A missing tool is a failure (CI installs them), never a silent skip.
pub fn unavailable() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("simulated hosts need root (network namespaces, systemd-nspawn)".into());
    }
    None
}

/// Panics naming the package to install when a tool the simulation runs is missing.
fn require_tools() {
    let path = std::env::var_os("PATH").unwrap_or_default();
    for tool in ["systemd-nspawn", "mmdebstrap", "zstd", "ssh", "ssh-keygen", "ip", "nsenter", "tar", "mount"] {
        if !std::env::split_paths(&path).any(|d| d.join(tool).is_file()) {
            panic!(
                "{tool} is missing: apt-get install -y systemd-container mmdebstrap iptables iputils-ping zstd openssh-client"
            );
        }
    }
}

/// The cached golden image, built first if needed.
pub fn golden_image() -> PathBuf {
    let _guard = IMAGE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let mut hash = Sha256::new();
    hash.update(PACKAGES.join(",").as_bytes());
    hash.update(IMAGE_SCRIPT.as_bytes());
    let key = hex::encode(&hash.finalize()[..8]);
    let cache = std::env::var_os("MEDOS_HOSTSIM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("hostsim-cache"));
    let image = cache.join(format!("bookworm-{key}.tar.zst"));
    if image.is_file() {
        return image;
    }
    std::fs::create_dir_all(&cache).expect("creating the image cache dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/hostsim-image.sh");
    eprintln!("building the simulated hosts' image {} (once; mmdebstrap takes a minute or two)", image.display());
    let start = Instant::now();
    let log_path = cache.join(format!("build-{key}.log"));
    let log = std::fs::File::create(&log_path).expect("creating the image build log");
    let mut child = Command::new("bash")
        .arg(&script)
        .arg(&image)
        .arg(PACKAGES.join(","))
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("running hostsim-image.sh");
    loop {
        if let Some(status) = child.try_wait().expect("waiting for hostsim-image.sh") {
            assert!(
                status.success(),
                "building the image failed ({status}); {}:\n{}",
                log_path.display(),
                tail(&log_path, 30)
            );
            break;
        }
        if start.elapsed() > IMAGE_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "building the image took longer than {IMAGE_TIMEOUT:?}; {}:\n{}",
                log_path.display(),
                tail(&log_path, 30)
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!("image built in {:.1} s", start.elapsed().as_secs_f64());
    image
}

/// The golden image unpacked once next to its tarball (`<image>.root/`): the shared,
/// read-only lower layer of every host's overlay root.
pub fn golden_root(image: &Path) -> PathBuf {
    let _guard = IMAGE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let root = image.with_extension("root");
    if root.is_dir() {
        return root;
    }
    let partial = image.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    std::fs::create_dir_all(&partial).expect("creating the golden root");
    run(Command::new("tar").args(["--zstd", "--numeric-owner", "-xpf"]).arg(image).arg("-C").arg(&partial))
        .expect("unpacking the image");
    // Another process may have won the race; its copy is as good as ours.
    if std::fs::rename(&partial, &root).is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    root
}

/// Takes a free `10.77.X.0/24`: an exclusive `flock` on `/run/medos-hostsim/X.lock`, held
/// as long as the simulation lives (the kernel drops it when the process dies, so a crashed
/// run never blocks a subnet). Leftovers of a crashed run with the same subnet are removed.
fn take_subnet() -> (u8, Flock<std::fs::File>) {
    let dir = Path::new("/run/medos-hostsim");
    std::fs::create_dir_all(dir).expect("creating /run/medos-hostsim");
    for x in 1..=250u8 {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("{x}.lock")))
            .expect("opening a subnet lock");
        if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            let _ = ip(&["link", "del", &format!("mhs{x}br")]);
            return (x, lock);
        }
    }
    panic!("no free simulated subnet: all 250 locks in /run/medos-hostsim are held");
}

/// `(hierarchy mount point, our cgroup path in it)` for every cgroup hierarchy we are in.
fn own_cgroups() -> Vec<(PathBuf, String)> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("reading mountinfo");
    let mounts: Vec<(PathBuf, String, String)> = mountinfo
        .lines()
        .filter_map(|l| {
            let (left, right) = l.split_once(" - ")?;
            let mount_point = left.split(' ').nth(4)?;
            let mut r = right.split(' ');
            let fstype = r.next()?;
            let options = r.nth(1)?;
            (fstype == "cgroup" || fstype == "cgroup2")
                .then(|| (PathBuf::from(mount_point), fstype.to_string(), options.to_string()))
        })
        .collect();
    let own = std::fs::read_to_string("/proc/self/cgroup").expect("reading /proc/self/cgroup");
    let mut found = Vec::new();
    for line in own.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let mount = if controllers.is_empty() {
            mounts.iter().find(|(_, t, _)| t == "cgroup2")
        } else {
            let wanted: Vec<&str> = controllers.split(',').collect();
            mounts.iter().find(|(_, t, o)| t == "cgroup" && wanted.iter().all(|w| o.split(',').any(|opt| opt == *w)))
        };
        if let Some((mp, _, _)) = mount {
            found.push((mp.clone(), path.trim_start_matches('/').to_string()));
        }
    }
    found
}

/// PIDs of the descendants of `root` (walking `/proc/*/stat` parents).
fn descendants(root: u32) -> Vec<u32> {
    let mut parent_of = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
            // The command may contain spaces and parentheses: the fields follow the last ')'.
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse::<u32>().ok()) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(pid, _)| *pid));
        i += 1;
    }
    found.remove(0);
    found
}

/// The host's PID 1 among the launcher's descendants: the process that is PID 1 of a pid
/// namespace below ours (`NSpid: <ours> 1`).
fn find_leader(launcher: u32) -> Option<u32> {
    descendants(launcher).into_iter().find(|pid| {
        std::fs::read_to_string(format!("/proc/{pid}/status")).is_ok_and(|s| {
            s.lines().any(|l| {
                l.strip_prefix("NSpid:").is_some_and(|v| {
                    let ids: Vec<&str> = v.split_whitespace().collect();
                    ids.len() == 2 && ids[1] == "1"
                })
            })
        })
    })
}

impl HostSim {
    /// Boots `n` hosts (1..=200) and waits until each one's sshd accepts the run's key.
    pub fn start(n: usize) -> HostSim {
        assert!((1..=200).contains(&n), "HostSim::start: n must be 1..=200, got {n}");
        require_tools();
        let lower = golden_root(&golden_image());
        let (subnet, lock) = take_subnet();
        let tmp = tempfile::Builder::new().prefix("medos-hostsim-").tempdir().expect("creating the temp dir");
        let dir = tmp.path().to_path_buf();
        let mut sim = HostSim {
            tmp: Some(tmp),
            dir: dir.clone(),
            subnet,
            lock: Some(lock),
            bridge: format!("mhs{subnet}br"),
            hosts: (1..=n)
                .map(|i| Host { name: format!("h{i}"), ip: Ipv4Addr::new(10, 77, subnet, i as u8), pid: 0 })
                .collect(),
            machines: Vec::new(),
            cgroup_parents: Vec::new(),
            netns: Vec::new(),
            veths: Vec::new(),
            mounts: Vec::new(),
            key: dir.join("id_ed25519"),
            ssh_config: dir.join("ssh_config"),
        };
        let start = Instant::now();
        sim.make_key();
        sim.make_network();
        sim.make_roots(&lower);
        sim.write_ssh_config();
        eprintln!(
            "hostsim: {n} hosts on 10.77.{subnet}.0/24 prepared in {:.1} s ({})",
            start.elapsed().as_secs_f64(),
            sim.dir.display()
        );
        let boot = Instant::now();
        for i in 0..n {
            sim.machines.push(Machine { power: Arc::new(Mutex::new(Power::default())), thread: None });
            sim.power_on(i);
        }
        for i in 0..n {
            sim.wait_booted(i, 1);
        }
        eprintln!("hostsim: {n} hosts answer SSH {:.1} s after power-on", boot.elapsed().as_secs_f64());
        sim
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    /// The run's private key (root's `authorized_keys` on every host has its public half).
    pub fn key_path(&self) -> &Path {
        &self.key
    }

    /// An ssh config for `ssh -F`: user root, the run's key, a known_hosts file holding every
    /// host's keys (strict checking), batch mode.
    pub fn ssh_config_path(&self) -> &Path {
        &self.ssh_config
    }

    /// The known_hosts file with every host's public keys.
    pub fn known_hosts_path(&self) -> PathBuf {
        self.dir.join("known_hosts")
    }

    /// The address of this machine on the hosts' bridge (`10.77.X.254`).
    pub fn gateway(&self) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.subnet, 254)
    }

    /// Runs `cmd` as root on host `i` over SSH (10 s to connect, 120 s in all).
    pub fn ssh(&self, i: usize, cmd: &str) -> Output {
        let host = &self.hosts[i];
        let mut child = Command::new("ssh")
            .arg("-F")
            .arg(&self.ssh_config)
            .arg(host.ip.to_string())
            .arg(cmd)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("running ssh");
        let start = Instant::now();
        loop {
            if child.try_wait().expect("waiting for ssh").is_some() {
                return child.wait_with_output().expect("ssh output");
            }
            if start.elapsed() > Duration::from_secs(120) {
                let _ = child.kill();
                let out = child.wait_with_output().expect("ssh output");
                panic!(
                    "ssh {} {cmd:?}: no answer within 120 s; stderr: {}",
                    host.name,
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Like [`HostSim::ssh`], panicking unless the command exits 0; returns its stdout.
    pub fn ssh_ok(&self, i: usize, cmd: &str) -> String {
        let out = self.ssh(i, cmd);
        assert!(
            out.status.success(),
            "ssh {} {cmd:?}: {}\nstdout: {}\nstderr: {}",
            self.hosts[i].name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Hard power-off: SIGKILL of the host's PID 1 (its whole pid namespace goes with it), then
    /// waits until its launcher has exited. The root filesystem stays for [`HostSim::power_on`].
    pub fn kill_host(&mut self, i: usize) {
        let m = &mut self.machines[i];
        let pid = {
            let mut p = m.power.lock().unwrap_or_else(|e| e.into_inner());
            p.off = true;
            p.child.as_ref().and_then(|c| find_leader(c.id()))
        };
        if let Some(pid) = pid {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        let start = Instant::now();
        loop {
            let running = m.power.lock().unwrap_or_else(|e| e.into_inner()).child.is_some();
            if !running {
                break;
            }
            if start.elapsed() > Duration::from_secs(10) {
                // nspawn did not notice: stop the launcher itself (still our unreaped child).
                let mut p = m.power.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(c) = p.child.as_mut() {
                    let _ = c.kill();
                }
            }
            assert!(start.elapsed() < Duration::from_secs(30), "host {i} did not power off within 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(t) = m.thread.take() {
            let _ = t.join();
        }
        self.hosts[i].pid = 0;
    }

    /// Boots a powered-off host again (same root filesystem) and waits until SSH answers.
    pub fn boot(&mut self, i: usize) {
        let boots = self.machines[i].power.lock().unwrap_or_else(|e| e.into_inner()).boots;
        self.power_on(i);
        self.wait_booted(i, boots + 1);
    }

    /// `systemctl reboot` over SSH; waits for the new boot (nspawn exits 133 and the supervisor
    /// starts it again) and for SSH to answer.
    pub fn reboot(&mut self, i: usize) {
        let boots = self.machines[i].power.lock().unwrap_or_else(|e| e.into_inner()).boots;
        // The connection may be cut by the reboot itself: its exit status says nothing.
        let _ = self.ssh(i, "systemctl reboot");
        self.wait_booted(i, boots + 1);
    }

    /// What `Drop` must remove (the cleanup test checks it is all gone): the bridge, veths,
    /// netns names, per-simulation cgroup dirs and the temp dir.
    pub fn footprint(&self) -> Footprint {
        Footprint {
            bridge: self.bridge.clone(),
            veths: self.veths.clone(),
            netns: self.netns.clone(),
            cgroups: self.cgroup_parents.clone(),
            dir: self.dir.clone(),
            pids: self.hosts.iter().map(|h| h.pid).filter(|p| *p != 0).collect(),
            mounts: self.mounts.clone(),
        }
    }

    /// How many times host `i` has booted.
    pub fn boots(&self, i: usize) -> u32 {
        self.machines[i].power.lock().unwrap_or_else(|e| e.into_inner()).boots
    }

    fn make_key(&self) {
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "medos-hostsim", "-f"])
            .arg(&self.key))
        .expect("ssh-keygen");
    }

    fn make_network(&mut self) {
        let br = self.bridge.clone();
        ip(&["link", "add", &br, "type", "bridge"]).expect("creating the bridge");
        ip(&["addr", "add", &format!("{}/24", self.gateway()), "dev", &br]).expect("bridge address");
        ip(&["link", "set", &br, "up"]).expect("bridge up");
        for h in self.hosts.clone() {
            let ns = format!("mhs{}-{}", self.subnet, h.name);
            let veth = format!("mhs{}{}", self.subnet, h.name);
            // A leftover of a crashed run with this subnet would be in the way.
            let _ = ip(&["netns", "del", &ns]);
            ip(&["netns", "add", &ns]).expect("creating a netns");
            self.netns.push(ns.clone());
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns]).expect("creating a veth");
            self.veths.push(veth.clone());
            ip(&["link", "set", &veth, "master", &br, "up"]).expect("veth on the bridge");
            ip(&["-n", &ns, "addr", "add", &format!("{}/24", h.ip), "dev", "eth0"]).expect("host address");
            ip(&["-n", &ns, "link", "set", "eth0", "up"]).expect("eth0 up");
            ip(&["-n", &ns, "link", "set", "lo", "up"]).expect("lo up");
        }
    }

    fn root(&self, i: usize) -> PathBuf {
        self.dir.join(&self.hosts[i].name).join("root")
    }

    /// Each host's root: an overlay of the golden root (read-only, shared) and a per-host
    /// upper dir, plus a plain `data` dir bound at `/var/lib/medos` (an overlay upper dir
    /// cannot sit on an overlay root, and agents put their image layers there).
    fn make_roots(&mut self, lower: &Path) {
        let pubkey = std::fs::read_to_string(self.key.with_extension("pub")).expect("reading the public key");
        let mut hosts_file = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for h in &self.hosts {
            let _ = writeln!(hosts_file, "{}\t{}", h.ip, h.name);
        }
        for i in 0..self.hosts.len() {
            let root = self.root(i);
            let base = root.parent().expect("host dir").to_path_buf();
            for d in ["root", "upper", "work", "data"] {
                std::fs::create_dir_all(base.join(d)).expect("creating a host dir");
            }
            let options = format!(
                "lowerdir={},upperdir={},workdir={}",
                lower.display(),
                base.join("upper").display(),
                base.join("work").display()
            );
            run(Command::new("mount").args(["-t", "overlay", "overlay", "-o", &options]).arg(&root))
                .expect("mounting a host root");
            self.mounts.push(root);
        }
        let known_hosts = std::sync::Mutex::new(String::new());
        let this = &*self;
        std::thread::scope(|s| {
            for i in 0..this.hosts.len() {
                let (pubkey, hosts_file, known_hosts) = (&pubkey, &hosts_file, &known_hosts);
                s.spawn(move || {
                    let root = this.root(i);
                    let machine_id = format!("{:032x}\n", rand::random::<u128>());
                    std::fs::write(root.join("etc/machine-id"), machine_id).expect("machine-id");
                    std::fs::write(root.join("etc/hostname"), format!("{}\n", this.hosts[i].name)).expect("hostname");
                    std::fs::write(root.join("etc/hosts"), hosts_file).expect("/etc/hosts");
                    run(Command::new("ssh-keygen").arg("-A").arg("-f").arg(&root)).expect("host keys");
                    let ssh_dir = root.join("root/.ssh");
                    std::fs::create_dir_all(&ssh_dir).expect("root's .ssh");
                    std::fs::write(ssh_dir.join("authorized_keys"), pubkey).expect("authorized_keys");
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&ssh_dir, std::fs::Permissions::from_mode(0o700)).expect("chmod .ssh");
                    std::fs::set_permissions(ssh_dir.join("authorized_keys"), std::fs::Permissions::from_mode(0o600))
                        .expect("chmod authorized_keys");
                    let mut lines = String::new();
                    for entry in std::fs::read_dir(root.join("etc/ssh")).expect("etc/ssh").flatten() {
                        let name = entry.file_name().to_string_lossy().into_owned();
                        if name.starts_with("ssh_host_") && name.ends_with(".pub") {
                            let key = std::fs::read_to_string(entry.path()).expect("host key");
                            let mut fields = key.split_whitespace();
                            if let (Some(t), Some(k)) = (fields.next(), fields.next()) {
                                let _ = writeln!(lines, "{} {t} {k}", this.hosts[i].ip);
                            }
                        }
                    }
                    known_hosts.lock().unwrap_or_else(|e| e.into_inner()).push_str(&lines);
                });
            }
        });
        std::fs::write(self.known_hosts_path(), known_hosts.into_inner().unwrap_or_else(|e| e.into_inner()))
            .expect("writing known_hosts");
    }

    fn write_ssh_config(&self) {
        let config = format!(
            "Host *\n  User root\n  IdentityFile {}\n  IdentitiesOnly yes\n  UserKnownHostsFile {}\n  \
             StrictHostKeyChecking yes\n  BatchMode yes\n  ConnectTimeout 10\n  LogLevel ERROR\n",
            self.key.display(),
            self.known_hosts_path().display()
        );
        std::fs::write(&self.ssh_config, config).expect("writing the ssh config");
    }

    /// Creates host `i`'s cgroups (`<own>/mhsX/hN` in every hierarchy) and returns the
    /// `cgroup.procs` files the launcher writes itself into.
    fn host_cgroups(&mut self, i: usize) -> Vec<PathBuf> {
        let mut procs = Vec::new();
        for (mount, own) in own_cgroups() {
            let parent = mount.join(&own).join(format!("mhs{}", self.subnet));
            let dir = parent.join(&self.hosts[i].name);
            if make_cgroup(&parent).and_then(|_| make_cgroup(&dir)).is_err() {
                continue;
            }
            if !self.cgroup_parents.contains(&parent) {
                self.cgroup_parents.push(parent);
            }
            procs.push(dir.join("cgroup.procs"));
        }
        procs
    }

    fn power_on(&mut self, i: usize) {
        let procs = self.host_cgroups(i);
        let host = self.hosts[i].clone();
        let root = self.root(i);
        let data = self.dir.join(&host.name).join("data");
        let ns = format!("/run/netns/mhs{}-{}", self.subnet, host.name);
        let log = self.dir.join(&host.name).join("console.log");
        let mut join = String::new();
        for p in &procs {
            let _ = write!(join, "echo $$ > '{}' && ", p.display());
        }
        let script = format!(
            "{join}exec systemd-nspawn -b -D '{}' -M {} --register=no --keep-unit --network-namespace-path={ns} \
             --capability=CAP_NET_ADMIN,CAP_SYS_MODULE,CAP_IPC_LOCK --system-call-filter=@keyring --console=read-only \
             --bind='{}':/var/lib/medos",
            root.display(),
            host.name,
            data.display()
        );
        let m = &mut self.machines[i];
        let power = m.power.clone();
        {
            let mut p = power.lock().unwrap_or_else(|e| e.into_inner());
            p.off = false;
            p.ended = None;
        }
        let launch = move || -> std::io::Result<Child> {
            let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
            Command::new("sh").arg("-c").arg(&script).stdin(Stdio::null()).stdout(out.try_clone()?).stderr(out).spawn()
        };
        m.thread = Some(std::thread::spawn(move || {
            loop {
                {
                    let mut p = power.lock().unwrap_or_else(|e| e.into_inner());
                    if p.off {
                        return;
                    }
                    match launch() {
                        Ok(c) => {
                            p.child = Some(c);
                            p.boots += 1;
                        }
                        Err(e) => {
                            p.ended = Some(format!("starting systemd-nspawn: {e}"));
                            return;
                        }
                    }
                }
                // Polled under the lock so a kill never hits a reaped (reusable) pid.
                let status = loop {
                    {
                        let mut p = power.lock().unwrap_or_else(|e| e.into_inner());
                        match p.child.as_mut().map(|c| c.try_wait()) {
                            Some(Ok(Some(status))) => {
                                p.child = None;
                                break status;
                            }
                            Some(Ok(None)) => {}
                            Some(Err(e)) => {
                                p.child = None;
                                p.ended = Some(format!("waiting for systemd-nspawn: {e}"));
                                return;
                            }
                            None => return,
                        }
                    }
                    std::thread::sleep(Duration::from_millis(50));
                };
                let mut p = power.lock().unwrap_or_else(|e| e.into_inner());
                if status.code() != Some(133) || p.off {
                    p.ended = Some(format!("systemd-nspawn exited: {status}"));
                    return;
                }
            }
        }));
    }

    /// Waits until host `i` is in boot number `boot` with its PID 1 found, its cgroups fixed
    /// up and sshd answering.
    fn wait_booted(&mut self, i: usize, boot: u32) {
        let start = Instant::now();
        let name = self.hosts[i].name.clone();
        let log = self.dir.join(&name).join("console.log");
        let fail = |why: String| -> ! {
            panic!("host {name}: {why}\n---- console ----\n{}", tail(&log, 30));
        };
        let pid = loop {
            {
                let p = self.machines[i].power.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(ended) = &p.ended {
                    fail(ended.clone());
                }
                // PID 1 counts once it is systemd: before its exec the namespaces are not set up.
                if p.boots >= boot
                    && let Some(pid) = p.child.as_ref().and_then(|c| find_leader(c.id()))
                    && std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "systemd")
                {
                    break pid;
                }
            }
            if start.elapsed() > BOOT_TIMEOUT {
                fail(format!("PID 1 of boot {boot} not found within {BOOT_TIMEOUT:?}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        self.hosts[i].pid = pid;
        let pid_s = pid.to_string();
        // Boot finished (running or degraded), then the cgroup v1 fix-ups. systemctl fails
        // until systemd listens on its socket, so this is polled.
        let mut state = String::new();
        loop {
            let out = Command::new("nsenter")
                .args(["-t", &pid_s, "-a", "systemctl", "is-system-running"])
                .stdin(Stdio::null())
                .output();
            if let Ok(o) = out {
                state = format!(
                    "{} {}",
                    String::from_utf8_lossy(&o.stdout).trim(),
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                let word = String::from_utf8_lossy(&o.stdout).trim().to_string();
                if word == "running" || word == "degraded" {
                    break;
                }
            }
            if start.elapsed() > BOOT_TIMEOUT {
                fail(format!(
                    "systemd did not finish booting within {BOOT_TIMEOUT:?}: is-system-running says {state:?}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
        let mut remounted = false;
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let fields: Vec<&str> = left.split(' ').collect();
            let (Some(mount_point), Some(opts)) = (fields.get(4), fields.get(5)) else { continue };
            if right.starts_with("cgroup ") && opts.split(',').any(|o| o == "ro") {
                if let Err(e) = run(Command::new("nsenter").args([
                    "-t",
                    &pid_s,
                    "-m",
                    "mount",
                    "-o",
                    "remount,bind,rw",
                    mount_point,
                ])) {
                    fail(format!("remounting {mount_point} read-write: {e}"));
                }
                remounted = true;
            }
        }
        if remounted
            && let Err(e) = run(Command::new("nsenter").args(["-t", &pid_s, "-a", "systemctl", "daemon-reexec"]))
        {
            fail(format!("systemctl daemon-reexec: {e}"));
        }
        loop {
            let out = Command::new("ssh")
                .arg("-F")
                .arg(&self.ssh_config)
                .args(["-o", "ConnectTimeout=2"])
                .arg(self.hosts[i].ip.to_string())
                .arg("true")
                .stdin(Stdio::null())
                .output()
                .expect("running ssh");
            if out.status.success() {
                break;
            }
            let last = String::from_utf8_lossy(&out.stderr).trim().to_string();
            if start.elapsed() > BOOT_TIMEOUT {
                fail(format!("sshd did not answer within {BOOT_TIMEOUT:?}; last ssh error: {last}"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Creates a cgroup directory; a new v1 cpuset cgroup gets its parent's cpus and memory
/// nodes (it starts empty, and no process could join it).
fn make_cgroup(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        std::fs::create_dir(dir)?;
    }
    if let Some(parent) = dir.parent() {
        for file in ["cpuset.cpus", "cpuset.mems"] {
            let own = dir.join(file);
            if std::fs::read_to_string(&own).is_ok_and(|v| v.trim().is_empty()) {
                std::fs::write(&own, std::fs::read_to_string(parent.join(file))?.trim())?;
            }
        }
    }
    Ok(())
}

/// The last `n` lines of a file (for failure messages).
fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Mount points at or below `dir` in this mount namespace, deepest first.
fn mounts_below(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(PathBuf::from))
        .filter(|p| p.starts_with(dir))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

/// Removes a cgroup directory and every cgroup below it, deepest first, waiting up to
/// `deadline` for dying processes to leave.
fn remove_cgroup_tree(dir: &Path, deadline: Instant) {
    let mut dirs = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        if let Ok(entries) = std::fs::read_dir(&d) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push(e.path());
                }
            }
        }
        dirs.push(d);
    }
    dirs.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for d in dirs {
        while std::fs::remove_dir(&d).is_err() && d.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        if d.exists() {
            eprintln!("hostsim cleanup: cannot remove cgroup {}", d.display());
        }
    }
}

impl Drop for HostSim {
    fn drop(&mut self) {
        let started = Instant::now();
        if std::thread::panicking() {
            for h in &self.hosts {
                let log = self.dir.join(&h.name).join("console.log");
                eprintln!("---- {} console ({}) ----\n{}", h.name, log.display(), tail(&log, 20));
            }
        }
        for i in 0..self.machines.len() {
            let running = self.machines[i].power.lock().unwrap_or_else(|e| e.into_inner()).child.is_some();
            if running {
                // kill_host asserts; a panic inside Drop would abort, so do it by hand.
                let m = &mut self.machines[i];
                let mut p = m.power.lock().unwrap_or_else(|e| e.into_inner());
                p.off = true;
                if let Some(pid) = p.child.as_ref().and_then(|c| find_leader(c.id())) {
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                }
            }
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        for m in &mut self.machines {
            loop {
                let mut p = m.power.lock().unwrap_or_else(|e| e.into_inner());
                p.off = true;
                if p.child.is_none() {
                    break;
                }
                if Instant::now() > deadline
                    && let Some(c) = p.child.as_mut()
                {
                    let _ = c.kill();
                }
                drop(p);
                std::thread::sleep(Duration::from_millis(20));
            }
            if let Some(t) = m.thread.take() {
                let _ = t.join();
            }
        }
        eprintln!("hostsim: hosts powered off in {:.1} s", started.elapsed().as_secs_f64());
        let deadline = Instant::now() + Duration::from_secs(10);
        for parent in self.cgroup_parents.drain(..).rev() {
            remove_cgroup_tree(&parent, deadline);
        }
        for ns in self.netns.drain(..) {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("hostsim cleanup: {e}");
            }
        }
        for veth in self.veths.drain(..) {
            // Normally gone with its peer's namespace.
            if Path::new("/sys/class/net").join(&veth).exists() {
                let _ = ip(&["link", "del", &veth]);
            }
        }
        if let Err(e) = ip(&["link", "del", &self.bridge]) {
            eprintln!("hostsim cleanup: {e}");
        }
        // Released last: the names derived from the subnet are all gone by now.
        for root in self.mounts.drain(..) {
            if let Err(e) = run(Command::new("umount").arg(&root)) {
                eprintln!("hostsim cleanup: {e}");
            }
        }
        for m in mounts_below(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&m).status();
        }
        if std::env::var_os("MEDOS_E2E_KEEP").is_some()
            && let Some(tmp) = self.tmp.take()
        {
            eprintln!("keeping {}", tmp.keep().display());
        }
        drop(self.tmp.take());
        drop(self.lock.take());
        eprintln!("hostsim: cleaned up in {:.1} s", started.elapsed().as_secs_f64());
    }
}
