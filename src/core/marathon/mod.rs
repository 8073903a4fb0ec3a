//! Marathon, the built-in app framework: app definitions with Marathon's JSON, defaults and
//! validation, constraints, groups and deployment plans. Pure like the rest of `core`.

pub mod constraints;
pub mod deployment;
pub mod matching;

pub use constraints::{AgentView, Constraint, Operator};
pub use matching::{InstanceRequest, Matched, NoMatchReason, RejectSummary};
