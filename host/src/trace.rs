//! The trace a request belongs to, from its W3C `traceparent` header: the
//! exemplar that links a latency bucket to the trace. A trace id never
//! becomes a label (it would make a series per request).

use hyper::HeaderMap;
use prometheus_client::encoding::EncodeLabelSet;

/// The exemplar's label set: `trace_id`, 32 lower-case hex digits.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TraceLabels {
    pub trace_id: String,
}

/// The trace id of a request whose one `traceparent` header is valid and
/// sampled (flag 01); none for a missing, repeated, malformed, all-zero or
/// unsampled one.
pub fn sampled_trace(headers: &HeaderMap) -> Option<TraceLabels> {
    let mut values = headers.get_all("traceparent").iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse(value.as_bytes())
}

/// `version-traceid-parentid-flags` (`00-<32 hex>-<16 hex>-<2 hex>`), as
/// W3C Trace Context level 1 reads it: lower-case hex only; version `ff`
/// is invalid; a later version may append fields after a `-`.
fn parse(value: &[u8]) -> Option<TraceLabels> {
    let field = |range: std::ops::Range<usize>| {
        let bytes = value.get(range)?;
        bytes
            .iter()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b))
            .then_some(bytes)
    };
    let version = field(0..2)?;
    let trace_id = field(3..35)?;
    let parent_id = field(36..52)?;
    let flags = field(53..55)?;
    let dashes = [2, 35, 52].iter().all(|&i| value[i] == b'-');
    let length_ok = match version {
        b"00" => value.len() == 55,
        b"ff" => false,
        _ => value.len() == 55 || value.get(55) == Some(&b'-'),
    };
    let nonzero = |id: &[u8]| id.iter().any(|&b| b != b'0');
    let sampled = u8::from_str_radix(std::str::from_utf8(flags).ok()?, 16).ok()? & 1 == 1;
    (dashes && length_ok && nonzero(trace_id) && nonzero(parent_id) && sampled).then(|| {
        TraceLabels {
            trace_id: String::from_utf8_lossy(trace_id).into_owned(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

    fn trace(values: &[&str]) -> Option<String> {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("traceparent", value.parse().unwrap());
        }
        sampled_trace(&headers).map(|t| t.trace_id)
    }

    #[test]
    fn takes_valid_sampled_trace_ids_only() {
        let valid = format!("00-{TRACE}-00f067aa0ba902b7-01");
        assert_eq!(trace(&[&valid]).as_deref(), Some(TRACE));
        // Other flag bits set beside "sampled".
        assert_eq!(
            trace(&[&format!("00-{TRACE}-00f067aa0ba902b7-03")]).as_deref(),
            Some(TRACE)
        );
        // A later version with a field appended.
        assert_eq!(
            trace(&[&format!("01-{TRACE}-00f067aa0ba902b7-01-extra")]).as_deref(),
            Some(TRACE)
        );
        for invalid in [
            format!("00-{TRACE}-00f067aa0ba902b7-00"),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{TRACE}-0000000000000000-01"),
            format!("00-{}-00f067aa0ba902b7-01", TRACE.to_uppercase()),
            format!("ff-{TRACE}-00f067aa0ba902b7-01"),
            format!("00-{TRACE}-00f067aa0ba902b7-01-extra"),
            format!("01-{TRACE}-00f067aa0ba902b7-01extra"),
            format!("00-{TRACE}-00f067aa0ba902b7"),
            format!("00_{TRACE}_00f067aa0ba902b7_01"),
            format!("00-{}-00f067aa0ba902b7-01", &TRACE[1..]),
            "garbage".to_string(),
            String::new(),
        ] {
            assert_eq!(trace(&[&invalid]), None, "{invalid:?}");
        }
        assert_eq!(trace(&[]), None);
        assert_eq!(trace(&[&valid, &valid]), None, "two headers");
    }
}
