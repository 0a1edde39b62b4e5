//! The one tokio runtime of the process: created on first use (never at import), and created
//! anew in a forked child, whose copy of the parent's runtime has no threads behind it.

use std::future::Future;
use std::sync::{Arc, Mutex};

use tokio::runtime::Runtime;

use crate::error::{Error, Result};

struct ProcessRuntime {
    pid: u32,
    runtime: Arc<Runtime>,
}

static RUNTIME: Mutex<Option<ProcessRuntime>> = Mutex::new(None);

/// The runtime of this process, started on first call (2 worker threads: kjenv waits on the
/// network, it does not compute).
///
/// # Errors
/// [`Error::Runtime`] when the OS refuses to start its threads.
pub fn get() -> Result<Arc<Runtime>> {
    let pid = std::process::id();
    let mut slot = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(current) = slot.as_ref() {
        if current.pid == pid {
            return Ok(current.runtime.clone());
        }
        // A forked child: the parent's worker threads do not exist here. Leak the copy (its
        // destructor would wait for threads that will never answer) and start a new one.
        if let Some(stale) = slot.take() {
            std::mem::forget(stale);
        }
    }
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kjenv-runtime")
            .enable_all()
            .build()
            .map_err(|e| Error::Runtime(format!("cannot start the runtime threads: {e}")))?,
    );
    *slot = Some(ProcessRuntime {
        pid,
        runtime: runtime.clone(),
    });
    Ok(runtime)
}

/// Whether the runtime has been started in this process (it is not, by `import kjenv`).
pub fn is_started() -> bool {
    let slot = RUNTIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    slot.as_ref().is_some_and(|r| r.pid == std::process::id())
}

/// Run a future to completion on the process runtime, from a thread outside it.
///
/// # Errors
/// [`Error::Runtime`] when the runtime cannot start.
pub fn block_on<F: Future>(future: F) -> Result<F::Output> {
    Ok(get()?.block_on(future))
}

#[cfg(test)]
mod tests {
    #[test]
    fn started_lazily_and_reused() {
        let a = super::get().unwrap();
        let b = super::get().unwrap();
        assert!(std::sync::Arc::ptr_eq(&a, &b));
        assert!(super::is_started());
        assert_eq!(super::block_on(async { 1 + 1 }).unwrap(), 2);
    }
}
