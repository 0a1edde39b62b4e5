//! Retrying transient API failures: 429 (honouring the server's retry-after), 500, 503, 504 and
//! connection failures, with capped exponential backoff and a bounded number of attempts.
//! Other 4xx answers are final. Every attempt has a time limit, and a server that does not
//! answer at all is given up on after a second timed-out attempt: a clear error, not a hang.
//! Written here rather than with a retry crate (backon, tokio-retry): the loop needs kube's
//! status classification, the server's Retry-After, and a budget of timed-out attempts apart
//! from the attempt count, which those express only with as much code as this.

use std::future::Future;
use std::time::Duration;

use crate::error::{Error, Result};

/// The environment variable that sets the time limit of one API request, in seconds (read by
/// [`crate::settings::Settings`], once).
pub const REQUEST_TIMEOUT_ENV: &str = "KJENV_REQUEST_TIMEOUT";

/// The time limit of one API request when [`REQUEST_TIMEOUT_ENV`] does not set one.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How hard to try.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub attempts: u32,
    pub first_delay: Duration,
    pub max_delay: Duration,
    /// Longest server-requested wait (Retry-After) that is honoured as is.
    pub max_retry_after: Duration,
    /// Time limit of one attempt (for a watch: until its response starts).
    pub attempt_timeout: Duration,
    /// How many attempts may time out before the call fails (a hung server).
    pub timed_out_attempts: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            attempts: 8,
            first_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(10),
            attempt_timeout: DEFAULT_REQUEST_TIMEOUT,
            timed_out_attempts: 2,
        }
    }
}

/// What a failed attempt means.
pub(crate) enum Verdict {
    /// Try again after at least this long (a server's Retry-After), or the backoff.
    Retry(Option<Duration>),
    Final,
}

/// Is this kube error transient?
pub(crate) fn classify(err: &kube::Error) -> Verdict {
    match err {
        kube::Error::Api(status) => match status.code {
            429 | 500 | 502 | 503 | 504 => Verdict::Retry(
                status
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0)
                    .map(|s| Duration::from_secs(u64::from(s))),
            ),
            _ => Verdict::Final,
        },
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => {
            Verdict::Retry(None)
        }
        _ => Verdict::Final,
    }
}

/// Run `attempt` until it succeeds, fails for good, or the policy's attempts are spent.
///
/// # Errors
/// The last error, mapped to kjenv's ([`Error::from`]); [`Error::Unreachable`] when attempts keep timing
/// out ([`Policy::timed_out_attempts`] of them).
pub async fn retry<T, F, Fut>(policy: &Policy, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, kube::Error>>,
{
    let mut delay = policy.first_delay;
    let attempts = policy.attempts.max(1);
    let mut timed_out = 0u32;
    for n in 1..=attempts {
        let outcome = tokio::time::timeout(policy.attempt_timeout, attempt()).await;
        let err = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(err)) => err,
            Err(_) => {
                timed_out += 1;
                if n == attempts || timed_out >= policy.timed_out_attempts.max(1) {
                    return Err(Error::unreachable(format!(
                        "no answer within {:.1?} ({timed_out} attempts timed out; \
                         {REQUEST_TIMEOUT_ENV} sets the time limit of a request)",
                        policy.attempt_timeout
                    )));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(policy.max_delay);
                continue;
            }
        };
        match classify(&err) {
            Verdict::Retry(server) if n < attempts => {
                let wait = server.map_or(delay, |s| s.min(policy.max_retry_after).max(delay));
                tokio::time::sleep(wait).await;
                delay = (delay * 2).min(policy.max_delay);
            }
            _ => return Err(Error::from(err)),
        }
    }
    Err(Error::unreachable("no attempt was made"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, retry_after: u32) -> kube::Error {
        let mut status = Status::failure("x", "Reason").with_code(code);
        status.details =
            serde_json::from_value(serde_json::json!({"retryAfterSeconds": retry_after})).ok();
        kube::Error::Api(Box::new(status))
    }

    fn block<F: std::future::Future>(f: F) -> F::Output {
        crate::runtime::block_on(f).expect("the runtime starts")
    }

    fn quick() -> Policy {
        Policy {
            attempts: 4,
            first_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(4),
            ..Policy::default()
        }
    }

    #[test]
    fn transient_statuses_are_retried_then_succeed() {
        let mut calls = 0;
        let result = block(retry(&quick(), || {
            calls += 1;
            let n = calls;
            async move {
                if n < 3 {
                    Err(api(503, 0))
                } else {
                    Ok(n)
                }
            }
        }));
        assert_eq!(result.unwrap(), 3);
    }

    #[test]
    fn client_errors_are_final() {
        let mut calls = 0;
        let result: Result<()> = block(retry(&quick(), || {
            calls += 1;
            async { Err(api(409, 0)) }
        }));
        assert_eq!(calls, 1);
        assert!(matches!(result, Err(Error::KubeApi { status: 409, .. })));
    }

    #[test]
    fn attempts_are_bounded() {
        let mut calls = 0;
        let result: Result<()> = block(retry(&quick(), || {
            calls += 1;
            async { Err(api(500, 0)) }
        }));
        assert_eq!(calls, 4);
        assert!(matches!(result, Err(Error::KubeApi { status: 500, .. })));
    }

    #[test]
    fn a_server_that_never_answers_is_given_up_on() {
        let policy = Policy {
            attempt_timeout: Duration::from_millis(20),
            ..quick()
        };
        let mut calls = 0;
        let result: Result<()> = block(retry(&policy, || {
            calls += 1;
            std::future::pending()
        }));
        assert_eq!(calls, 2, "one retry after a timeout, not every attempt");
        let err = result.unwrap_err().to_string();
        assert!(err.contains("no answer within"), "{err}");
    }

    #[test]
    fn retry_after_is_honoured() {
        let start = std::time::Instant::now();
        let mut calls = 0;
        let _ = block(retry(&quick(), || {
            calls += 1;
            let n = calls;
            async move {
                if n == 1 {
                    Err(api(429, 1))
                } else {
                    Ok(())
                }
            }
        }));
        assert!(start.elapsed() >= Duration::from_secs(1));
    }
}
