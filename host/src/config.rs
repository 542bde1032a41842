//! Settings: command-line flags, then `PROMWASM_*` environment variables
//! (and the seed's `METRICS_PORT`), then a TOML file (`--config`), then the
//! defaults; the first that sets a value wins.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use serde::Deserialize;

use crate::guest_metrics::SeriesLimits;
use crate::runtime::Limits;
use crate::client_limits::ClientLimits;

/// Serves the HTTP routes of a WebAssembly component (the
/// promwasm:app/route-handler world) and records Prometheus metrics for every
/// route at the host boundary.
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

    /// The component to serve. Default: the example app built into this binary.
    #[arg(long, env = "PROMWASM_COMPONENT")]
    pub component: Option<PathBuf>,

    /// Time one request may spend in the guest before it is stopped and
    /// answered 504 ("10s", "500ms").
    #[arg(long, env = "PROMWASM_REQUEST_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub request_timeout: Duration,

    /// Linear memory one guest instance may grow to ("64MiB"); past it the
    /// guest's allocation fails and the request is answered 500.
    #[arg(long, env = "PROMWASM_MAX_MEMORY", default_value = "64MiB", value_parser = parse_size)]
    pub max_memory: usize,

    /// Largest request body accepted ("1MiB"); larger ones are answered 413.
    #[arg(long, env = "PROMWASM_MAX_BODY", default_value = "1MiB", value_parser = parse_size)]
    pub max_body: usize,

    /// Largest response body a guest may return ("8MiB"); a larger one is
    /// answered 500.
    #[arg(long, env = "PROMWASM_MAX_RESPONSE_BODY", default_value = "8MiB", value_parser = parse_size)]
    pub max_response_body: usize,

    /// Largest request head (request line and headers) accepted ("64KiB");
    /// larger ones are answered 431.
    #[arg(long, env = "PROMWASM_MAX_HEADER_BYTES", default_value = "64KiB", value_parser = parse_size)]
    pub max_header_bytes: usize,

    /// Time a client has to send the request head before the connection is closed.
    #[arg(long, env = "PROMWASM_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,

    /// Time a client has to send the request body, from the end of the head;
    /// past it the request is answered 408 and the connection closed.
    #[arg(long, env = "PROMWASM_BODY_READ_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub body_read_timeout: Duration,

    /// Requests one guest instance may serve before it is dropped. 1 (the
    /// default) gives every request a fresh instance; above 1, guest globals
    /// and memory live across the requests an instance serves.
    #[arg(long, env = "PROMWASM_INSTANCE_REUSE", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub instance_reuse: u32,

    /// Guest instances alive at once; requests past it are answered 503.
    #[arg(long, env = "PROMWASM_MAX_INSTANCES", default_value_t = 1000)]
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

    /// Keep compiled components in this directory, so the next start skips
    /// compilation. Entries are keyed by the component's sha256 and the
    /// wasmtime version and settings, and checked before use.
    #[arg(long, env = "PROMWASM_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// On SIGTERM or SIGINT, time requests in flight get to finish.
    #[arg(long, env = "PROMWASM_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
}

/// The smallest request-head limit hyper accepts (its initial read buffer).
const MIN_HEADER_BYTES: usize = 8 << 10;

/// The settings a `--config` file may hold: every flag but `--config`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<SocketAddr>,
    metrics_listen: Option<SocketAddr>,
    component: Option<PathBuf>,
    request_timeout: Option<String>,
    max_memory: Option<String>,
    max_body: Option<String>,
    max_response_body: Option<String>,
    max_header_bytes: Option<String>,
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    max_instances: Option<u32>,
    instance_reuse: Option<u32>,
    series_cap: Option<usize>,
    max_label_value_bytes: Option<usize>,
    no_default_metrics: Option<bool>,
    drain_timeout: Option<String>,
    cache_dir: Option<PathBuf>,
}

impl Cli {
    /// Reads the settings from the command line, the environment and the
    /// `--config` file, in that order of precedence.
    pub fn load() -> Result<Cli> {
        Cli::load_from(std::env::args_os())
    }

    pub fn load_from<I, T>(args: I) -> Result<Cli>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Cli::command().get_matches_from(args);
        let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let unset = |id: &str| {
            matches!(
                matches.value_source(id),
                None | Some(ValueSource::DefaultValue)
            )
        };
        if let Some(path) = cli.config.clone() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            let file: FileConfig = toml::from_str(&text)
                .with_context(|| format!("config file {} is invalid", path.display()))?;
            file.apply(&mut cli, &unset)
                .with_context(|| format!("config file {} is invalid", path.display()))?;
        }
        // hyper's read buffer cannot be smaller than its initial size.
        anyhow::ensure!(
            cli.max_header_bytes >= MIN_HEADER_BYTES,
            "--max-header-bytes must be at least {MIN_HEADER_BYTES} bytes (8KiB), got {}",
            cli.max_header_bytes
        );
        if unset("metrics_listen")
            && let Ok(port) = std::env::var("METRICS_PORT")
        {
            let port: u16 = port
                .parse()
                .with_context(|| format!("METRICS_PORT={port:?} is not a port number"))?;
            cli.metrics_listen = Some(SocketAddr::from(([0, 0, 0, 0], port)));
        }
        Ok(cli)
    }
}

impl Cli {
    /// The limits every guest call runs under.
    pub fn limits(&self) -> Limits {
        Limits {
            request_timeout: self.request_timeout,
            max_memory: self.max_memory,
            max_instances: self.max_instances,
            max_response_body: self.max_response_body,
            instance_reuse: self.instance_reuse,
        }
    }
}

