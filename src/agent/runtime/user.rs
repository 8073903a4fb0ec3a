//! Turning a user name into uid, gid and supplementary groups.
//!
//! With an image rootfs the image's own `/etc/passwd` and `/etc/group` decide, read from the
//! topmost layer that has them (the writable layer first), with paths resolved inside the layer
//! so that a symlink in an image cannot point the agent at a host file. The files are parsed, never
//! handed to NSS: glibc's NSS would load libraries named by the image into the agent. Without a
//! rootfs the host's user database is asked through NSS (`getpwnam`, `getgrouplist`), as Mesos
//! does. `uid[:gid]` numbers are accepted too (gid 0 when the uid has no passwd entry, as Docker).

use std::path::{Path, PathBuf};

use nix::unistd::{Gid, User};
use serde::{Deserialize, Serialize};

use super::error::{Result, RuntimeError};
use super::rootfs::secure_join;
use super::spec::RootfsSpec;

/// Who a process runs as.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, the primary gid included.
    pub groups: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
}

/// Resolves `user` against the image (`rootfs`) or the host.
pub(crate) fn resolve(user: &str, rootfs: Option<&RootfsSpec>) -> Result<Credentials> {
    if user.is_empty() || user.contains(['\0', '\n']) {
        return Err(RuntimeError::spec("user", format!("{user:?} is not a user name")));
    }
    match rootfs {
        Some(rootfs) => resolve_in_image(user, rootfs),
        None => resolve_on_host(user),
    }
}

fn resolve_in_image(user: &str, rootfs: &RootfsSpec) -> Result<Credentials> {
    let layers: Vec<&Path> =
        std::iter::once(rootfs.upper_dir.as_path()).chain(rootfs.layers.iter().rev().map(PathBuf::as_path)).collect();
    let (passwd_path, passwd) = topmost_file(&layers, "etc/passwd")?;
    let entries = parse_passwd(&passwd);
    let entry = match parse_numeric(user) {
        Some((uid, gid)) => match entries.iter().find(|e| e.uid == uid) {
            Some(e) => PasswdEntry { gid: gid.unwrap_or(e.gid), ..e.clone() },
            None => PasswdEntry { name: uid.to_string(), uid, gid: gid.unwrap_or(0) },
        },
        None => entries.into_iter().find(|e| e.name == user).ok_or_else(|| RuntimeError::UnknownUser {
            user: user.to_string(),
            passwd: passwd_path.unwrap_or_else(|| rootfs.layers.last().cloned().unwrap_or_default().join("etc/passwd")),
        })?,
    };
    let (_, group) = topmost_file(&layers, "etc/group")?;
    let mut groups = vec![entry.gid];
    for (gid, members) in parse_group(&group) {
        if members.contains(&entry.name) && !groups.contains(&gid) {
            groups.push(gid);
        }
    }
    Ok(Credentials { name: entry.name, uid: entry.uid, gid: entry.gid, groups })
}

fn resolve_on_host(user: &str) -> Result<Credentials> {
    if let Some((uid, gid)) = parse_numeric(user) {
        let found = User::from_uid(nix::unistd::Uid::from_raw(uid)).ok().flatten();
        let name = found.as_ref().map(|u| u.name.clone()).unwrap_or_else(|| uid.to_string());
        let gid = gid.or(found.as_ref().map(|u| u.gid.as_raw())).unwrap_or(0);
        return Ok(Credentials { name, uid, gid, groups: vec![gid] });
    }
    let entry = User::from_name(user)
        .map_err(|e| RuntimeError::sys(format!("look up user `{user}`"), e))?
        .ok_or_else(|| RuntimeError::UnknownUser { user: user.to_string(), passwd: PathBuf::from("/etc/passwd") })?;
    let groups = std::ffi::CString::new(user)
        .ok()
        .and_then(|name| nix::unistd::getgrouplist(&name, entry.gid).ok())
        .map(|g| g.into_iter().map(Gid::as_raw).collect())
        .unwrap_or_else(|| vec![entry.gid.as_raw()]);
    Ok(Credentials { name: entry.name, uid: entry.uid.as_raw(), gid: entry.gid.as_raw(), groups })
}

