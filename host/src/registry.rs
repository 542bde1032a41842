//! The one registry every family lives in, with a table of the families
//! components declared. A reloaded component finds its families there again,
//! so counters never reset; a family it no longer declares stays until
//! restart; a declaration that differs from what is registered under the
//! same name is refused, and then nothing is registered.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use anyhow::{Result, bail};
use prometheus_client::registry::Registry;

use crate::exposition::Format;
use crate::guest_metrics::{Kind, Misuse, Shape, SharedFamily};
use crate::host_metrics::{ComponentInfo, Rejections};
use crate::http_metrics::{HttpMetrics, HttpOptions, InProgressFamily};
use crate::labels::{ComponentLabel, ConstLabel};
use crate::process::ProcessCollector;
use crate::runtime_metrics::RuntimeMetrics;

/// A family the guest updates, as a manifest declares it.
#[derive(Debug)]
pub struct GuestDecl {
    pub name: String,
    pub help: String,
    pub kind: Kind,
    pub labels: Vec<String>,
}

/// Everything one component asks for.
#[derive(Debug, Default)]
pub struct Declarations {
    /// Who asks: the `component` label of the series the families get for
    /// it, and the name refusals give.
    pub component: ComponentLabel,
    pub guest: Vec<GuestDecl>,
    /// Host-recorded in-progress gauge families: name and help.
    pub in_progress: Vec<(String, String)>,
    /// The default HTTP families, under this prefix; none when they are off.
    pub http: Option<HttpDecl>,
}

/// The default HTTP families under a prefix.
#[derive(Debug)]
pub struct HttpDecl {
    pub prefix: Option<String>,
}

/// The registered families, in the order they were declared.
#[derive(Debug)]
pub struct Declared {
    /// Each guest family with its name.
    pub guest: Vec<(String, SharedFamily)>,
    pub in_progress: Vec<InProgressFamily>,
    pub http: Option<HttpMetrics>,
}

/// What must match for a declaration to reuse a registered family.
#[derive(Clone, Debug, PartialEq)]
enum Signature {
    Http,
    InProgress,
    /// A family of the host's own, registered once.
    Host,
    Guest {
        shape: Shape,
        labels: Vec<String>,
    },
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signature::Http => f.write_str("default HTTP family"),
            Signature::InProgress => f.write_str("in-progress gauge labelled by path"),
            Signature::Host => f.write_str("family of the host's own"),
            Signature::Guest { shape, labels } => match shape {
                Shape::Histogram(buckets) => {
                    write!(
                        f,
                        "histogram with labels {labels:?} and buckets {buckets:?}"
                    )
                }
                shape => write!(f, "{shape} with labels {labels:?}"),
            },
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    registry: Registry,
    /// Every declared family name, with what it was first declared as and
    /// by whom.
    signatures: HashMap<String, (Signature, ComponentLabel)>,
    guest: HashMap<String, SharedFamily>,
    in_progress: HashMap<String, InProgressFamily>,
    http: HashMap<Option<String>, HttpMetrics>,
}

/// All metric families of the process.
#[derive(Debug)]
pub struct Families {
    inner: RwLock<Inner>,
    /// How every component's default families record.
    http_options: HttpOptions,
    /// The names of the labels every series carries (`--const-label`).
    const_labels: Vec<String>,
    pub rejections: Rejections,
    pub runtime: Arc<RuntimeMetrics>,
    pub misuse: Misuse,
    pub component: ComponentInfo,
}

impl Families {
    /// A registry with the host's own families in it.
    pub fn new() -> Families {
        Families::with_options(HttpOptions::default(), &[])
    }

    /// A registry whose default families record as `http` says, and whose
    /// every series carries `const_labels` (checked by the caller: see
    /// [`crate::labels::check_const_labels`]).
    pub fn with_options(http: HttpOptions, const_labels: &[ConstLabel]) -> Families {
        let labels = (const_labels.iter()).map(|l| (l.name.clone().into(), l.value.clone().into()));
        let mut registry = Registry::with_labels(labels);
        let rejections = Rejections::register(&mut registry);
        let runtime = Arc::new(RuntimeMetrics::register(&mut registry));
        let misuse = Misuse::register(&mut registry);
        let component = ComponentInfo::register(&mut registry);
        registry.register_collector(Box::new(ProcessCollector));
        Families {
            inner: RwLock::new(Inner {
                registry,
                ..Inner::default()
            }),
            http_options: http,
            const_labels: const_labels.iter().map(|l| l.name.clone()).collect(),
            rejections,
            runtime,
            misuse,
            component,
        }
    }

    /// How the default families record.
    pub fn http_options(&self) -> &HttpOptions {
        &self.http_options
    }

    /// Whether every series carries a constant label named `name`.
    pub fn has_const_label(&self, name: &str) -> bool {
        self.const_labels.iter().any(|l| l == name)
    }

    /// Registers a family of the host's own under `name`, which no
    /// component may then declare.
    pub fn register_host(
        &self,
        name: &str,
        help: &str,
        metric: impl prometheus_client::registry::Metric,
    ) -> Result<()> {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if let Some((registered, _)) = inner.signatures.get(name) {
            bail!("{name:?} is registered as a {registered} already");
        }
        (inner.signatures).insert(name.to_string(), (Signature::Host, ComponentLabel::none()));
        inner.registry.register(name, help, metric);
        Ok(())
    }

    /// Encodes every family for a scrape.
    pub fn encode(&self, format: Format) -> String {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        format.encode(&inner.registry)
    }

