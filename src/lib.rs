//! kjenv: run a Python flow as a user-supplied Kubernetes Job.
