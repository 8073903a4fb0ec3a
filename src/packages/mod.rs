//! Package-manager adapters that touch files: air-gapped bundles (`bundle`). The pure part
//! (Universe repositories, options, rendering) is `core::packages`.

pub mod bundle;
