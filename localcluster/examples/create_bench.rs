//! The local cluster's Rust-side benchmark (driven by `bench/cluster`).
//!
//! Starts a cluster in-process and measures, with kube-rs over keep-alive HTTPS connections:
//! - Job creates per second, one request at a time and with `C` in flight (suspended Jobs, so
//!   the figure is the API's, not the kubelet's);
//! - how long `Q` Jobs of `sh -c true` take to complete when queued at once on a kubelet with a
//!   concurrency limit of `K` pods (the API, the controller and the kubelet together).
//!
//! ```text
//! cargo run --release -p localcluster --example create_bench -- [--quick] [--json FILE]
//!     [--creates N] [--in-flight C] [--queued Q] [--concurrency K]
//! ```

use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use kube::api::{Api, DeleteParams, ListParams, PostParams, PropagationPolicy};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Config};
use localcluster::{LocalCluster, Options};
use serde_json::json;

/// Command-line settings.
struct Args {
    creates: usize,
    in_flight: usize,
    queued: usize,
    concurrency: usize,
    json: Option<String>,
}

fn parse_args() -> Args {
    let mut a = Args {
        creates: 20_000,
        in_flight: 16,
        queued: 1_000,
        concurrency: 16,
        json: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut num = |name: &str| -> usize {
            it.next()
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{name} needs a number"))
        };
        match arg.as_str() {
            "--quick" => {
                a.creates = 2_000;
                a.queued = 100;
            }
            "--creates" => a.creates = num("--creates"),
            "--in-flight" => a.in_flight = num("--in-flight"),
            "--queued" => a.queued = num("--queued"),
            "--concurrency" => a.concurrency = num("--concurrency"),
            "--json" => a.json = it.next(),
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// A Job running `sh -c <script>`; suspended Jobs create no pods.
fn job(name: &str, script: &str, suspend: bool) -> Job {
    serde_json::from_value(json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"bench": "cluster"}},
        "spec": {
            "suspend": suspend,
            "backoffLimit": 0,
            "template": {"spec": {"restartPolicy": "Never", "containers": [
                {"name": "main", "image": "busybox", "command": ["sh", "-c", script]}
            ]}}
        }
    }))
    .expect("a valid Job")
}

async fn client(cluster: &LocalCluster) -> Client {
    let kc = Kubeconfig::read_from(cluster.kubeconfig_path()).expect("kubeconfig");
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .expect("config");
    Client::try_from(config).expect("client")
}

/// Creates `n` suspended Jobs named `<prefix>-<i>` with `in_flight` requests at once;
/// returns creates per second.
async fn creates(jobs: &Api<Job>, prefix: &str, n: usize, in_flight: usize) -> f64 {
    let started = Instant::now();
    futures::stream::iter(0..n)
        .map(|i| {
            let jobs = jobs.clone();
            let j = job(&format!("{prefix}-{i}"), "true", true);
            async move { jobs.create(&PostParams::default(), &j).await }
        })
        .buffer_unordered(in_flight)
        .try_for_each(|_| async { Ok(()) })
        .await
        .expect("every create succeeds");
    n as f64 / started.elapsed().as_secs_f64()
}

fn terminal(j: &Job) -> Option<bool> {
    let conditions = j.status.as_ref()?.conditions.as_ref()?;
    conditions.iter().find_map(|c| match c.type_.as_str() {
        "Complete" if c.status == "True" => Some(true),
        "Failed" if c.status == "True" => Some(false),
        _ => None,
    })
}

