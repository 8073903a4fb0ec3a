//! Real-container tests of the Linux runtime, run as root on the test machines (cgroup v1
//! there; v2 code paths are covered against a fake cgroupfs in `cgroup::v2`).
//!
//! The unit-test binary cannot run `medos __container-init`, so the runtime under test
//! re-executes the test binary itself with a filter selecting `support::container_init_entry_point`
//! (see `InitProgram::TestHarness`). Every test owns a [`support::TestRuntime`] whose `Drop`
//! kills its containers and removes its cgroups, so a failing assertion leaves nothing behind;
//! waits poll conditions with deadlines, never fixed sleeps.

mod exec;
mod host;
mod image;
mod recovery;
mod support;
