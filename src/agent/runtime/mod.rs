//! The container runtime (work in progress).

pub mod init;
