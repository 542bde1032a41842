//! Settings: command-line flags, then `PROMWASM_*` environment variables
//! (and the seed's `METRICS_PORT`), then a TOML file (`--config`), then the
//! defaults; the first that sets a value wins.
//!
//! One field list, [`Cli`], and one source of defaults, the `Default` of
//! the limits structs the settings fill in. The file layer is clap's own:
//! each key of the file becomes the default of the flag of the same name
//! (checked with that flag's own parser), so flags and environment
//! variables win over it without a second copy of the fields. (figment
//! would layer as well, but would need a serde copy of every field.)

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use clap::parser::ValueSource;
use clap::{ArgMatches, Command, CommandFactory, FromArgMatches, Parser, ValueEnum};

use crate::client_limits::ClientLimits;
use crate::component::{Spec, WasiHttpLabels};
use crate::guest_metrics::SeriesLimits;
use crate::http_metrics::{Exclusions, HttpOptions, LatencyBuckets, StatusPattern};
use crate::labels::{ComponentLabel, ConstLabel, check_const_labels};
use crate::mounts::{Mount, Mounts};
use crate::routes::PathTemplate;
use crate::runtime::{Limits, MemoryReset};
use crate::scrape::{DEFAULT_MAX_CONCURRENT_SCRAPES, MetricsPath, ScrapeOptions};

/// A time span on the command line: "10s", "500ms".
pub type Span = humantime::Duration;

/// Serves the HTTP routes of a WebAssembly component (the
/// promwasm:app/route-handler or the wasi:http/proxy world) and records
/// Prometheus metrics for every route at the host boundary.
#[derive(Debug, Clone, Parser)]
#[command(name = "promwasm", version, about)]
pub struct Cli {
    /// TOML file with any of these settings, keys named as the flags
    /// (`max-body = "2MiB"`); flags and environment variables win over it.
    #[arg(long, env = "PROMWASM_CONFIG")]
    pub config: Option<PathBuf>,

    /// Address the routes are served on (and `/metrics`, unless
    /// --metrics-listen is given). Port 0 picks a free port.
    #[arg(long, env = "PROMWASM_LISTEN", default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,

    /// Serve `/metrics` on this separate address instead; the main address
    /// then answers 404 for `/metrics`. `METRICS_PORT=N` in the environment
    /// is short for 0.0.0.0:N, as in the seed's gunicorn setup.
    #[arg(long, env = "PROMWASM_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,

    /// The component to serve: a promwasm:app/route-handler or a
    /// wasi:http/proxy component. Default: the example app built into this
    /// binary.
    #[arg(long, env = "PROMWASM_COMPONENT")]
    pub component: Option<PathBuf>,

    /// Prefix of the default families of a wasi:http component (`flask`
    /// gives `flask_http_request_total`); without it the names are bare. A
    /// route-handler component declares its own.
    #[arg(long, env = "PROMWASM_DEFAULT_PREFIX")]
    pub default_prefix: Option<String>,

    /// The config file's `[[route]]` tables: `path` label templates for a
    /// wasi:http component (`path = "/items/{id}"`, `track = false`).
    #[arg(skip)]
    pub routes: Vec<PathTemplate>,

    /// The config file's `[[component]]` tables: several components, each
    /// at its mount, with its own `component` label.
    #[arg(skip)]
    pub components: Vec<ComponentTable>,

    /// Time one request may spend in the guest before it is stopped and
    /// answered 504 ("10s", "500ms").
    #[arg(long, env = "PROMWASM_REQUEST_TIMEOUT", default_value_t = Limits::default().request_timeout.into())]
    pub request_timeout: Span,

    /// Linear memory one guest instance may grow to ("64MiB"); past it the
    /// guest's allocation fails and the request is answered 500.
    #[arg(long, env = "PROMWASM_MAX_MEMORY", default_value_t = Size(Limits::default().max_memory))]
    pub max_memory: Size,

    /// Largest request body accepted ("1MiB"); larger ones are answered 413.
    #[arg(long, env = "PROMWASM_MAX_BODY", default_value_t = Size(ClientLimits::default().max_body))]
    pub max_body: Size,

    /// Largest response body a guest may return ("8MiB"); a larger one is
    /// answered 500.
    #[arg(long, env = "PROMWASM_MAX_RESPONSE_BODY", default_value_t = Size(Limits::default().max_response_body))]
    pub max_response_body: Size,

    /// Largest request head (request line and headers) accepted ("64KiB",
    /// at least 8KiB); larger ones are answered 431.
    #[arg(long, env = "PROMWASM_MAX_HEADER_BYTES", default_value_t = Size(ClientLimits::default().max_header_bytes))]
    pub max_header_bytes: Size,

    /// Time a client has to send the request head before the connection is closed.
    #[arg(long, env = "PROMWASM_HEADER_READ_TIMEOUT", default_value_t = ClientLimits::default().header_read_timeout.into())]
    pub header_read_timeout: Span,

