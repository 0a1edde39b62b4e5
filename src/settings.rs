//! kjenv's settings: read once, when an environment or a local cluster is built (as kube's
//! `Config::infer` reads its sources once), then carried by value. Nothing else in the core
//! reads an environment variable for these.

use std::time::Duration;

use crate::job::wait::{WaitOptions, DEFAULT_WAIT_RETRY_BUDGET};
use crate::retry::Policy;
pub use crate::retry::{DEFAULT_REQUEST_TIMEOUT, REQUEST_TIMEOUT_ENV};

/// The environment variable that sets [`WaitOptions::retry_budget`], in seconds.
pub const WAIT_RETRY_BUDGET_ENV: &str = "KJENV_WAIT_RETRY_BUDGET";

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
    /// seconds in [`REQUEST_TIMEOUT_ENV`], else [`DEFAULT_REQUEST_TIMEOUT`]; and in
    /// [`WAIT_RETRY_BUDGET_ENV`], else [`DEFAULT_WAIT_RETRY_BUDGET`].
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Settings {
        let seconds = |name: &str| {
            env(name)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| *s > 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
        };
        let timeout = seconds(REQUEST_TIMEOUT_ENV).unwrap_or(DEFAULT_REQUEST_TIMEOUT);
        let mut settings = Settings::with_request_timeout(timeout);
        settings.wait.retry_budget =
            seconds(WAIT_RETRY_BUDGET_ENV).unwrap_or(DEFAULT_WAIT_RETRY_BUDGET);
        settings
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
    fn the_wait_retry_budget_comes_from_the_environment_once() {
        let env =
            |v: &'static str| move |k: &str| (k == WAIT_RETRY_BUDGET_ENV).then(|| v.to_string());
        assert_eq!(
            Settings::from_env(&env("2.5")).wait.retry_budget,
            Duration::from_millis(2500)
        );
        for bad in ["0", "-1", "x", ""] {
            let s = Settings::from_env(&env(bad));
            assert_eq!(s.wait.retry_budget, DEFAULT_WAIT_RETRY_BUDGET, "{bad:?}");
        }
        let o = Settings::from_env(&env("3")).wait_options(None, None, None);
        assert_eq!(
            o.retry_budget,
            Duration::from_secs(3),
            "a wait keeps the budget"
        );
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
