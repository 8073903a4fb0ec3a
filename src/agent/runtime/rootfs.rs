//! The container's file system view, set up by the container init inside its own mount
//! namespace.
//!
//! With an image: an overlayfs of the read-only layers (bottom→top) plus the task's writable
//! upper dir is mounted at `STATE/containers/ID/rootfs`; inside it go a fresh `/proc`, a minimal
//! `/dev` (tmpfs with `null zero full random urandom tty` bound from the host, a private
//! `devpts` instance, `/dev/shm`, `/dev/mqueue`), a read-only `/sys`, the sandbox at
//! `/mnt/mesos/sandbox`, and `/etc/resolv.conf` and `/etc/hosts` bound read-only from the paths
//! in the spec. Then `pivot_root` makes it `/` and the old root is detached (runc's
//! `pivot_root(".", ".")` + `umount2(".", MNT_DETACH)`, no `put_old` directory), and a few
//! `/proc` files that leak host state are masked. Without an image the task keeps the host's
//! file system, but still gets its own `/proc` (so it sees only its pid namespace).
//!
//! All of it happens in the init's private mount namespace (made a recursive *slave* first, so
//! host unmounts still propagate in and nothing propagates out): the host never sees these
//! mounts, and they vanish with the namespace when the container's last process exits, so there
//! is nothing to unmount on destroy even after a crash.
//!
//! Paths inside an image are resolved with `secure_join`, which follows symlinks as if the
//! layer were `/`: an image whose `/etc` is a symlink to the host's `/etc` cannot make the
//! runtime create or mount anything outside the rootfs.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::fs::OpenOptions;
use std::os::unix::fs::{OpenOptionsExt, symlink};
use std::path::{Component, Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use super::error::{Result, RuntimeError};
use super::plan::{LaunchPlan, RootfsPlan, SANDBOX_IN_IMAGE};

/// Longest overlayfs option string the kernel takes (one page, minus the NUL).
const MOUNT_DATA_MAX: usize = 4095;

/// Host devices bound into the container's `/dev`.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];

/// `/proc` files that expose or change host state: hidden behind `/dev/null`.
const MASKED: [&str; 4] = ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"];

/// `/proc` trees that stay visible but read-only.
const READ_ONLY: [&str; 5] = ["/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs"];

/// Joins `path` onto `root`, resolving symlinks (and `..`) as if `root` were `/`.
///
/// Components that do not exist are appended as they are. More than 40 symlinks → `ELOOP`.
pub(crate) fn secure_join(root: &Path, path: &Path) -> Result<PathBuf> {
    let mut pending: VecDeque<OsString> = components(path);
    let mut resolved = PathBuf::new();
    let mut links = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            resolved.pop();
            continue;
        }
        let candidate = root.join(&resolved).join(&part);
        match std::fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(RuntimeError::io(
                        "resolve",
                        root.join(path.strip_prefix("/").unwrap_or(path)),
                        std::io::Error::from_raw_os_error(nix::libc::ELOOP),
                    ));
                }
                let target =
                    std::fs::read_link(&candidate).map_err(|e| RuntimeError::io("read link", &candidate, e))?;
                if target.is_absolute() {
                    resolved.clear();
                }
                let mut next = components(&target);
                next.extend(pending);
                pending = next;
            }
            _ => resolved.push(&part),
        }
    }
    Ok(root.join(resolved))
}

fn components(path: &Path) -> VecDeque<OsString> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(p) => Some(p.to_os_string()),
            Component::ParentDir => Some(OsString::from("..")),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// The overlayfs mount options, and the directory to `chdir` into first when the absolute form
/// would not fit in a page (then the paths are relative to their common ancestor, the trick
/// Docker's overlay2 driver uses for images with many layers).
pub(crate) fn overlay_options(layers: &[PathBuf], upper: &Path, work: &Path) -> Result<(Option<PathBuf>, String)> {
    let render = |base: Option<&Path>| {
        let show = |p: &Path| match base {
            Some(b) => p.strip_prefix(b).unwrap_or(p).display().to_string(),
            None => p.display().to_string(),
        };
        // overlayfs lists lower layers top first.
        let lower: Vec<String> = layers.iter().rev().map(|p| show(p)).collect();
        format!("lowerdir={},upperdir={},workdir={}", lower.join(":"), show(upper), show(work))
    };
    let absolute = render(None);
    if absolute.len() <= MOUNT_DATA_MAX {
        return Ok((None, absolute));
    }
    let mut common = upper.to_path_buf();
    for p in layers.iter().map(PathBuf::as_path).chain([work]) {
        while !p.starts_with(&common) {
            if !common.pop() {
                break;
            }
        }
    }
    let relative = render(Some(&common));
    if common.parent().is_none() || relative.len() > MOUNT_DATA_MAX {
        return Err(RuntimeError::spec(
            "rootfs.layers",
            format!(
                "needs {} bytes of overlayfs options, more than the kernel's {MOUNT_DATA_MAX}: use fewer layers or shorter paths under one directory",
                relative.len()
            ),
        ));
    }
    Ok((Some(common), relative))
}

