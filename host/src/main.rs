//! `promwasm`: wires the command line, the component, the metrics registry
//! and the listeners together.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing_subscriber::EnvFilter;

use promwasm::app::MetricOptions;
use promwasm::component::{Component, Source};
use promwasm::config::{Cli, LogFormat};
use promwasm::pipeline::{Pipeline, Role};
use promwasm::registry::Families;
use promwasm::runtime::Runtime;
use promwasm::server;
use promwasm::tls::Tls;
use promwasm::web::Web;

/// The static (musl) build's allocator: musl's own is slow under many
/// small allocations from several threads.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = match Cli::load() {
        Ok(cli) => cli,
        Err(e) => {
            eprintln!("promwasm: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("PROMWASM_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match cli.log_format {
        // Colour codes only for a terminal, not for a file or a pipe.
        LogFormat::Text => logs.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => logs.json().init(),
    }
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
    let mut signals = Signals::install()?;
    let (reset, why) = cli.memory_reset();
    tracing::info!(reset = ?reset, "instance memory reset: {why}");
    let source = Source {
        runtime: Runtime::new(cli.limits(), cli.cache().as_ref(), reset)?,
        options: MetricOptions {
            default_metrics: !cli.no_default_metrics,
            series: cli.series_limits(),
        },
        metrics_path: cli.main_metrics_path(),
        components: cli.components()?,
    };
    let families = Families::with_options(cli.http_options()?, &cli.const_label);
    let web = (cli.web_config_file.as_deref())
        .map(|file| Web::load(file, &families).map(Arc::new))
        .transpose()?;
    let mounted = source.load_all(&families).await?;
    let pipeline = Pipeline::mounted(families, cli.client_limits(), mounted)?
        .scraping(cli.scrape_options())?
        .with_web(web.clone());
    let pipeline = Arc::new(pipeline);

    let (stop, stopped) = watch::channel(false);
    let tls = web.as_ref().and_then(|web| web.tls());
    let mut listeners = listen(&cli, &pipeline, tls, stopped).await?;
    tracing::info!(
        "capabilities granted to the guest: none (no filesystem, network, environment variables or arguments; outbound HTTP requests are refused)"
    );
    tracing::info!(limits = ?cli.limits(), client = ?cli.client_limits(), series = ?cli.series_limits(), "limits");

    promwasm::runtime::watch_swap(reset);
    signals
        .serve_until_stopped(&source, &pipeline, web.as_deref())
        .await;
    tracing::info!(drain_timeout = ?cli.drain_timeout(), "stopping: no new connections, draining requests in flight");
    let _ = stop.send(true);
    while listeners.join_next().await.is_some() {}
    tracing::info!("stopped");
    Ok(())
}

/// Binds the listeners, announces them on stdout (with the real port when
/// port 0 was asked) and starts serving on them until `stopped` changes.
/// `tls` (the web config's) goes on the listener that serves the metrics.
async fn listen(
    cli: &Cli,
    pipeline: &Arc<Pipeline<Component>>,
    tls: Option<Arc<Tls>>,
    stopped: watch::Receiver<bool>,
) -> Result<JoinSet<()>> {
    let main_listener = server::bind(cli.listen).await?;
    let metrics_listener = match cli.metrics_listen {
        Some(addr) => Some(server::bind(addr).await?),
        None => None,
    };
    // The TLS goes where the metrics are served, and on the main listener
    // with --web-config-main.
    let (main_tls, metrics_tls) = match metrics_listener {
        None => (tls, None),
        Some(_) if cli.web_config_main => (tls.clone(), tls),
        Some(_) => (None, tls),
    };
    let scheme = |tls: &Option<Arc<Tls>>| if tls.is_some() { "https" } else { "http" };
    let main_addr = main_listener.local_addr()?;
    println!("listening on {}://{main_addr}", scheme(&main_tls));
    if let Some(listener) = &metrics_listener {
        let addr = listener.local_addr()?;
        println!(
            "metrics on {}://{addr}{}",
            scheme(&metrics_tls),
            cli.metrics_path
        );
    }
    let mut tasks = JoinSet::new();
    let role = Role::Main {
        serves_metrics: metrics_listener.is_none(),
    };
    let drain = cli.drain_timeout();
    tasks.spawn(server::serve(
        pipeline.clone(),
        main_listener,
        role,
        main_tls,
        stopped.clone(),
        drain,
    ));
    if let Some(listener) = metrics_listener {
        tasks.spawn(server::serve(
            pipeline.clone(),
            listener,
            Role::Metrics,
            metrics_tls,
            stopped,
            drain,
        ));
    }
    Ok(tasks)
}

/// The signals promwasm answers: SIGHUP reloads, SIGTERM and SIGINT stop.
struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

impl Signals {
    fn install() -> Result<Signals> {
        Ok(Signals {
            hangup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
            terminate: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            interrupt: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// Reloads the web config and the components at each SIGHUP until
    /// SIGTERM or SIGINT; a stop during a reload abandons the reload.
    async fn serve_until_stopped(
        &mut self,
        source: &Source,
        pipeline: &Pipeline<Component>,
        web: Option<&Web>,
    ) {
        loop {
            tokio::select! {
                _ = self.hangup.recv() => {}
                _ = self.terminate.recv() => return,
                _ = self.interrupt.recv() => return,
            }
            if let Some(web) = web {
                web.reload();
            }
            tokio::select! {
                () = source.reload(pipeline) => {}
                _ = self.terminate.recv() => return,
                _ = self.interrupt.recv() => return,
            }
        }
    }
}
