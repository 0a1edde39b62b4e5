//! Fuzz target `kubeconfig`: parse kubeconfig bytes, resolve a context (chosen by the input) into
//! a client configuration and build the client, as `execute` does before it connects.
#![no_main]

use kjenv::cluster::{parse_kubeconfig, resolve_kubeconfig};
use kjenv::spec::names;
use kjenv::Error;
use libfuzzer_sys::fuzz_target;

/// Every error is a one-line, bounded `ClusterConfig` error.
fn check_error(err: &Error) {
    assert!(matches!(err, Error::ClusterConfig { .. }), "{err:?}");
    let text = err.to_string();
    assert!(!text.contains('\n'), "multi-line message: {text:?}");
    assert!(text.len() <= 4096, "message of {} bytes", text.len());
}

fuzz_target!(|data: &[u8]| {
    let flags = data.last().copied().unwrap_or(0);
    let text = String::from_utf8_lossy(data);
    let kubeconfig = match parse_kubeconfig(&text, "fuzz.kubeconfig") {
        Ok(k) => k,
        Err(e) => return check_error(&e),
    };
    // No context (current-context), a context of the file, or one that is not there.
    let context = match flags % 4 {
        0 | 1 => None,
        2 => kubeconfig
            .contexts
            .get(usize::from(flags >> 2) % 4)
            .map(|c| c.name.clone()),
        _ => Some("not-there".to_string()),
    };
    let resolved =
        futures::executor::block_on(resolve_kubeconfig(kubeconfig, context.as_deref(), "fuzz"));
    let mut config = match resolved {
        Ok(c) => c,
        Err(e) => return check_error(&e),
    };
    assert!(names::dns_label(&config.default_namespace).is_ok());
    assert!(matches!(
        config.cluster_url.scheme_str(),
        Some("https" | "http")
    ));
    // Build the client as `cluster::connect` does, but never run a command or read a token file
    // that a fuzz input names; the system's roots are not reloaded for every input.
    config.auth_info.exec = None;
    config.auth_info.auth_provider = None;
    config.auth_info.token_file = None;
    if config.root_cert.is_some() || flags & 0x80 != 0 {
        // A runtime per client: the client's background task goes with it (one shared runtime
        // that is never driven would keep every input's task, and its memory).
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime");
        let _guard = rt.enter();
        let _ = kube::Client::try_from(config);
    }
});
