//! Running the core's async work from Python: the GIL is released, and the wait wakes every
//! 100 ms to run Python's signal handlers, so Ctrl-C interrupts it promptly.

use std::future::Future;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::sync::{mpsc, oneshot};

/// How often a blocked call runs Python's signal handlers.
const SIGNAL_PERIOD: Duration = Duration::from_millis(100);

/// How long an interrupted call that undoes its work (see [`run_undoable`]) may take to do so
/// before `KeyboardInterrupt` is raised anyway.
const UNDO_GRACE: Duration = Duration::from_millis(250);

/// Run `future` to completion with the GIL released, interruptible by Ctrl-C. Lines sent to
/// `lines` are written to Python's `sys.stdout` as they arrive.
pub(crate) fn run<T, F>(
    py: Python<'_>,
    future: F,
    lines: Option<mpsc::UnboundedReceiver<String>>,
) -> PyResult<T>
where
    F: Future<Output = crate::Result<T>> + Send,
    T: Send,
{
    drive(py, future, lines, None)
}

/// Like [`run`], for a call that must undo what it started when interrupted (a Secret without
/// its Job): `make` gets a receiver that fires on Ctrl-C, and the call then has
/// [`UNDO_GRACE`] to finish before `KeyboardInterrupt` is raised.
pub(crate) fn run_undoable<T, F>(
    py: Python<'_>,
    make: impl FnOnce(oneshot::Receiver<()>) -> F,
) -> PyResult<T>
where
    F: Future<Output = crate::Result<T>> + Send,
    T: Send,
{
    let (tx, rx) = oneshot::channel();
    drive(py, make(rx), None, Some(tx))
}

fn drive<T, F>(
    py: Python<'_>,
    future: F,
    mut lines: Option<mpsc::UnboundedReceiver<String>>,
    mut interrupted: Option<oneshot::Sender<()>>,
) -> PyResult<T>
where
    F: Future<Output = crate::Result<T>> + Send,
    T: Send,
{
    // A panic in the core (or in a library under it) becomes a KjenvError, not a
    // PanicException (a BaseException that escapes `except Exception`).
    let future = futures::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(future));
    let future = futures::FutureExt::map(future, |r| {
        r.unwrap_or_else(|payload| {
            Err(crate::Error::Panicked(super::errors::panic_message(
                &*payload,
            )))
        })
    });
    super::errors::guard(|| {
        py.detach(|| -> PyResult<T> {
        crate::runtime::block_on(async move {
            let mut future = std::pin::pin!(future);
            // The first check comes after one period: a quick call never takes the GIL back.
            let start = tokio::time::Instant::now() + SIGNAL_PERIOD;
            let mut tick = tokio::time::interval_at(start, SIGNAL_PERIOD);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    biased;
                    result = &mut future => {
                        if let Some(rx) = lines.as_mut() {
                            let mut rest = Vec::new();
                            while let Ok(line) = rx.try_recv() { rest.push(line); }
                            write_lines(&rest)?;
                        }
                        return result.map_err(PyErr::from);
                    }
                    Some(line) = async { match lines.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                        write_lines(&[line])?;
                    }
                    _ = tick.tick() => {
                        if let Err(signal) = Python::attach(|py| py.check_signals()) {
                            if let Some(tx) = interrupted.take() {
                                let _ = tx.send(());
                                let _ = tokio::time::timeout(UNDO_GRACE, &mut future).await;
                            }
                            return Err(signal);
                        }
                    }
                }
            }
        })?
    })
    })
}

fn write_lines(lines: &[String]) -> PyResult<()> {
    if lines.is_empty() {
        return Ok(());
    }
    Python::attach(|py| {
        let stdout = py.import("sys")?.getattr("stdout")?;
        for line in lines {
            stdout.call_method1("write", (format!("{line}\n"),))?;
        }
        stdout.call_method0("flush")?;
        Ok(())
    })
}
