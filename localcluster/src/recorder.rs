//! An opt-in record of the requests the API served (method, path, query), for tests that check
//! what a client needs from the API, e.g. that kjenv's submitter Role grants every request.

use std::sync::Mutex;

/// The most requests one recording keeps; later ones are counted in [`Recording::dropped`].
pub const MAX_RECORDED: usize = 100_000;

/// One authenticated request, as it arrived.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The HTTP method, upper case.
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The raw query string (empty when there is none).
    pub query: String,
}

/// What a recording saw.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recording {
    /// The requests, in arrival order (at most [`MAX_RECORDED`]).
    pub requests: Vec<Recorded>,
    /// How many more arrived after the cap.
    pub dropped: usize,
}

/// Off until [`Recorder::start`]; a bounded list while on.
#[derive(Debug, Default)]
pub struct Recorder {
    current: Mutex<Option<Recording>>,
}

impl Recorder {
    /// Starts a new recording, discarding one in progress.
    pub fn start(&self) {
        *self.lock() = Some(Recording::default());
    }

    /// Ends the recording and returns it (empty when none was started).
    pub fn stop(&self) -> Recording {
        self.lock().take().unwrap_or_default()
    }

    /// Notes one request when a recording is on.
    pub(crate) fn note(&self, method: &str, path: &str, query: &str) {
        let mut current = self.lock();
        let Some(recording) = current.as_mut() else {
            return;
        };
        if recording.requests.len() < MAX_RECORDED {
            recording.requests.push(Recorded {
                method: method.to_string(),
                path: path.to_string(),
                query: query.to_string(),
            });
        } else {
            recording.dropped += 1;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Recording>> {
        self.current.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_only_while_on_and_is_bounded() {
        let r = Recorder::default();
        r.note("GET", "/api", "");
        r.start();
        for _ in 0..MAX_RECORDED + 2 {
            r.note("GET", "/api/v1/pods", "watch=true");
        }
        let rec = r.stop();
        assert_eq!(rec.requests.len(), MAX_RECORDED);
        assert_eq!(rec.dropped, 2);
        assert_eq!(rec.requests[0].query, "watch=true");
        assert_eq!(r.stop(), Recording::default());
    }
}
