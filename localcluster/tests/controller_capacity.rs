//! Many Jobs at once: the controller and kubelet keep up (run with `--ignored`).

mod support;

use std::time::Instant;

use serde_json::json;
use support::*;

#[test]
#[ignore = "capacity check, takes a while"]
fn hundreds_of_jobs_complete() {
    let lc = start_with(|o| o.concurrency = 16);
    let c = shared(&lc);
    let n = 300;
    let t0 = Instant::now();
    for i in 0..n {
        create_job(&c, &format!("many-{i}"), "echo $JOB", json!({}));
    }
    let created = t0.elapsed();
    wait_for(120, "all jobs complete", || {
        let (jobs, _) = c
            .store
            .list(localcluster::store::Kind::Job, Some("default"));
        let done = jobs
            .iter()
            .filter(|j| {
                j["status"]["conditions"]
                    .as_array()
                    .is_some_and(|cs| cs.iter().any(|x| x["type"] == "Complete"))
            })
            .count();
        (done == n).then_some(())
    });
    eprintln!(
        "{n} jobs: created in {created:?}, all complete after {:?}",
        t0.elapsed()
    );
}