fn mount_at(source: &str, target: &Path, fstype: Option<&str>, flags: MsFlags, data: Option<&str>) -> Result<()> {
    mount(Some(source), target, fstype, flags, data)
        .map_err(|e| RuntimeError::sys(format!("mount {} on {}", fstype.unwrap_or(source), target.display()), e))
}

fn remount_read_only(target: &Path, extra: MsFlags) -> Result<()> {
    mount(
        None::<&str>,
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | extra,
        None::<&str>,
    )
    .map_err(|e| RuntimeError::sys(format!("remount {} read-only", target.display()), e))
}

/// Creates directory `rel` inside `root` (symlinks resolved inside `root`) and returns it.
fn make_dir_in(root: &Path, rel: &str) -> Result<PathBuf> {
    let path = secure_join(root, Path::new(rel))?;
    std::fs::create_dir_all(&path).map_err(|e| RuntimeError::io("create directory", &path, e))?;
    Ok(path)
}

/// Gives the host-file-system task a `/proc` of its own pid namespace.
pub(crate) fn mount_host_proc() -> Result<()> {
    mount_at(
        "proc",
        Path::new("/proc"),
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None,
    )
}

/// Binds `source` read-only over the host file `target` inside the task's private mount
/// namespace (a host task's `/etc/resolv.conf`; a symlink there is followed, as for any mount).
pub(crate) fn bind_over_host_file(source: &Path, target: &Path) -> Result<()> {
    mount_at(&source.to_string_lossy(), target, None, MsFlags::MS_BIND, None)?;
    remount_read_only(target, MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC)
}

/// Mounts the image root and everything in it, then pivots into it. Runs in the container init,
/// inside its private mount namespace.
pub(crate) fn enter(plan: &LaunchPlan, rootfs: &RootfsPlan) -> Result<()> {
    let root = &rootfs.mountpoint;
    std::fs::create_dir_all(root).map_err(|e| RuntimeError::io("create directory", root, e))?;
    let (base, options) = overlay_options(&rootfs.layers, &rootfs.upper_dir, &rootfs.work_dir)?;
    if let Some(base) = &base {
        nix::unistd::chdir(base).map_err(|e| RuntimeError::sys(format!("chdir to {}", base.display()), e))?;
    }
    mount_at("overlay", root, Some("overlay"), MsFlags::empty(), Some(&options)).map_err(|e| match e {
        RuntimeError::Sys { action, source } => RuntimeError::Sys {
            action: format!("{action} (layers on one file system? upper dir not on overlayfs? work dir empty?)"),
            source,
        },
        other => other,
    })?;

    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc_dir = make_dir_in(root, "proc")?;
    mount_at("proc", &proc_dir, Some("proc"), nosuid_nodev_noexec, None)?;
    mount_dev(root)?;
    let sys = make_dir_in(root, "sys")?;
    mount_at("sysfs", &sys, Some("sysfs"), nosuid_nodev_noexec | MsFlags::MS_RDONLY, None)?;

    let sandbox = make_dir_in(root, SANDBOX_IN_IMAGE)?;
    mount_at(&plan.sandbox.to_string_lossy(), &sandbox, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
    bind_file_read_only(root, "etc", "resolv.conf", &rootfs.resolv_conf)?;
    bind_file_read_only(root, "etc", "hosts", &rootfs.hosts_file)?;

    pivot(root)?;
    mask_proc()
}

fn mount_dev(root: &Path) -> Result<()> {
    let dev = make_dir_in(root, "dev")?;
    mount_at("tmpfs", &dev, Some("tmpfs"), MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME, Some("mode=755,size=65536k"))?;
    for name in DEVICES {
        let target = dev.join(name);
        OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o666)
            .open(&target)
            .map_err(|e| RuntimeError::io("create", &target, e))?;
        mount_at(&format!("/dev/{name}"), &target, None, MsFlags::MS_BIND, None)?;
    }
    let new_dir = |name: &str| {
        let path = dev.join(name);
        std::fs::create_dir(&path).map_err(|e| RuntimeError::io("create directory", &path, e)).map(|()| path)
    };
    let pts = new_dir("pts")?;
    mount_at(
        "devpts",
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    let shm = new_dir("shm")?;
    let private = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount_at("shm", &shm, Some("tmpfs"), private, Some("mode=1777,size=65536k"))?;
    let mqueue = new_dir("mqueue")?;
    mount_at("mqueue", &mqueue, Some("mqueue"), private, None)?;
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        symlink(target, dev.join(link)).map_err(|e| RuntimeError::io("create symlink", dev.join(link), e))?;
    }
    Ok(())
}

