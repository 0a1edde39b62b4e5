//! Warnings the core reports while it works (a wait retrying a failing watch): to a sink the
//! embedding program sets once (the Python bindings send them to the `kjenv` logger), else to
//! stderr.

use std::sync::OnceLock;

static SINK: OnceLock<fn(&str)> = OnceLock::new();

/// Send the core's warnings to `sink` from now on (the first call wins).
pub fn set_warning_sink(sink: fn(&str)) {
    let _ = SINK.set(sink);
}

/// Report a warning: one line, never a secret.
pub(crate) fn warn(message: &str) {
    match SINK.get() {
        Some(sink) => sink(message),
        None => eprintln!("kjenv: warning: {message}"),
    }
}
