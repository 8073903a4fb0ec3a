//! The package manager's pure core: Universe repositories, package options, Mustache templates
//! and the Marathon app a package installs as.
//!
//! Adapters read files and URLs and hand the bytes in; nothing here does I/O.
//!
//! - [`mustache`]: a spec-following Mustache renderer, with Cosmos's dialect for Universe
//!   templates.
//! - [`options`]: a package's `config.json` JSON Schema: defaults and validation of options.
//! - [`repo`]: packages and repositories in the Universe format (index JSON and source layout),
//!   search/describe/list-versions, and the prioritised list of repositories.
//! - [`state`]: the replicated part: the repository list and the repositories the cluster holds.
//! - [`render`]: options → template → the Marathon app JSON with Cosmos's `DCOS_PACKAGE_*` labels.

pub mod mustache;
pub mod options;
pub mod render;
pub mod repo;
pub mod state;

pub use options::{OptionError, OptionsError};
pub use render::{RenderError, RenderedApp, render_app};
pub use repo::{Catalog, Package, PackageError, RepoList, RepoSource, Repository, SearchResult};
pub use state::PackageState;
