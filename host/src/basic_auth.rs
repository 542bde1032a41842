//! HTTP basic authentication of the metrics endpoint against the web
//! config's bcrypt hashes.
//!
//! bcrypt is slow on purpose (milliseconds at cost 10), so it must not be a
//! way to burn the host's CPU: one check runs at a time, on a blocking
//! thread; at most [`WAITERS`] requests wait for their turn, each for at
//! most [`WAIT`] (past either, 503). Credentials that passed are remembered
//! by a sha256 of user, hash and password (never the password itself), so
//! a scraper pays bcrypt once, and keeps its entry across reloads (a changed
//! hash is another key); failures are not remembered, so an attacker cannot
//! fill the memory, and each costs them one turn of the single check.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arc_swap::ArcSwap;
use base64::Engine as _;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::labels::ReasonLabels;
use crate::registry::Families;
use crate::response::{Body, text};

/// Longest a request waits for its bcrypt check.
pub const WAIT: Duration = Duration::from_secs(5);

/// Requests that may wait for a bcrypt check at once.
pub const WAITERS: usize = 32;

/// bcrypt reads 72 bytes of a password at most; a longer one is refused
/// rather than truncated, so its suffixes are not all the same password.
const MAX_PASSWORD: usize = 72;

/// Verified credentials remembered at most; past it the memory starts over.
const REMEMBERED: usize = 1024;

/// Checks `Authorization: Basic` against the configured users.
#[derive(Debug)]
pub struct BasicAuth {
    users: ArcSwap<Users>,
    verified: Mutex<HashSet<[u8; 32]>>,
    turn: Arc<Semaphore>,
    waiting: Arc<Semaphore>,
    /// `promwasm_http_unauthorized_total{reason}`.
    refused: Family<ReasonLabels, Counter>,
}

/// The configured users, with what is derived from them: it goes when they
/// are replaced.
#[derive(Debug)]
struct Users {
    /// User name to bcrypt hash; empty: every request passes.
    hashes: BTreeMap<String, String>,
    /// A hash at the highest cost among the users', which an unknown user
    /// is checked against; made at the first unknown user.
    dummy: OnceLock<String>,
}

impl Users {
    fn new(hashes: BTreeMap<String, String>) -> Users {
        Users {
            hashes,
            dummy: OnceLock::new(),
        }
    }

    /// Costs a bcrypt hash when first called: call it on a blocking thread.
    fn dummy(&self) -> &str {
        self.dummy.get_or_init(|| {
            let cost = (self.hashes.values())
                .filter_map(|h| h.parse::<bcrypt::HashParts>().ok())
                .map(|p| p.get_cost())
                .max()
                .unwrap_or(bcrypt::DEFAULT_COST);
            bcrypt::hash("not a password of anyone", cost).unwrap_or_default()
        })
    }
}

/// The answer a refused request gets instead of the metrics: 401, or 503
/// when the checks are busy.
pub type Refused = Response<Body>;

impl BasicAuth {
    pub fn new(users: BTreeMap<String, String>, families: &Families) -> anyhow::Result<BasicAuth> {
        let refused = Family::<ReasonLabels, Counter>::default();
        families.register_host(
            "promwasm_http_unauthorized",
            "Requests for the metrics refused 401 by basic authentication, by reason",
            refused.clone(),
        )?;
        Ok(BasicAuth {
            users: ArcSwap::from_pointee(Users::new(users)),
            verified: Mutex::default(),
            turn: Arc::new(Semaphore::new(1)),
            waiting: Arc::new(Semaphore::new(WAITERS)),
            refused,
        })
    }

    /// The users from now on. What was verified stays: its keys hold the
    /// hash, so a changed or removed user's cannot match.
    pub fn replace(&self, users: BTreeMap<String, String>) {
        self.users.store(Arc::new(Users::new(users)));
    }

    /// Whether any user is configured (authentication is on).
    pub fn has_users(&self) -> bool {
        !self.users.load().hashes.is_empty()
    }

