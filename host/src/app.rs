//! A component's manifest, checked and turned into what the server needs per
//! request: the router, each route's host-recorded gauges, and the registered
//! metric families.

use std::collections::HashSet;
use std::sync::Arc;

use std::path::Path;

use anyhow::{Context, Result, anyhow, bail, ensure};

use crate::families::{Families, Shared, Spec};
use crate::guest_metrics::{GuestMetrics, Kind, SeriesLimits};
use crate::metrics::{HttpMetrics, InProgress, RouteRuntime};
use crate::routes::{RouteDecl, Router};
use crate::runtime::types::{HostMeasure, Manifest, MetricKind};
use crate::runtime::{Guest, Runtime};

/// Suffixes the exposition formats add to family names; a declared name that
/// already carries one would read as another family's sample.
const RESERVED_SUFFIXES: [&str; 6] = ["_total", "_info", "_bucket", "_count", "_sum", "_created"];

/// Name prefixes the host keeps for its own families.
const RESERVED_PREFIXES: [&str; 2] = ["process_", "promwasm_"];

/// What the host keeps of a loaded component's declarations.
#[derive(Debug)]
pub struct App {
    pub router: Router,
    /// The default HTTP families; none when they are turned off.
    pub http: Option<HttpMetrics>,
    /// Per route, the host-recorded gauges to raise around the guest call.
    pub in_progress: Vec<InProgress>,
    /// Per route, its runtime series.
    pub runtime: Vec<RouteRuntime>,
    pub guest_metrics: Arc<GuestMetrics>,
}

/// A component ready to serve: its compiled code and what it declared.
pub struct Loaded {
    pub guest: Guest,
    pub app: App,
}

impl Loaded {
    /// Compiles `bytes`, asks the component for its manifest and registers
    /// (or finds) its families. `origin` names the component in errors.
    pub async fn load(
        runtime: &Runtime,
        families: &Families,
        bytes: &[u8],
        origin: &Path,
        options: MetricOptions,
    ) -> Result<Loaded> {
        let guest = runtime.load(bytes, origin)?;
        let manifest = guest
            .describe()
            .await
            .map_err(|e| anyhow!(e))
            .with_context(|| format!("calling describe on {}", origin.display()))?;
        let app = App::new(&manifest, families, options)
            .with_context(|| format!("{} declares an invalid manifest", origin.display()))?;
        let name = origin.display().to_string();
        families.component.serving(&name, &guest.sha256);
        tracing::info!(
            component = %name,
            routes = ?app.router.routes().iter().map(|r| &*r.template).collect::<Vec<_>>(),
            prefix = manifest.default_prefix.as_deref().unwrap_or(""),
            "loaded component"
        );
        Ok(Loaded { guest, app })
    }
}

/// Host settings that shape the registered families.
#[derive(Clone, Copy, Debug)]
pub struct MetricOptions {
    pub default_metrics: bool,
    /// What bounds each guest family's series.
    pub series: SeriesLimits,
}

