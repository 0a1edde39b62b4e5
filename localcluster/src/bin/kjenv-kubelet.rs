//! `kjenv-kubelet`: the process kubelet as the node agent of a Kubernetes API server (see
//! `localcluster::kubelet::agent`).

use std::process::ExitCode;

use localcluster::kubelet::agent::{self, USAGE};
use tokio_util::sync::CancellationToken;

fn main() -> ExitCode {
    // Die with the parent (the supervisor that started us): SIGTERM, which the signal
    // handler turns into a clean stop that kills every container.
    // SAFETY: plain syscalls before any thread exists.
    let parent = unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        libc::getppid()
    };
    let opts = match agent::parse_args(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("kjenv-kubelet: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .worker_threads(2)
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kjenv-kubelet: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        let stop = CancellationToken::new();
        if let Err(e) = agent::stop_on_exit_signals(stop.clone(), parent) {
            eprintln!("kjenv-kubelet: cannot install signal handlers: {e}");
            return false;
        }
        match agent::run(opts, stop).await {
            Ok(()) => true,
            Err(e) => {
                let mut msg = e.to_string();
                let mut source = std::error::Error::source(&e);
                while let Some(s) = source {
                    msg.push_str(&format!(": {s}"));
                    source = s.source();
                }
                eprintln!("kjenv-kubelet: {msg}");
                false
            }
        }
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    if result {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