/// Queues `n` Jobs of `sh -c true` and waits (watching) until all are Complete; returns the
/// seconds that took.
async fn queued_run(jobs: &Api<Job>, n: usize) -> f64 {
    let selector = ListParams::default().labels("bench=queued");
    let started = Instant::now();
    let watch = {
        let jobs = jobs.clone();
        tokio::spawn(async move {
            let mut done = std::collections::HashSet::new();
            let stream =
                watcher(jobs, watcher::Config::default().labels("bench=queued")).applied_objects();
            futures::pin_mut!(stream);
            while let Some(j) = stream.try_next().await.expect("watch") {
                if let Some(ok) = terminal(&j) {
                    assert!(ok, "a queued Job failed: {:?}", j.status);
                    done.insert(j.metadata.name.clone().unwrap_or_default());
                    if done.len() == n {
                        return;
                    }
                }
            }
        })
    };
    futures::stream::iter(0..n)
        .map(|i| {
            let jobs = jobs.clone();
            let mut j = job(&format!("queued-{i}"), "true", false);
            j.metadata
                .labels
                .get_or_insert_with(Default::default)
                .insert("bench".into(), "queued".into());
            async move { jobs.create(&PostParams::default(), &j).await }
        })
        .buffer_unordered(16)
        .try_for_each(|_| async { Ok(()) })
        .await
        .expect("every create succeeds");
    tokio::time::timeout(Duration::from_secs(600), watch)
        .await
        .expect("the queued Jobs complete within 10 minutes")
        .expect("the watch task");
    let secs = started.elapsed().as_secs_f64();
    let _ = jobs
        .delete_collection(
            &DeleteParams {
                propagation_policy: Some(PropagationPolicy::Background),
                ..DeleteParams::default()
            },
            &selector,
        )
        .await;
    secs
}

fn start(concurrency: usize) -> LocalCluster {
    LocalCluster::start(Options {
        concurrency,
        backoff_base: Duration::from_millis(200),
        backoff_max: Duration::from_secs(2),
        ..Options::default()
    })
    .expect("the cluster starts")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = parse_args();
    let mut out = serde_json::Map::new();
    let mut rows = Vec::new();

    // Creates (skipped with `--creates 0`).
    if args.creates > 0 {
        let cluster = start(args.concurrency);
        let api: Api<Job> = Api::namespaced(client(&cluster).await, "default");
        // Warm up (TLS handshakes, connection pool, allocator).
        creates(&api, "warm", 200, args.in_flight).await;
        let sequential_n = (args.creates / 4).max(100);
        let sequential = creates(&api, "seq", sequential_n, 1).await;
        let parallel = creates(&api, "par", args.creates, args.in_flight).await;
        rows.push((
            format!("Rust kube-rs, 1 in flight ({sequential_n} Jobs)"),
            format!("{sequential:.0} creates/s"),
        ));
        rows.push((
            format!(
                "Rust kube-rs, {} in flight ({} Jobs)",
                args.in_flight, args.creates
            ),
            format!("{parallel:.0} creates/s"),
        ));
        out.insert("rust_creates_per_s_sequential".into(), json!(sequential));
        out.insert("rust_creates_sequential_n".into(), json!(sequential_n));
        out.insert("rust_creates_per_s_parallel".into(), json!(parallel));
        out.insert("rust_creates_parallel_n".into(), json!(args.creates));
        out.insert("rust_in_flight".into(), json!(args.in_flight));
    }

    // The queue (skipped with `--queued 0`). Run it in a process of its own for a clean
    // figure: the kubelet forks each container, and fork costs grow with the process's memory.
    if args.queued > 0 {
        let cluster = start(args.concurrency);
        let api: Api<Job> = Api::namespaced(client(&cluster).await, "default");
        let queued = queued_run(&api, args.queued).await;
        rows.push((
            format!(
                "{} queued Jobs of `sh -c true`, {} pods at once",
                args.queued, args.concurrency
            ),
            format!("{queued:.2} s ({:.0} Jobs/s)", args.queued as f64 / queued),
        ));
        out.insert("queued_jobs".into(), json!(args.queued));
        out.insert("queued_concurrency".into(), json!(args.concurrency));
        out.insert("queued_seconds".into(), json!(queued));
    }

    for (what, figure) in &rows {
        println!("{what:<55} {figure}");
    }
    if let Some(path) = args.json {
        std::fs::write(&path, serde_json::to_string_pretty(&out).expect("json"))
            .expect("write the JSON");
    }
}
