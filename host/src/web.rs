//! What `--web-config-file` puts on the listener that serves the metrics:
//! TLS for its connections, basic authentication and headers for the
//! metrics endpoint. The file is read again at each SIGHUP; a file that
//! does not load whole changes nothing, and is logged and counted.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use arc_swap::ArcSwap;
use hyper::Response;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

use crate::basic_auth::{BasicAuth, Refused};
use crate::labels::OutcomeLabels;
use crate::registry::Families;
use crate::response::Body;
use crate::tls::Tls;
use crate::web_config::WebConfig;

/// The web configuration in force.
#[derive(Debug)]
pub struct Web {
    file: PathBuf,
    /// None: plain HTTP, for the process's life (a reload cannot change it).
    tls: Option<Arc<Tls>>,
    auth: BasicAuth,
    headers: ArcSwap<Vec<(HeaderName, HeaderValue)>>,
    /// `promwasm_web_config_reloads_total{result}`.
    reloads: Family<OutcomeLabels, Counter>,
}

impl Web {
    /// Reads `file` and builds what it says; errors name the file and key.
    pub fn load(file: &Path, families: &Families) -> Result<Web> {
        let config = WebConfig::read(file)?;
        let tls = (config.tls.as_ref())
            .map(|settings| Tls::new(settings).map(Arc::new))
            .transpose()
            .with_context(|| format!("web config file {}", file.display()))?;
        let reloads = Family::<OutcomeLabels, Counter>::default();
        families.register_host(
            "promwasm_web_config_reloads",
            "Reloads of the web config file at SIGHUP, by result (success, failure)",
            reloads.clone(),
        )?;
        Ok(Web {
            file: file.to_path_buf(),
            tls,
            auth: BasicAuth::new(config.users, families)?,
            headers: ArcSwap::from_pointee(config.headers),
            reloads,
        })
    }

    /// The TLS for the listener that serves the metrics, if the file has
    /// it: shared, so that a reload reaches the listener.
    pub fn tls(&self) -> Option<Arc<Tls>> {
        self.tls.clone()
    }

    /// Lets a request of `client` for the metrics through, or answers it.
    pub async fn admit(
        &self,
        headers: &HeaderMap,
        client: IpAddr,
        families: &Families,
    ) -> Result<(), Refused> {
        self.auth.check(headers, client, families).await
    }

    /// Adds the file's headers to an answer of the metrics endpoint, or of
    /// the metrics listener.
    pub fn decorate(&self, response: &mut Response<Body>) {
        for (name, value) in self.headers.load().iter() {
            response.headers_mut().insert(name.clone(), value.clone());
        }
    }

    /// Reads the file again (SIGHUP) and swaps in what it says, or keeps
    /// what is in force when any of it fails.
    pub fn reload(&self) {
        let result = match self.try_reload() {
            Ok(()) => {
                tracing::info!(file = %self.file.display(), "web config reloaded");
                "success"
            }
            Err(e) => {
                tracing::error!(
                    file = %self.file.display(),
                    "web config reload refused, the previous one stays: {e:#}"
                );
                "failure"
            }
        };
        self.reloads.get_or_create(&OutcomeLabels { result }).inc();
    }

    /// Every check comes before the TLS swap, the one step that can still
    /// fail after it has read its files; what follows cannot fail.
    fn try_reload(&self) -> Result<()> {
        let config = WebConfig::read(&self.file)?;
        anyhow::ensure!(
            !(self.auth.has_users() && config.users.is_empty()),
            "a reload cannot turn basic authentication off (restart promwasm for that)"
        );
        match (&self.tls, &config.tls) {
            (Some(tls), Some(settings)) => tls.replace(settings)?,
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => {
                anyhow::bail!("a reload cannot turn TLS on or off (restart promwasm for that)")
            }
        }
        self.auth.replace(config.users);
        self.headers.store(Arc::new(config.headers));
        Ok(())
    }
}
