//! `localcluster`: run the local Kubernetes API emulator in the foreground until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;

use localcluster::{LocalCluster, Options};

const USAGE: &str =
    "usage: localcluster [--port N] [--work-dir DIR] [--concurrency N] [--token TOKEN] [--no-kubelet]";

fn parse_args() -> Result<Options, String> {
    let mut opts = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_string(), Some(v.to_string())),
            None => (arg.clone(), None),
        };
        let mut value = |name: &str| {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or(format!("{name} needs a value"))
        };
        match flag.as_str() {
            "--port" => {
                opts.port = value("--port")?
                    .parse()
                    .map_err(|_| "--port must be a number".to_string())?
            }
            "--work-dir" => opts.work_dir = Some(PathBuf::from(value("--work-dir")?)),
            "--concurrency" => {
                opts.concurrency = value("--concurrency")?
                    .parse()
                    .map_err(|_| "--concurrency must be a number".to_string())?
            }
            "--token" => opts.token = Some(value("--token")?),
            // Pods wait for another node agent (kjenv-kubelet) instead.
            "--no-kubelet" => opts.kubelet = false,
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("localcluster: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let mut cluster = match LocalCluster::start(opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("localcluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("kubeconfig: {}", cluster.kubeconfig_path().display());
    println!("url: {}", cluster.url());
    println!("export KUBECONFIG={}", cluster.kubeconfig_path().display());
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("localcluster: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    });
    eprintln!("localcluster: stopping");
    cluster.stop();
    ExitCode::SUCCESS
}
