//! Test support: the re-exec entry point, a per-test runtime that cleans up after itself even
//! when the test fails, and waiting with deadlines instead of sleeping.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::agent::runtime::cgroup::{CgroupConfig, Cgroups};
use crate::agent::runtime::init::{InitProgram, TEST_STAGE_ENV, dispatch};
use crate::agent::runtime::linux::{LinuxRuntime, RuntimeConfig};
use crate::agent::runtime::spec::{CommandSpec, ContainerId, ContainerSpec};
use crate::agent::runtime::state::{ContainerDir, ShimState, containers_dir, read_json};

/// Not a test: when the harness is re-executed by the runtime with [`TEST_STAGE_ENV`] set, this
/// runs the requested runtime stage (shim, container init, exec helper) and exits with its code;
/// in a normal test run it does nothing.
#[test]
fn container_init_entry_point() {
    if let Ok(args) = std::env::var(TEST_STAGE_ENV) {
        let args: Vec<String> = serde_json::from_str(&args).expect("stage arguments");
        std::process::exit(dispatch(&args));
    }
}

/// How the runtime re-executes this test binary.
fn test_harness_init() -> InitProgram {
    let module = module_path!();
    let module = module.split_once("::").map_or(module, |(_, rest)| rest);
    InitProgram::TestHarness {
        path: PathBuf::from("/proc/self/exe"),
        test: format!("{module}::container_init_entry_point"),
    }
}

/// A Linux runtime over a private state directory and cgroup parent. Dropping it kills every
/// container it (or an earlier runtime over the same directory) started and removes their
/// cgroups; the container mounts die with their mount namespaces.
pub(crate) struct TestRuntime {
    pub dir: tempfile::TempDir,
    pub config: RuntimeConfig,
    rt: Option<LinuxRuntime>,
}

impl TestRuntime {
    pub fn new() -> Self {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        assert!(nix::unistd::geteuid().is_root(), "the container runtime tests need root");
        let dir = tempfile::tempdir().expect("temporary directory");
        // Sandboxes below must be reachable for tasks running as other users.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut config = RuntimeConfig::new(dir.path().join("state"));
        config.cgroups =
            CgroupConfig { parent: format!("medos-test-{}-{n}", std::process::id()), ..Default::default() };
        config.init = test_harness_init();
        config.subreaper = true;
        config.launch_timeout = Duration::from_secs(30);
        let rt = LinuxRuntime::new(config.clone()).expect("runtime");
        TestRuntime { dir, config, rt: Some(rt) }
    }

    pub fn rt(&self) -> &LinuxRuntime {
        self.rt.as_ref().expect("runtime is up")
    }

    /// The agent dies: the runtime object goes away, containers stay.
    pub fn crash(&mut self) {
        self.rt = None;
    }

    /// A new agent on the same state directory.
    pub fn start_again(&mut self) {
        self.rt = Some(LinuxRuntime::new(self.config.clone()).expect("runtime"));
    }

    /// A fresh sandbox directory.
    pub fn sandbox(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join("sandboxes").join(name);
        std::fs::create_dir_all(&path).unwrap();
        path
    }

    /// A host-command task running `script` with `/bin/sh -c`.
    pub fn spec(&self, name: &str, script: &str) -> ContainerSpec {
        ContainerSpec::new(
            ContainerId::new(name).unwrap(),
            format!("task-{name}"),
            CommandSpec::shell(script),
            self.sandbox(name),
        )
    }

    pub fn container_dir(&self, name: &str) -> ContainerDir {
        ContainerDir::new(&self.config.state_dir, &ContainerId::new(name).unwrap())
    }

    pub fn read_log(&self, name: &str, stream: &str) -> String {
        std::fs::read_to_string(self.dir.path().join("sandboxes").join(name).join(stream)).unwrap_or_default()
    }

