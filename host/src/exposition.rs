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

/// Whether an `Accept-Encoding` header takes gzip: listed with a non-zero
/// quality, or, when not listed, taken by a `*` with one (RFC 9110: the
/// named coding wins over the wildcard).
pub fn accepts_gzip(accept_encoding: Option<&str>) -> bool {
    let Some(header) = accept_encoding else {
        return false;
    };
    let quality = quality(header, |coding| coding.eq_ignore_ascii_case("gzip"))
        .or_else(|| quality(header, |coding| coding == "*"));
    quality.is_some_and(|q| q > 0.0)
}

/// Whether a comma-separated `Accept`-style header lists an item that
/// `matches` with a non-zero quality.
fn accepts(header: Option<&str>, matches: impl Fn(&str) -> bool) -> bool {
    (header.and_then(|header| quality(header, matches))).is_some_and(|q| q > 0.0)
}

/// The quality (`;q=`, any case) of the first item of an `Accept`-style
/// header that `matches`: 1 when it gives none, 0 when it is not a number
/// (`NaN` included, which compares as no quality at all).
fn quality(header: &str, matches: impl Fn(&str) -> bool) -> Option<f64> {
    header.split(',').find_map(|item| {
        let mut parts = item.split(';').map(str::trim);
        let listed = matches(parts.next().unwrap_or(""));
        listed.then(|| {
            let q = parts.find_map(|param| {
                let (key, value) = param.split_once('=')?;
                key.trim().eq_ignore_ascii_case("q").then_some(value.trim())
            });
            q.map_or(1.0, |q| {
                q.parse::<f64>().ok().filter(|q| !q.is_nan()).unwrap_or(0.0)
            })
        })
    })
}

/// Only the families of an encoded exposition that `names` names, as a
/// scraper sees them: a counter by its sample name (`x_total`, the same in
/// both formats), an info family by `x_info`, the rest by the family name
/// (a histogram by its base name). An OpenMetrics `# EOF` stays.
pub fn select(text: &str, names: &[String]) -> String {
    let mut out = String::new();
    let mut keep = false;
    let mut lines = text.split_inclusive('\n');
    while let Some(line) = lines.next() {
        if line.trim_end() == "# EOF" {
            out.push_str(line);
        } else if line.starts_with("# HELP ") {
            // prometheus-client writes a family's TYPE right after its HELP.
            let kind = lines.next().unwrap_or_default();
            keep = (kind.strip_prefix("# TYPE "))
                .and_then(|t| t.trim_end().split_once(' '))
                .is_some_and(|(family, kind)| names.iter().any(|n| named(n, family, kind)));
            if keep {
                out.push_str(line);
                out.push_str(kind);
            }
        } else if keep {
            out.push_str(line);
        }
    }
    out
}

/// Whether a scraper's `name` is the family `family` of type `kind`: a
/// counter or info family only by its sample name, which is the same in
/// both formats (the 0.0.4 text names the family with the suffix,
/// OpenMetrics without).
fn named(name: &str, family: &str, kind: &str) -> bool {
    let sample_suffix = match kind {
        "counter" => "_total",
        "info" => "_info",
        _ => return name == family,
    };
    match family.ends_with(sample_suffix) {
        true => name == family,
        false => name.strip_suffix(sample_suffix) == Some(family),
    }
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
        // The named coding wins over the wildcard, in either order.
        assert!(!accepts_gzip(Some("gzip;q=0, *")));
        assert!(!accepts_gzip(Some("*, gzip;q=0")));
        assert!(accepts_gzip(Some("*;q=0, gzip")));
        assert!(!accepts_gzip(Some("*;q=0")));
        // The parameter's name in any case; a quality that is no number is 0.
        assert!(!accepts_gzip(Some("gzip; Q=0")));
        assert!(!accepts_gzip(Some("gzip;q=NaN")));
        assert!(!accepts_gzip(Some("gzip;q=high")));
    }

    #[test]
    fn selects_families_by_exposed_name_in_both_formats() {
        let registry = {
            use prometheus_client::metrics::counter::Counter;
            use prometheus_client::metrics::histogram::Histogram;
            let mut registry = Registry::default();
            registry.register("auths", "Auths", Counter::<u64>::default());
            registry.register("size", "Size", Histogram::new([1.0]));
            registry.register("other", "Other", Counter::<u64>::default());
            registry
        };
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let text = Format::Text.encode(&registry);
        assert_eq!(
            select(&text, &names(&["auths_total", "size"])),
            "# HELP auths_total Auths.\n# TYPE auths_total counter\nauths_total 0\n\
             # HELP size Size.\n# TYPE size histogram\nsize_bucket{le=\"1\"} 0\n\
             size_bucket{le=\"+Inf\"} 0\nsize_sum 0.0\nsize_count 0\n"
        );
        let open = Format::OpenMetrics.encode(&registry);
        assert_eq!(
            select(&open, &names(&["auths_total"])),
            "# HELP auths Auths.\n# TYPE auths counter\nauths_total 0\n# EOF\n"
        );
        assert_eq!(select(&open, &names(&["nothing"])), "# EOF\n");
        // The family name of OpenMetrics is not a sample name.
        assert_eq!(select(&open, &names(&["auths"])), "# EOF\n");
        assert_eq!(select(&text, &names(&["auths"])), "");
        assert_eq!(select(&text, &names(&["auths_total_total"])), "");
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
