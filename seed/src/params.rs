//! The app's query parameter, read as Flask's `request.args` and Python's
//! `float()` read it.

/// The `num` query parameter as a finite float.
///
/// The query is decoded as `application/x-www-form-urlencoded`, as Flask
/// decodes it (`%32%30` is `20`, `+` a space; a `%` not followed by two hex
/// digits stays as it is), the first `num` wins, and surrounding whitespace
/// is ignored, as `float()` ignores it.
pub fn num_param(query: &str) -> Result<f64, String> {
    let raw = form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == "num")
        .map(|(_, value)| value);
    num_value(raw.as_deref())
}

/// The `num` parameter's decoded value (none when absent) as a finite
/// float: empty is missing, and surrounding whitespace is ignored.
pub fn num_value(raw: Option<&str>) -> Result<f64, String> {
    let raw = raw.unwrap_or_default();
    if raw.is_empty() {
        return Err("Missing request parameter 'num'!".to_string());
    }
    let num: f64 = raw
        .trim()
        .parse()
        .map_err(|_| format!("Request parameter 'num' is not a number: '{raw}'"))?;
    if num.is_finite() {
        Ok(num)
    } else {
        Err(format!(
            "Request parameter 'num' must be finite, got '{raw}'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::num_param;

    #[test]
    fn decodes_as_flask_does() {
        assert_eq!(num_param("num=%32%30"), Ok(20.0));
        assert_eq!(num_param("num=%2B4"), Ok(4.0));
        assert_eq!(num_param("num=+4"), Ok(4.0));
        assert_eq!(num_param("a=1&num=2.5&num=3"), Ok(2.5));
        assert_eq!(num_param("n%75m=7"), Ok(7.0));
        assert_eq!(
            num_param("num=%zz"),
            Err("Request parameter 'num' is not a number: '%zz'".to_string())
        );
        assert_eq!(
            num_param("num=+"),
            Err("Request parameter 'num' is not a number: ' '".to_string())
        );
        assert_eq!(
            num_param("num="),
            Err("Missing request parameter 'num'!".to_string())
        );
        assert_eq!(
            num_param("other=1"),
            Err("Missing request parameter 'num'!".to_string())
        );
        assert_eq!(
            num_param("num=inf"),
            Err("Request parameter 'num' must be finite, got 'inf'".to_string())
        );
    }
}
