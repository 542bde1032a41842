//! The exposition formats `/metrics` speaks, and their negotiation.

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use prometheus_client::registry::Registry;

/// The two text formats `/metrics` speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4, the default.
    Text,
    /// OpenMetrics 1.0 text, for clients whose `Accept` asks for it.
    OpenMetrics,
}

impl Format {
    /// Picks OpenMetrics when the `Accept` header lists
    /// `application/openmetrics-text` with a non-zero quality.
    pub fn negotiate(accept: Option<&str>) -> Format {
        if accepts(accept, |range| range == "application/openmetrics-text") {
            Format::OpenMetrics
        } else {
            Format::Text
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// Encodes the registry in this format.
    pub fn encode(self, registry: &Registry) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = match self {
            Format::Text => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, registry)
            }
            Format::OpenMetrics => prometheus_client::encoding::text::encode(&mut out, registry),
        };
        out
    }
}

/// Whether an `Accept-Encoding` header takes gzip: listed, or as `*`, with
/// a non-zero quality.
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    accepts(accept_encoding, |coding| {
        coding.eq_ignore_ascii_case("gzip") || coding == "*"
    })
}

/// Whether a comma-separated `Accept`-style header lists an item that
/// `matches`, without a quality of zero (`;q=0`).
fn accepts(header: Option<&str>, matches: impl Fn(&str) -> bool) -> bool {
    header.is_some_and(|header| {
        header.split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            matches(parts.next().unwrap_or(""))
                && !parts.any(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f64>().ok())
                        .is_some_and(|q| q <= 0.0)
                })
        })
    })
}

/// `body` gzipped at the fastest level: a 10 000-series exposition shrinks
/// about tenfold in a few milliseconds (docs/PERFORMANCE.md).
pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(body.len() / 8), Compression::fast());
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_gzip_only_when_accepted() {
        assert!(!accepts_gzip(None));
        assert!(accepts_gzip(Some("gzip")));
        assert!(accepts_gzip(Some("deflate, GZIP;q=0.5")));
        assert!(accepts_gzip(Some("*")));
        assert!(!accepts_gzip(Some("gzip;q=0, deflate")));
        assert!(!accepts_gzip(Some("identity")));
        assert!(!accepts_gzip(Some("x-gzip")));
    }

    #[test]
    fn gzip_round_trips() {
        let body = "# TYPE a counter\na_total 1\n".repeat(100);
        let packed = gzip(body.as_bytes());
        assert!(packed.len() < body.len() / 10, "{} bytes", packed.len());
        let mut unpacked = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(&packed[..]),
            &mut unpacked,
        )
        .unwrap();
        assert_eq!(unpacked, body);
    }

    #[test]
    fn negotiates_openmetrics_only_when_asked() {
        assert_eq!(Format::negotiate(None), Format::Text);
        assert_eq!(Format::negotiate(Some("*/*")), Format::Text);
        assert_eq!(
            Format::negotiate(Some(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
            )),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some("application/openmetrics-text; q=0, text/plain")),
            Format::Text
        );
    }
}