impl Cli {
    /// The limits on what a client sends.
    pub fn client_limits(&self) -> ClientLimits {
        ClientLimits {
            max_body: self.max_body,
            header_read_timeout: self.header_read_timeout,
            body_read_timeout: self.body_read_timeout,
            max_header_bytes: self.max_header_bytes,
        }
    }

    /// What bounds each guest family's series.
    pub fn series_limits(&self) -> SeriesLimits {
        SeriesLimits {
            cap: self.series_cap,
            max_value_bytes: self.max_label_value_bytes,
        }
    }
}

impl FileConfig {
    /// Sets each value the file gives where neither a flag nor an
    /// environment variable did.
    fn apply(self, cli: &mut Cli, unset: &dyn Fn(&str) -> bool) -> Result<()> {
        fn take<T>(key: &str, unset: &dyn Fn(&str) -> bool, value: Option<T>, slot: &mut T) {
            if let Some(value) = value
                && unset(key)
            {
                *slot = value;
            }
        }
        fn parsed<T>(
            value: Option<String>,
            key: &str,
            parse: fn(&str) -> Result<T, String>,
        ) -> Result<Option<T>> {
            value
                .map(|v| {
                    parse(&v).map_err(|e| anyhow::anyhow!("key `{}`: {e}", key.replace('_', "-")))
                })
                .transpose()
        }
        fn duration(text: &str) -> Result<Duration, String> {
            humantime::parse_duration(text)
                .map_err(|e| format!("{text:?} is not a duration such as \"10s\": {e}"))
        }
        take("listen", unset, self.listen, &mut cli.listen);
        take(
            "metrics_listen",
            unset,
            self.metrics_listen.map(Some),
            &mut cli.metrics_listen,
        );
        take(
            "component",
            unset,
            self.component.map(Some),
            &mut cli.component,
        );
        let value = parsed(self.request_timeout, "request_timeout", duration)?;
        take("request_timeout", unset, value, &mut cli.request_timeout);
        let value = parsed(self.max_memory, "max_memory", parse_size)?;
        take("max_memory", unset, value, &mut cli.max_memory);
        let value = parsed(self.max_body, "max_body", parse_size)?;
        take("max_body", unset, value, &mut cli.max_body);
        let value = parsed(self.max_response_body, "max_response_body", parse_size)?;
        take(
            "max_response_body",
            unset,
            value,
            &mut cli.max_response_body,
        );
        let value = parsed(self.max_header_bytes, "max_header_bytes", parse_size)?;
        take("max_header_bytes", unset, value, &mut cli.max_header_bytes);
        let value = parsed(self.header_read_timeout, "header_read_timeout", duration)?;
        take(
            "header_read_timeout",
            unset,
            value,
            &mut cli.header_read_timeout,
        );
        take(
            "max_instances",
            unset,
            self.max_instances,
            &mut cli.max_instances,
        );
        take(
            "instance_reuse",
            unset,
            self.instance_reuse,
            &mut cli.instance_reuse,
        );
        take("series_cap", unset, self.series_cap, &mut cli.series_cap);
        take(
            "max_label_value_bytes",
            unset,
            self.max_label_value_bytes,
            &mut cli.max_label_value_bytes,
        );
        let value = parsed(self.body_read_timeout, "body_read_timeout", duration)?;
        take("body_read_timeout", unset, value, &mut cli.body_read_timeout);
        take(
            "cache_dir",
            unset,
            self.cache_dir.map(Some),
            &mut cli.cache_dir,
        );
        take(
            "no_default_metrics",
            unset,
            self.no_default_metrics,
            &mut cli.no_default_metrics,
        );
        let value = parsed(self.drain_timeout, "drain_timeout", duration)?;
        take("drain_timeout", unset, value, &mut cli.drain_timeout);
        Ok(())
    }
}

/// Parses a byte size: a number with an optional binary unit (`KiB`, `MiB`,
/// `GiB`). Written here because the units are all it needs.
fn parse_size(text: &str) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("{text:?} is not a size such as 65536, 64KiB or 16MiB"))?;
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
            Err("\"lots\" is not a size such as 65536, 64KiB or 16MiB".to_string())
        );
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
        assert_eq!(cli.max_body, 2 << 20);
        assert_eq!(cli.series_cap, 9);
        assert_eq!(cli.request_timeout, Duration::from_millis(250));
        assert_eq!(cli.max_memory, 64 << 20);
    }

    #[test]
    fn a_bad_file_names_the_file_line_and_key() {
        let (_file, path) = write_config("max-body = \"1MiB\"\nmax-bodies = 3\n");
        let err = format!(
            "{:#}",
            Cli::load_from(["promwasm", "--config", &path]).unwrap_err()
        );
        assert!(
            err.starts_with(&format!(
                "config file {path} is invalid: TOML parse error at line 2, column 1"
            )),
            "{err}"
        );
        assert!(err.contains("unknown field `max-bodies`"), "{err}");

        let (_file, path) = write_config("\n\nseries-cap = \"many\"\n");
        let err = format!(
            "{:#}",
            Cli::load_from(["promwasm", "--config", &path]).unwrap_err()
        );
        assert!(
            err.contains("TOML parse error at line 3, column 14"),
            "{err}"
        );
        assert!(
            err.contains("invalid type: string \"many\", expected usize"),
            "{err}"
        );

        let (_file, path) = write_config("max-memory = \"lots\"\n");
        let err = format!(
            "{:#}",
            Cli::load_from(["promwasm", "--config", &path]).unwrap_err()
        );
        assert_eq!(
            err,
            format!(
                "config file {path} is invalid: key `max-memory`: \"lots\" is not a size such as 65536, 64KiB or 16MiB"
            )
        );
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
