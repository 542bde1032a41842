//! `--web-config-file`: the Prometheus exporter-toolkit's web configuration
//! (<https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md>),
//! so operators reuse the file every other exporter of theirs reads: TLS
//! for the listener that serves the metrics, basic-auth users for the
//! metrics endpoint, and headers for its answers.
//!
//! The file is checked whole before anything of it is used: a key the
//! toolkit knows but promwasm does not support is refused by name, an
//! unknown key as a typo, a hash that is not bcrypt and a header outside the
//! toolkit's list likewise. Relative paths are the file's directory's, as
//! in the toolkit. YAML is read with serde-saphyr: pure Rust without
//! `unsafe`, maintained, and strict about unknown fields and duplicate keys
//! (serde_yaml is archived, serde_yml unsound, and the others wrap the
//! unmaintained unsafe-libyaml).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde::de::IgnoredAny;

/// The file as the toolkit writes it. Keys the toolkit knows but promwasm
/// does not support are read as [`IgnoredAny`], to be refused by name.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: RawHttp,
    #[serde(default)]
    basic_auth_users: BTreeMap<String, String>,
    rate_limit: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTls {
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    min_version: Option<String>,
    max_version: Option<String>,
    cert: Option<IgnoredAny>,
    key: Option<IgnoredAny>,
    client_ca: Option<IgnoredAny>,
    cipher_suites: Option<IgnoredAny>,
    curve_preferences: Option<IgnoredAny>,
    prefer_server_cipher_suites: Option<IgnoredAny>,
    client_allowed_sans: Option<IgnoredAny>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    http2: Option<bool>,
    #[serde(default)]
    headers: BTreeMap<String, Option<String>>,
}

/// Which client certificates the TLS listener asks for. The toolkit's
/// `RequestClientCert` and `RequireAnyClientCert`, which take a
/// certificate without verifying it, are refused: rustls verifies what it
/// accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// `NoClientCert`, the default.
    None,
    /// `VerifyClientCertIfGiven`.
    VerifyIfGiven,
    /// `RequireAndVerifyClientCert`: mutual TLS.
    Require,
}

/// TLS protocol versions rustls speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// The TLS settings, files resolved against the config file's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub client_auth: ClientAuth,
    pub client_ca_file: Option<PathBuf>,
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

/// A checked web configuration.
#[derive(Clone, Debug, Default)]
pub struct WebConfig {
    /// None: the listener speaks plain HTTP.
    pub tls: Option<TlsSettings>,
    /// User name to bcrypt hash; empty: no authentication.
    pub users: BTreeMap<String, String>,
    /// Set on every answer of the metrics endpoint, the 401 too.
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl WebConfig {
    /// Reads and checks the file at `path`; errors name it.
    pub fn read(path: &Path) -> Result<WebConfig> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read web config file {}", path.display()))?;
        let dir = path.parent().unwrap_or(Path::new(""));
        WebConfig::parse(&text, dir)
            .with_context(|| format!("web config file {} is invalid", path.display()))
    }

    /// Checks the text of a web configuration whose relative paths are
    /// `dir`'s. An empty file is the toolkit's defaults: plain HTTP, no users.
    pub fn parse(text: &str, dir: &Path) -> Result<WebConfig> {
        let raw: RawConfig = match text.lines().all(|l| {
            let l = l.trim();
            l.is_empty() || l.starts_with('#') || l == "---"
        }) {
            true => RawConfig::default(),
            // Without the source lines a snippet would quote: the line of
            // an error may be a user's hash.
            false => {
                let mut options = serde_saphyr::Options::default();
                options.with_snippet = false;
                serde_saphyr::from_str_with_options(text, options)?
            }
        };
        unsupported(raw.rate_limit.is_some(), "rate_limit")?;
        if raw.http_server_config.http2 == Some(true) {
            bail!(
                "http_server_config.http2: promwasm serves HTTP/1.1 only; set it to false or leave it out"
            );
        }
        Ok(WebConfig {
            tls: raw.tls_server_config.map(|t| tls(t, dir)).transpose()?,
            users: users(raw.basic_auth_users)?,
            headers: headers(raw.http_server_config.headers)?,
        })
    }
}

fn unsupported(given: bool, key: &str) -> Result<()> {
    ensure!(!given, "{key} is not supported by promwasm");
    Ok(())
}

