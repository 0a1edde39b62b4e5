//! The core's job path end to end, against the local cluster over real HTTPS: plan → submit →
//! wait → logs → events → delete, in Rust, without Python. The flow container's `python` is a
//! shell script of the test's (first on the pods' PATH), so a run's outcome is the test's choice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kjenv::cluster::{self, Target};
use kjenv::context::{Candidates, CloudSettings};
use kjenv::job::inspect::Propagation;
use kjenv::run::{self, ConfigNamespace, Inputs};
use kjenv::secret::SecretString;
use kjenv::settings::Settings;
use kjenv::Error;
use kube::Api;
use serde_json::{json, Value};

/// A hang guard for one wait: far beyond the few seconds a run takes here under load.
const HANG: Duration = Duration::from_secs(120);

/// A `python` that prints two lines (the second with the run's id) and exits with
/// `$KJENV_TEST_EXIT` (0 by default).
fn fake_python(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let script = bin.join("python");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'flow says hello'\necho \"run $PREFECT__CONTEXT__FLOW_RUN_ID\"\nexit \"${KJENV_TEST_EXIT:-0}\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

struct Fixture {
    cluster: localcluster::LocalCluster,
    target: Target,
    _dir: TempDir,
}

/// A directory removed when the test ends.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start() -> Fixture {
    let dir =
        std::env::temp_dir().join(format!("kjenv-job-path-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let cluster = localcluster::LocalCluster::start(localcluster::Options {
        path_prefix: vec![fake_python(&dir)],
        ..localcluster::Options::default()
    })
    .expect("the local cluster starts");
    let target = Target {
        kubeconfig: Some(cluster.kubeconfig_path().to_path_buf()),
        context: None,
    };
    Fixture {
        cluster,
        target,
        _dir: TempDir(dir),
    }
}

fn spec(name: &str, exit: i32) -> Arc<Value> {
    let job = json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"generateName": format!("{name}-")},
        "spec": {"backoffLimit": 0, "template": {"spec": {"containers": [{
            "name": "flow", "env": [{"name": "KJENV_TEST_EXIT", "value": exit.to_string()}],
        }]}}},
    });
    Arc::new(kjenv::spec::from_value(job).expect("a valid spec"))
}

fn inputs(spec: Arc<Value>, cloud: CloudSettings) -> Inputs {
    Inputs {
        spec,
        identifier: "ident-1".into(),
        unique_job_name: false,
        candidates: Candidates {
            image: Some("img:1".into()),
            flow_run_id: Some(format!("run-{}", uuid::Uuid::new_v4().simple())),
            ..Candidates::default()
        },
        cloud,
        storage: None,
    }
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    kjenv::runtime::block_on(f).expect("the runtime starts")
}

#[test]
fn a_run_is_planned_submitted_waited_for_logged_and_deleted() {
    let fx = start();
    let settings = Settings::default();
    let inputs = inputs(spec("ok", 0), CloudSettings::default());
    // The plan is what gets posted: the generated name is settled before any request.
    let planned = run::plan(&inputs, ConfigNamespace::Lookup(fx.target.clone())).unwrap();
    assert!(
        planned.name.starts_with("ok-") && planned.job["metadata"].get("generateName").is_none()
    );
    assert_eq!(planned.namespace, fx.cluster.namespace());
    block(async {
        let conn = cluster::connect(&fx.target, settings.retry.attempt_timeout)
            .await
            .unwrap();
        let job_run = run::submit(
            &conn,
            &fx.target,
            &planned,
            &settings,
            std::future::pending(),
        )
        .await
        .unwrap();
        assert_eq!(job_run.job.name, planned.name);
        let options = settings.wait_options(Some(HANG), None, None);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let finished = job_run.wait(&options, Some(tx)).await.unwrap();
        assert_eq!((finished.succeeded, finished.pods.len()), (1, 1));
        let mut streamed = Vec::new();
        while let Ok(line) = rx.try_recv() {
            streamed.push(line);
        }
        let expected = vec![
            "flow says hello".to_string(),
            format!("run {}", planned.flow_run_id),
        ];
        assert_eq!(streamed, expected, "every line streamed once, in order");
        let log = job_run.logs(None, false).await.unwrap();
        assert_eq!(log.lines().collect::<Vec<_>>(), expected);
        let status = job_run.status().await.unwrap();
        assert_eq!((status.phase.as_str(), status.succeeded), ("Succeeded", 1));
        let events = job_run.events().await.unwrap();
        assert!(events.iter().any(|e| e.reason == "Completed"), "{events:?}");
        job_run.delete(Propagation::Foreground).await.unwrap();
        let jobs: Api<Job> = Api::namespaced(conn.client.clone(), &planned.namespace);
        assert!(jobs
            .get_opt(&planned.name)
            .await
            .unwrap()
            .is_none_or(|j| j.metadata.deletion_timestamp.is_some()));
        // Deleting again is no error.
        job_run.delete(Propagation::Background).await.unwrap();
    });
}

