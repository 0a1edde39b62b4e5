//! Fuzz target `spec`: load a Job spec from arbitrary bytes, then render it with options chosen by
//! the input, and check what every successful load and render promises.
#![no_main]

use kjenv::context::{self, Candidates, CloudSettings};
use kjenv::naming::MAX_JOB_NAME;
use kjenv::secret::SecretString;
use kjenv::transform::{self, RenderOptions, ENV_NAMES};
use kjenv::{spec, Error};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// Values an option may take: absent, valid, and invalid ones (the resolver must refuse those).
const CHOICES: [Option<&str>; 8] = [
    None,
    Some(""),
    Some("default"),
    Some("team-a"),
    Some("Bad_Name"),
    Some(" padded "),
    Some("a.b"),
    Some("0123456789012345678901234567890123456789012345678901234567890123456789"),
];

fn choice(bits: u8) -> Option<String> {
    CHOICES[usize::from(bits) % CHOICES.len()].map(str::to_owned)
}

/// Every error of the spec loader is a one-line, bounded `JobSpec` error.
fn check_spec_error(err: &Error) {
    assert!(
        matches!(err, Error::JobSpec { .. }),
        "not a JobSpec error: {err:?}"
    );
    let text = err.to_string();
    assert!(!text.contains('\n'), "multi-line message: {text:?}");
    assert!(text.len() <= 2048, "message of {} bytes", text.len());
}

fn check_rendered(job: &Value, image: &str, flow_run_id: &str, identifier: &str, unique: bool) {
    assert_eq!(job["kind"], "Job");
    assert_eq!(job["apiVersion"], "batch/v1");
    for labels in [
        &job["metadata"]["labels"],
        &job["spec"]["template"]["metadata"]["labels"],
    ] {
        assert_eq!(labels["identifier"], identifier);
        assert_eq!(labels["flow_run_id"], flow_run_id);
    }
    let pod = &job["spec"]["template"]["spec"];
    assert!(pod["restartPolicy"].as_str().is_some_and(|p| !p.is_empty()));
    let first = &pod["containers"][0];
    assert_eq!(first["image"], image);
    assert_eq!(first["command"][0], "/bin/sh");
    let env = first["env"].as_array().expect("env is a list");
    for name in ENV_NAMES {
        let n = env.iter().filter(|e| e["name"] == name).count();
        assert_eq!(n, 1, "{name} appears {n} times");
    }
    if unique {
        let name = job["metadata"]["name"]
            .as_str()
            .expect("a unique job has a name");
        assert!(name.len() <= MAX_JOB_NAME, "unique name too long: {name}");
    }
}

fuzz_target!(|data: &[u8]| {
    // The last byte picks the options, so plain YAML files make good seeds.
    let flags = data.last().copied().unwrap_or(0);
    let text = String::from_utf8_lossy(data);
    let loaded = match spec::from_yaml(&text, None) {
        Ok(v) => v,
        Err(e) => return check_spec_error(&e),
    };
    // A loaded spec is a Job and passes the dict loader too (the two loaders agree).
    assert_eq!(loaded["kind"], "Job");
    assert_eq!(loaded["apiVersion"], "batch/v1");
    let again = spec::from_value(loaded.clone()).expect("from_value accepts what from_yaml gave");
    assert_eq!(again, loaded);

    let candidates = Candidates {
        image: Some("registry.example/flows:1".into()).filter(|_| flags & 0x80 == 0),
        namespace: choice(flags >> 4),
        flow_run_id: choice(flags >> 1).filter(|_| flags & 0x40 != 0),
        spec_namespace: loaded
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..Candidates::default()
    };
    let values = match context::resolve(&candidates, &|_| None) {
        Ok(v) => v,
        Err(e) => {
            assert!(
                matches!(e, Error::MissingValue(_) | Error::InvalidArgument(_)),
                "{e:?}"
            );
            assert!(!e.to_string().contains('\n'));
            return;
        }
    };
    let cloud = CloudSettings {
        graphql: "https://api.prefect.io".into(),
        auth_token: SecretString::new(if flags & 2 != 0 { "token" } else { "" }),
        backend: if flags & 4 != 0 { "server" } else { "cloud" }.into(),
        ..CloudSettings::default()
    };
    let unique = flags & 1 != 0;
    let identifier = "3b6a1e0c-2f4d-4c56-9a8b-0123456789ab";
    let rendered = transform::render(
        &loaded,
        &RenderOptions {
            identifier,
            values: &values,
            cloud: &cloud,
            unique_job_name: unique,
            storage: None,
        },
    );
    check_rendered(
        &rendered.job,
        &values.image,
        &values.flow_run_id,
        identifier,
        unique,
    );

    // `kjenv render -o yaml` output loads again, unchanged.
    let yaml = spec::to_yaml(&rendered.job).expect("a rendered Job writes as YAML");
    let reloaded = spec::from_yaml(&yaml, None)
        .unwrap_or_else(|e| panic!("rendered YAML does not load: {e}\n{yaml}"));
    assert_eq!(
        reloaded, rendered.job,
        "YAML round trip changed the Job:\n{yaml}"
    );
});
