//! Package adapters around the pure `core::packages`: URL repositories fetched by the masters
//! ([`remote`]), repositories read from the CLI's machine ([`local`]), and air-gapped bundles
//! of a package with its images ([`bundle`]).

pub mod bundle;
pub mod local;
pub mod remote;
