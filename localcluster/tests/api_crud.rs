//! Jobs through kube-rs over real HTTPS: discovery, CRUD, Status errors, generateName, dryRun,
//! selectors, delete propagation.

mod support;

use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::discovery::Discovery;
use kube::ResourceExt;
use serde_json::json;

fn api_err(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test]
async fn discovery_and_version() {
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let v = client.apiserver_version().await.unwrap();
    assert_eq!(v.git_version, "v1.33.0");
    let d = Discovery::new(client.clone()).run().await.unwrap();
    let batch = d.get("batch").expect("batch group");
    assert!(batch
        .recommended_resources()
        .iter()
        .any(|(r, _)| r.plural == "jobs"));
    let core = d.get("").expect("core group");
    assert!(core
        .recommended_resources()
        .iter()
        .any(|(r, _)| r.plural == "pods"));
    let nss: Api<Namespace> = Api::all(client);
    let names: Vec<String> = nss
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .map(|n| n.name_any())
        .collect();
    assert!(names.contains(&"default".into()) && names.contains(&"kube-system".into()));
}

#[tokio::test]
async fn job_crud_and_errors() {
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");

    let created = jobs
        .create(&PostParams::default(), &support::sample_job("pi"))
        .await
        .unwrap();
    let uid = created.uid().unwrap();
    let spec = created.spec.as_ref().unwrap();
    assert_eq!(spec.backoff_limit, Some(6));
    assert_eq!(spec.completions, Some(1));
    assert_eq!(created.labels()["app"], "test");
    let tl = spec
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .as_ref()
        .unwrap();
    assert_eq!(tl["batch.kubernetes.io/controller-uid"], uid);
    assert_eq!(tl["job-name"], "pi");
    assert_eq!(created.metadata.generation, Some(1));

    let (code, reason, msg) = api_err(
        jobs.create(&PostParams::default(), &support::sample_job("pi"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, reason.as_str(), msg.as_str()),
        (409, "AlreadyExists", "jobs.batch \"pi\" already exists")
    );
    let (code, reason, msg) = api_err(jobs.get("nope").await.unwrap_err());
    assert_eq!(
        (code, reason.as_str(), msg.as_str()),
        (404, "NotFound", "jobs.batch \"nope\" not found")
    );

    // Replace with a stale resourceVersion → 409 Conflict.
    let mut stale = created.clone();
    // The controller writes the Job's status concurrently: like any client, retry a
    // read-modify-write that loses the race.
    let mut attempt = 0;
    let fresh = loop {
        let mut current = jobs.get("pi").await.unwrap();
        current.labels_mut().insert("x".into(), "1".into());
        match jobs.replace("pi", &PostParams::default(), &current).await {
            Ok(job) => break job,
            Err(kube::Error::Api(s)) if s.code == 409 && attempt < 10 => attempt += 1,
            Err(e) => panic!("replace failed: {e}"),
        }
    };
    assert_eq!(fresh.labels()["x"], "1");
    stale.labels_mut().insert("x".into(), "2".into());
    let (code, reason, msg) = api_err(
        jobs.replace("pi", &PostParams::default(), &stale)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (409, "Conflict"));
    assert!(msg.starts_with(
        "Operation cannot be fulfilled on jobs.batch \"pi\": the object has been modified"
    ));

    // Patches.
    let p = jobs
        .patch(
            "pi",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"m": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(p.labels()["m"], "1");
    let p = jobs
        .patch(
            "pi",
            &PatchParams::default(),
            &Patch::Strategic(json!({"metadata": {"labels": {"s": "1"}}})),
        )
        .await
        .unwrap();
    assert_eq!(p.labels()["s"], "1");
    let p: Job = jobs
        .patch(
            "pi",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(
                    json!([{"op": "add", "path": "/metadata/annotations", "value": {"a": "b"}}]),
                )
                .unwrap(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(p.annotations()["a"], "b");
    // Template is immutable.
    let (code, reason, msg) = api_err(
        jobs.patch(
            "pi",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"template": {"spec": {"activeDeadlineSeconds": 5}}}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert!(msg.contains("field is immutable"), "{msg}");

    // Status subresource.
    let st = jobs
        .patch_status(
            "pi",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"active": 1}})),
        )
        .await
        .unwrap();
    assert_eq!(st.status.unwrap().active, Some(1));

    // Delete: Background → Success Status.
    let res = jobs
        .delete("pi", &DeleteParams::background())
        .await
        .unwrap();
    assert!(res.is_right(), "a removed Job answers a Status");
    assert_eq!(api_err(jobs.get("pi").await.unwrap_err()).0, 404);
}

#[tokio::test]
async fn validation_generate_name_and_dry_run() {
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");

    let mut bad = support::sample_job("bad");
    bad.spec
        .as_mut()
        .unwrap()
        .template
        .spec
        .as_mut()
        .unwrap()
        .restart_policy = Some("Always".into());
    let (code, reason, msg) = api_err(jobs.create(&PostParams::default(), &bad).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (422, "Invalid"));
    assert_eq!(
        msg,
        "Job.batch \"bad\" is invalid: spec.template.spec.restartPolicy: Required value: valid values: \"OnFailure\", \"Never\""
    );

    let mut gen = support::sample_job("");
    gen.metadata.name = None;
    gen.metadata.generate_name = Some("gen-".into());
    let g = jobs.create(&PostParams::default(), &gen).await.unwrap();
    let name = g.name_any();
    assert!(name.starts_with("gen-") && name.len() == 9, "{name}");

    let mut none = support::sample_job("");
    none.metadata.name = None;
    let (code, _, msg) = api_err(
        jobs.create(&PostParams::default(), &none)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 422);
    assert!(
        msg.contains("metadata.name: Required value: name or generateName is required"),
        "{msg}"
    );

    let dry = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let d = jobs
        .create(&dry, &support::sample_job("dry"))
        .await
        .unwrap();
    assert!(d.uid().is_some());
    assert_eq!(api_err(jobs.get("dry").await.unwrap_err()).0, 404);

    let other: Api<Job> = Api::namespaced(client.clone(), "missing");
    let (code, _, msg) = api_err(
        other
            .create(&PostParams::default(), &support::sample_job("x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, msg.as_str()),
        (404, "namespaces \"missing\" not found")
    );
}

#[tokio::test]
async fn selectors_filter_lists() {
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    for (n, tier) in [("a", "web"), ("b", "db"), ("c", "web")] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": n, "labels": {"tier": tier}}}))
                .unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    let web = cms
        .list(&ListParams::default().labels("tier=web"))
        .await
        .unwrap();
    assert_eq!(web.items.len(), 2);
    assert!(web.metadata.resource_version.is_some());
    let notin = cms
        .list(&ListParams::default().labels("tier notin (web)"))
        .await
        .unwrap();
    // Unlabelled objects match `notin` too: b and the namespace's kube-root-ca.crt.
    let mut names: Vec<String> = notin.items.iter().map(|c| c.name_any()).collect();
    names.sort();
    assert_eq!(names, ["b", "kube-root-ca.crt"]);
    let byname = cms
        .list(&ListParams::default().fields("metadata.name=b"))
        .await
        .unwrap();
    assert_eq!(byname.items[0].name_any(), "b");
    let (code, _, _) = api_err(
        cms.list(&ListParams::default().labels("tier in web"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
    let jobs: Api<Job> = Api::all(client.clone());
    let (code, _, msg) = api_err(
        jobs.list(&ListParams::default().fields("spec.foo=1"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 400);
    assert!(msg.contains("field label"), "{msg}");
    let pods: Api<Pod> = Api::all(client);
    assert!(pods
        .list(&ListParams::default().fields("status.phase=Running"))
        .await
        .unwrap()
        .items
        .is_empty());
}

#[tokio::test]
async fn delete_propagation_policies() {
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let jobs: Api<Job> = Api::namespaced(client.clone(), "default");
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");

    // A dependent owned by the job (a ConfigMap: the stub-free way to get a dependent the kubelet ignores).
    async fn owned(cms: &Api<ConfigMap>, name: &str, owner: &Job) {
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": name, "ownerReferences": [{
            "apiVersion": "batch/v1", "kind": "Job", "name": owner.name_any(), "uid": owner.uid().unwrap(),
            "controller": true, "blockOwnerDeletion": true}]}})).unwrap();
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }

    // Background: owner gone at once, dependent collected after.
    let j = jobs
        .create(&PostParams::default(), &support::sample_job("bg"))
        .await
        .unwrap();
    owned(&cms, "bg-dep", &j).await;
    assert!(jobs
        .delete("bg", &DeleteParams::background())
        .await
        .unwrap()
        .is_right());
    assert!(
        support::eventually(3, || async {
            cms.get_opt("bg-dep").await.unwrap().is_none()
        })
        .await
    );

    // Foreground: owner kept with the finalizer until dependents are gone.
    let j = jobs
        .create(&PostParams::default(), &support::sample_job("fg"))
        .await
        .unwrap();
    owned(&cms, "fg-dep", &j).await;
    let res = jobs
        .delete("fg", &DeleteParams::foreground())
        .await
        .unwrap();
    let left = res
        .left()
        .expect("a Job held by dependents is answered as it is");
    assert!(left
        .finalizers()
        .contains(&"foregroundDeletion".to_string()));
    assert!(support::eventually(3, || async { jobs.get_opt("fg").await.unwrap().is_none() }).await);
    assert!(cms.get_opt("fg-dep").await.unwrap().is_none());

    // Default for Jobs is Orphan: dependent kept, ownerReference stripped.
    let j = jobs
        .create(&PostParams::default(), &support::sample_job("or"))
        .await
        .unwrap();
    owned(&cms, "or-dep", &j).await;
    jobs.delete("or", &DeleteParams::default()).await.unwrap();
    assert!(support::eventually(3, || async { jobs.get_opt("or").await.unwrap().is_none() }).await);
    let dep = cms.get("or-dep").await.unwrap();
    assert!(dep.metadata.owner_references.unwrap_or_default().is_empty());

    // An explicit Orphan with no dependents at all: kube-apiserver still answers the Job held
    // by the `orphan` finalizer (kubectl delete --cascade=orphan), then the collector removes it.
    jobs.create(&PostParams::default(), &support::sample_job("or2"))
        .await
        .unwrap();
    let held = jobs
        .delete("or2", &DeleteParams::orphan())
        .await
        .unwrap()
        .left()
        .expect("an orphaning delete answers the object");
    assert!(held.finalizers().contains(&"orphan".to_string()));
    assert!(held.metadata.deletion_timestamp.is_some());
    assert!(
        support::eventually(3, || async { jobs.get_opt("or2").await.unwrap().is_none() }).await
    );

    // dryRun delete keeps the object.
    jobs.create(&PostParams::default(), &support::sample_job("keep"))
        .await
        .unwrap();
    let dp = DeleteParams {
        dry_run: true,
        ..DeleteParams::background()
    };
    jobs.delete("keep", &dp).await.unwrap();
    assert!(jobs.get_opt("keep").await.unwrap().is_some());
}

#[tokio::test]
async fn pods_binding_places_a_pod_once() {
    let lc = localcluster::LocalCluster::start(localcluster::Options {
        kubelet: false,
        ..localcluster::Options::default()
    })
    .expect("cluster starts");
    let pods: Api<Pod> = Api::namespaced(support::client(&lc).await, "default");
    let pod: Pod =
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": {"containers": [
        {"name": "c", "image": "busybox", "command": ["true"]}]}}))
        .expect("pod");
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create");
    let binding = json!({"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "p"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "n1"}});
    let pp = PostParams::default();
    let ok: serde_json::Value = pods
        .create_subresource("binding", "p", &pp, &binding)
        .await
        .expect("bind");
    assert_eq!(
        (ok["status"].as_str(), ok["code"].as_i64()),
        (Some("Success"), Some(201))
    );
    let p = pods.get("p").await.expect("get");
    assert_eq!(p.spec.and_then(|s| s.node_name).as_deref(), Some("n1"));
    let scheduled = p
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .map(|c| c.status);
    assert_eq!(scheduled.as_deref(), Some("True"));
    let again = pods
        .create_subresource::<_, serde_json::Value>("binding", "p", &pp, &binding)
        .await
        .expect_err("bound once");
    assert_eq!(
        api_err(again),
        (
            409,
            "Conflict".into(),
            "Operation cannot be fulfilled on pods/binding \"p\": pod p is already assigned to node \"n1\"".into()
        )
    );
}

#[tokio::test]
async fn qos_class_on_create_compares_quantities() {
    // `1` CPU is `1000m` and `1Gi` is `1024Mi`: the API once compared the strings (Burstable)
    // while the kubelet compared quantities (Guaranteed); now both use one `qos_class`.
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "qos"},
        "spec": {"nodeName": "elsewhere", "containers": [{"name": "a", "image": "x", "resources": {
            "limits": {"cpu": "1", "memory": "1Gi"},
            "requests": {"cpu": "1000m", "memory": "1024Mi"}}}]}
    }))
    .unwrap();
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    let qos = created.status.and_then(|s| s.qos_class);
    assert_eq!(qos.as_deref(), Some("Guaranteed"));
}

