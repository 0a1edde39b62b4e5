//! `exec` through a client nobody here wrote: kube-rs's `Api::<Pod>::exec` (WebSocket,
//! `v5.channel.k8s.io`) against the local cluster. The command runs in the container's process
//! group with its environment and working directory; stdin closes; the exit is reported as
//! kube-apiserver's stream translator reports it; the command dies with its client.

mod support;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, AttachParams};
use serde_json::{json, Value};
use support::{alive, client, create_pod, pod, shared, start, state, wait_for};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn start_sleeper(lc: &localcluster::LocalCluster, name: &str, dir: &std::path::Path) -> i32 {
    let c = shared(lc);
    let env = json!([{"name": "A", "value": "1"}, {"name": "B", "value": "$(A)-two"}]);
    let main = json!({"name": "main", "image": "busybox", "command": ["sh", "-c", "sleep 300"],
        "env": env, "workingDir": dir});
    create_pod(&c, name, json!({}), vec![main]);
    wait_for(5, "the pod to run", || {
        let p = pod(&c, name)?;
        state(&p)["running"].is_object().then_some(())?;
        let id = p["status"]["containerStatuses"][0]["containerID"].as_str()?;
        id.strip_prefix("local://")?.parse().ok()
    })
}

async fn run(pods: &Api<Pod>, name: &str, cmd: &[&str], stdin: Option<&[u8]>) -> (String, Value) {
    let ap = AttachParams::default().stdin(stdin.is_some()).stderr(false);
    let mut p = pods.exec(name, cmd.to_vec(), &ap).await.expect("exec");
    if let Some(data) = stdin {
        let mut w = p.stdin().expect("stdin");
        w.write_all(data).await.expect("stdin written");
        w.shutdown().await.expect("stdin closed");
    }
    let mut out = String::new();
    let mut r = p.stdout().expect("stdout");
    r.read_to_string(&mut out).await.expect("stdout read");
    let status = p.take_status().expect("status").await;
    (out, serde_json::to_value(status).expect("status as JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_in_the_container_s_group_env_and_dir() {
    let lc = start();
    let dir = tempdir();
    let leader = start_sleeper(&lc, "ex", &dir);
    let pods: Api<Pod> = Api::namespaced(client(&lc).await, "default");
    let script = "echo $B; pwd; cut -d' ' -f5 /proc/$$/stat";
    let (out, status) = run(&pods, "ex", &["sh", "-c", script], None).await;
    let cwd = std::fs::canonicalize(&dir).unwrap();
    assert_eq!(out, format!("1-two\n{}\n{leader}\n", cwd.display()));
    assert_eq!(status["status"], "Success", "{status}");

    let (out, _) = run(&pods, "ex", &["cat"], Some(b"in\n")).await;
    assert_eq!(out, "in\n");

    let (_, status) = run(&pods, "ex", &["sh", "-c", "exit 4"], None).await;
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(
        status["details"]["causes"][0],
        json!({"reason": "ExitCode", "message": "4"})
    );
    assert_eq!(
        status["message"],
        "command terminated with non-zero exit code: command terminated with exit code 4"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exec_dies_with_its_client_and_with_its_container() {
    let lc = start();
    let dir = tempdir();
    start_sleeper(&lc, "ex2", &dir);
    let pods: Api<Pod> = Api::namespaced(client(&lc).await, "default");
    let ap = AttachParams::default().stderr(false);
    let cmd = vec!["sh", "-c", "echo $$; exec sleep 300"];
    let pid_of = |mut p: kube::api::AttachedProcess| async move {
        let mut r = p.stdout().expect("stdout");
        let mut buf = [0u8; 32];
        let n = r.read(&mut buf).await.expect("pid read");
        let pid: i32 = std::str::from_utf8(&buf[..n])
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        (pid, p)
    };
    let (pid, attached) = pid_of(pods.exec("ex2", cmd.clone(), &ap).await.unwrap()).await;
    assert!(alive(pid));
    attached.abort();
    wait_for(2, "the exec to end with its client", || {
        (!alive(pid)).then_some(())
    });

    let (pid, _attached) = pid_of(pods.exec("ex2", cmd, &ap).await.unwrap()).await;
    assert!(alive(pid));
    pods.delete("ex2", &Default::default()).await.unwrap();
    wait_for(5, "the exec to end with its pod", || {
        (!alive(pid)).then_some(())
    });
    let _ = std::fs::remove_dir_all(&dir);
}

fn tempdir() -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("lc-exec-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}
