//! Package adapters around the pure `core::packages`: URL repositories fetched by the masters
//! ([`remote`]) and repositories read from the CLI's machine ([`local`]).

pub mod local;
pub mod remote;
