//! A component as a pipeline [`Handler`], whichever world it implements,
//! and loading (and reloading) the component file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use hyper::StatusCode;
use hyper::http::request::Parts;

use crate::app::{App, MetricOptions, RouteState};
use crate::pipeline::{Failure, Handled, Handler, Mounted, Pipeline, Refusal};
use crate::registry::Families;
use crate::routes::PathTemplate;
use crate::runtime::{CallError, Compiled, Guest, Loaded, Runtime, WasiHttpGuest};
use crate::{route_handler, wasi_http};

/// A loaded component answering requests, by its world.
pub enum Component {
    RouteHandler(Guest),
    WasiHttp(Arc<WasiHttpGuest>),
}

impl Handler for Component {
    fn admit(&self, parts: &Parts) -> Result<(), Refusal> {
        match self {
            Component::RouteHandler(_) => Ok(()),
            Component::WasiHttp(_) => wasi_http::admit(parts),
        }
    }

    async fn handle(&self, route: &RouteState, parts: Parts, body: Bytes) -> Handled {
        match self {
            Component::RouteHandler(guest) => {
                route_handler::handle(guest, route, parts, body).await
            }
            Component::WasiHttp(guest) => wasi_http::handle(guest, parts, body).await,
        }
    }
}

/// How a failed call is answered: 504 past the time limit, 503 when no
/// instance was free (the host's capacity, not the component's fault), 500
/// otherwise.
pub fn call_failure(e: CallError) -> Failure {
    let status = match e {
        CallError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
        CallError::Capacity(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    Failure {
        reason: e.reason(),
        status,
        exception: !matches!(e, CallError::Capacity(_)),
        // `{:#}`: the error with its causes, `a: b: c`.
        detail: format!("{:#}", anyhow::Error::new(e)),
    }
}

/// Where the served component comes from, and how it is loaded: what a
/// reload needs.
pub struct Source {
    pub runtime: Runtime,
    /// The component file; none for the built-in example.
    pub file: Option<PathBuf>,
    pub options: MetricOptions,
    /// What a wasi:http component, which declares nothing, is labelled by.
    pub wasi_http: WasiHttpLabels,
}

/// The configuration's stand-in for a manifest, for wasi:http components.
#[derive(Clone, Debug, Default)]
pub struct WasiHttpLabels {
    /// The default families' prefix (`--default-prefix`); none gives the
    /// bare names.
    pub default_prefix: Option<String>,
    /// The `[[route]]` label templates.
    pub routes: Vec<PathTemplate>,
}

impl Source {
    /// Compiles `bytes`, reads the component's declarations (a
    /// route-handler's manifest, or the configuration's labels for a
    /// wasi:http component) and registers (or finds) its families.
    /// `origin` names the component in errors.
    pub async fn load(
        &self,
        families: &Families,
        bytes: &[u8],
        origin: &Path,
    ) -> Result<Mounted<Component>> {
        let loaded = self.runtime.load(bytes, origin)?;
        let name = origin.display().to_string();
        let sha256 = loaded.sha256().to_string();
        let mounted = match loaded {
            Loaded::RouteHandler(compiled) => {
                self.route_handler(families, compiled, origin).await?
            }
            Loaded::WasiHttp(compiled) => {
                let labels = &self.wasi_http;
                let prefix = labels.default_prefix.as_deref();
                let app = App::for_wasi_http(&labels.routes, prefix, families, self.options)
                    .with_context(|| {
                        format!("labelling wasi:http component {}", origin.display())
                    })?;
                tracing::info!(
                    component = %name,
                    world = "wasi:http/proxy",
                    label_templates = ?labels.routes.iter().map(|r| &r.path).collect::<Vec<_>>(),
                    prefix = prefix.unwrap_or(""),
                    "loaded component; its outbound HTTP requests are refused"
                );
                let guest = compiled.serve(app.guest_metrics.clone());
                Mounted {
                    app,
                    handler: Component::WasiHttp(Arc::new(guest)),
                }
            }
        };
        families.component.serving(&name, &sha256);
        Ok(mounted)
    }

    async fn route_handler(
        &self,
        families: &Families,
        compiled: Compiled,
        origin: &Path,
    ) -> Result<Mounted<Component>> {
        ensure!(
            self.wasi_http.default_prefix.is_none() && self.wasi_http.routes.is_empty(),
            "{} is a route-handler component, which declares its own routes and prefix: \
             --default-prefix and [[route]] apply to wasi:http components only",
            origin.display()
        );
        let manifest = compiled
            .describe()
            .await
            .with_context(|| format!("calling describe on {}", origin.display()))?;
        let app = App::new(&manifest, families, self.options)
            .with_context(|| format!("{} declares an invalid manifest", origin.display()))?;
        tracing::info!(
            component = %origin.display(),
            world = "promwasm:app/route-handler",
            routes = ?app.router.routes().iter().map(|r| &*r.route.template).collect::<Vec<_>>(),
            prefix = manifest.default_prefix.as_deref().unwrap_or(""),
            "loaded component"
        );
        let guest = compiled.serve(app.guest_metrics.clone());
        Ok(Mounted {
            app,
            handler: Component::RouteHandler(guest),
        })
    }

    /// Loads the component file again and swaps it in. A component that
    /// fails to load is refused and the current one keeps serving.
    pub async fn reload(&self, pipeline: &Pipeline<Component>) {
        let Some(path) = &self.file else {
            tracing::info!(
                "SIGHUP: serving the built-in example component, there is no file to reload"
            );
            return;
        };
        let families = &pipeline.families;
        let loaded =
            match tokio::fs::read(path).await {
                Ok(bytes) => self.load(families, &bytes, path).await,
                Err(e) => Err(anyhow::Error::new(e)
                    .context(format!("cannot read component {}", path.display()))),
            };
        match loaded {
            Ok(mounted) => {
                pipeline.replace(mounted);
                families.component.reloaded(true);
                tracing::info!(component = %path.display(), "reloaded");
            }
            Err(e) => {
                families.component.reloaded(false);
                tracing::error!("reload refused, the previous component keeps serving: {e:#}");
            }
        }
    }
}