    /// Lets the request through, or answers it 401 (503 when too many
    /// wait for a check, or one waited [`WAIT`]).
    pub async fn check(&self, headers: &HeaderMap, families: &Families) -> Result<(), Refused> {
        let users = self.users.load_full();
        if users.hashes.is_empty() {
            return Ok(());
        }
        let (user, password) = match credentials(headers) {
            Ok(found) => found,
            Err(reason) => return Err(self.unauthorized(reason)),
        };
        if password.len() >= MAX_PASSWORD {
            return Err(self.unauthorized("wrong_password"));
        }
        let known = users.hashes.get(&user).cloned();
        let key = (known.as_ref()).map(|hash| remembered_as(&user, hash, &password));
        if key.as_ref().is_some_and(|key| self.remembered(key)) {
            return Ok(());
        }
        let busy = || {
            families.rejections.inc("auth_busy");
            text(
                StatusCode::SERVICE_UNAVAILABLE,
                "authentication is busy, try again later",
            )
        };
        let Ok(waiting) = self.waiting.clone().try_acquire_owned() else {
            return Err(busy());
        };
        let turn = tokio::time::timeout(WAIT, self.turn.clone().acquire_owned()).await;
        drop(waiting);
        let Ok(Ok(turn)) = turn else {
            return Err(busy());
        };
        let verified = tokio::task::spawn_blocking(move || {
            let _turn = turn;
            match known {
                Some(hash) => bcrypt::verify(password, &hash).unwrap_or(false),
                // An unknown user costs a check at the users' cost too, so
                // timing does not tell which users exist.
                None => {
                    let _ = bcrypt::verify(password, users.dummy());
                    false
                }
            }
        })
        .await
        .unwrap_or(false);
        match (key, verified) {
            (None, _) => Err(self.unauthorized("unknown_user")),
            (Some(_), false) => Err(self.unauthorized("wrong_password")),
            (Some(key), true) => {
                self.remember(key);
                Ok(())
            }
        }
    }

    fn remembered(&self, key: &[u8; 32]) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    }

    fn remember(&self, key: [u8; 32]) {
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= REMEMBERED {
            verified.clear();
        }
        verified.insert(key);
    }

    fn unauthorized(&self, reason: &'static str) -> Refused {
        self.refused.get_or_create(&ReasonLabels { reason }).inc();
        let mut response = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"promwasm\", charset=\"UTF-8\""),
        );
        response
    }
}

/// What remembers that `password` passed for `user` with `hash`: a digest,
/// not the password.
fn remembered_as(user: &str, hash: &str, password: &str) -> [u8; 32] {
    Sha256::new()
        .chain_update(user.as_bytes())
        .chain_update([0])
        .chain_update(hash.as_bytes())
        .chain_update([0])
        .chain_update(password.as_bytes())
        .finalize()
        .into()
}

/// The user and password of an `Authorization: Basic` header, or the
/// `reason` it is refused for.
fn credentials(headers: &HeaderMap) -> Result<(String, String), &'static str> {
    let value = headers.get(header::AUTHORIZATION).ok_or("missing")?;
    let value = value.to_str().map_err(|_| "malformed")?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or("malformed")?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("malformed");
    }
    let decoded = (base64::engine::general_purpose::STANDARD.decode(encoded.trim()))
        .map_err(|_| "malformed")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "malformed")?;
    let (user, password) = decoded.split_once(':').ok_or("malformed")?;
    Ok((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::Format;

    fn basic(user_password: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_password);
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {encoded}")).unwrap(),
        );
        headers
    }

    #[tokio::test]
    async fn checks_users_remembers_successes_and_counts_refusals() {
        let families = Families::new();
        let hash = bcrypt::hash("secret", 4).unwrap();
        let users = BTreeMap::from([("alice".to_string(), hash)]);
        let auth = BasicAuth::new(users, &families).unwrap();
        assert!(auth.check(&basic("alice:secret"), &families).await.is_ok());
        assert_eq!(auth.verified.lock().unwrap().len(), 1);
        assert!(auth.check(&basic("alice:secret"), &families).await.is_ok());
        for (headers, reason) in [
            (basic("alice:wrong"), "wrong_password"),
            (basic("bob:secret"), "unknown_user"),
            (basic("no colon"), "malformed"),
            (HeaderMap::new(), "missing"),
        ] {
            let refused = auth.check(&headers, &families).await.unwrap_err();
            assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{reason}");
            assert_eq!(
                refused.headers()[header::WWW_AUTHENTICATE],
                "Basic realm=\"promwasm\", charset=\"UTF-8\""
            );
        }
        let text = families.encode(Format::Text);
        for reason in ["wrong_password", "unknown_user", "malformed", "missing"] {
            let line = format!("promwasm_http_unauthorized_total{{reason=\"{reason}\"}} 1\n");
            assert!(text.contains(&line), "{line} in {text}");
        }
        // Failures are not remembered.
        assert_eq!(auth.verified.lock().unwrap().len(), 1);
        // What was verified needs no turn: it passes while the check is busy.
        let turn = auth.turn.clone().acquire_owned().await.unwrap();
        assert!(auth.check(&basic("alice:secret"), &families).await.is_ok());
        // A password bcrypt would truncate is refused without a turn.
        let long = format!("alice:{}", "x".repeat(72));
        let refused = auth.check(&basic(&long), &families).await.unwrap_err();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        drop(turn);
        auth.replace(BTreeMap::new());
        assert!(auth.check(&HeaderMap::new(), &families).await.is_ok());
    }
}