    /// Time a client has to send the request body, from the end of the head;
    /// past it the request is answered 408 and the connection closed.
    #[arg(long, env = "PROMWASM_BODY_READ_TIMEOUT", default_value_t = ClientLimits::default().body_read_timeout.into())]
    pub body_read_timeout: Span,

    /// Requests one guest instance may serve before it is dropped. 1 (the
    /// default) gives every request a fresh instance; above 1, guest globals
    /// and memory live across the requests an instance serves.
    #[arg(long, env = "PROMWASM_INSTANCE_REUSE", default_value_t = Limits::default().instance_reuse, value_parser = clap::value_parser!(u32).range(1..))]
    pub instance_reuse: u32,

    /// Guest instances alive at once; requests past it are answered 503.
    #[arg(long, env = "PROMWASM_MAX_INSTANCES", default_value_t = Limits::default().max_instances)]
    pub max_instances: u32,

    /// Series a guest-declared metric family may hold; updates past it go to
    /// one overflow series whose label values are `__overflow__`.
    #[arg(long, env = "PROMWASM_SERIES_CAP", default_value_t = SeriesLimits::default().cap)]
    pub series_cap: usize,

    /// Longest label value, in bytes, a guest metric update may create a
    /// series with; an update with a longer one goes to the overflow series.
    #[arg(long, env = "PROMWASM_MAX_LABEL_VALUE_BYTES", default_value_t = SeriesLimits::default().max_value_bytes)]
    pub max_label_value_bytes: usize,

    /// Do not record the default HTTP families (prometheus-flask-exporter's
    /// `export_defaults=False`).
    #[arg(long, env = "PROMWASM_NO_DEFAULT_METRICS")]
    pub no_default_metrics: bool,

