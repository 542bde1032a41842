//! HTTP basic authentication of the metrics endpoint against the web
//! config's bcrypt hashes.
//!
//! bcrypt is slow on purpose (milliseconds at cost 10), so it must not be a
//! way to burn the host's CPU: one check runs at a time, on a blocking
//! thread, so guessing can take one core and no more; at most [`WAITERS`]
//! requests wait for their turn, at most [`PER_CLIENT`] of them from one
//! client address, each for at most [`WAIT`] (past any, 503). The turns go
//! first come, first served, so a scraper waits behind at most two checks
//! of each other client, not behind a flood from one. Credentials that
//! passed are remembered by a sha256 of user, hash and password (never the
//! password itself), so a scraper pays bcrypt once, and keeps its entry
//! across reloads (a changed hash is another key); failures are not
//! remembered, so an attacker cannot fill the memory.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
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

/// Of those, the most from one client address.
pub const PER_CLIENT: usize = 2;

/// bcrypt reads 72 bytes of a password at most; a longer one is refused
/// rather than truncated, so its suffixes are not all the same password
/// (Go's bcrypt, which exporter-toolkit uses, refuses it too).
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
    /// Checks waiting or running, by client (see [`client_key`]): at most
    /// [`WAITERS`] entries and the one running, since an entry is made only
    /// with a waiting permit.
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// `promwasm_http_unauthorized_total{reason}`.
    refused: Family<ReasonLabels, Counter>,
}

/// The configured users, with what is derived from them: it goes when they
/// are replaced.
#[derive(Debug)]
struct Users {
    /// User name to bcrypt hash; empty: every request passes.
    hashes: BTreeMap<String, String>,
    /// The hash of the highest cost among the users': an unknown user's
    /// password is checked against it (and the answer thrown away), so that
    /// it costs what a known user's does, and timing does not tell which
    /// users exist (when the users share one cost, as they usually do).
    dummy: Option<String>,
}

impl Users {
    fn new(hashes: BTreeMap<String, String>) -> Users {
        let dummy = (hashes.values())
            .max_by_key(|h| h.parse::<bcrypt::HashParts>().map_or(0, |p| p.get_cost()))
            .cloned();
        Users { hashes, dummy }
    }
}

/// One of a client's [`PER_CLIENT`] checks, given back when dropped: held
/// by the bcrypt run itself, which goes on when its request is dropped.
struct ClientSlot {
    clients: Arc<Mutex<HashMap<IpAddr, usize>>>,
    client: IpAddr,
}

impl ClientSlot {
    fn take(clients: &Arc<Mutex<HashMap<IpAddr, usize>>>, address: IpAddr) -> Option<Self> {
        let client = client_key(address);
        let mut counts = clients.lock().unwrap_or_else(|e| e.into_inner());
        let count = counts.entry(client).or_insert(0);
        if *count >= PER_CLIENT {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            clients: clients.clone(),
            client,
        })
    }
}

