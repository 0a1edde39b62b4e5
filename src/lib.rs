//! kjenv: run a Python flow as a user-supplied Kubernetes Job.
//!
//! The core is pure Rust and never sees pyo3: [`spec`] loads and checks a Job spec,
//! [`context`] resolves the values a run needs, [`transform`] rewrites the spec into the Job
//! kjenv submits. The PyO3 bindings live in `python/`, behind the `python` feature.

pub mod cluster;
pub mod context;
pub mod error;
pub mod incontainer;
pub mod job;
pub mod retry;
pub mod runtime;
pub mod secret;
pub mod spec;
pub mod transform;

#[cfg(feature = "python")]
mod python;

/// The extension's Rust allocations (the client's and the embedded local cluster's) go to
/// mimalloc, as in pydantic-core: glibc's arenas cost a fifth of a Job submission (bench/).
#[cfg(feature = "python")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

pub use error::{Error, Result};