#[test]
fn a_failed_run_reports_the_reason_the_exit_code_and_the_log_tail() {
    let fx = start();
    let settings = Settings::default();
    let inputs = inputs(spec("fails", 3), CloudSettings::default());
    let err = block(async {
        let (job_run, _) = run::execute(&fx.target, &inputs, &settings, std::future::pending())
            .await
            .unwrap();
        let options = settings.wait_options(Some(HANG), None, None);
        let err = job_run.wait(&options, None).await.unwrap_err();
        job_run.delete(Propagation::Background).await.unwrap();
        err
    });
    match err {
        Error::JobFailed {
            reason,
            exit_code,
            log_tail,
            ..
        } => {
            assert_eq!(reason, "BackoffLimitExceeded");
            assert_eq!(exit_code, Some(3));
            assert!(log_tail.contains("flow says hello"), "{log_tail}");
        }
        other => panic!("expected JobFailed, got {other}"),
    }
}

#[test]
fn in_cloud_mode_the_token_secret_is_owned_by_its_job() {
    let fx = start();
    let settings = Settings::default();
    let cloud = CloudSettings {
        auth_token: SecretString::new("tok-123"),
        graphql: "https://api.example/graphql".into(),
        ..CloudSettings::default()
    };
    let inputs = inputs(spec("cloud", 0), cloud);
    block(async {
        let (job_run, plan) = run::execute(&fx.target, &inputs, &settings, std::future::pending())
            .await
            .unwrap();
        let secret_name = plan
            .secret
            .as_ref()
            .expect("Cloud mode plans a Secret")
            .name
            .clone();
        assert_eq!(secret_name, format!("{}-kjenv", job_run.job.name));
        let conn = cluster::connect(&fx.target, settings.retry.attempt_timeout)
            .await
            .unwrap();
        let secrets: Api<Secret> = Api::namespaced(conn.client.clone(), &job_run.job.namespace);
        let secret = secrets.get(&secret_name).await.unwrap();
        let owners = secret.metadata.owner_references.unwrap_or_default();
        assert_eq!(owners.len(), 1);
        assert_eq!(
            (owners[0].kind.as_str(), owners[0].uid.as_str()),
            ("Job", job_run.job.uid.as_str())
        );
        job_run.delete(Propagation::Background).await.unwrap();
    });
}

#[test]
fn a_missing_image_fails_before_any_request() {
    let mut no_image = inputs(spec("noimg", 0), CloudSettings::default());
    no_image.candidates.image = None;
    // No cluster at all: the plan fails first, naming what is missing.
    let target = Target {
        kubeconfig: Some(PathBuf::from("/nonexistent/kubeconfig")),
        context: None,
    };
    let err = run::plan(&no_image, ConfigNamespace::Known(Some("default".into()))).unwrap_err();
    assert!(matches!(err, Error::MissingValue(_)), "{err}");
    assert!(err.to_string().contains("image"), "{err}");
    let err = run::plan(&no_image, ConfigNamespace::Lookup(target)).unwrap_err();
    assert!(err.to_string().contains("image"), "{err}");
}
