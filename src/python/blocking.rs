//! Running the core's async work from Python: the GIL is released, and the wait wakes every
//! 100 ms to run Python's signal handlers, so Ctrl-C interrupts it promptly.

use std::future::Future;
use std::time::Duration;

use pyo3::prelude::*;
use tokio::sync::mpsc;

/// Run `future` to completion with the GIL released, interruptible by Ctrl-C. Lines sent to
/// `lines` are written to Python's `sys.stdout` as they arrive.
pub(crate) fn run<T, F>(
    py: Python<'_>,
    future: F,
    mut lines: Option<mpsc::UnboundedReceiver<String>>,
) -> PyResult<T>
where
    F: Future<Output = crate::Result<T>> + Send,
    T: Send,
{
    py.detach(|| -> PyResult<T> {
        crate::runtime::block_on(async move {
            let mut future = std::pin::pin!(future);
            // The first check comes after one period: a quick call never takes the GIL back.
            let period = Duration::from_millis(100);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
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
                        Python::attach(|py| py.check_signals())?;
                    }
                }
            }
        })?
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
