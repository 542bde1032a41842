//! A component's manifest, checked and turned into what a request needs:
//! the router with each route's state, and the registered metric families.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};

use crate::guest_metrics::{GuestMetrics, Kind, SeriesLimits, SharedFamily};
use crate::http_metrics::{HttpMetrics, InProgress, check_buckets};
use crate::labels::{ComponentLabel, check_label_name};
use crate::registry::{Declarations, Families, GuestDecl, HttpDecl};
use crate::routes::{PathTemplate, Route, RouteDecl, Router};
use crate::runtime::types::{HostMeasure, HostMetric, Manifest, Metric, MetricKind};
use crate::runtime_metrics::RouteRuntime;

/// Suffixes the exposition formats add to family names; a declared name that
/// already carries one would read as another family's sample.
const RESERVED_SUFFIXES: [&str; 6] = ["_total", "_info", "_bucket", "_count", "_sum", "_created"];

/// Name prefixes the host keeps for its own families.
const RESERVED_PREFIXES: [&str; 3] = ["process_", "promwasm_", "promhttp_"];

/// What the host keeps per route: the route, the gauges it raises around
/// each call, and its runtime series, resolved at load so that a request
/// touches no map.
#[derive(Debug)]
pub struct RouteState {
    pub route: Route,
    pub in_progress: InProgress,
    pub runtime: RouteRuntime,
}

impl AsRef<Route> for RouteState {
    fn as_ref(&self) -> &Route {
        &self.route
    }
}

/// What the host keeps of a loaded component's declarations.
#[derive(Debug)]
pub struct App {
    /// The `component` label of everything recorded for this app.
    pub component: ComponentLabel,
    pub router: Router<RouteState>,
    /// The default HTTP families; none when they are turned off.
    pub http: Option<HttpMetrics>,
    pub guest_metrics: Arc<GuestMetrics>,
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
    pub fn new(
        manifest: &Manifest,
        families: &Families,
        options: MetricOptions,
        component: &ComponentLabel,
    ) -> Result<App> {
        let router = Router::new(manifest.routes.iter().map(|r| RouteDecl {
            methods: Some(&r.methods),
            path: &r.path,
            track: r.track,
        }))?;
        let prefix = manifest.default_prefix.as_deref();
        if let Some(prefix) = prefix {
            check_name(prefix).with_context(|| format!("default prefix {prefix:?}"))?;
        }
        let mut names = Names(
            HttpMetrics::family_names(prefix, families.http_options())
                .into_iter()
                .collect(),
        );
        let guest = (manifest.metrics.iter())
            .map(|m| {
                check_metric(m, &mut names)
                    .and_then(|d| check_host_labels(d, component, families))
                    .with_context(|| format!("metric {:?}", m.name))
            })
            .collect::<Result<Vec<_>>>()?;
        for h in &manifest.host_metrics {
            check_host_metric(h, &mut names, &router)
                .with_context(|| format!("host metric {:?}", h.name))?;
        }

        // Everything is checked: only now does the registry change.
        let declared = families.declare(Declarations {
            component: component.clone(),
            guest,
            in_progress: (manifest.host_metrics.iter())
                .map(|h| (h.name.clone(), h.help.clone()))
                .collect(),
            http: options.default_metrics.then(|| HttpDecl {
                prefix: prefix.map(str::to_string),
            }),
        })?;
        let router = router.map(|route| {
            let gauges = (manifest.host_metrics.iter())
                .zip(&declared.in_progress)
                .filter_map(|(h, family)| match h.measure {
                    HostMeasure::InProgress => {
                        family.gauge_for(component, h.route.as_deref(), &route.template)
                    }
                });
            RouteState {
                in_progress: gauges.collect(),
                runtime: families.runtime.for_route(component, &route.template),
                route,
            }
        });
        Ok(App {
            router,
            http: declared.http,
            guest_metrics: guest_metrics(declared.guest, families, options, component),
            component: component.clone(),
        })
    }

    /// The app of a component that declares nothing (a wasi:http
    /// component): the label templates and default prefix come from the
    /// configuration, every path and method goes to the component, and
    /// paths no template matches share the unmatched `path` value.
    pub fn for_wasi_http(
        templates: &[PathTemplate],
        prefix: Option<&str>,
        families: &Families,
        options: MetricOptions,
        component: &ComponentLabel,
    ) -> Result<App> {
        let router = Router::new(templates.iter().map(PathTemplate::decl))
            .context("a [[route]] label template")?
            .answer_unmatched();
        if let Some(prefix) = prefix {
            check_name(prefix).with_context(|| format!("default prefix {prefix:?}"))?;
        }
        let declared = families.declare(Declarations {
            component: component.clone(),
            guest: Vec::new(),
            in_progress: Vec::new(),
            http: options.default_metrics.then(|| HttpDecl {
                prefix: prefix.map(str::to_string),
            }),
        })?;
        Ok(App {
            router: router.map(|route| RouteState {
                in_progress: InProgress::default(),
                runtime: families.runtime.for_route(component, &route.template),
                route,
            }),
            http: declared.http,
            guest_metrics: guest_metrics(declared.guest, families, options, component),
            component: component.clone(),
        })
    }

