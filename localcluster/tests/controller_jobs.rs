//! The job controller with the process kubelet: success, failure with backoff, deadline,
//! parallelism/completions, OnFailure restarts, suspend and TTL.

mod support;

use serde_json::json;
use support::*;

#[test]
fn a_job_that_echoes_completes_with_its_log() {
    let lc = start();
    let c = shared(&lc);
    create_job(&c, "hello", "echo hi", json!({}));
    let done = wait_for(10, "job to finish", || terminal(&c, "hello"));
    assert_eq!(done, ("Complete".into(), "CompletionsReached".into()));
    assert_eq!(
        condition_types(&c, "hello"),
        ["SuccessCriteriaMet", "Complete"]
    );
    let j = job(&c, "hello").expect("job");
    let st = &j["status"];
    assert_eq!(st["succeeded"], 1);
    assert!(st.get("active").is_none(), "{st}");
    assert_eq!(st["ready"], 0);
    assert_eq!(st["terminating"], 0);
    assert_eq!(st["uncountedTerminatedPods"], json!({}));
    assert!(st["startTime"].is_string() && st["completionTime"].is_string());
    let complete = &st["conditions"][1];
    assert_eq!(
        complete["message"],
        "Reached expected number of succeeded pods"
    );
    assert!(complete["lastTransitionTime"].is_string() && complete["lastProbeTime"].is_string());

    let pods = pods_of(&c, "hello");
    assert_eq!(pods.len(), 1);
    let p = &pods[0];
    let name = p["metadata"]["name"].as_str().expect("name");
    assert!(name.starts_with("hello-"));
    assert_eq!(p["status"]["phase"], "Succeeded");
    assert_eq!(p["metadata"]["finalizers"], json!([]));
    assert_eq!(p["spec"]["nodeName"], "local");
    let term = &state(p)["terminated"];
    assert_eq!(term["reason"], "Completed");
    assert_eq!(term["exitCode"], 0);
    assert_eq!(p["status"]["qosClass"], "BestEffort");
    assert_eq!(log_text(&c, name, "main", false), "hi\n");

    let job_events = event_reasons(&c.store, "hello");
    assert!(
        job_events.contains(&"SuccessfulCreate".to_owned()),
        "{job_events:?}"
    );
    assert!(
        job_events.contains(&"Completed".to_owned()),
        "{job_events:?}"
    );
    let pod_events = event_reasons(&c.store, name);
    for r in ["Scheduled", "Pulled", "Created", "Started"] {
        assert!(pod_events.contains(&r.to_owned()), "{r} in {pod_events:?}");
    }
}

#[test]
fn a_failing_job_stops_after_its_backoff_limit() {
    let lc = start();
    let c = shared(&lc);
    create_job(
        &c,
        "fail",
        "echo boom >&2; exit 3",
        json!({"backoffLimit": 1}),
    );
    let done = wait_for(10, "job to fail", || terminal(&c, "fail"));
    assert_eq!(done, ("Failed".into(), "BackoffLimitExceeded".into()));
    assert_eq!(condition_types(&c, "fail"), ["FailureTarget", "Failed"]);
    let j = job(&c, "fail").expect("job");
    assert_eq!(j["status"]["failed"], 2);
    assert!(j["status"].get("succeeded").is_none());
    assert_eq!(
        j["status"]["conditions"][1]["message"],
        "Job has reached the specified backoff limit"
    );
    let pods = pods_of(&c, "fail");
    assert_eq!(pods.len(), 2);
    for p in &pods {
        assert_eq!(p["status"]["phase"], "Failed");
        let t = &state(p)["terminated"];
        assert_eq!(t["exitCode"], 3);
        assert_eq!(t["reason"], "Error");
        let name = p["metadata"]["name"].as_str().expect("name");
        assert_eq!(log_text(&c, name, "main", false), "boom\n");
    }
    assert!(event_reasons(&c.store, "fail").contains(&"BackoffLimitExceeded".to_owned()));
}

#[test]
fn an_active_deadline_kills_a_long_job() {
    let lc = start();
    let c = shared(&lc);
    create_job(
        &c,
        "slow",
        "echo $$$$; sleep 30",
        json!({"activeDeadlineSeconds": 2}),
    );
    let pod_name = wait_for(5, "pod to run", || {
        pods_of(&c, "slow")
            .into_iter()
            .find(|p| p["status"]["phase"] == "Running")
            .and_then(|p| p["metadata"]["name"].as_str().map(str::to_owned))
    });
    let pid: i32 = wait_for(5, "pid in log", || {
        log_text(&c, &pod_name, "main", false).trim().parse().ok()
    });
    let done = wait_for(10, "deadline", || terminal(&c, "slow"));
    assert_eq!(done, ("Failed".into(), "DeadlineExceeded".into()));
    let j = job(&c, "slow").expect("job");
    assert_eq!(
        j["status"]["conditions"][1]["message"],
        "Job was active longer than specified deadline"
    );
    assert_eq!(j["status"]["failed"], 1);
    assert!(j["status"].get("active").is_none());
    assert!(!alive(pid), "process {pid} still alive");
    assert!(event_reasons(&c.store, "slow").contains(&"DeadlineExceeded".to_owned()));
    assert!(event_reasons(&c.store, "slow").contains(&"SuccessfulDelete".to_owned()));
}