    /// Upper bounds, in seconds, of the default latency histogram
    /// (`<prefix>_http_request_duration_seconds`), separated by commas;
    /// prometheus-flask-exporter's `buckets=`. Finite and strictly
    /// increasing; the default is prometheus-flask-exporter's.
    #[arg(
        long,
        env = "PROMWASM_LATENCY_BUCKETS",
        value_name = "SECONDS,...",
        default_value_t = LatencyBuckets::default()
    )]
    pub latency_buckets: LatencyBuckets,

    /// Do not gzip `/metrics`, even for a scraper that accepts it
    /// (promhttp's `DisableCompression`); by default a scrape that sends
    /// `Accept-Encoding: gzip`, as Prometheus does, gets it compressed.
    #[arg(long, env = "PROMWASM_NO_METRICS_GZIP")]
    pub no_metrics_gzip: bool,

    /// Also record request and response body sizes per route:
    /// `<prefix>_http_request_size_bytes` and
    /// `<prefix>_http_response_size_bytes` (promhttp's
    /// `InstrumentHandlerRequestSize` and `ResponseSize`).
    #[arg(long, env = "PROMWASM_SIZE_METRICS")]
    pub size_metrics: bool,

    /// The `status` label of the default families as its class (`2xx`,
    /// `4xx`, ...) rather than the code: fewer series.
    #[arg(long, env = "PROMWASM_STATUS_CLASSES")]
    pub status_classes: bool,

    /// Leave answers with this status (`404`) or class (`5xx`) out of the
    /// default families; repeatable, or separated by commas.
    #[arg(
        long,
        env = "PROMWASM_EXCLUDE_STATUS",
        value_name = "CODE|CLASS",
        value_delimiter = ','
    )]
    pub exclude_status: Vec<StatusPattern>,

    /// Leave requests whose whole path matches this regular expression
    /// (`/static/.*`) out of the default families (prometheus-flask-exporter's
    /// `excluded_paths`); repeatable.
    #[arg(long, env = "PROMWASM_EXCLUDE_PATH", value_name = "REGEX")]
    pub exclude_path: Vec<String>,

    /// A label every series the host exports carries (`region=eu`;
    /// prometheus-flask-exporter's `default_labels`); repeatable, or
    /// separated by commas (so a value holds no comma). A label of a host
    /// family is refused, and a component whose families have one is
    /// refused at load.
    #[arg(
        long,
        env = "PROMWASM_CONST_LABEL",
        value_name = "NAME=VALUE",
        value_delimiter = ','
    )]
    pub const_label: Vec<ConstLabel>,

    /// Where the metrics are served, on the main listener (unless
    /// --metrics-listen) or the metrics listener. A route or mount of a
    /// component that it would shadow on the main listener is refused.
    #[arg(long, env = "PROMWASM_METRICS_PATH", default_value_t = MetricsPath::default())]
    pub metrics_path: MetricsPath,

    /// Scrapes answered at once; past it a scrape is answered 503, counted
    /// in `promwasm_http_rejected_total{reason="too_many_scrapes"}`.
    #[arg(long, env = "PROMWASM_MAX_CONCURRENT_SCRAPES", default_value_t = DEFAULT_MAX_CONCURRENT_SCRAPES, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_scrapes: u32,

    /// Record promhttp's families about the metrics endpoint itself:
    /// `promhttp_metric_handler_requests_total{code}` and
    /// `promhttp_metric_handler_requests_in_flight`.
    #[arg(long, env = "PROMWASM_SCRAPE_METRICS")]
    pub scrape_metrics: bool,

    /// exporter-toolkit's web configuration YAML (the file other Prometheus
    /// exporters read): `tls_server_config` puts TLS on the listener that
    /// serves the metrics (--metrics-listen, else the main one),
    /// `basic_auth_users` (bcrypt hashes) guard the metrics endpoint, and
    /// `http_server_config.headers` go on its answers. Read again at SIGHUP.
    #[arg(long, env = "PROMWASM_WEB_CONFIG_FILE")]
    pub web_config_file: Option<PathBuf>,

    /// Put the web config's TLS on the main listener too, when
    /// --metrics-listen serves the metrics apart (basic auth stays the
    /// metrics endpoint's).
    #[arg(long, env = "PROMWASM_WEB_CONFIG_MAIN", requires = "web_config_file")]
    pub web_config_main: bool,

    /// Where compiled components are kept, so the next start skips
    /// compilation (seconds for a Python or JavaScript component). Entries
    /// are keyed by the component's sha256 and the wasmtime version and
    /// settings, and checked before use; the directory must be writable by
    /// this user only. Default: `promwasm` in the user's cache directory
    /// (`$XDG_CACHE_HOME`, else `~/.cache`).
    #[arg(long, env = "PROMWASM_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// How a fresh instance's memory is reset: `auto` resets only the pages
    /// the last instance touched when the kernel can scan for them and no
    /// swap is active (else as `prefix`); `prefix` resets the first 128 KiB
    /// and unmaps the rest, which is slower for large guests.
    #[arg(long, env = "PROMWASM_MEMORY_RESET", value_enum, default_value_t = ResetChoice::Auto)]
    pub memory_reset: ResetChoice,

    /// Compile every component at start and keep nothing on disk (wins over
    /// `--cache-dir`).
    #[arg(long, env = "PROMWASM_NO_CACHE")]
    pub no_cache: bool,

    /// Most bytes the cache directory may hold; past it the least recently
    /// used entries are removed.
    #[arg(long, env = "PROMWASM_CACHE_MAX_SIZE", default_value_t = Size(crate::cache::DEFAULT_MAX_SIZE))]
    pub cache_max_size: Size,

    /// On SIGTERM or SIGINT, time requests in flight get to finish.
    #[arg(long, env = "PROMWASM_DRAIN_TIMEOUT", default_value_t = crate::server::DEFAULT_DRAIN.into())]
    pub drain_timeout: Span,

    /// How log lines on stderr are written: `text` for people, `json` (one
    /// object per line) for systemd's journal, Kubernetes and log shippers.
    #[arg(long, env = "PROMWASM_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--memory-reset`: detected, or the conservative way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ResetChoice {
    Auto,
    Prefix,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// The smallest request-head limit hyper accepts (its initial read buffer).
const MIN_HEADER_BYTES: usize = 8 << 10;

impl Cli {
    /// Reads the settings from the command line, the environment and the
    /// `--config` file, in that order of precedence.
    pub fn load() -> Result<Cli> {
        Cli::load_from(std::env::args_os())
    }