#[tokio::test]
async fn removing_the_last_label_leaves_no_labels_map() {
    // kubectl label configmap c env-: kube-apiserver omits the then empty map.
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let cm: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "lbl", "labels": {"env": "dev"}}}))
            .unwrap();
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let patch = json!({"metadata": {"labels": {"env": null}, "annotations": {}}});
    let out = cms
        .patch("lbl", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert!(out.metadata.labels.is_none(), "{:?}", out.metadata.labels);
    assert!(out.metadata.annotations.is_none());
}

#[tokio::test]
async fn every_namespace_has_kube_root_ca_crt() {
    // As kube-controller-manager's root-ca-cert-publisher: in the built-in namespaces, in a
    // new one, and back after a delete.
    let cluster = support::start();
    let client = support::client(&cluster).await;
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "rootca"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    for name in ["default", "rootca"] {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), name);
        assert!(
            support::eventually(3, || async {
                cms.get_opt("kube-root-ca.crt").await.unwrap().is_some()
            })
            .await,
            "{name}"
        );
    }
    let cms: Api<ConfigMap> = Api::namespaced(client, "rootca");
    let cm = cms.get("kube-root-ca.crt").await.unwrap();
    assert!(cm.data.unwrap()["ca.crt"].starts_with("-----BEGIN CERTIFICATE-----"));
    cms.delete("kube-root-ca.crt", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        support::eventually(3, || async {
            cms.get_opt("kube-root-ca.crt").await.unwrap().is_some()
        })
        .await
    );
}
