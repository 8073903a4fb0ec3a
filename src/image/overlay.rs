//! The overlayfs markers an unpacked layer carries, converted from OCI whiteouts.
//!
//! - `.wh.NAME` in a layer becomes a character device 0:0 named `NAME` (an overlayfs whiteout:
//!   `NAME` from lower layers disappears).
//! - `.wh..wh..opq` in directory `D` becomes the xattr `trusted.overlay.opaque=y` on `D` (an
//!   opaque directory: `D`'s contents from lower layers disappear).
//!
//! Whiteouts are the only device nodes medos ever creates in a layer.
//!
//! The xattr is set through the directory's descriptor (opened without following symlinks), so
//! nothing can redirect it elsewhere; it is read without following symlinks.

use std::{
    ffi::OsStr,
    io,
    os::{
        fd::{AsFd, BorrowedFd},
        unix::fs::{FileTypeExt, MetadataExt},
    },
    path::Path,
};

use nix::sys::stat::{Mode, SFlag, makedev, mknodat};

/// The xattr that marks an opaque directory.
pub const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// Creates the whiteout `name` (char device 0:0, mode 0) in directory `dir`.
pub(crate) fn create_whiteout(dir: BorrowedFd<'_>, name: &OsStr) -> io::Result<()> {
    mknodat(dir, name, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)).map_err(io::Error::from)
}

/// Marks the directory open as `dir` opaque.
pub(crate) fn mark_opaque(dir: impl AsFd) -> io::Result<()> {
    use xattr::FileExt;
    std::fs::File::from(dir.as_fd().try_clone_to_owned()?).set_xattr(OPAQUE_XATTR, b"y")
}

/// Whether `path` is an overlayfs whiteout (a character device 0:0; symlinks not followed).
pub fn is_whiteout(path: &Path) -> io::Result<bool> {
    let meta = std::fs::symlink_metadata(path)?;
    Ok(meta.file_type().is_char_device() && meta.rdev() == 0)
}

/// Whether the directory `path` is marked opaque (symlinks not followed).
pub fn is_opaque(path: &Path) -> io::Result<bool> {
    Ok(xattr::get(path, OPAQUE_XATTR)?.as_deref() == Some(b"y"))
}