    pub fn load_from<I, T>(args: I) -> Result<Cli>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut command = Cli::command();
        let mut matches = command.clone().get_matches_from(&args);
        let mut tables = Tables::default();
        if let Some(path) = matches.get_one::<PathBuf>("config").cloned() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            let invalid = || format!("config file {} is invalid", path.display());
            tables = Tables::read(&text).with_context(invalid)?;
            tables.resolve_files(&path);
            command = with_file_defaults(command, &text).with_context(invalid)?;
            matches = command.get_matches_from(&args);
        }
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.routes = tables.route;
        cli.components = tables.component;
        cli.check_components()?;
        check_const_labels(&cli.const_label)?;
        // clap's `requires` does not see the file's keys, which are defaults.
        anyhow::ensure!(
            !cli.web_config_main || cli.web_config_file.is_some(),
            "--web-config-main needs --web-config-file"
        );
        // hyper's read buffer cannot be smaller than its initial size.
        anyhow::ensure!(
            cli.max_header_bytes.0 >= MIN_HEADER_BYTES,
            "--max-header-bytes must be at least {MIN_HEADER_BYTES} bytes (8KiB), got {}",
            cli.max_header_bytes.0
        );
        cli.seed_metrics_port(&matches)?;
        Ok(cli)
    }

    /// The seed's `METRICS_PORT=N`, when nothing else set the metrics listener.
    fn seed_metrics_port(&mut self, matches: &ArgMatches) -> Result<()> {
        let unset = matches!(
            matches.value_source("metrics_listen"),
            None | Some(ValueSource::DefaultValue)
        );
        if unset && let Ok(port) = std::env::var("METRICS_PORT") {
            let port: u16 = port
                .parse()
                .with_context(|| format!("METRICS_PORT={port:?} is not a port number"))?;
            self.metrics_listen = Some(SocketAddr::from(([0, 0, 0, 0], port)));
        }
        Ok(())
    }

    /// `[[component]]` tables replace the single component's settings, and
    /// their names are label values, unique.
    fn check_components(&self) -> Result<()> {
        if self.components.is_empty() {
            return Ok(());
        }
        anyhow::ensure!(
            self.component.is_none() && self.default_prefix.is_none() && self.routes.is_empty(),
            "[[component]] tables name each component's file, default-prefix and routes: \
             --component, --default-prefix and [[route]] cannot be given with them"
        );
        let mut seen = std::collections::HashSet::new();
        for table in &self.components {
            let name = &table.name;
            let valid = !name.is_empty()
                && (name.bytes()).all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
            anyhow::ensure!(
                valid,
                "[[component]] name {name:?}: a name is the `component` label value, [a-z0-9_-]+"
            );
            anyhow::ensure!(
                seen.insert(name),
                "[[component]] name {name:?} is given twice"
            );
        }
        Ok(())
    }

    /// The components to serve: the `[[component]]` tables, or the one
    /// component of `--component` (or the built-in example) at every path.
    pub fn components(&self) -> Result<Vec<Spec>> {
        if self.components.is_empty() {
            let labels = WasiHttpLabels {
                default_prefix: self.default_prefix.clone(),
                routes: self.routes.clone(),
            };
            return Ok(vec![Spec::single(
                self.component.clone(),
                labels,
                self.limits(),
            )]);
        }
        let specs = (self.components.iter())
            .map(|table| {
                Ok(Spec {
                    name: ComponentLabel::named(&table.name),
                    file: Some(table.file.clone()),
                    mount: Mount::parse(&table.mount)
                        .with_context(|| format!("[[component]] {:?}", table.name))?,
                    wasi_http: WasiHttpLabels {
                        default_prefix: table.default_prefix.clone(),
                        routes: table.route.clone(),
                    },
                    limits: self.component_limits(table),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Mounts::new(
            specs
                .iter()
                .map(|s| (s.name.name().unwrap_or_default(), &s.mount)),
        )?;
        Ok(specs)
    }

    /// The limits of one `[[component]]`: the host's, lowered where the
    /// table says so.
    pub fn component_limits(&self, table: &ComponentTable) -> Limits {
        let host = self.limits();
        Limits {
            request_timeout: table.request_timeout.map_or(host.request_timeout, |t| *t),
            max_memory: table.max_memory.map_or(host.max_memory, |s| s.0),
            max_instances: table.max_instances.unwrap_or(host.max_instances),
            instance_reuse: table.instance_reuse.unwrap_or(host.instance_reuse),
            ..host
        }
    }

    /// Where the compiled cache is, and whether it was named (an unusable
    /// default is only worth a warning); none with `--no-cache`, or when
    /// there is no home directory to put it in.
    pub fn cache(&self) -> Option<crate::cache::Settings> {
        if self.no_cache {
            return None;
        }
        let (dir, named) = match &self.cache_dir {
            Some(dir) => (dir.clone(), true),
            None => (crate::cache::default_dir()?, false),
        };
        Some(crate::cache::Settings {
            dir,
            named,
            max_size: self.cache_max_size.0 as u64,
        })
    }

    /// The memory reset `--memory-reset` gives on this machine, and why.
    pub fn memory_reset(&self) -> (MemoryReset, &'static str) {
        match self.memory_reset {
            ResetChoice::Auto => MemoryReset::detect(),
            ResetChoice::Prefix => (MemoryReset::Prefix, "--memory-reset prefix"),
        }
    }

    /// The limits every guest call runs under.
    pub fn limits(&self) -> Limits {
        Limits {
            request_timeout: *self.request_timeout,
            max_memory: self.max_memory.0,
            max_instances: self.max_instances,
            max_response_body: self.max_response_body.0,
            instance_reuse: self.instance_reuse,
        }
    }

    /// The limits on what a client sends.
    pub fn client_limits(&self) -> ClientLimits {
        ClientLimits {
            max_body: self.max_body.0,
            header_read_timeout: *self.header_read_timeout,
            body_read_timeout: *self.body_read_timeout,
            max_header_bytes: self.max_header_bytes.0,
        }
    }

    /// What bounds each guest family's series.
    pub fn series_limits(&self) -> SeriesLimits {
        SeriesLimits {
            cap: self.series_cap,
            max_value_bytes: self.max_label_value_bytes,
        }
    }

    /// How the default families record.
    pub fn http_options(&self) -> Result<HttpOptions> {
        Ok(HttpOptions {
            latency_buckets: self.latency_buckets.clone(),
            sizes: self.size_metrics,
            status_classes: self.status_classes,
            exclude: Exclusions::new(self.exclude_status.clone(), &self.exclude_path)?,
        })
    }

    /// How the metrics endpoint answers.
    pub fn scrape_options(&self) -> ScrapeOptions {
        ScrapeOptions {
            path: self.metrics_path.clone(),
            gzip: !self.no_metrics_gzip,
            max_concurrent: self.max_concurrent_scrapes,
            self_metrics: self.scrape_metrics,
        }
    }

    /// The metrics path when the main listener serves the metrics.
    pub fn main_metrics_path(&self) -> Option<MetricsPath> {
        self.metrics_listen
            .is_none()
            .then(|| self.metrics_path.clone())
    }

    /// Time requests in flight get at a stop.
    pub fn drain_timeout(&self) -> Duration {
        *self.drain_timeout
    }
}

/// `command` with each key of the TOML file `text` as the default of the
/// flag of that name, each value checked by the flag's parser. An unknown
/// key or a bad value is refused with its line.
fn with_file_defaults(mut command: Command, text: &str) -> Result<Command> {
    type Spanned<T> = toml::Spanned<T>;
    let table: BTreeMap<Spanned<String>, Spanned<toml::Value>> = toml::from_str(text)?;
    for (key, value) in table {
        // The tables, read by [`Tables`]; `component = "file"` is the flag.
        let is_tables = key.get_ref() == ROUTES_KEY
            || (key.get_ref() == COMPONENTS_KEY && value.get_ref().is_array());
        if is_tables {
            continue;
        }
        let line = text[..key.span().start].matches('\n').count() + 1;
        let setting = (|| -> Result<(clap::Id, Vec<String>)> {
            let arg = (command.get_arguments())
                .find(|a| a.get_long() == Some(key.get_ref()) && a.get_id() != "config")
                .ok_or_else(|| anyhow!("unknown key; the keys are the flags of --help"))?;
            let values = file_values(arg, value.into_inner())?;
            // The flag alone, as the file gives it: its own parser checks
            // the value, and no environment variable stands in for it.
            let alone = arg.clone().env(None).default_values(values.clone());
            let shown = match &values[..] {
                [value] => format!("{value:?}"),
                values => format!("{values:?}"),
            };
            Command::new("promwasm")
                .no_binary_name(true)
                .arg(alone)
                .try_get_matches_from(Vec::<OsString>::new())
                .map_err(|e| match std::error::Error::source(&e) {
                    Some(cause) => anyhow!("{shown}: {cause}"),
                    None => {
                        let possible: Vec<String> = (arg.get_possible_values().iter())
                            .map(|v| v.get_name().to_string())
                            .collect();
                        anyhow!("{shown} is not one of {}", possible.join(", "))
                    }
                })?;
            Ok((arg.get_id().clone(), values))
        })();
        let (id, values) =
            setting.with_context(|| format!("line {line}: key `{}`", key.get_ref()))?;
        command = command.mut_arg(id, |arg| arg.default_values(values));
    }
    Ok(command)
}

/// The key of the `[[route]]` tables, a key that is not a flag.
const ROUTES_KEY: &str = "route";

/// The key of the `[[component]]` tables; as a string, the flag.
const COMPONENTS_KEY: &str = "component";

/// The tables of a config file; its other keys are the flags'.
#[derive(Debug, Default, serde::Deserialize)]
struct Tables {
    #[serde(default)]
    route: Vec<PathTemplate>,
    /// Read only when `component` is an array (see [`Tables::read`]).
    #[serde(default, skip)]
    component: Vec<ComponentTable>,
}

impl Tables {
    /// The tables of `text`, each error with its line.
    fn read(text: &str) -> Result<Tables> {
        #[derive(serde::Deserialize)]
        struct Components {
            component: Vec<ComponentTable>,
        }
        let raw: toml::Table = toml::from_str(text)?;
        let mut tables: Tables = toml::from_str(text)?;
        if raw.get(COMPONENTS_KEY).is_some_and(toml::Value::is_array) {
            tables.component = toml::from_str::<Components>(text)?.component;
        }
        Ok(tables)
    }

    /// A component file is found relative to the config file, as a Spin
    /// app's files are found relative to its spin.toml.
    fn resolve_files(&mut self, config: &std::path::Path) {
        let dir = config.parent().unwrap_or(std::path::Path::new(""));
        for table in &mut self.component {
            if table.file.is_relative() {
                table.file = dir.join(&table.file);
            }
        }
    }
}

/// A `[[component]]` table: one of several components, at its mount.
#[derive(Clone, Debug, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct ComponentTable {
    /// The `component` label value.
    pub name: String,
    /// The component file (relative to the config file).
    pub file: PathBuf,
    /// A literal path, or a prefix ending in `/...`.
    pub mount: String,
    /// For a wasi:http component: its default families' prefix.
    pub default_prefix: Option<String>,
    /// For a wasi:http component: its `path` label templates.
    #[serde(default)]
    pub route: Vec<PathTemplate>,
    #[serde(default, deserialize_with = "parsed")]
    pub max_memory: Option<Size>,
    #[serde(default, deserialize_with = "parsed")]
    pub request_timeout: Option<Span>,
    pub max_instances: Option<u32>,
    pub instance_reuse: Option<u32>,
}

/// A string parsed as the flag of the same name parses it.
fn parsed<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: FromStr,
    T::Err: fmt::Display,
{
    let text = <String as serde::Deserialize>::deserialize(d)?;
    text.parse()
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
}

/// A file's value as the flag's texts: for a repeatable flag, an array of
/// them (or one); for the others, one value (see [`file_value`]).
fn file_values(arg: &clap::Arg, value: toml::Value) -> Result<Vec<String>> {
    let repeatable = matches!(arg.get_action(), clap::ArgAction::Append);
    match value {
        toml::Value::Array(items) if repeatable => (items.into_iter())
            .map(|item| file_value(arg, item))
            .collect(),
        value => Ok(vec![file_value(arg, value)?]),
    }
}

/// A file's value as the flag's text, when its TOML type is the flag's: a
/// boolean for a switch, an integer for a count, a string for the rest (so
/// `component = true` is refused, not read as a file named "true").
fn file_value(arg: &clap::Arg, value: toml::Value) -> Result<String> {
    use std::any::TypeId;
    let parser = arg.get_value_parser();
    let switch = !arg.get_action().takes_values();
    let count =
        parser.type_id() == TypeId::of::<usize>() || parser.type_id() == TypeId::of::<u32>();
    Ok(match value {
        toml::Value::Boolean(b) if switch => b.to_string(),
        toml::Value::Integer(n) if count => n.to_string(),
        toml::Value::String(s) if !switch && !count => s,
        other => {
            let wanted = if switch {
                "true or false"
            } else if count {
                "a whole number"
            } else {
                "a string"
            };
            bail!("this key takes {wanted}, not a {}", other.type_str())
        }
    })
}

/// A byte size: a number with an optional binary unit (`KiB`, `MiB`,
/// `GiB`). Written here because the units are all it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub usize);

impl FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Size, String> {
        parse_size(text).map(Size)
    }
}

impl fmt::Display for Size {
    /// The largest unit that divides the size: "64MiB", "8KiB", "100".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        match [(30, "GiB"), (20, "MiB"), (10, "KiB")]
            .into_iter()
            .find(|(shift, _)| n != 0 && n.is_multiple_of(1 << shift))
        {
            Some((shift, unit)) => write!(f, "{}{unit}", n >> shift),
            None => write!(f, "{n}"),
        }
    }
}

fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| "not a size such as 65536, 64KiB or 16MiB".to_string())?;
    let scale: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?}: use B, KiB, MiB or GiB"
            ));
        }
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(64 << 10));
        assert_eq!(parse_size("16 MiB"), Ok(16 << 20));
        assert_eq!(
            parse_size("16MB"),
            Err("unknown size unit \"MB\": use B, KiB, MiB or GiB".to_string())
        );
        assert_eq!(
            parse_size("lots"),
            Err("not a size such as 65536, 64KiB or 16MiB".to_string())
        );
        for (size, shown) in [
            (64 << 20, "64MiB"),
            (8 << 10, "8KiB"),
            (1 << 30, "1GiB"),
            (100, "100"),
            (0, "0"),
        ] {
            assert_eq!(Size(size).to_string(), shown);
            assert_eq!(shown.parse(), Ok(Size(size)));
        }
    }

    fn write_config(text: &str) -> (tempfile_path::TempPath, String) {
        let path = tempfile_path::TempPath::new(text);
        let shown = path.0.display().to_string();
        (path, shown)
    }

    /// A config file removed on drop.
    mod tempfile_path {
        pub struct TempPath(pub std::path::PathBuf);
        impl TempPath {
            pub fn new(text: &str) -> Self {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let path = std::env::temp_dir().join(format!(
                    "promwasm-config-{}-{}.toml",
                    std::process::id(),
                    N.fetch_add(1, Ordering::Relaxed)
                ));
                std::fs::write(&path, text).unwrap();
                TempPath(path)
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let (_file, path) =
            write_config("max-body = \"2MiB\"\nseries-cap = 7\nrequest-timeout = \"250ms\"\n");
        let cli = Cli::load_from(["promwasm", "--config", &path, "--series-cap", "9"]).unwrap();
        assert_eq!(cli.max_body, Size(2 << 20));
        assert_eq!(cli.series_cap, 9);
        assert_eq!(*cli.request_timeout, Duration::from_millis(250));
        assert_eq!(cli.max_memory, Size(64 << 20));
    }

    #[test]
    fn a_file_sets_flags_and_enums() {
        let (_file, path) = write_config(
            "no-default-metrics = true
log-format = \"json\"
",
        );
        let cli = Cli::load_from(["promwasm", "--config", &path]).unwrap();
        assert!(cli.no_default_metrics);
        assert_eq!(cli.log_format, LogFormat::Json);
        let cli = Cli::load_from(["promwasm", "--config", &path, "--log-format", "text"]).unwrap();
        assert_eq!(cli.log_format, LogFormat::Text);
    }

    #[test]
    fn a_bad_file_names_the_file_line_and_key() {
        let refused = |text: &str| {
            let (_file, path) = write_config(text);
            let err = Cli::load_from(["promwasm", "--config", &path]).unwrap_err();
            let prefix = format!("config file {path} is invalid: ");
            let err = format!("{err:#}");
            err.strip_prefix(&prefix)
                .unwrap_or_else(|| panic!("{err}"))
                .to_string()
        };
        assert_eq!(
            refused("max-body = \"1MiB\"\nmax-bodies = 3\n"),
            "line 2: key `max-bodies`: unknown key; the keys are the flags of --help"
        );
        assert_eq!(
            refused("\n\nseries-cap = \"many\"\n"),
            "line 3: key `series-cap`: this key takes a whole number, not a string"
        );
        assert_eq!(
            refused("max-memory = \"lots\"\n"),
            "line 1: key `max-memory`: \"lots\": not a size such as 65536, 64KiB or 16MiB"
        );
        assert_eq!(
            refused("listen = [1]\n"),
            "line 1: key `listen`: this key takes a string, not a array"
        );
        assert_eq!(
            refused("component = true\n"),
            "line 1: key `component`: this key takes a string, not a boolean"
        );
        assert_eq!(
            refused("no-default-metrics = \"yes\"\n"),
            "line 1: key `no-default-metrics`: this key takes true or false, not a string"
        );
        assert_eq!(
            refused("log-format = \"jsn\"\n"),
            "line 1: key `log-format`: \"jsn\" is not one of text, json"
        );
        assert_eq!(
            refused("series-cap = -1\n"),
            "line 1: key `series-cap`: \"-1\": invalid digit found in string"
        );
        assert_eq!(
            refused("config = \"other.toml\"\n"),
            "line 1: key `config`: unknown key; the keys are the flags of --help"
        );
        assert!(
            refused("max-body = \n").starts_with("TOML parse error at line 1, column 12"),
            "{}",
            refused("max-body = \n")
        );
    }

    #[test]
    fn repeatable_flags_take_arrays_in_a_file() {
        let (_file, path) = write_config(
            "const-label = [\"region=eu\", \"team=web\"]\nexclude-status = [\"404\", \"5xx\"]\nexclude-path = \"/static/.*\"\n",
        );
        let cli = Cli::load_from(["promwasm", "--config", &path]).unwrap();
        let shown: Vec<String> = cli.const_label.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["region=eu", "team=web"]);
        let statuses: Vec<String> = cli.exclude_status.iter().map(ToString::to_string).collect();
        assert_eq!(statuses, ["404", "5xx"]);
        assert_eq!(cli.exclude_path, ["/static/.*"]);
        // A flag replaces the file's list.
        let cli = Cli::load_from(["promwasm", "--config", &path, "--const-label", "a=b"]).unwrap();
        assert_eq!(cli.const_label.len(), 1);
        let (_file, path) = write_config("const-label = [\"region=eu\", 3]\n");
        let err = format!(
            "{:#}",
            Cli::load_from(["promwasm", "--config", &path]).unwrap_err()
        );
        assert!(
            err.ends_with("line 1: key `const-label`: this key takes a string, not a integer"),
            "{err}"
        );
        let (_file, path) = write_config("web-config-main = true\n");
        let err = Cli::load_from(["promwasm", "--config", &path]).unwrap_err();
        assert_eq!(err.to_string(), "--web-config-main needs --web-config-file");
        let (_file, path) = write_config("const-label = [\"le=x\"]\n");
        let err = format!(
            "{:#}",
            Cli::load_from(["promwasm", "--config", &path]).unwrap_err()
        );
        assert!(
            err.ends_with(
                "line 1: key `const-label`: \"le=x\": label \"le\" is a label of the host's own families"
            ),
            "{err}"
        );
    }

    #[test]
    fn route_tables_are_label_templates() {
        let (_file, path) = write_config(
            "default-prefix = \"flask\"
[[route]]
path = \"/items/{id}\"
[[route]]
path = \"/healthz\"
track = false
",
        );
        let cli = Cli::load_from(["promwasm", "--config", &path]).unwrap();
        assert_eq!(cli.default_prefix.as_deref(), Some("flask"));
        let template = |path: &str, track| PathTemplate {
            path: path.to_string(),
            track,
        };
        assert_eq!(
            cli.routes,
            [template("/items/{id}", true), template("/healthz", false)]
        );
        let (_file, path) = write_config("[[route]]\npath = \"/a\"\nmethods = [\"GET\"]\n");
        let err = format!(
            "{:#}",
            Cli::load_from(["promwasm", "--config", &path]).unwrap_err()
        );
        assert!(
            err.contains("unknown field `methods`, expected `path` or `track`"),
            "{err}"
        );
        assert!(err.contains("line 3"), "{err}");
    }

    #[test]
    fn component_tables_are_read_with_their_limits() {
        let (_file, path) = write_config(
            "max-instances = 50
[[component]]
name = \"shop\"
file = \"shop.wasm\"
mount = \"/items/...\"
default-prefix = \"flask\"
request-timeout = \"250ms\"
max-memory = \"16MiB\"
instance-reuse = 3
[[component.route]]
path = \"/items/{id}\"
[[component]]
name = \"example\"
file = \"/abs/example.wasm\"
mount = \"/...\"
",
        );
        let cli = Cli::load_from(["promwasm", "--config", &path]).unwrap();
        let specs = cli.components().unwrap();
        let dir = std::path::Path::new(&path).parent().unwrap();
        let shown: Vec<_> = (specs.iter())
            .map(|s| {
                (
                    s.name.name().unwrap(),
                    s.file.clone().unwrap(),
                    s.mount.to_string(),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("shop", dir.join("shop.wasm"), "/items/...".to_string()),
                (
                    "example",
                    PathBuf::from("/abs/example.wasm"),
                    "/...".to_string()
                ),
            ]
        );
        let shop = &specs[0];
        assert_eq!(shop.wasi_http.default_prefix.as_deref(), Some("flask"));
        assert_eq!(shop.wasi_http.routes.len(), 1);
        let own = Limits {
            request_timeout: Duration::from_millis(250),
            max_memory: 16 << 20,
            max_instances: 50,
            instance_reuse: 3,
            ..Limits::default()
        };
        assert_eq!(shop.limits, own);
        assert_eq!(specs[1].limits, cli.limits());

        let (_file, path) = write_config(
            "[[component]]\nname = \"a\"\nfile = \"a.wasm\"\nmount = \"/...\"\nmax-body = \"1MiB\"\n",
        );
        let err = format!(
            "{:#}",
            Cli::load_from(["promwasm", "--config", &path]).unwrap_err()
        );
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("unknown field `max-body`"), "{err}");
    }

    #[test]
    fn the_kubernetes_two_component_config_is_valid() {
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/two-components/promwasm.toml"
        );
        let cli = Cli::load_from(["promwasm", "--config", file]).unwrap();
        let specs = cli.components().unwrap();
        let names: Vec<_> = specs.iter().map(|s| s.name.name().unwrap()).collect();
        assert_eq!(names, ["example", "shop"]);
        for spec in &specs {
            spec.limits.check_within(&cli.limits()).unwrap();
            assert!(spec.file.as_ref().unwrap().starts_with("/components"));
        }
    }

    #[test]
    fn a_request_head_limit_below_hypers_buffer_is_refused() {
        let err = Cli::load_from(["promwasm", "--max-header-bytes", "1KiB"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--max-header-bytes must be at least 8192 bytes (8KiB), got 1024"
        );
        assert!(Cli::load_from(["promwasm", "--max-header-bytes", "8KiB"]).is_ok());
    }

    #[test]
    fn the_example_file_holds_the_defaults() {
        let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../promwasm.example.toml");
        let from_file = Cli::load_from(["promwasm", "--config", example]).unwrap();
        let defaults = Cli::load_from(["promwasm"]).unwrap();
        assert_eq!(
            format!(
                "{:?}",
                Cli {
                    config: None,
                    ..from_file
                }
            ),
            format!("{defaults:?}")
        );
    }

    #[test]
    fn default_limits_are_the_command_lines() {
        let cli = Cli::load_from(["promwasm"]).unwrap();
        assert_eq!(
            format!("{:?}", cli.limits()),
            format!("{:?}", Limits::default())
        );
        assert_eq!(
            format!("{:?}", cli.client_limits()),
            format!("{:?}", ClientLimits::default())
        );
        assert_eq!(cli.series_limits(), SeriesLimits::default());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
