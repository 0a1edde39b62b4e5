//! Field manager tests: managedFields of creates and updates, apply merges, conflicts, force
//! and the removal of fields an applier stopped naming.

use serde_json::{json, Value};

use super::*;

fn job(image: &str, labels: Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "j", "namespace": "default", "labels": labels},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "flow", "image": image}]}}}})
}

/// Applies `config` as `manager` (not forcing; `apply_forced` forces).
fn apply_as(live: Option<&Value>, config: &Value, manager: &str) -> Result<Value, ApiError> {
    apply(Kind::Job, live, config, &w(manager), false)
}

fn apply_forced(live: Option<&Value>, config: &Value, manager: &str) -> Result<Value, ApiError> {
    apply(Kind::Job, live, config, &w(manager), true)
}

fn w(manager: &str) -> Writer {
    Writer {
        manager: manager.into(),
        subresource: None,
    }
}

fn entries(obj: &Value) -> Vec<(String, String)> {
    obj["metadata"]["managedFields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let m = e["manager"].as_str().unwrap().to_string();
            (m, e["operation"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn a_create_records_every_field_as_the_creators_update() {
    let mut obj = job("a", json!({"app": "x"}));
    record_update(Kind::Job, None, &mut obj, &w("kubectl-create"));
    let mf = &obj["metadata"]["managedFields"][0];
    assert_eq!(mf["manager"], "kubectl-create");
    assert_eq!(mf["operation"], "Update");
    assert_eq!(mf["apiVersion"], "batch/v1");
    assert_eq!(
        mf["fieldsV1"],
        json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {"f:template": {"f:spec": {"f:containers": {
                "k:{\"name\":\"flow\"}": {".": {}, "f:image": {}, "f:name": {}}},
                "f:restartPolicy": {}}}}})
    );
}

#[test]
fn an_apply_conflicts_with_another_managers_field_until_forced() {
    let live = apply_as(None, &job("a", json!({"app": "x"})), "kubectl").unwrap();
    assert_eq!(
        entries(&live),
        [("kubectl".to_string(), "Apply".to_string())]
    );
    let err = apply_as(Some(&live), &job("b", json!({"app": "x"})), "other").unwrap_err();
    assert_eq!(err.code, 409);
    assert_eq!(
        err.message,
        r#"Apply failed with 1 conflict: conflict with "kubectl": .spec.template.spec.containers[name="flow"].image"#
    );
    let forced = apply_forced(Some(&live), &job("b", json!({"app": "x"})), "other").unwrap();
    assert_eq!(
        forced["spec"]["template"]["spec"]["containers"][0]["image"],
        "b"
    );
    let kubectl = Entry::from_json(&forced["metadata"]["managedFields"][0]).unwrap();
    assert_eq!(kubectl.manager, "kubectl");
    let image = [
        set::Pe::Field("spec".into()),
        set::Pe::Field("template".into()),
        set::Pe::Field("spec".into()),
        set::Pe::Field("containers".into()),
        set::Pe::Key(r#"{"name":"flow"}"#.into()),
        set::Pe::Field("image".into()),
    ];
    assert!(
        !kubectl.set.paths().contains(&image.to_vec()),
        "the forced field moved"
    );
}

#[test]
fn the_same_value_is_shared_and_an_update_takes_fields_without_conflict() {
    let live = apply_as(None, &job("a", json!({"app": "x"})), "one").unwrap();
    let shared = apply_as(Some(&live), &job("a", json!({"app": "x"})), "two").unwrap();
    assert_eq!(entries(&shared).len(), 2);
    let mut labelled = shared.clone();
    labelled["metadata"]["labels"]["app"] = json!("y");
    record_update(Kind::Job, Some(&shared), &mut labelled, &w("kubectl-label"));
    let err = apply_as(Some(&labelled), &job("a", json!({"app": "x"})), "one").unwrap_err();
    assert!(
        err.message
            .contains(r#"conflict with "kubectl-label" using batch/v1: .metadata.labels.app"#),
        "{}",
        err.message
    );
}

#[test]
fn fields_an_applier_stops_naming_are_removed_unless_another_owns_them() {
    let live = apply_as(None, &job("a", json!({"app": "x", "tier": "t"})), "me").unwrap();
    let mut other = live.clone();
    other["metadata"]["labels"]["keep"] = json!("k");
    record_update(Kind::Job, Some(&live), &mut other, &w("editor"));
    let next = apply_as(Some(&other), &job("a", json!({"app": "x"})), "me").unwrap();
    assert_eq!(next["metadata"]["labels"], json!({"app": "x", "keep": "k"}));
}

#[test]
fn keyed_items_merge_by_key_in_the_configurations_place() {
    let mut live = job("a", json!({}));
    live["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "a", "image": "1"}, {"name": "c", "image": "3"}]);
    let mut config = job("a", json!({}));
    config["spec"]["template"]["spec"]["containers"] = json!([{"name": "a", "image": "1"}, {"name": "b", "image": "2"}, {"name": "c", "image": "3"}]);
    let merged = apply_as(Some(&live), &config, "me").unwrap();
    let names: Vec<&str> = merged["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn managed_fields_a_request_carries_replace_the_live_ones() {
    let mut live = job("a", json!({"app": "x"}));
    record_update(Kind::Job, None, &mut live, &w("kubectl-client-side-apply"));
    let mut renamed = live.clone();
    renamed["metadata"]["managedFields"][0]["manager"] = json!("kubectl");
    renamed["metadata"]["managedFields"][0]["operation"] = json!("Apply");
    record_update(Kind::Job, Some(&live), &mut renamed, &w("kubectl-patch"));
    assert_eq!(
        entries(&renamed),
        [("kubectl".to_string(), "Apply".to_string())]
    );
    let again = apply_as(Some(&renamed), &job("a", json!({"app": "x"})), "kubectl");
    assert!(again.is_ok(), "the renamed applier owns its fields");
}

#[test]
fn an_undeclared_field_is_named_by_its_keyed_path() {
    let sc = Schema::of(Kind::Job).unwrap();
    let mut config = job("a", json!({}));
    config["spec"]["template"]["spec"]["containers"][0]["comand"] = json!(["x"]);
    assert_eq!(
        walk::first_undeclared(&sc, &config).as_deref(),
        Some(r#".spec.template.spec.containers[name="flow"].comand"#)
    );
    assert_eq!(
        walk::first_undeclared(&sc, &job("a", json!({"free": "x"}))),
        None
    );
}

#[test]
fn a_no_op_apply_keeps_the_time_and_a_new_applier_of_the_same_values_has_none() {
    let mut live = apply_as(None, &job("a", json!({"app": "x"})), "one").unwrap();
    live["metadata"]["managedFields"][0]["time"] = json!("2020-01-01T00:00:00Z");
    let again = apply_as(Some(&live), &job("a", json!({"app": "x"})), "one").unwrap();
    assert_eq!(
        again["metadata"]["managedFields"][0]["time"],
        "2020-01-01T00:00:00Z"
    );
    let shared = apply_as(Some(&again), &job("a", json!({"app": "x"})), "two").unwrap();
    let first = &shared["metadata"]["managedFields"][0];
    assert_eq!(
        (first["manager"].as_str(), first.get("time")),
        (Some("two"), None)
    );
}
