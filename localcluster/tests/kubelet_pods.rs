//! The process kubelet on bare pods: env, config errors, simulations, deletion with SIGTERM,
//! shutdown, the concurrency limit.

mod controller_support;

use controller_support::*;
use serde_json::json;

#[test]
fn a_running_pod_streams_its_log() {
    let lc = start();
    let c = shared(&lc);
    create_pod(&c, "p", json!({}), vec![sh("main", "echo $$$$; sleep 2")]);
    let text = wait_for(5, "log", || {
        let t = log_text(&c, "p", "main", false);
        eprintln!(
            "{:?} {}",
            t,
            pod(&c, "p")
                .map(|p| p["status"].to_string())
                .unwrap_or_default()
        );
        (!t.is_empty()).then_some(t)
    });
    let pid: i32 = text.trim().parse().expect("pid");
    assert!(alive(pid));
}
