//! `kjenv-kubelet` as a node agent over HTTPS, against the emulator with its own kubelet off:
//! pods bound to the node run, their status and logs (`/containerLogs` over mutual TLS) are
//! a kubelet's, deletion honours the grace period, and SIGTERM leaves no process behind.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use localcluster::{LocalCluster, Options};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const NODE: &str = "kjenv-node";

/// A CA and what it signed, as PEM files in `dir`.
struct Pki {
    dir: PathBuf,
}

fn ca(cn: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    CertifiedIssuer::self_signed(p, KeyPair::generate().expect("key")).expect("ca")
}

/// A leaf signed by `issuer`: (cert PEM, key PEM).
fn leaf(issuer: &CertifiedIssuer<'_, KeyPair>, cn: &str, org: Option<&str>) -> (String, String) {
    let mut p = CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    p.subject_alt_names
        .push(SanType::IpAddress(std::net::IpAddr::from([127, 0, 0, 1])));
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    p.distinguished_name = dn;
    p.is_ca = IsCa::ExplicitNoCa;
    p.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let key = KeyPair::generate().expect("key");
    let cert = p.signed_by(&key, issuer).expect("signed");
    (cert.pem(), key.serialize_pem())
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).expect("pki dir");
        let ca = ca("kjenv-test-ca");
        let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).expect("write");
        write("ca.crt", &ca.pem());
        let (c, k) = leaf(&ca, "system:node:kjenv-node", Some("system:nodes"));
        write("serving.crt", &c);
        write("serving.key", &k);
        let (c, k) = leaf(&ca, "kube-apiserver-kubelet-client", Some("system:masters"));
        write("client.crt", &c);
        write("client.key", &k);
        let other = self::ca("someone-else");
        let (c, k) = leaf(&other, "intruder", None);
        write("intruder.crt", &c);
        write("intruder.key", &k);
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// The running agent; dropping it sends SIGTERM and waits for its exit.
struct Agent {
    child: Child,
    port: u16,
}

impl Agent {
    /// SIGTERM, then the exit status (within a hang guard).
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        // SAFETY: plain syscall on our child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// The emulator without its own kubelet, and the agent against it.
async fn setup(dir: &Path) -> (LocalCluster, Pki, Agent) {
    let lc = LocalCluster::start(Options {
        kubelet: false,
        ..Options::default()
    })
    .expect("cluster starts");
    let pki = Pki::new(&dir.join("pki"));
    let agent = start_agent(&lc, &pki, dir).await;
    (lc, pki, agent)
}

/// Starts the agent against `lc` and waits until it answers.
async fn start_agent(lc: &LocalCluster, pki: &Pki, dir: &Path) -> Agent {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_kjenv-kubelet"))
        .arg("--kubeconfig")
        .arg(lc.kubeconfig_path())
        .args(["--node-name", NODE, "--root"])
        .arg(dir.join("node"))
        .args(["--port", &port.to_string(), "--tls-cert-file"])
        .arg(pki.path("serving.crt"))
        .arg("--tls-private-key-file")
        .arg(pki.path("serving.key"))
        .arg("--client-ca-file")
        .arg(pki.path("ca.crt"))
        .spawn()
        .expect("agent starts");
    let agent = Agent { child, port };
    let healthy = support::eventually(30, || async {
        get(pki, port, "/healthz", None)
            .await
            .is_ok_and(|(code, _)| code == 200)
    })
    .await;
    assert!(healthy, "the agent answers /healthz");
    agent
}

/// `GET path` on the agent's port, with the client certificate `client` (file stem) if any:
/// (status code, body with chunked encoding undone).
async fn get(
    pki: &Pki,
    port: u16,
    path: &str,
    client: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(pki.path("ca.crt")).expect("ca") {
        roots.add(c.expect("ca cert")).expect("root");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let config = match client {
        Some(stem) => {
            let chain = CertificateDer::pem_file_iter(pki.path(&format!("{stem}.crt")))
                .expect("cert")
                .collect::<Result<Vec<_>, _>>()
                .expect("chain");
            let key = PrivateKeyDer::from_pem_file(pki.path(&format!("{stem}.key"))).expect("key");
            builder
                .with_client_auth_cert(chain, key)
                .expect("client auth")
        }
        None => builder.with_no_client_auth(),
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::IpAddress(std::net::IpAddr::from([127, 0, 0, 1]).into());
    let mut tls = connector.connect(name, tcp).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).await?;
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    Ok((
        code,
        if chunked {
            dechunk(body)
        } else {
            body.to_owned()
        },
    ))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn pod(name: &str, script: &str, grace: i64) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"nodeName": NODE, "restartPolicy": "Never",
            "terminationGracePeriodSeconds": grace,
            "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}]}
    }))
    .expect("pod parses")
}

