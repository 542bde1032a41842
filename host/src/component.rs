//! A component as a pipeline [`Handler`], whichever world it implements,
//! and loading (and reloading) the component file.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use bytes::Bytes;
use hyper::StatusCode;
use hyper::http::request::Parts;

use sha2::{Digest, Sha256};
use wasmtime_wasi_http::p2::bindings::ProxyPre;

use crate::EXAMPLE_COMPONENT;
use crate::app::{App, MetricOptions, RouteState};
use crate::cache::hex;
use crate::labels::ComponentLabel;
use crate::mounts::Mount;
use crate::pipeline::{Failure, Handled, Handler, Mounted, Pipeline, Refusal};
use crate::registry::Families;
use crate::routes::{PathTemplate, template_matches};
use crate::runtime::{
    CallError, Compiled, HostState, Limits, Loaded, RouteHandlerCompiled, RouteHandlerGuest,
    Runtime, WasiHttpGuest,
};
use crate::scrape::MetricsPath;
use crate::{route_handler, wasi_http};

/// A loaded component answering requests, by its world.
pub enum Component {
    RouteHandler(RouteHandlerGuest),
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

impl Component {
    /// Lower-case hex sha256 of the component's bytes.
    pub fn sha256(&self) -> &str {
        match self {
            Component::RouteHandler(guest) => guest.sha256(),
            Component::WasiHttp(guest) => guest.sha256(),
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

/// Where the served components come from, and how they are loaded: what
/// a reload needs.
pub struct Source {
    pub runtime: Runtime,
    pub options: MetricOptions,
    /// The metrics path when the main listener serves the metrics, which
    /// no mount or route may then take.
    pub metrics_path: Option<MetricsPath>,
    /// In the configuration's order: the first records the requests
    /// outside every mount.
    pub components: Vec<Spec>,
}

/// One component to serve.
#[derive(Clone, Debug)]
pub struct Spec {
    /// Its `component` label; none for the single component of the
    /// command line.
    pub name: ComponentLabel,
    /// The component file; none for the built-in example.
    pub file: Option<PathBuf>,
    pub mount: Mount,
    /// What a wasi:http component, which declares nothing, is labelled by.
    pub wasi_http: WasiHttpLabels,
    /// Its own limits, within the host's.
    pub limits: Limits,
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

impl Spec {
    /// The single component of the command line, at every path.
    pub fn single(file: Option<PathBuf>, wasi_http: WasiHttpLabels, limits: Limits) -> Spec {
        Spec {
            name: ComponentLabel::none(),
            file,
            mount: Mount::everything(),
            wasi_http,
            limits,
        }
    }

    /// What the component is called in logs and errors: its file.
    fn origin(&self) -> PathBuf {
        match &self.file {
            Some(path) => path.clone(),
            None => PathBuf::from("<built-in example component>"),
        }
    }

    /// The component's bytes, read now.
    async fn bytes(&self) -> Result<Vec<u8>> {
        match &self.file {
            Some(path) => (tokio::fs::read(path).await)
                .with_context(|| format!("cannot read component {}", path.display())),
            None => Ok(EXAMPLE_COMPONENT.to_vec()),
        }
    }

    /// Refuses a route (or label template) that lies outside the mount, or
    /// that is the metrics path on the main listener, which would shadow it
    /// whole; a template with parameters or a rest that matches the path
    /// loses only that path, which is logged.
    fn check_route(&self, template: &str, metrics_path: Option<&MetricsPath>) -> Result<()> {
        ensure!(
            self.mount.covers(template),
            "route {template:?} lies outside the mount {}",
            self.mount
        );
        let Some(path) = metrics_path else {
            return Ok(());
        };
        ensure!(
            template != path.as_str(),
            "route {template:?} would be shadowed by the host's metrics on the main listener \
             ({MOVE_METRICS})"
        );
        if template_matches(template, path.as_str()) {
            tracing::warn!(
                component = self.name.name(),
                "route {template:?} does not get {path}: the host's metrics are served there ({MOVE_METRICS})"
            );
        }
        Ok(())
    }

    /// Refuses a literal mount that is the metrics path on the main
    /// listener; a prefix mount (other than the root) that covers it loses
    /// only that path, which is logged: a wasi:http component has no route
    /// that the route check could catch.
    fn check_mount(&self, metrics_path: Option<&MetricsPath>) -> Result<()> {
        let mount = self.mount.as_str();
        let Some(path) = metrics_path else {
            return Ok(());
        };
        ensure!(
            mount != path.as_str(),
            "{}: the mount {mount} would be shadowed by the host's metrics on the main listener \
             ({MOVE_METRICS})",
            self.name
        );
        if self.mount != Mount::everything() && self.mount.covers(path.as_str()) {
            tracing::warn!(
                component = self.name.name(),
                "the mount {mount} does not get {path}: the host's metrics are served there ({MOVE_METRICS})"
            );
        }
        Ok(())
    }
}

/// How to free a path the metrics take, for the messages that say so.
const MOVE_METRICS: &str = "move them with --metrics-path, or serve them on --metrics-listen";

impl Source {
    /// Loads every component, each refusal naming the component.
    pub async fn load_all(&self, families: &Families) -> Result<Vec<(Mount, Mounted<Component>)>> {
        let mut mounted = Vec::with_capacity(self.components.len());
        for spec in &self.components {
            spec.check_mount(self.metrics_path.as_ref())?;
            let bytes = spec.bytes().await?;
            let component = match spec.name.name() {
                Some(_) => (self.load(spec, families, &bytes).await)
                    .with_context(|| format!("loading {}", spec.name))?,
                None => self.load(spec, families, &bytes).await?,
            };
            mounted.push((spec.mount.clone(), component));
        }
        Ok(mounted)
    }

    /// Compiles `bytes`, reads the component's declarations (a
    /// route-handler's manifest, or the configuration's labels for a
    /// wasi:http component) and registers (or finds) its families.
    pub async fn load(
        &self,
        spec: &Spec,
        families: &Families,
        bytes: &[u8],
    ) -> Result<Mounted<Component>> {
        let origin = spec.origin();
        let loaded = self.runtime.load(bytes, &origin, spec.limits)?;
        let sha256 = loaded.sha256().to_string();
        let mounted = match loaded {
            Loaded::RouteHandler(compiled) => self.route_handler(spec, families, compiled).await?,
            Loaded::WasiHttp(compiled) => self.wasi_http(spec, families, compiled)?,
        };
        (families.component).serving(&spec.name, &origin.display().to_string(), &sha256);
        Ok(mounted)
    }

    fn wasi_http(
        &self,
        spec: &Spec,
        families: &Families,
        compiled: Compiled<ProxyPre<HostState>>,
    ) -> Result<Mounted<Component>> {
        let origin = spec.origin();
        let labels = &spec.wasi_http;
        let prefix = labels.default_prefix.as_deref();
        let labelling = || format!("labelling wasi:http component {}", origin.display());
        for route in &labels.routes {
            spec.check_route(&route.path, self.metrics_path.as_ref())
                .with_context(labelling)?;
        }
        let app = App::for_wasi_http(&labels.routes, prefix, families, self.options, &spec.name)
            .with_context(labelling)?;
        tracing::info!(
            component = %origin.display(),
            name = spec.name.name(),
            mount = %spec.mount,
            world = "wasi:http/proxy",
            label_templates = ?labels.routes.iter().map(|r| &r.path).collect::<Vec<_>>(),
            prefix = prefix.unwrap_or(""),
            "loaded component; its outbound HTTP requests are refused"
        );
        let guest = compiled.serve(app.guest_metrics.clone());
        Ok(Mounted {
            app,
            handler: Component::WasiHttp(Arc::new(guest)),
        })
    }

    async fn route_handler(
        &self,
        spec: &Spec,
        families: &Families,
        compiled: RouteHandlerCompiled,
    ) -> Result<Mounted<Component>> {
        let origin = spec.origin();
        let settings = match spec.name.name() {
            Some(_) => "default-prefix and [[component.route]]",
            None => "--default-prefix and [[route]]",
        };
        ensure!(
            spec.wasi_http.default_prefix.is_none() && spec.wasi_http.routes.is_empty(),
            "{} is a route-handler component, which declares its own routes and prefix: \
             {settings} apply to wasi:http components only",
            origin.display()
        );
        let manifest = compiled
            .describe()
            .await
            .with_context(|| format!("calling describe on {}", origin.display()))?;
        let invalid = || format!("{} declares an invalid manifest", origin.display());
        for route in &manifest.routes {
            spec.check_route(&route.path, self.metrics_path.as_ref())
                .with_context(invalid)?;
        }
        let app = App::new(&manifest, families, self.options, &spec.name).with_context(invalid)?;
        tracing::info!(
            component = %origin.display(),
            name = spec.name.name(),
            mount = %spec.mount,
            world = "promwasm:app/route-handler",
            contract = compiled.version(),
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

    /// Reads every component file again and swaps in each that loads. A
    /// component that fails to load is refused and its current version
    /// keeps serving. Where components are named, a file whose sha256 has
    /// not changed is left as it is, and its reloads are not counted.
    pub async fn reload(&self, pipeline: &Pipeline<Component>) {
        if self.components.iter().all(|spec| spec.file.is_none()) {
            tracing::info!(
                "SIGHUP: serving the built-in example component, there is no file to reload"
            );
            return;
        }
        for (index, spec) in self.components.iter().enumerate() {
            self.reload_one(pipeline, index, spec).await;
        }
    }

    async fn reload_one(&self, pipeline: &Pipeline<Component>, index: usize, spec: &Spec) {
        let families = &pipeline.families;
        let bytes = match spec.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return self.refused(families, spec, e),
        };
        let unchanged = spec.name.name().is_some()
            && pipeline.current(index).handler.sha256() == hex(&Sha256::digest(&bytes));
        if unchanged {
            tracing::info!(component = spec.name.name(), "unchanged, not reloaded");
            return;
        }
        match self.load(spec, families, &bytes).await {
            Ok(mounted) => {
                pipeline.replace(index, mounted);
                families.component.reloaded(&spec.name, true);
                tracing::info!(component = %spec.origin().display(), name = spec.name.name(), "reloaded");
            }
            Err(e) => self.refused(families, spec, e),
        }
    }

    fn refused(&self, families: &Families, spec: &Spec, e: anyhow::Error) {
        families.component.reloaded(&spec.name, false);
        tracing::error!(
            name = spec.name.name(),
            "reload refused, the previous component keeps serving: {e:#}"
        );
    }
}