fn tls(raw: RawTls, dir: &Path) -> Result<TlsSettings> {
    for (given, key) in [
        (raw.cert.is_some(), "cert (inline; use cert_file)"),
        (raw.key.is_some(), "key (inline; use key_file)"),
        (
            raw.client_ca.is_some(),
            "client_ca (inline; use client_ca_file)",
        ),
        (raw.cipher_suites.is_some(), "cipher_suites"),
        (raw.curve_preferences.is_some(), "curve_preferences"),
        (
            raw.prefer_server_cipher_suites.is_some(),
            "prefer_server_cipher_suites",
        ),
        (raw.client_allowed_sans.is_some(), "client_allowed_sans"),
    ] {
        unsupported(given, &format!("tls_server_config.{key}"))?;
    }
    let file = |path: Option<PathBuf>, key: &str| {
        let path = path.with_context(|| format!("tls_server_config.{key} is missing"))?;
        anyhow::Ok(dir.join(path))
    };
    let client_auth = match raw.client_auth_type.as_deref() {
        None | Some("NoClientCert") => ClientAuth::None,
        Some("VerifyClientCertIfGiven") => ClientAuth::VerifyIfGiven,
        Some("RequireAndVerifyClientCert") => ClientAuth::Require,
        Some(other @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert")) => {
            bail!(
                "tls_server_config.client_auth_type {other}: a client certificate taken without verifying it is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            )
        }
        Some(other) => bail!(
            "tls_server_config.client_auth_type {other:?} is not one of NoClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
        ),
    };
    let client_ca_file = raw.client_ca_file.map(|p| dir.join(p));
    match (client_auth, &client_ca_file) {
        (ClientAuth::None, Some(_)) => {
            bail!("tls_server_config.client_ca_file is given but client_auth_type is NoClientCert")
        }
        (ClientAuth::VerifyIfGiven | ClientAuth::Require, None) => bail!(
            "tls_server_config.client_auth_type verifies client certificates: client_ca_file is missing"
        ),
        _ => {}
    }
    let min_version = version(raw.min_version.as_deref(), "min_version", TlsVersion::Tls12)?;
    let max_version = version(raw.max_version.as_deref(), "max_version", TlsVersion::Tls13)?;
    ensure!(
        min_version <= max_version,
        "tls_server_config.min_version is above max_version"
    );
    Ok(TlsSettings {
        cert_file: file(raw.cert_file, "cert_file")?,
        key_file: file(raw.key_file, "key_file")?,
        client_auth,
        client_ca_file,
        min_version,
        max_version,
    })
}

fn version(given: Option<&str>, key: &str, default: TlsVersion) -> Result<TlsVersion> {
    Ok(match given {
        None => default,
        Some("TLS12") => TlsVersion::Tls12,
        Some("TLS13") => TlsVersion::Tls13,
        Some(old @ ("TLS10" | "TLS11")) => {
            bail!("tls_server_config.{key} {old}: promwasm speaks TLS 1.2 and 1.3 only")
        }
        Some(other) => bail!("tls_server_config.{key} {other:?} is not one of TLS12, TLS13"),
    })
}

/// Every user has a bcrypt hash (checked, never shown) and a name that a
/// Basic `Authorization` header can carry.
fn users(raw: BTreeMap<String, String>) -> Result<BTreeMap<String, String>> {
    for (user, hash) in &raw {
        ensure!(
            !user.is_empty() && !user.contains(':') && !user.chars().any(char::is_control),
            "basic_auth_users: user {user:?}: a user name is not empty and holds no ':' or control character"
        );
        let parts: bcrypt::HashParts = (hash.parse())
            .map_err(|e| anyhow::anyhow!("basic_auth_users.{user}: not a bcrypt hash ({e})"))?;
        ensure!(
            (4..=31).contains(&parts.get_cost()),
            "basic_auth_users.{user}: bcrypt cost {} is outside 4 to 31",
            parts.get_cost()
        );
    }
    Ok(raw)
}

/// The toolkit's list of headers an operator may set, each with the values
/// it allows (none listed: any).
const HEADERS: [(&str, &[&str]); 5] = [
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn headers(raw: BTreeMap<String, Option<String>>) -> Result<Vec<(HeaderName, HeaderValue)>> {
    let mut headers = Vec::new();
    for (name, value) in raw {
        let Some((_, allowed)) = HEADERS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = HEADERS.iter().map(|(n, _)| *n).collect();
            bail!(
                "http_server_config.headers: header {name:?} cannot be set; the headers are {}",
                names.join(", ")
            );
        };
        // A blank value leaves the header unset, as in the toolkit.
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        ensure!(
            allowed.is_empty() || allowed.iter().any(|a| a.eq_ignore_ascii_case(&value)),
            "http_server_config.headers: {name} {value:?} is not one of {}",
            allowed.join(", ")
        );
        let value = HeaderValue::from_str(&value)
            .with_context(|| format!("http_server_config.headers: {name}: {value:?}"))?;
        headers.push((HeaderName::from_bytes(name.as_bytes())?, value));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bcrypt hash of "secret" at cost 4.
    const HASH: &str = "$2b$04$KwpUQCy9BFbBnm0M7dQ7KuuuDPpKMQ9hX.0DWZfaGgMiAgnnYFw5e";

    fn refused(text: &str) -> String {
        format!(
            "{:#}",
            WebConfig::parse(text, Path::new("/etc/w")).unwrap_err()
        )
    }

    #[test]
    fn reads_the_toolkits_keys() {
        let text = format!(
            "tls_server_config:
  cert_file: server.crt
  key_file: /abs/server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS13
http_server_config:
  http2: false
  headers:
    X-Frame-Options: deny
    Strict-Transport-Security: max-age=31536000
    X-XSS-Protection: ''
basic_auth_users:
  alice: {HASH}
"
        );
        let config = WebConfig::parse(&text, Path::new("/etc/w")).unwrap();
        assert_eq!(
            config.tls,
            Some(TlsSettings {
                cert_file: "/etc/w/server.crt".into(),
                key_file: "/abs/server.key".into(),
                client_auth: ClientAuth::Require,
                client_ca_file: Some("/etc/w/ca.crt".into()),
                min_version: TlsVersion::Tls13,
                max_version: TlsVersion::Tls13,
            })
        );
        assert_eq!(config.users.get("alice").map(String::as_str), Some(HASH));
        let headers: Vec<(&str, &str)> = (config.headers.iter())
            .map(|(n, v)| (n.as_str(), v.to_str().unwrap()))
            .collect();
        assert_eq!(
            headers,
            [
                ("strict-transport-security", "max-age=31536000"),
                ("x-frame-options", "deny")
            ]
        );
        let empty = WebConfig::parse("# nothing\n", Path::new("")).unwrap();
        assert!(empty.tls.is_none() && empty.users.is_empty());
    }

    #[test]
    fn the_kubernetes_web_config_is_valid() {
        let file = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/web-config/web-config.yml"
        );
        let text = std::fs::read_to_string(file).unwrap();
        let config = WebConfig::parse(&text, Path::new("/etc/promwasm/web")).unwrap();
        let tls = config.tls.unwrap();
        assert_eq!(tls.cert_file, Path::new("/etc/promwasm/web/tls.crt"));
        assert_eq!(tls.key_file, Path::new("/etc/promwasm/web/tls.key"));
        let hash = &config.users["prometheus"];
        assert!(bcrypt::verify("change-me", hash).unwrap());
        assert_eq!(config.headers.len(), 2);
        // The Deployment mounts the Secret where the flag looks for it.
        let patch = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../deploy/web-config/deployment-patch.yaml"
        );
        let patch = std::fs::read_to_string(patch).unwrap();
        assert!(
            patch.contains("value: /etc/promwasm/web/web-config.yml\n"),
            "{patch}"
        );
        // The pod's user (65532, deploy/deployment.yaml) reads the Secret
        // by its group.
        assert!(patch.contains("fsGroup: 65532\n") && patch.contains("defaultMode: 0440\n"));
        assert!(patch.contains("mountPath: /etc/promwasm/web\n"), "{patch}");
    }

    #[test]
    fn refuses_what_it_does_not_support_by_name() {
        let tls = "tls_server_config:\n  cert_file: c\n  key_file: k\n";
        for (text, message) in [
            (
                format!("{tls}  cipher_suites: [TLS_AES_128_GCM_SHA256]\n"),
                "tls_server_config.cipher_suites is not supported by promwasm",
            ),
            (
                format!("{tls}  client_auth_type: RequireAnyClientCert\n"),
                "tls_server_config.client_auth_type RequireAnyClientCert: a client certificate taken without verifying it is not supported",
            ),
            (
                format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n"),
                "client_ca_file is missing",
            ),
            (
                format!("{tls}  min_version: TLS10\n"),
                "tls_server_config.min_version TLS10: promwasm speaks TLS 1.2 and 1.3 only",
            ),
            (
                "tls_server_config:\n  key_file: k\n".to_string(),
                "tls_server_config.cert_file is missing",
            ),
            (
                "rate_limit:\n  interval: 1s\n".to_string(),
                "rate_limit is not supported by promwasm",
            ),
            (
                "http_server_config:\n  http2: true\n".to_string(),
                "http_server_config.http2: promwasm serves HTTP/1.1 only",
            ),
            (
                "http_server_config:\n  headers:\n    Server: x\n".to_string(),
                "http_server_config.headers: header \"Server\" cannot be set",
            ),
            (
                "http_server_config:\n  headers:\n    X-Frame-Options: allow\n".to_string(),
                "X-Frame-Options \"allow\" is not one of deny, sameorigin",
            ),
            (
                "basic_auth_users:\n  alice: plain-password\n".to_string(),
                "basic_auth_users.alice: not a bcrypt hash",
            ),
            (
                format!("basic_auth_users:\n  'a:b': {HASH}\n"),
                "basic_auth_users: user \"a:b\"",
            ),
            (
                "tls_server_conf: {}\n".to_string(),
                "unknown field `tls_server_conf`",
            ),
        ] {
            let err = refused(&text);
            assert!(err.contains(message), "{text}\n=> {err}");
            assert!(!err.contains("plain-password"), "{err}");
        }
        // A YAML error quotes no line of the file: one may hold a hash.
        for broken in [
            format!("basic_auth_users:\n  alice: {HASH}\n  bob: [\n"),
            format!("basic_auth_users:\n  alice: {HASH}\n  alice: {HASH}\n"),
        ] {
            let err = refused(&broken);
            assert!(!err.contains(&HASH[7..]), "{err}");
            assert!(err.contains("line 3"), "{err}");
        }
    }
}