    /// Registers what `wanted` declares, or hands back the families already
    /// registered under those names when their signatures match. All or
    /// none: a clash with a registered family registers nothing.
    pub fn declare(&self, wanted: Declarations) -> Result<Declared> {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        let guest_signature = |d: &GuestDecl| Signature::Guest {
            shape: d.kind.shape(),
            labels: d.labels.clone(),
        };
        let mut claims: Vec<(String, Signature)> = Vec::new();
        claims.extend(
            wanted
                .guest
                .iter()
                .map(|d| (d.name.clone(), guest_signature(d))),
        );
        claims.extend(
            (wanted.in_progress.iter()).map(|(name, _)| (name.clone(), Signature::InProgress)),
        );
        if let Some(http) = &wanted.http {
            claims.extend(
                HttpMetrics::family_names(http.prefix.as_deref(), &self.http_options)
                    .into_iter()
                    .map(|name| (name, Signature::Http)),
            );
        }
        let mut seen = std::collections::HashSet::new();
        for (name, signature) in &claims {
            if !seen.insert(name) {
                bail!("{name:?} is declared twice");
            }
            match inner.signatures.get(name) {
                Some((registered, _)) if registered == signature => {}
                Some((registered, by)) if by.name().is_some() && *by != wanted.component => bail!(
                    "{name:?} is declared by {by} as a {registered}; {} declares it as a {signature}",
                    wanted.component
                ),
                Some((registered, _)) => bail!(
                    "{name:?} is registered as a {registered}; it cannot become a {signature}"
                ),
                None => {}
            }
        }
        let inner = &mut *inner;
        let component = wanted.component;
        for (name, signature) in claims {
            (inner.signatures.entry(name)).or_insert_with(|| (signature, component.clone()));
        }
        let registry = &mut inner.registry;
        let guest = wanted
            .guest
            .into_iter()
            .map(|d| {
                let family = (inner.guest.entry(d.name.clone())).or_insert_with(|| {
                    SharedFamily::register(registry, &d.name, &d.help, &d.kind, &d.labels)
                });
                family.redeclared(&component, &d.kind);
                (d.name, family.clone())
            })
            .collect();
        let in_progress = wanted
            .in_progress
            .into_iter()
            .map(|(name, help)| {
                (inner.in_progress.entry(name))
                    .or_insert_with_key(|name| InProgressFamily::register(registry, name, &help))
                    .clone()
            })
            .collect();
        let http = wanted.http.map(|HttpDecl { prefix }| {
            let http = (inner.http.entry(prefix)).or_insert_with_key(|prefix| {
                HttpMetrics::register(registry, prefix.as_deref(), &self.http_options)
            });
            http.announce(&component);
            http.clone()
        });
        Ok(Declared {
            guest,
            in_progress,
            http,
        })
    }
}

impl Default for Families {
    fn default() -> Self {
        Families::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_metrics::{GuestMetrics, SeriesLimits};
    use crate::runtime::Update;

    fn counters(decls: &[(&str, &[&str])]) -> Declarations {
        Declarations {
            guest: decls
                .iter()
                .map(|(name, labels)| GuestDecl {
                    name: name.to_string(),
                    help: "Help".into(),
                    kind: Kind::Counter,
                    labels: labels.iter().map(|s| s.to_string()).collect(),
                })
                .collect(),
            ..Declarations::default()
        }
    }

    #[test]
    fn redeclaring_reuses_and_clashing_registers_nothing() {
        let families = Families::new();
        let hit = |declared: Declared| {
            let first = declared.guest.into_iter().next().expect("a guest family");
            let metrics = GuestMetrics::new(
                vec![first],
                SeriesLimits::default(),
                families.misuse.clone(),
                ComponentLabel::none(),
            );
            metrics
                .update(0, Update::CounterAdd, vec!["ann".into()], 1.0)
                .unwrap();
        };
        hit(families.declare(counters(&[("hits", &["user"])])).unwrap());
        let again = families
            .declare(counters(&[("hits", &["user"]), ("fresh", &[])]))
            .unwrap();
        assert_eq!(again.guest.len(), 2);
        hit(again);
        let text = families.encode(Format::Text);
        assert_eq!(
            text.matches("# TYPE hits_total counter").count(),
            1,
            "{text}"
        );
        assert!(text.contains("hits_total{user=\"ann\"} 2.0\n"), "{text}");
        assert!(text.contains("fresh_total 0.0\n"), "{text}");

        let clash = families
            .declare(counters(&[("later", &[]), ("hits", &["user", "path"])]))
            .unwrap_err();
        assert_eq!(
            clash.to_string(),
            "\"hits\" is registered as a counter with labels [\"user\"]; it cannot become a counter with labels [\"user\", \"path\"]"
        );
        assert!(!families.encode(Format::Text).contains("later"));
        let twice = (families.declare(counters(&[("dup", &[]), ("dup", &[])]))).unwrap_err();
        assert_eq!(twice.to_string(), "\"dup\" is declared twice");
        assert!(!families.encode(Format::Text).contains("dup"));

        let http = families
            .declare(Declarations {
                http: Some(HttpDecl {
                    prefix: Some("app".into()),
                }),
                ..Declarations::default()
            })
            .unwrap();
        assert!(http.http.is_some());
        let clash = families
            .declare(counters(&[("app_http_request", &[])]))
            .unwrap_err();
        assert_eq!(
            clash.to_string(),
            "\"app_http_request\" is registered as a default HTTP family; it cannot become a counter with labels []"
        );
    }
}