    /// The state of the route the pipeline matched, by its index.
    pub fn route(&self, index: u32) -> &RouteState {
        &self.router.routes()[index as usize]
    }
}

/// The sink of a component's metric updates, over the guest families it
/// declared (none for a wasi:http component).
fn guest_metrics(
    declared: Vec<(String, SharedFamily)>,
    families: &Families,
    options: MetricOptions,
    component: &ComponentLabel,
) -> Arc<GuestMetrics> {
    Arc::new(GuestMetrics::new(
        declared,
        options.series,
        families.misuse.clone(),
        component.clone(),
    ))
}

/// The family names a manifest has claimed so far, starting with the
/// default families'.
struct Names(HashSet<String>);

impl Names {
    /// Checks a declared family's name and help and claims the name.
    fn claim(&mut self, name: &str, help: &str) -> Result<()> {
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
            self.0.insert(name.to_string()),
            "the name is already taken by a default family or another declaration"
        );
        Ok(())
    }
}

/// Checks one guest metric declaration.
fn check_metric(m: &Metric, names: &mut Names) -> Result<GuestDecl> {
    names.claim(&m.name, &m.help)?;
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
    Ok(GuestDecl {
        name: m.name.clone(),
        help: m.help.clone(),
        kind,
        labels: m.labels.clone(),
    })
}

/// Where components are named, `component` is the host's label on every
/// series, as each `--const-label` is, so a guest family cannot have a
/// label of those names.
fn check_host_labels(
    decl: GuestDecl,
    component: &ComponentLabel,
    families: &Families,
) -> Result<GuestDecl> {
    let taken = component.name().is_some() && decl.labels.iter().any(|l| l == "component");
    ensure!(
        !taken,
        "label \"component\" is the host's on a host of several components"
    );
    if let Some(label) = (decl.labels.iter()).find(|l| families.has_const_label(l)) {
        bail!("label {label:?} is a constant label of the host (--const-label)");
    }
    Ok(decl)
}

