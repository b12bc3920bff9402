//! The schedulers (engine::sched) against diffusers 0.42.1: every case of
//! tests/fixtures/schedulers (written by tools/reference/make_scheduler_fixtures.py), the VJP of a
//! step against finite differences of an f64 re-implementation, and the errors on bad input.
//!
//! Run: XDG_RUNTIME_DIR=/tmp WGPU_BACKEND=vulkan cargo test -p iterinv-engine --test sched

#[allow(dead_code)]
#[path = "ops/common.rs"]
mod common;

#[path = "sched/errors.rs"]
mod errors;
#[path = "sched/fixtures.rs"]
mod fixtures;
#[path = "sched/grad.rs"]
mod grad;