/// The client an address counts as: an IPv4 address (IPv4-mapped too), or
/// an IPv6 /64, the least a site is given, so one host cannot pass for
/// many by changing its low 64 bits.
fn client_key(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        v4 => v4,
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut counts = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = counts.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.client);
            }
        }
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
            clients: Arc::default(),
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

    /// Lets the request of `client` through, or answers it 401 (503 when
    /// too many wait for a check, or one waited [`WAIT`]).
    pub async fn check(
        &self,
        headers: &HeaderMap,
        client: IpAddr,
        families: &Families,
    ) -> Result<(), Refused> {
        let users = self.users.load_full();
        if users.hashes.is_empty() {
            return Ok(());
        }
        let (user, password) = match credentials(headers) {
            Ok(found) => found,
            Err(reason) => return Err(self.unauthorized(reason)),
        };
        let known = users.hashes.get(&user).cloned();
        if password.len() > MAX_PASSWORD {
            let reason = if known.is_some() {
                "wrong_password"
            } else {
                "unknown_user"
            };
            return Err(self.unauthorized(reason));
        }
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
        let Some(slot) = ClientSlot::take(&self.clients, client) else {
            return Err(busy());
        };
        let turn = tokio::time::timeout(WAIT, self.turn.clone().acquire_owned()).await;
        drop(waiting);
        let Ok(Ok(turn)) = turn else {
            return Err(busy());
        };
        let verified = tokio::task::spawn_blocking(move || {
            let _held = (turn, slot);
            match known {
                Some(hash) => bcrypt::verify(password, &hash).unwrap_or(false),
                // An unknown user costs a check at the users' cost too, so
                // timing does not tell which users exist.
                None => {
                    if let Some(dummy) = &users.dummy {
                        let _ = bcrypt::verify(password, dummy);
                    }
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
        let client = IpAddr::from([127, 0, 0, 1]);
        assert!(
            auth.check(&basic("alice:secret"), client, &families)
                .await
                .is_ok()
        );
        assert_eq!(auth.verified.lock().unwrap().len(), 1);
        assert!(
            auth.check(&basic("alice:secret"), client, &families)
                .await
                .is_ok()
        );
        for (headers, reason) in [
            (basic("alice:wrong"), "wrong_password"),
            (basic("bob:secret"), "unknown_user"),
            (basic("no colon"), "malformed"),
            (HeaderMap::new(), "missing"),
        ] {
            let refused = auth.check(&headers, client, &families).await.unwrap_err();
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
        assert!(
            auth.check(&basic("alice:secret"), client, &families)
                .await
                .is_ok()
        );
        // A password bcrypt would truncate is refused without a turn.
        let long = format!("alice:{}", "x".repeat(73));
        let refused = auth
            .check(&basic(&long), client, &families)
            .await
            .unwrap_err();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        drop(turn);
        // 72 bytes is bcrypt's whole key: checked, as Go's bcrypt does.
        let hash = bcrypt::hash("y".repeat(72), 4).unwrap();
        auth.replace(BTreeMap::from([("bob".to_string(), hash)]));
        let bob = format!("bob:{}", "y".repeat(72));
        assert!(auth.check(&basic(&bob), client, &families).await.is_ok());
        auth.replace(BTreeMap::new());
        assert!(
            auth.check(&HeaderMap::new(), client, &families)
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn one_client_cannot_take_every_waiting_slot() {
        let families = Arc::new(Families::new());
        // Cost 8 (milliseconds a check) leaves each finished task time to
        // note that it finished before the next check is done.
        let hash = bcrypt::hash("secret", 8).unwrap();
        let users = BTreeMap::from([("alice".into(), hash)]);
        let auth = Arc::new(BasicAuth::new(users, &families).unwrap());
        let finished = Arc::new(Mutex::new(Vec::new()));
        let check = |who: &'static str, address: [u8; 4], password: &'static str| {
            let (auth, families, finished) = (auth.clone(), families.clone(), finished.clone());
            tokio::spawn(async move {
                let basic = basic(&format!("alice:{password}"));
                let result = auth.check(&basic, IpAddr::from(address), &families).await;
                finished.lock().unwrap().push(who);
                result.map_err(|refused| refused.status())
            })
        };
        // The check is busy: whoever needs bcrypt waits.
        let turn = auth.turn.clone().acquire_owned().await.unwrap();
        let attacker = [192, 0, 2, 1];
        let guesses: Vec<_> = (0..PER_CLIENT)
            .map(|_| check("guess", attacker, "guess"))
            .collect();
        while auth.clients.lock().unwrap().get(&IpAddr::from(attacker)) != Some(&PER_CLIENT) {
            tokio::task::yield_now().await;
        }
        let third = auth
            .check(&basic("alice:guess"), attacker.into(), &families)
            .await;
        assert_eq!(third.unwrap_err().status(), StatusCode::SERVICE_UNAVAILABLE);
        // Another client still gets a slot, and its turn after those before it.
        let scraper = check("scraper", [192, 0, 2, 2], "secret");
        while auth.clients.lock().unwrap().len() != 2 {
            tokio::task::yield_now().await;
        }
        drop(turn);
        for guess in guesses {
            assert_eq!(guess.await.unwrap(), Err(StatusCode::UNAUTHORIZED));
        }
        assert_eq!(scraper.await.unwrap(), Ok(()));
        assert_eq!(*finished.lock().unwrap(), ["guess", "guess", "scraper"]);
        assert!(auth.clients.lock().unwrap().is_empty());
        let text = families.encode(crate::exposition::Format::Text);
        assert!(
            text.contains("promwasm_http_rejected_total{reason=\"auth_busy\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn a_client_is_an_ipv4_address_or_an_ipv6_64() {
        let key = |a: &str| client_key(a.parse().unwrap()).to_string();
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::");
    }
}