/// The content of `rel` in the topmost layer that has it (empty if none has).
fn topmost_file(layers: &[&Path], rel: &str) -> Result<(Option<PathBuf>, String)> {
    for layer in layers {
        if !layer.is_dir() {
            continue;
        }
        let path = secure_join(layer, Path::new(rel))?;
        match std::fs::read_to_string(&path) {
            Ok(text) => return Ok((Some(path), text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(RuntimeError::io("read", path, e)),
        }
    }
    Ok((None, String::new()))
}

fn parse_numeric(user: &str) -> Option<(u32, Option<u32>)> {
    let (uid, gid) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g.parse().ok()?)),
        None => (user, None),
    };
    Some((uid.parse().ok()?, gid))
}

/// `name:password:uid:gid:gecos:home:shell` lines; malformed lines are skipped.
fn parse_passwd(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(PasswdEntry {
                name: fields.first().filter(|n| !n.is_empty())?.to_string(),
                uid: fields.get(2)?.parse().ok()?,
                gid: fields.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

/// `name:password:gid:member,member` lines → (gid, members).
fn parse_group(text: &str) -> Vec<(u32, Vec<String>)> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            let gid = fields.get(2)?.parse().ok()?;
            let members = fields.get(3).map(|m| m.split(',').filter(|s| !s.is_empty()).map(String::from).collect());
            Some((gid, members.unwrap_or_default()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(files: &[(&str, &str)]) -> (tempfile::TempDir, RootfsSpec) {
        let dir = tempfile::tempdir().unwrap();
        for (path, content) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        for d in ["lower0", "lower1", "upper"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let spec = RootfsSpec {
            layers: vec![dir.path().join("lower0"), dir.path().join("lower1")],
            upper_dir: dir.path().join("upper"),
            work_dir: dir.path().join("work"),
        };
        (dir, spec)
    }

    #[test]
    fn image_users_come_from_the_topmost_passwd() {
        let (_dir, rootfs) = image(&[
            ("lower0/etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/:/bin/sh\n"),
            ("lower1/etc/passwd", "root:x:0:0::/root:/bin/sh\n# comment\nbroken line\napp:x:2000:2000::/:/bin/sh\n"),
            ("lower0/etc/group", "root:x:0:\nwheel:x:10:app,other\nstaff:x:50:app\n"),
        ]);
        let check = |user: &str, expect: Result<(u32, u32, Vec<u32>), &str>| {
            let got = resolve(user, Some(&rootfs));
            match expect {
                Ok((uid, gid, groups)) => {
                    let c = got.unwrap();
                    assert_eq!((c.uid, c.gid, c.groups), (uid, gid, groups), "{user}");
                }
                Err(needle) => {
                    let err = got.unwrap_err().to_string();
                    assert!(err.contains(needle), "{user}: {err}");
                }
            }
        };
        check("app", Ok((2000, 2000, vec![2000, 10, 50])));
        check("root", Ok((0, 0, vec![0])));
        check("2000", Ok((2000, 2000, vec![2000, 10, 50])));
        check("3000:7", Ok((3000, 7, vec![7])));
        check("4000", Ok((4000, 0, vec![0])));
        check("ghost", Err("unknown user `ghost`: no entry in"));
        check("ghost", Err("lower1/etc/passwd"));
        check("", Err("`user`"));
    }

    #[test]
    fn image_symlinks_cannot_reach_host_files() {
        let (dir, rootfs) = image(&[]);
        // Followed on the host, this would read the host's /etc/passwd; inside the layer it is a
        // dangling path, so the user is unknown.
        std::os::unix::fs::symlink("/proc/self/root/etc", dir.path().join("lower1/etc")).unwrap();
        let err = resolve("root", Some(&rootfs)).unwrap_err().to_string();
        assert!(err.contains("unknown user `root`"), "{err}");
    }

    #[test]
    fn host_users_come_from_nss() {
        let nobody = resolve("nobody", None).unwrap();
        assert_eq!(nobody.uid, 65534);
        assert!(nobody.groups.contains(&nobody.gid));
        let err = resolve("medos-no-such-user", None).unwrap_err().to_string();
        assert!(err.contains("unknown user `medos-no-such-user`: no entry in /etc/passwd"), "{err}");
    }
}
