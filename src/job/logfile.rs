//! Keeping a wait's log lines in a file (`wait(log_file=...)`): every line the wait's streams
//! deliver is written to the file as it comes (and passed on to the caller's stream, if any).
//! A write that fails is reported once as a warning; it never fails the wait.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use tokio::sync::mpsc;

use crate::error::{Error, Result};

/// Create (or truncate) the log file, before the wait starts.
///
/// # Errors
/// [`Error::InvalidArgument`] naming the file when it cannot be created.
pub(crate) fn create(path: &Path) -> Result<File> {
    File::create(path).map_err(|e| {
        Error::InvalidArgument(format!(
            "cannot write the log file {}: {e}",
            crate::spec::names::shown_path(path)
        ))
    })
}

/// Copy the lines of `rx` into `file` (flushed whenever no line is waiting) and on to `forward`,
/// until every sender is gone.
pub(crate) async fn copy(
    mut rx: mpsc::UnboundedReceiver<String>,
    file: File,
    shown: String,
    forward: Option<mpsc::UnboundedSender<String>>,
) {
    let mut out = Some(BufWriter::new(file));
    while let Some(line) = rx.recv().await {
        if let Some(w) = out.as_mut() {
            let written =
                writeln!(w, "{line}").and_then(|()| if rx.is_empty() { w.flush() } else { Ok(()) });
            if let Err(e) = written {
                crate::report::warn(&format!(
                    "cannot write the log file {shown} any more ({e}); the wait goes on without it"
                ));
                out = None;
            }
        }
        if let Some(tx) = &forward {
            let _ = tx.send(line);
        }
    }
    if let Some(mut w) = out {
        let _ = w.flush();
    }
}