impl App {
    /// Checks the manifest and registers its families, or finds them
    /// registered by an earlier load. Any problem is refused with an error
    /// naming the route or metric, and then nothing is registered.
    pub fn new(manifest: &Manifest, families: &Families, options: MetricOptions) -> Result<App> {
        let router = Router::new(manifest.routes.iter().map(|r| RouteDecl {
            methods: &r.methods,
            path: &r.path,
            track: r.track,
        }))?;

        let prefix = manifest.default_prefix.as_deref();
        if let Some(prefix) = prefix {
            check_name(prefix).with_context(|| format!("default prefix {prefix:?}"))?;
        }
        let mut taken: HashSet<String> = HttpMetrics::family_names(prefix).into();
        let mut claim = |name: &str, help: &str| -> Result<()> {
            check_name(name)?;
            check_help(help)?;
            if let Some(suffix) = RESERVED_SUFFIXES.iter().find(|s| name.ends_with(*s)) {
                bail!(
                    "the name ends in {suffix:?}, a suffix the host adds by type; declare it without"
                );
            }
            if let Some(reserved) = RESERVED_PREFIXES.iter().find(|p| name.starts_with(*p)) {
                bail!("names starting with {reserved:?} belong to the host");
            }
            ensure!(
                taken.insert(name.to_string()),
                "the name is already taken by a default family or another declaration"
            );
            Ok(())
        };

        let mut declarations = Vec::with_capacity(manifest.metrics.len());
        for m in &manifest.metrics {
            let mut checked = || -> Result<(Kind, Vec<String>)> {
                claim(&m.name, &m.help)?;
                check_labels(&m.labels)?;
                let kind = match &m.kind {
                    MetricKind::Counter => Kind::Counter,
                    MetricKind::Gauge => Kind::Gauge,
                    MetricKind::Histogram(buckets) => {
                        check_buckets(buckets)?;
                        ensure!(
                            !m.labels.iter().any(|l| l == "le"),
                            "label \"le\" is the histogram's own"
                        );
                        Kind::Histogram(buckets.clone())
                    }
                    MetricKind::Info(values) => {
                        ensure!(
                            values.len() == m.labels.len(),
                            "an info metric gives one value per label: {} labels, {} values",
                            m.labels.len(),
                            values.len()
                        );
                        Kind::Info(values.clone())
                    }
                };
                Ok((kind, m.labels.clone()))
            };
            let (kind, labels) = checked().with_context(|| format!("metric {:?}", m.name))?;
            declarations.push((m.name.clone(), m.help.clone(), Spec::Guest { kind, labels }));
        }

        let templates: Vec<Arc<str>> = router.routes().iter().map(|r| r.template.clone()).collect();
        for h in &manifest.host_metrics {
            let mut checked = || -> Result<()> {
                claim(&h.name, &h.help)?;
                if let Some(route) = &h.route {
                    ensure!(
                        templates.iter().any(|t| &**t == route),
                        "route {route:?} is not declared"
                    );
                }
                Ok(())
            };
            checked().with_context(|| format!("host metric {:?}", h.name))?;
        }

        // Everything is checked: only now does the registry change.
        let guest_count = declarations.len();
        let mut wanted = declarations;
        wanted.extend(
            manifest
                .host_metrics
                .iter()
                .map(|h| (h.name.clone(), h.help.clone(), Spec::InProgress)),
        );
        if options.default_metrics {
            let [duration, ..] = HttpMetrics::family_names(prefix);
            wanted.push((
                duration,
                String::new(),
                Spec::Http {
                    prefix: prefix.map(str::to_string),
                },
            ));
        }
        let names: Vec<String> = wanted.iter().map(|(name, ..)| name.clone()).collect();
        let mut shared = families.declare(wanted)?.into_iter().zip(names);

        let guest = shared
            .by_ref()
            .take(guest_count)
            .map(|(family, name)| match family {
                Shared::Guest(family) => (name, family),
                other => unreachable!("declared a guest family, got {other:?}"),
            })
            .collect();
        let mut in_progress: Vec<Vec<_>> = vec![Vec::new(); templates.len()];
        for (h, (family, _)) in manifest.host_metrics.iter().zip(shared.by_ref()) {
            let Shared::InProgress(family) = family else {
                unreachable!("declared an in-progress family, got {family:?}");
            };
            match h.measure {
                HostMeasure::InProgress => {
                    for (route, gauge) in in_progress
                        .iter_mut()
                        .zip(family.gauges(h.route.as_deref(), &templates))
                    {
                        route.extend(gauge);
                    }
                }
            }
        }
        let http = shared.next().map(|(family, _)| match family {
            Shared::Http(http) => http,
            other => unreachable!("declared the default families, got {other:?}"),
        });
        Ok(App {
            router,
            http,
            in_progress: in_progress.into_iter().map(InProgress::from_iter).collect(),
            runtime: templates
                .iter()
                .map(|t| families.runtime.for_route(t))
                .collect(),
            guest_metrics: Arc::new(GuestMetrics::new(
                guest,
                options.series,
                families.misuse.clone(),
            )),
        })
    }
}

/// Prometheus metric names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn check_name(name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let valid = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':');
    ensure!(
        valid,
        "not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
    );
    Ok(())
}

/// Label names: `[a-zA-Z_][a-zA-Z0-9_]*`, distinct, not `__`-prefixed.
fn check_labels(labels: &[String]) -> Result<()> {
    let mut seen = HashSet::new();
    for label in labels {
        let mut bytes = label.bytes();
        let valid = bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
            && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_');
        ensure!(
            valid,
            "label {label:?} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"
        );
        ensure!(
            !label.starts_with("__"),
            "label {label:?}: names starting with \"__\" are reserved"
        );
        ensure!(seen.insert(label), "label {label:?} is declared twice");
    }
    Ok(())
}

/// Help text goes into the exposition unescaped, so it must need no escape.
fn check_help(help: &str) -> Result<()> {
    ensure!(
        !help
            .chars()
            .any(|c| c.is_control() || c == '\\' || c == '"'),
        "help text holds a control character, '\\' or '\"'"
    );
    Ok(())
}

fn check_buckets(buckets: &[f64]) -> Result<()> {
    ensure!(
        !buckets.is_empty(),
        "a histogram declares at least one bucket"
    );
    ensure!(
        buckets.iter().all(|b| b.is_finite()) && buckets.windows(2).all(|w| w[0] < w[1]),
        "bucket bounds must be finite and strictly increasing, got {buckets:?}"
    );
    Ok(())
}