/// Checks one host-recorded metric declaration.
fn check_host_metric(h: &HostMetric, names: &mut Names, router: &Router) -> Result<()> {
    names.claim(&h.name, &h.help)?;
    if let Some(route) = &h.route {
        ensure!(
            router.routes().iter().any(|r| &*r.template == route),
            "route {route:?} is not declared"
        );
    }
    Ok(())
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
        check_label_name(label)?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposition::Format;
    use crate::runtime::types::Route as RouteDecl;

    fn metric(name: &str, help: &str, kind: MetricKind, labels: &[&str]) -> Metric {
        Metric {
            name: name.into(),
            help: help.into(),
            kind,
            labels: labels.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// A valid manifest with `extra` declared after a valid counter.
    fn manifest(extra: Vec<Metric>, host: Vec<HostMetric>) -> Manifest {
        let mut metrics = vec![metric("good", "Good", MetricKind::Counter, &[])];
        metrics.extend(extra);
        Manifest {
            default_prefix: Some("app".into()),
            routes: vec![RouteDecl {
                methods: vec!["GET".into()],
                path: "/a".into(),
                track: true,
            }],
            metrics,
            host_metrics: host,
        }
    }

    fn refusal(manifest: &Manifest) -> String {
        let families = Families::new();
        let options = MetricOptions {
            default_metrics: true,
            series: SeriesLimits::default(),
        };
        let err =
            App::new(manifest, &families, options, &ComponentLabel::none()).expect_err("refused");
        // All or nothing: the valid declarations were not registered either.
        assert!(!families.encode(Format::Text).contains("good"));
        format!("{err:#}")
    }

    #[test]
    fn every_manifest_refusal_names_its_cause() {
        use MetricKind::{Counter, Histogram, Info};
        let cases = [
            (
                metric("1abc", "H", Counter, &[]),
                "metric \"1abc\": not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)",
            ),
            (
                metric("hits_total", "H", Counter, &[]),
                "metric \"hits_total\": the name ends in \"_total\", a suffix the host adds by type; declare it without",
            ),
            (
                metric("size_bucket", "H", Counter, &[]),
                "metric \"size_bucket\": the name ends in \"_bucket\", a suffix the host adds by type; declare it without",
            ),
            (
                metric("process_x", "H", Counter, &[]),
                "metric \"process_x\": names starting with \"process_\" belong to the host",
            ),
            (
                metric("promwasm_x", "H", Counter, &[]),
                "metric \"promwasm_x\": names starting with \"promwasm_\" belong to the host",
            ),
            (
                metric("app_http_request", "H", Counter, &[]),
                "metric \"app_http_request\": the name is already taken by a default family or another declaration",
            ),
            (
                metric("good", "H", Counter, &[]),
                "metric \"good\": the name is already taken by a default family or another declaration",
            ),
            (
                metric("m", "say \"hi\"", Counter, &[]),
                "metric \"m\": help text holds a control character, '\\' or '\"'",
            ),
            (
                metric("m", "H", Counter, &["1x"]),
                "metric \"m\": label \"1x\" is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)",
            ),
            (
                metric("m", "H", Counter, &["__x"]),
                "metric \"m\": label \"__x\": names starting with \"__\" are reserved",
            ),
            (
                metric("m", "H", Counter, &["a", "a"]),
                "metric \"m\": label \"a\" is declared twice",
            ),
            (
                metric("m", "H", Histogram(vec![]), &[]),
                "metric \"m\": a histogram declares at least one bucket",
            ),
            (
                metric("m", "H", Histogram(vec![2.0, 1.0]), &[]),
                "metric \"m\": bucket bounds must be finite and strictly increasing, got [2.0, 1.0]",
            ),
            (
                metric("m", "H", Histogram(vec![1.0, f64::INFINITY]), &[]),
                "metric \"m\": bucket bounds must be finite and strictly increasing, got [1.0, inf]",
            ),
            (
                metric("m", "H", Histogram(vec![1.0]), &["le"]),
                "metric \"m\": label \"le\" is the histogram's own",
            ),
            (
                metric("m", "H", Info(vec![]), &["version"]),
                "metric \"m\": an info metric gives one value per label: 1 labels, 0 values",
            ),
        ];
        for (bad, message) in cases {
            assert_eq!(refusal(&manifest(vec![bad], vec![])), message);
        }

        let host = |route: Option<&str>| HostMetric {
            name: "inflight".into(),
            help: "In flight".into(),
            measure: HostMeasure::InProgress,
            route: route.map(str::to_string),
        };
        assert_eq!(
            refusal(&manifest(vec![], vec![host(Some("/nope"))])),
            "host metric \"inflight\": route \"/nope\" is not declared"
        );
        let mut clash = host(None);
        clash.name = "good".into();
        assert_eq!(
            refusal(&manifest(vec![], vec![clash])),
            "host metric \"good\": the name is already taken by a default family or another declaration"
        );
        let mut bad_prefix = manifest(vec![], vec![]);
        bad_prefix.default_prefix = Some("a-b".into());
        assert_eq!(
            refusal(&bad_prefix),
            "default prefix \"a-b\": not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"
        );
        let mut overlapping = manifest(vec![], vec![]);
        overlapping.routes.push(overlapping.routes[0].clone());
        assert_eq!(
            refusal(&overlapping),
            "route \"/a\" matches the same paths as route \"/a\""
        );
    }

    #[test]
    fn a_named_component_cannot_declare_the_component_label() {
        let families = Families::new();
        let options = MetricOptions {
            default_metrics: true,
            series: SeriesLimits::default(),
        };
        let m = manifest(
            vec![metric("m", "H", MetricKind::Counter, &["component"])],
            vec![],
        );
        let err = App::new(&m, &families, options, &ComponentLabel::named("shop")).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "metric \"m\": label \"component\" is the host's on a host of several components"
        );
        // Alone on its host, a component may use the name.
        assert!(App::new(&m, &families, options, &ComponentLabel::none()).is_ok());
    }

    #[test]
    fn each_route_gets_its_own_state() {
        let families = Families::new();
        let mut m = manifest(vec![], vec![]);
        m.routes.push(RouteDecl {
            methods: vec!["POST".into()],
            path: "/b/{id}".into(),
            track: false,
        });
        m.host_metrics.push(HostMetric {
            name: "inflight".into(),
            help: "In flight".into(),
            measure: HostMeasure::InProgress,
            route: Some("/b/{id}".into()),
        });
        let options = MetricOptions {
            default_metrics: true,
            series: SeriesLimits::default(),
        };
        let app = App::new(&m, &families, options, &ComponentLabel::none()).unwrap();
        let routes: Vec<_> = (app.router.routes().iter())
            .map(|r| (&*r.route.template, r.route.index, r.route.track))
            .collect();
        assert_eq!(routes, [("/a", 0, true), ("/b/{id}", 1, false)]);
        let _raised = app.router.routes()[1].in_progress.enter();
        let text = families.encode(Format::Text);
        assert!(text.contains("inflight{path=\"/b/{id}\"} 1\n"), "{text}");
        assert!(!text.contains("inflight{path=\"/a\"}"), "{text}");
    }
}
