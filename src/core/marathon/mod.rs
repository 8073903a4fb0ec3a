//! Marathon, the built-in app framework: app definitions with Marathon's JSON, defaults and
//! validation, constraints, groups and deployment plans. Pure like the rest of `core`.

pub mod app;
pub mod constraints;
pub mod deployment;
pub mod group;
pub mod matching;
pub mod path;
pub mod state;
pub mod validation;

pub use app::AppDefinition;
pub use constraints::{AgentView, Constraint, Operator};
pub use group::{GroupDefinition, parse_group};
pub use matching::{InstanceRequest, Matched, NoMatchReason, RejectSummary};
pub use path::PathId;
pub use validation::{ValidationError, Violation, parse_app, patch_app};