/// Polls the pod until `f` holds (hang guard `secs`); returns it as JSON.
async fn wait_pod(pods: &Api<Pod>, name: &str, secs: u64, f: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let p = pods
            .get_opt(name)
            .await
            .expect("get")
            .map(|p| serde_json::to_value(p).expect("json"));
        let v = p.unwrap_or(Value::Null);
        if f(&v) {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for pod {name}: {v}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn temp_dir(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("kjenv-node-agent-{tag}-{}", uuid::Uuid::new_v4()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_a_bound_pod_reports_its_status_and_serves_its_logs() {
    let dir = temp_dir("run");
    let (lc, pki, mut agent) = setup(&dir).await;
    let pods: Api<Pod> = Api::namespaced(support::client(&lc).await, "default");
    let p = pod("hello", "echo hello; sleep 1; echo world; exit 3", 30);
    pods.create(&PostParams::default(), &p)
        .await
        .expect("create");
    wait_pod(&pods, "hello", 30, |p| p["status"]["phase"] == "Running").await;
    // Follow from the start while it runs: both lines, then the stream ends with the exit.
    let logs = "/containerLogs/default/hello/main";
    let (code, body) = get(
        &pki,
        agent.port,
        &format!("{logs}?follow=true"),
        Some("client"),
    )
    .await
    .expect("follow");
    assert_eq!((code, body.as_str()), (200, "hello\nworld\n"));
    let p = wait_pod(&pods, "hello", 30, |p| p["status"]["phase"] == "Failed").await;
    let st = &p["status"];
    assert_eq!(st["hostIP"], "127.0.0.1");
    assert_eq!(st["podIP"], "127.0.0.1");
    assert!(st["startTime"].is_string());
    let cs = &st["containerStatuses"][0];
    assert_eq!(cs["state"]["terminated"]["exitCode"], 3);
    assert_eq!(cs["state"]["terminated"]["reason"], "Error");
    assert_eq!(cs["restartCount"], 0);
    let ready = st["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "PodCompleted");
    // The query parameters of a kubelet's log endpoint.
    let q = |query: &str| format!("{logs}?{query}");
    let (code, body) = get(&pki, agent.port, &q("tailLines=1"), Some("client"))
        .await
        .expect("tail");
    assert_eq!((code, body.as_str()), (200, "world\n"));
    let (_, body) = get(&pki, agent.port, &q("limitBytes=3"), Some("client"))
        .await
        .expect("limit");
    assert_eq!(body, "hel");
    let (_, body) = get(&pki, agent.port, &q("timestamps=true"), Some("client"))
        .await
        .expect("timestamps");
    assert!(body.lines().all(|l| l.contains("Z ")), "{body}");
    let (code, _) = get(&pki, agent.port, &q("previous=true"), Some("client"))
        .await
        .expect("previous");
    assert_eq!(code, 400);
    let (code, _) = get(
        &pki,
        agent.port,
        "/containerLogs/default/hello/nope",
        Some("client"),
    )
    .await
    .expect("unknown container");
    assert_eq!(code, 404);
    // Without a client certificate: 401; with one from another CA: no TLS session.
    let (code, _) = get(&pki, agent.port, logs, None).await.expect("anonymous");
    assert_eq!(code, 401);
    assert!(get(&pki, agent.port, logs, Some("intruder")).await.is_err());
    // Events reach the API through it.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(support::client(&lc).await, "default");
    let ok = support::eventually(10, || async {
        events.list(&Default::default()).await.is_ok_and(|l| {
            l.items
                .iter()
                .any(|e| e.reason.as_deref() == Some("Started"))
        })
    })
    .await;
    assert!(ok, "a Started event was recorded");
    assert!(agent.stop().is_some_and(|s| s.success()));
    drop(lc);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletion_sends_sigterm_then_sigkill_after_the_grace_period() {
    let dir = temp_dir("delete");
    let (lc, _pki, mut agent) = setup(&dir).await;
    let pods: Api<Pod> = Api::namespaced(support::client(&lc).await, "default");
    let polite = pod(
        "polite",
        "trap 'echo bye; exit 0' TERM; echo up; while true; do sleep 0.05; done",
        30,
    );
    let stubborn = pod(
        "stubborn",
        "trap '' TERM; echo up; while true; do sleep 0.05; done",
        1,
    );
    for p in [&polite, &stubborn] {
        pods.create(&PostParams::default(), p)
            .await
            .expect("create");
    }
    let mut pids = Vec::new();
    for name in ["polite", "stubborn"] {
        let p = wait_pod(&pods, name, 30, |p| p["status"]["phase"] == "Running").await;
        let id = p["status"]["containerStatuses"][0]["containerID"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let pid: i32 = id.trim_start_matches("local://").parse().expect("pid");
        pids.push(pid);
    }
    // Let the shells install their traps.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    for name in ["polite", "stubborn"] {
        pods.delete(name, &DeleteParams::default())
            .await
            .expect("delete");
    }
    // SIGTERM ends `polite` well before its 30 s; `stubborn` dies by SIGKILL after 1 s.
    wait_pod(&pods, "polite", 20, Value::is_null).await;
    let polite_gone = started.elapsed();
    wait_pod(&pods, "stubborn", 20, Value::is_null).await;
    let stubborn_gone = started.elapsed();
    assert!(polite_gone < Duration::from_secs(20), "{polite_gone:?}");
    assert!(stubborn_gone >= Duration::from_secs(1), "{stubborn_gone:?}");
    for pid in pids {
        assert!(
            !localcluster::kubelet::group_alive(pid),
            "group {pid} is gone"
        );
    }
    assert!(agent.stop().is_some_and(|s| s.success()));
    drop(lc);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_agent_and_every_container_and_a_new_agent_fails_the_pod() {
    let dir = temp_dir("stop");
    let (lc, pki, mut agent) = setup(&dir).await;
    let pods: Api<Pod> = Api::namespaced(support::client(&lc).await, "default");
    let p = pod("sleeper", "sleep 1000 & sleep 1000", 30);
    pods.create(&PostParams::default(), &p)
        .await
        .expect("create");
    let p = wait_pod(&pods, "sleeper", 30, |p| p["status"]["phase"] == "Running").await;
    let id = p["status"]["containerStatuses"][0]["containerID"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    let pid: i32 = id.trim_start_matches("local://").parse().expect("pid");
    assert!(localcluster::kubelet::group_alive(pid));
    let status = agent.stop().expect("the agent exits");
    assert!(status.success(), "{status:?}");
    assert!(
        !localcluster::kubelet::group_alive(pid),
        "no process is left"
    );
    // A new agent does not run the lost container again: the pod fails.
    let mut again = start_agent(&lc, &pki, &dir).await;
    let p = wait_pod(&pods, "sleeper", 30, |p| p["status"]["phase"] == "Failed").await;
    let t = &p["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(t["reason"], "ContainerStatusUnknown");
    assert_eq!(t["exitCode"], 137);
    assert!(again.stop().is_some_and(|s| s.success()));
    drop(lc);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_scheduler_the_agent_binds_a_jobs_pod_and_the_job_completes() {
    let dir = temp_dir("job");
    let (lc, _pki, mut agent) = setup(&dir).await;
    let client = support::client(&lc).await;
    let jobs: Api<k8s_openapi::api::batch::v1::Job> = Api::namespaced(client.clone(), "default");
    jobs.create(&PostParams::default(), &support::sample_job("unscheduled"))
        .await
        .expect("create");
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let j = serde_json::to_value(jobs.get("unscheduled").await.expect("get")).expect("json");
        let complete = j["status"]["conditions"].as_array().is_some_and(|c| {
            c.iter()
                .any(|c| c["type"] == "Complete" && c["status"] == "True")
        });
        if complete {
            break j;
        }
        assert!(Instant::now() < deadline, "the Job did not complete: {j}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(done["status"]["succeeded"], 1);
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let list = pods
        .list(&kube::api::ListParams::default().labels("job-name=unscheduled"))
        .await
        .expect("list");
    let p = serde_json::to_value(&list.items[0]).expect("json");
    assert_eq!(p["spec"]["nodeName"], NODE);
    let scheduled = p["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(scheduled["status"], "True");
    assert!(agent.stop().is_some_and(|s| s.success()));
    drop(lc);
    let _ = std::fs::remove_dir_all(dir);
}
