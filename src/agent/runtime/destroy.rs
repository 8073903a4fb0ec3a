//! Destroying a container: the last step, after its exit status was read.
//!
//! Kills it if it still runs (no grace: call [`kill`](super::ContainerRuntime::kill) first for a
//! graceful stop), waits for its shim to finish writing, removes its cgroups (retrying while the
//! last processes drain), unmounts anything left under its state directory (normally nothing: its
//! mounts lived in its own mount namespace, which died with it), and removes the state directory.
//! The sandbox and the overlay upper dir belong to the agent and stay.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::mount::{MntFlags, umount2};

use super::error::{Result, RuntimeError};
use super::linux::Inner;
use super::spec::ContainerId;

pub(crate) async fn destroy(inner: &Arc<Inner>, id: &ContainerId) -> Result<()> {
    let handle = inner.handle(id)?;
    if handle.exit_status().is_none() {
        super::kill::kill(inner, id, Duration::ZERO).await?;
    }
    // The shim exits right after writing exit.json; give it that moment before removing its dir.
    if let Some(procs) = handle.procs {
        super::watch::reap_adopted(&procs).await;
    }
    let cgroup = handle.plan.cgroup.clone();
    let cgroups = inner.cgroups.clone();
    let dir = handle.dir.path.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        cgroup.remove(cgroups.fs(), Duration::from_secs(10))?;
        unmount_under(&dir)?;
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io("remove", &dir, e)),
        }
    })
    .await
    .map_err(|e| RuntimeError::Cgroup { path: handle.dir.path.clone(), reason: e.to_string() })??;
    inner.containers.lock().unwrap().remove(id);
    tracing::debug!(container = %id, "container destroyed");
    Ok(())
}

/// Lazily unmounts every mount point at or below `dir` in the agent's mount namespace, deepest
/// first.
fn unmount_under(dir: &Path) -> Result<()> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| RuntimeError::io("read", "/proc/self/mountinfo", e))?;
    let mut points: Vec<PathBuf> = mount_points(&mountinfo).into_iter().filter(|p| p.starts_with(dir)).collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for point in points {
        tracing::warn!(mount = %point.display(), "unmounting a leftover container mount");
        umount2(&point, MntFlags::MNT_DETACH)
            .map_err(|e| RuntimeError::sys(format!("unmount {}", point.display()), e))?;
    }
    Ok(())
}

/// The mount points (field 5) of `/proc/self/mountinfo`, with `\040`-style escapes decoded.
fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo.lines().filter_map(|line| line.split(' ').nth(4)).map(|p| PathBuf::from(unescape(p))).collect()
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && let Some(code) =
                std::str::from_utf8(&bytes[i + 1..i + 4]).ok().and_then(|o| u8::from_str_radix(o, 8).ok())
        {
            out.push(code);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_decoded() {
        let info = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw\n\
                    37 35 0:5 / /proc rw - proc proc rw\n";
        assert_eq!(mount_points(info), vec![PathBuf::from("/mnt/with space"), PathBuf::from("/proc")]);
        assert_eq!(unescape("a\\134b\\"), "a\\b\\");
    }
}