#[test]
fn parallelism_three_completions_two_runs_two_pods() {
    let lc = start();
    let c = shared(&lc);
    create_job(
        &c,
        "par",
        "sleep 0.2; echo done",
        json!({"parallelism": 3, "completions": 2}),
    );
    let active = wait_for(5, "active pods", || {
        job(&c, "par").and_then(|j| j["status"]["active"].as_i64())
    });
    assert_eq!(active, 2);
    let done = wait_for(10, "job to finish", || terminal(&c, "par"));
    assert_eq!(done.0, "Complete");
    let j = job(&c, "par").expect("job");
    assert_eq!(j["status"]["succeeded"], 2);
    assert_eq!(pods_of(&c, "par").len(), 2);
}

#[test]
fn on_failure_restarts_in_place_until_success() {
    let lc = start();
    let c = shared(&lc);
    // Fails the first time (no marker file yet in the pod's working directory), then succeeds.
    create_job(
        &c,
        "flaky",
        "if [ -f marker ]; then echo second; else touch marker; echo first; exit 1; fi",
        json!({"restartPolicy": "OnFailure", "backoffLimit": 3}),
    );
    let done = wait_for(10, "job to finish", || terminal(&c, "flaky"));
    assert_eq!(done.0, "Complete");
    let pods = pods_of(&c, "flaky");
    assert_eq!(pods.len(), 1);
    let cs = &pods[0]["status"]["containerStatuses"][0];
    assert_eq!(cs["restartCount"], 1);
    assert_eq!(cs["lastState"]["terminated"]["exitCode"], 1);
    assert_eq!(cs["state"]["terminated"]["reason"], "Completed");
    let name = pods[0]["metadata"]["name"].as_str().expect("name");
    assert_eq!(log_text(&c, name, "main", false), "second\n");
    assert_eq!(log_text(&c, name, "main", true), "first\n");
    assert!(event_reasons(&c.store, name).contains(&"BackOff".to_owned()));
}

#[test]
fn on_failure_fails_the_job_at_the_restart_limit() {
    let lc = start();
    let c = shared(&lc);
    create_job(
        &c,
        "crash",
        "exit 1",
        json!({"restartPolicy": "OnFailure", "backoffLimit": 2}),
    );
    let mut names = std::collections::BTreeSet::new();
    let mut max_restarts = 0;
    let done = wait_for(10, "job to fail", || {
        for p in pods_of(&c, "crash") {
            names.insert(p["metadata"]["name"].as_str().unwrap_or("").to_owned());
            let r = p["status"]["containerStatuses"][0]["restartCount"]
                .as_i64()
                .unwrap_or(0);
            max_restarts = max_restarts.max(r);
        }
        terminal(&c, "crash")
    });
    assert_eq!(done, ("Failed".into(), "BackoffLimitExceeded".into()));
    assert_eq!(names.len(), 1, "one pod, restarted in place");
    assert!(max_restarts >= 1);
    // Started three times: the first run and two restarts (restartCount 2 = backoffLimit).
    let name = names.iter().next().expect("a pod");
    let starts = event_reasons(&c.store, name)
        .iter()
        .filter(|r| *r == "Started")
        .count();
    assert_eq!(starts, 3);
    // The failed Job's pod was deleted (and counted).
    wait_for(5, "pod gone", || {
        pods_of(&c, "crash").is_empty().then_some(())
    });
    assert_eq!(job(&c, "crash").expect("job")["status"]["failed"], 1);
}

#[test]
fn a_suspended_job_creates_no_pods_and_ttl_deletes_finished_jobs() {
    let lc = start();
    let c = shared(&lc);
    create_job(&c, "sus", "echo x", json!({"suspend": true}));
    create_job(&c, "ttl", "echo x", json!({"ttlSecondsAfterFinished": 0}));
    // Deleted with propagation Foreground: the GC removes its pod first, then the Job.
    wait_for(10, "ttl job deleted", || {
        job(&c, "ttl").is_none().then_some(())
    });
    assert!(pods_of(&c, "ttl").is_empty());
    let j = job(&c, "sus").expect("job");
    assert!(pods_of(&c, "sus").is_empty());
    assert!(
        condition_types(&c, "sus").contains(&"Suspended".to_owned()),
        "{j}"
    );
    assert!(j["status"]["startTime"].is_null());
}

#[test]
fn an_indexed_job_runs_each_index_once() {
    let lc = start();
    let c = shared(&lc);
    create_job(
        &c,
        "idx",
        "echo index=$JOB_COMPLETION_INDEX",
        json!({"completionMode": "Indexed", "completions": 3, "parallelism": 2}),
    );
    let done = wait_for(10, "job to finish", || terminal(&c, "idx"));
    assert_eq!(done.0, "Complete");
    let j = job(&c, "idx").expect("job");
    assert_eq!(j["status"]["succeeded"], 3);
    assert_eq!(j["status"]["completedIndexes"], "0-2");
    let mut logs: Vec<String> = pods_of(&c, "idx")
        .iter()
        .map(|p| {
            log_text(
                &c,
                p["metadata"]["name"].as_str().unwrap_or(""),
                "main",
                false,
            )
        })
        .collect();
    logs.sort();
    assert_eq!(logs, ["index=0\n", "index=1\n", "index=2\n"]);
}
