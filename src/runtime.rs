//! kjenv's runtimes: one current-thread tokio runtime per calling thread, created on first use
//! (never at import) and created anew in a forked child.
//!
//! Why per thread: a request then runs entirely on the thread that waits for it (kube's client
//! tasks, hyper's connection, the socket), with the GIL released. A shared multi-thread runtime
//! made every call hop between threads, and those wake-ups cost more than the work. Threads
//! calling kjenv at the same time each drive their own runtime and clients.

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use tokio::runtime::Runtime;

use crate::error::{Error, Result};

struct ThreadRuntime {
    pid: u32,
    runtime: Rc<Runtime>,
}

thread_local! {
    static RUNTIME: RefCell<Option<ThreadRuntime>> = const { RefCell::new(None) };
}

/// This thread's runtime, started on first call.
///
/// # Errors
/// [`Error::Runtime`] when it cannot be built (the OS refuses a file descriptor).
fn get() -> Result<Rc<Runtime>> {
    let pid = std::process::id();
    RUNTIME.with(|slot| {
        let mut slot = slot.borrow_mut();
        if let Some(current) = slot.as_ref() {
            if current.pid == pid {
                return Ok(current.runtime.clone());
            }
            // A forked child: the copy shares the parent's epoll instance. Leak it (dropping
            // it would touch the parent's registrations) and build a new one.
            if let Some(stale) = slot.take() {
                std::mem::forget(stale);
            }
        }
        let runtime = Rc::new(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(Error::Runtime)?,
        );
        *slot = Some(ThreadRuntime {
            pid,
            runtime: runtime.clone(),
        });
        Ok(runtime)
    })
}

/// Whether this thread has started its runtime (`import kjenv` starts none).
pub fn is_started() -> bool {
    RUNTIME.with(|slot| {
        slot.borrow()
            .as_ref()
            .is_some_and(|r| r.pid == std::process::id())
    })
}

/// Run a future to completion on this thread's runtime.
///
/// # Errors
/// [`Error::Runtime`] when the runtime cannot start.
pub fn block_on<F: Future>(future: F) -> Result<F::Output> {
    Ok(get()?.block_on(future))
}

#[cfg(test)]
mod tests {
    #[test]
    fn started_lazily_per_thread() {
        assert!(!super::is_started());
        assert_eq!(super::block_on(async { 1 + 1 }).unwrap(), 2);
        assert!(super::is_started());
        let other = std::thread::spawn(super::is_started).join().unwrap();
        assert!(!other, "another thread has its own runtime");
    }
}