/// Binds host file `source` read-only at `dir/name` in the rootfs, replacing a symlink there
/// (an image's `/etc/resolv.conf` is often a symlink into `/run`).
fn bind_file_read_only(root: &Path, dir: &str, name: &str, source: &Path) -> Result<()> {
    let target = make_dir_in(root, dir)?.join(name);
    match std::fs::symlink_metadata(&target) {
        Ok(meta) if meta.is_dir() => {
            return Err(RuntimeError::spec(
                "rootfs.layers",
                format!(
                    "have a directory at /{dir}/{name}; the runtime binds a file there, so remove it from the image"
                ),
            ));
        }
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::remove_file(&target).map_err(|e| RuntimeError::io("replace symlink", &target, e))?;
            std::fs::File::create(&target).map_err(|e| RuntimeError::io("create", &target, e))?;
        }
        Ok(_) => {}
        Err(_) => {
            std::fs::File::create(&target).map_err(|e| RuntimeError::io("create", &target, e))?;
        }
    }
    mount_at(&source.to_string_lossy(), &target, None, MsFlags::MS_BIND, None)?;
    remount_read_only(&target, MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC)
}

/// Makes `root` the root directory and detaches the old one.
fn pivot(root: &Path) -> Result<()> {
    nix::unistd::chdir(root).map_err(|e| RuntimeError::sys(format!("chdir to {}", root.display()), e))?;
    nix::unistd::pivot_root(".", ".")
        .map_err(|e| RuntimeError::sys(format!("pivot_root into {}", root.display()), e))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| RuntimeError::sys("detach the old root", e))?;
    nix::unistd::chdir("/").map_err(|e| RuntimeError::sys("chdir to the new root", e))
}

fn mask_proc() -> Result<()> {
    for path in MASKED.iter().map(Path::new).filter(|p| p.exists()) {
        mount_at("/dev/null", path, None, MsFlags::MS_BIND, None)?;
    }
    for path in READ_ONLY.iter().map(Path::new).filter(|p| p.exists()) {
        mount_at(&path.to_string_lossy(), path, None, MsFlags::MS_BIND | MsFlags::MS_REC, None)?;
        remount_read_only(path, MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_join_keeps_symlinks_inside_the_root() {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        std::fs::create_dir_all(r.join("real/etc")).unwrap();
        symlink("/real/etc", r.join("etc")).unwrap();
        symlink("../../../../../../../../tmp", r.join("escape")).unwrap();
        symlink("/proc/self/root/etc", r.join("host")).unwrap();
        symlink("loop", r.join("loop")).unwrap();
        let check = |path: &str, expect: &str| {
            assert_eq!(secure_join(r, Path::new(path)).unwrap(), r.join(expect), "{path}");
        };
        check("/etc/passwd", "real/etc/passwd");
        check("etc/../etc/passwd", "real/etc/passwd");
        check("/escape/x", "tmp/x");
        check("/host/passwd", "proc/self/root/etc/passwd");
        check("/../../..", "");
        check("/mnt/mesos/sandbox", "mnt/mesos/sandbox");
        let err = secure_join(r, Path::new("/loop/x")).unwrap_err().to_string();
        assert!(err.contains("cannot resolve") && err.contains("symbolic links"), "{err}");
    }

    #[test]
    fn overlay_options_list_layers_top_first_and_shorten_long_lists() {
        let layers = vec![PathBuf::from("/img/l0"), PathBuf::from("/img/l1")];
        let (base, data) = overlay_options(&layers, Path::new("/img/up"), Path::new("/img/work")).unwrap();
        assert_eq!(base, None);
        assert_eq!(data, "lowerdir=/img/l1:/img/l0,upperdir=/img/up,workdir=/img/work");

        let long = format!("/var/lib/medos/layers/{}", "x".repeat(60));
        let layers: Vec<PathBuf> = (0..70).map(|i| PathBuf::from(format!("{long}/{i:03}"))).collect();
        let (base, data) =
            overlay_options(&layers, Path::new(&format!("{long}/upper")), Path::new(&format!("{long}/work"))).unwrap();
        assert_eq!(base, Some(PathBuf::from(&long)));
        assert!(data.starts_with("lowerdir=069:068:") && data.ends_with(",upperdir=upper,workdir=work"), "{data}");

        let scattered: Vec<PathBuf> = (0..200).map(|i| PathBuf::from(format!("/{i:03}{}", "y".repeat(30)))).collect();
        let err = overlay_options(&scattered, Path::new("/u"), Path::new("/w")).unwrap_err().to_string();
        assert!(err.contains("`rootfs.layers`") && err.contains("fewer layers"), "{err}");
    }
}
