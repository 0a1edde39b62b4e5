//! kjenv: run a Python flow as a user-supplied Kubernetes Job.
//!
//! The core is pure Rust and never sees pyo3. [`run`] is the job path: [`run::Inputs`] →
//! [`run::plan`] (with [`spec`]'s checked spec, [`context`]'s resolved values and [`transform`]'s
//! rewrite, named once by [`naming`]) → [`run::submit`] → [`run::JobRun`] (wait, status, logs,
//! events, delete; see [`job`]). [`settings::Settings`] is read once. The PyO3 bindings live in
//! `python/`, behind the `python` feature, and only convert.

pub mod check;
pub mod cluster;
pub mod context;
pub mod error;
pub mod exec_plugin;
pub mod files;
mod header;
pub mod incontainer;
pub mod job;
pub mod naming;
pub mod report;
pub mod retry;
pub mod run;
pub mod runtime;
pub mod secret;
pub mod settings;
pub mod spec;
pub mod transform;

#[cfg(feature = "python")]
mod python;

/// The extension's Rust allocations (the client's and the embedded local cluster's) go to
/// mimalloc, as in pydantic-core: glibc's arenas cost a fifth of a Job submission (bench/).
#[cfg(feature = "python")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc commits a whole arena up front on Linux (`arena_eager_commit = 2`): about 4 MiB of
/// resident memory in every process that imports kjenv, and 6 MiB after an execute. Committing
/// on demand keeps the extension's footprint to what it uses. This runs when the library is
/// loaded, after mimalloc's own constructor and before the first allocation; an explicit
/// `MIMALLOC_ARENA_EAGER_COMMIT` in the environment still wins.
#[cfg(all(feature = "python", target_os = "linux"))]
#[used]
#[unsafe(link_section = ".init_array")]
static COMMIT_ON_DEMAND: extern "C" fn() = {
    extern "C" fn commit_on_demand() {
        // mimalloc v3's `mi_option_arena_eager_commit` (mimalloc.h, `mi_option_e`).
        const MI_OPTION_ARENA_EAGER_COMMIT: std::ffi::c_int = 4;
        unsafe extern "C" {
            fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
            fn getenv(name: *const std::ffi::c_char) -> *mut std::ffi::c_char;
        }
        // SAFETY: getenv reads the environment without allocating (an allocation here would
        // reserve the first arena before the option is set); mi_option_set sets one integer
        // option of the statically linked mimalloc, which it allows at any time.
        unsafe {
            if getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
                mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
            }
        }
    }
    commit_on_demand
};

pub use error::{Error, Result};
