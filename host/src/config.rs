//! Command-line options. Every flag can also come from a `PROMWASM_*`
//! environment variable; the flag wins.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Serves the HTTP routes of a WebAssembly component (the
/// promwasm:app/route-handler world) and records Prometheus metrics for every
/// route at the host boundary.
#[derive(Debug, Clone, Parser)]
#[command(name = "promwasm", version, about)]
pub struct Cli {
    /// Address the routes are served on (and `/metrics`, unless
    /// --metrics-listen is given). Port 0 picks a free port.
    #[arg(long, env = "PROMWASM_LISTEN", default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,

    /// Serve `/metrics` on this separate address instead; the main address
    /// then answers 404 for `/metrics`.
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

    /// Guest instances alive at once; requests past it are answered 503.
    #[arg(long, env = "PROMWASM_MAX_INSTANCES", default_value_t = 1000)]
    pub max_instances: u32,

    /// Series a guest-declared metric family may hold; updates past it go to
    /// one overflow series whose label values are `__overflow__`.
    #[arg(long, env = "PROMWASM_SERIES_CAP", default_value_t = 2000)]
    pub series_cap: usize,

    /// Do not record the default HTTP families (prometheus-flask-exporter's
    /// `export_defaults=False`).
    #[arg(long, env = "PROMWASM_NO_DEFAULT_METRICS")]
    pub no_default_metrics: bool,

    /// On SIGTERM or SIGINT, time requests in flight get to finish.
    #[arg(long, env = "PROMWASM_DRAIN_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_timeout: Duration,
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

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