    /// Waits until the task's `stream` file contains `needle`.
    pub async fn wait_for_log(&self, name: &str, stream: &str, needle: &str) {
        let path = self.dir.path().join("sandboxes").join(name).join(stream);
        eventually(&format!("{needle:?} in {}", path.display()), Duration::from_secs(20), || {
            std::fs::read_to_string(&path).is_ok_and(|t| t.contains(needle))
        })
        .await;
    }

    /// Names of the container state directories.
    pub fn state_entries(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(containers_dir(&self.config.state_dir))
            .map(|d| d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.sort();
        names
    }
}

impl Drop for TestRuntime {
    fn drop(&mut self) {
        self.rt = None;
        let Ok(cgroups) = Cgroups::detect(&self.config.cgroups) else { return };
        for name in self.state_entries() {
            let Ok(id) = ContainerId::new(&name) else { continue };
            let dir = ContainerDir::new(&self.config.state_dir, &id);
            if let Ok(Some(state)) = read_json::<ShimState>(&dir.state()) {
                for p in [state.init, state.task, Some(state.shim)].into_iter().flatten() {
                    let _ = p.signal(Signal::SIGKILL);
                }
            }
            let _ = cgroups.task(&id).kill_all(cgroups.fs(), Duration::from_secs(5));
            if let Err(e) = cgroups.task(&id).remove(cgroups.fs(), Duration::from_secs(10)) {
                eprintln!("test cleanup: {e}");
            }
            if let Ok(Some(state)) = read_json::<ShimState>(&dir.state()) {
                reap(&state);
            }
        }
        if let Err(e) = cgroups.remove_parent() {
            eprintln!("test cleanup: {e}");
        }
    }
}

/// Reaps the adopted shim (and init) once they have exited (bounded).
fn reap(state: &ShimState) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while state.shim.is_alive() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    for p in [Some(state.shim), state.init].into_iter().flatten() {
        p.reap_if_our_zombie();
    }
}

/// Polls `condition` every 10 ms until it holds; panics after `timeout`.
pub(crate) async fn eventually(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `readlink /proc/self/ns/NAME` of the test process.
pub(crate) fn own_namespace(name: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{name}")).unwrap().to_string_lossy().into_owned()
}

/// A process kept alive for a test and SIGKILLed when dropped.
pub(crate) struct ChildGuard(pub std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Lines of `text` that start with `key=`, without the key.
pub(crate) fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
}

/// A path inside the busybox image layers built by [`busybox_image`].
pub(crate) struct BusyboxImage {
    pub layers: Vec<PathBuf>,
}

/// Builds a two-layer image from Debian's `busybox-static`: the bottom layer has `/bin/busybox`
/// with applet symlinks and `/etc/passwd`; the top layer overrides `/etc/layer` and makes
/// `/etc/resolv.conf` a symlink (as many images do).
pub(crate) fn busybox_image(root: &Path) -> BusyboxImage {
    let busybox = Path::new("/bin/busybox");
    assert!(
        busybox.is_file(),
        "/bin/busybox is missing: install Debian's busybox-static (`apt-get install -y busybox-static`) to run the image tests"
    );
    let bottom = root.join("layer0");
    let top = root.join("layer1");
    for dir in ["bin", "etc", "tmp", "root"] {
        std::fs::create_dir_all(bottom.join(dir)).unwrap();
    }
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::copy(busybox, bottom.join("bin/busybox")).unwrap();
    for applet in [
        "sh", "ls", "cat", "echo", "hostname", "ps", "id", "test", "grep", "wc", "readlink", "touch", "sleep", "mount",
        "stat", "tr", "head",
    ] {
        std::os::unix::fs::symlink("busybox", bottom.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        bottom.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )
    .unwrap();
    std::fs::write(bottom.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
    std::fs::write(bottom.join("etc/layer"), "bottom\n").unwrap();
    std::fs::write(top.join("etc/layer"), "top\n").unwrap();
    std::os::unix::fs::symlink("../run/systemd/resolve/stub-resolv.conf", top.join("etc/resolv.conf")).unwrap();
    BusyboxImage { layers: vec![bottom, top] }
}
