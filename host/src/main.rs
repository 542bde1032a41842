//! `promwasm`: wires the command line, the component, the metrics registry
//! and the listeners together.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

use arc_swap::ArcSwap;
use promwasm::EXAMPLE_COMPONENT;
use promwasm::app::{Loaded, MetricOptions};
use promwasm::config::Cli;
use promwasm::families::Families;
use promwasm::runtime::Runtime;
use promwasm::server::{self, Role, Server};

fn main() -> ExitCode {
    let cli = match Cli::load() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("promwasm: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("PROMWASM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("promwasm: starting the tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("promwasm: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    // Before anything is announced: a signal that arrives while its default
    // action still holds would end the process.
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let (bytes, origin) = match &cli.component {
        Some(path) => (
            std::fs::read(path)
                .with_context(|| format!("cannot read component {}", path.display()))?,
            path.clone(),
        ),
        None => (
            EXAMPLE_COMPONENT.to_vec(),
            PathBuf::from("<built-in example component>"),
        ),
    };
    let limits = cli.limits();
    let runtime = Runtime::new(limits, cli.cache_dir.clone())?;
    let families = Families::new();
    let options = MetricOptions {
        default_metrics: !cli.no_default_metrics,
        series: cli.series_limits(),
    };
    let loaded = Loaded::load(&runtime, &families, &bytes, &origin, options).await?;

    let main_listener = server::bind(cli.listen).await?;
    let metrics_listener = match cli.metrics_listen {
        Some(addr) => Some(server::bind(addr).await?),
        None => None,
    };
    println!("listening on http://{}", main_listener.local_addr()?);
    if let Some(listener) = &metrics_listener {
        println!("metrics on http://{}/metrics", listener.local_addr()?);
    }
    tracing::info!(
        "capabilities granted to the guest: none (no filesystem, network, environment variables or arguments)"
    );
    tracing::info!(
        request_timeout = ?cli.request_timeout,
        max_memory = cli.max_memory,
        max_body = cli.max_body,
        max_response_body = cli.max_response_body,
        max_instances = cli.max_instances,
        instance_reuse = cli.instance_reuse,
        series_cap = cli.series_cap,
        max_label_value_bytes = cli.max_label_value_bytes,
        body_read_timeout = ?cli.body_read_timeout,
        "limits"
    );

    let server = Arc::new(Server {
        runtime,
        families,
        current: ArcSwap::from_pointee(loaded),
        component_file: cli.component.clone(),
        options,
        limits: cli.client_limits(),
    });
    let (stop, stopped) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(server::serve(
        server.clone(),
        main_listener,
        Role::Main {
            serves_metrics: metrics_listener.is_none(),
        },
        stopped.clone(),
        cli.drain_timeout,
    ));
    if let Some(listener) = metrics_listener {
        tasks.spawn(server::serve(
            server.clone(),
            listener,
            Role::Metrics,
            stopped,
            cli.drain_timeout,
        ));
    }

    let reloader = server.clone();
    let reloads = tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            reloader.reload().await;
        }
    });

    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    reloads.abort();
    tracing::info!(drain_timeout = ?cli.drain_timeout, "stopping: no new connections, draining requests in flight");
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}
