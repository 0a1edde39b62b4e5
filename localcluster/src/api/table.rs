//! `as=Table` answers (what `kubectl get` prints): Jobs NAME/COMPLETIONS/DURATION/AGE,
//! Pods NAME/READY/STATUS/RESTARTS/AGE, everything else NAME/AGE.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::store::{meta_str, Kind};

fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// kubectl's short human duration (`45s`, `3m12s`, `17m`, `5h3m`, `20h`, `3d4h`, `12d`).
pub fn human_duration(secs: i64) -> String {
    let s = secs.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    if s < 120 {
        format!("{s}s")
    } else if m < 10 {
        let rest = s % 60;
        if rest == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{rest}s")
        }
    } else if h < 3 {
        format!("{m}m")
    } else if h < 8 {
        let rest = m % 60;
        if rest == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{rest}m")
        }
    } else if h < 48 {
        format!("{h}h")
    } else if d < 8 {
        let rest = h % 24;
        if rest == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{rest}h")
        }
    } else if d < 365 * 2 {
        format!("{d}d")
    } else {
        format!("{}y", d / 365)
    }
}

fn age(obj: &Value) -> String {
    match parse_time(&obj["metadata"]["creationTimestamp"]) {
        Some(t) => human_duration((Utc::now() - t).num_seconds()),
        None => "<unknown>".into(),
    }
}

fn col(name: &str, ty: &str, format: &str, description: &str, priority: u8) -> Value {
    json!({"name": name, "type": ty, "format": format, "description": description, "priority": priority})
}

fn job_cells(o: &Value) -> Vec<Value> {
    let succeeded = o["status"]["succeeded"].as_i64().unwrap_or(0);
    let completions = match o["spec"]["completions"].as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => {
            let p = o["spec"]["parallelism"].as_i64().unwrap_or(1);
            if p > 1 {
                format!("{succeeded}/1 of {p}")
            } else {
                format!("{succeeded}/1")
            }
        }
    };
    let duration = match parse_time(&o["status"]["startTime"]) {
        Some(start) => {
            let end = parse_time(&o["status"]["completionTime"]).unwrap_or_else(Utc::now);
            human_duration((end - start).num_seconds())
        }
        None => String::new(),
    };
    vec![
        json!(meta_str(o, "name")),
        json!(completions),
        json!(duration),
        json!(age(o)),
    ]
}

fn pod_cells(o: &Value) -> Vec<Value> {
    let statuses: Vec<&Value> = o["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    let total = o["spec"]["containers"].as_array().map_or(0, Vec::len);
    let ready = statuses.iter().filter(|s| s["ready"] == true).count();
    let restarts: i64 = statuses
        .iter()
        .map(|s| s["restartCount"].as_i64().unwrap_or(0))
        .sum();
    let mut status = o["status"]["reason"]
        .as_str()
        .or_else(|| o["status"]["phase"].as_str())
        .unwrap_or("Pending")
        .to_string();
    for s in &statuses {
        if let Some(r) = s["state"]["waiting"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
        {
            status = r.to_string();
        } else if let Some(r) = s["state"]["terminated"]["reason"]
            .as_str()
            .filter(|r| !r.is_empty())
        {
            status = r.to_string();
        }
    }
    if !o["metadata"]["deletionTimestamp"].is_null() {
        status = "Terminating".into();
    }
    vec![
        json!(meta_str(o, "name")),
        json!(format!("{ready}/{total}")),
        json!(status),
        json!(restarts),
        json!(age(o)),
        json!(o["status"]["podIP"].as_str().unwrap_or("<none>")),
        json!(o["spec"]["nodeName"].as_str().unwrap_or("<none>")),
    ]
}

/// A column: name, format, description, priority (1 = shown with `-o wide` only).
type Column = (&'static str, &'static str, &'static str, u8);

const NAME: Column = ("Name", "name", "Name must be unique within a namespace.", 0);
const AGE: Column = (
    "Age",
    "",
    "CreationTimestamp is a timestamp representing the server time when this object was created.",
    0,
);
const JOB_COLUMNS: [Column; 4] = [
    NAME,
    (
        "Completions",
        "",
        "The desired number of successfully finished pods the job should be run with.",
        0,
    ),
    ("Duration", "", "Time required to complete the job.", 0),
    AGE,
];
const POD_COLUMNS: [Column; 7] = [
    NAME,
    (
        "Ready",
        "",
        "The aggregate readiness state of this pod for accepting traffic.",
        0,
    ),
    (
        "Status",
        "",
        "The aggregate status of the containers in this pod.",
        0,
    ),
    (
        "Restarts",
        "",
        "The number of times the containers in this pod have been restarted.",
        0,
    ),
    AGE,
    ("IP", "", "IP address allocated to the pod.", 1),
    ("Node", "", "Name of the node this pod is scheduled on.", 1),
];

/// The `columnDefinitions` kubectl prints for this kind.
fn columns(kind: Kind) -> Vec<Value> {
    let spec: &[Column] = match kind {
        Kind::Job => &JOB_COLUMNS,
        Kind::Pod => &POD_COLUMNS,
        _ => &[NAME, AGE],
    };
    spec.iter()
        .map(|(name, format, description, priority)| {
            col(name, "string", format, description, *priority)
        })
        .collect()
}

/// One row: the kind's cells and the object's metadata.
fn row(kind: Kind, o: &Value) -> Value {
    let cells = match kind {
        Kind::Job => job_cells(o),
        Kind::Pod => pod_cells(o),
        _ => vec![json!(meta_str(o, "name")), json!(age(o))],
    };
    json!({
        "cells": cells,
        "object": {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": o["metadata"]},
    })
}

/// A `meta.k8s.io/v1` Table of `objects` (rows carry PartialObjectMetadata).
pub fn table(kind: Kind, objects: &[Value], rv: Option<u64>) -> Value {
    let rows: Vec<Value> = objects.iter().map(|o| row(kind, o)).collect();
    let mut meta = json!({});
    if let Some(rv) = rv {
        meta["resourceVersion"] = json!(rv.to_string());
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "columnDefinitions": columns(kind), "rows": rows})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(185), "3m5s");
        assert_eq!(human_duration(1200), "20m");
        assert_eq!(human_duration(4 * 3600 + 120), "4h2m");
        assert_eq!(human_duration(3 * 86400), "3d");
    }

    #[test]
    fn job_rows() {
        let j = json!({"metadata": {"name": "pi", "creationTimestamp": "2020-01-01T00:00:00Z"},
            "spec": {"completions": 1}, "status": {"succeeded": 1, "startTime": "2020-01-01T00:00:00Z", "completionTime": "2020-01-01T00:00:07Z"}});
        let t = table(Kind::Job, &[j], Some(3));
        assert_eq!(t["rows"][0]["cells"][1], "1/1");
        assert_eq!(t["rows"][0]["cells"][2], "7s");
        assert_eq!(t["metadata"]["resourceVersion"], "3");
    }
}
