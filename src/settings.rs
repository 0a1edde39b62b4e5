//! kjenv's settings: read once, when an environment or a local cluster is built (as kube's
//! `Config::infer` reads its sources once), then carried by value. Nothing else in the core
//! reads an environment variable for these.

use std::time::Duration;

use crate::job::wait::WaitOptions;
use crate::retry::Policy;
pub use crate::retry::{DEFAULT_REQUEST_TIMEOUT, REQUEST_TIMEOUT_ENV};

/// Everything a run's requests and waits are tuned by.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Retries of one API call; its `attempt_timeout` is the request time limit.
    pub retry: Policy,
    /// A wait's defaults (image pull grace, start timeout, log tail).
    pub wait: WaitOptions,
}

impl Default for Settings {
    fn default() -> Self {
        Settings::with_request_timeout(DEFAULT_REQUEST_TIMEOUT)
    }
}

impl Settings {
    /// Settings whose requests each have `timeout`.
    pub fn with_request_timeout(timeout: Duration) -> Settings {
        Settings {
            retry: Policy {
                attempt_timeout: timeout,
                ..Policy::default()
            },
            wait: WaitOptions {
                request_timeout: timeout,
                ..WaitOptions::default()
            },
        }
    }

    /// Read the settings from the environment (`env` looks a variable up): a positive number of
    /// seconds in [`REQUEST_TIMEOUT_ENV`], else [`DEFAULT_REQUEST_TIMEOUT`].
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Settings {
        let timeout = env(REQUEST_TIMEOUT_ENV)
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .and_then(|s| Duration::try_from_secs_f64(s).ok())
            .unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        Settings::with_request_timeout(timeout)
    }

    /// Read the settings from this process's environment.
    pub fn from_process_env() -> Settings {
        Settings::from_env(&|k| std::env::var(k).ok())
    }

    /// The wait options for one call: the defaults, with what the caller gave.
    pub fn wait_options(
        &self,
        timeout: Option<Duration>,
        image_pull_grace: Option<Duration>,
        start_timeout: Option<Duration>,
    ) -> WaitOptions {
        WaitOptions {
            timeout,
            image_pull_grace: image_pull_grace.unwrap_or(self.wait.image_pull_grace),
            start_timeout: start_timeout.unwrap_or(self.wait.start_timeout),
            ..self.wait.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_timeout_comes_from_the_environment_once() {
        let env =
            |v: &'static str| move |k: &str| (k == REQUEST_TIMEOUT_ENV).then(|| v.to_string());
        let s = Settings::from_env(&env("0.5"));
        assert_eq!(s.retry.attempt_timeout, Duration::from_millis(500));
        assert_eq!(s.wait.request_timeout, Duration::from_millis(500));
        for bad in ["0", "-1", "x", "nan", ""] {
            let s = Settings::from_env(&env(bad));
            assert_eq!(s.retry.attempt_timeout, DEFAULT_REQUEST_TIMEOUT, "{bad:?}");
        }
    }

    #[test]
    fn wait_options_keep_the_defaults_the_caller_did_not_give() {
        let s = Settings::default();
        let o = s.wait_options(None, Some(Duration::from_secs(1)), None);
        assert_eq!(o.image_pull_grace, Duration::from_secs(1));
        assert_eq!(o.start_timeout, WaitOptions::default().start_timeout);
        assert_eq!(o.timeout, None);
    }
}
