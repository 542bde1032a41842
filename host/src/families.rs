//! The one registry every family lives in, with a table of the families
//! components declared. A reloaded component finds its families there again,
//! so counters never reset; a family it no longer declares stays until
//! restart; a declaration that differs from what is registered under the
//! same name is refused, and then nothing is registered.

use std::collections::HashMap;
use std::sync::RwLock;

use anyhow::{Result, bail};
use prometheus_client::registry::Registry;

use crate::guest_metrics::{Kind, Misuse, SharedFamily};
use crate::metrics::{
    ComponentInfo, Format, HttpMetrics, InProgressFamily, ProcessCollector, Rejections,
    RuntimeMetrics,
};

/// A family a component asks for.
#[derive(Debug)]
pub enum Spec {
    /// The default HTTP families under a prefix.
    Http { prefix: Option<String> },
    /// A host-recorded in-progress gauge family.
    InProgress,
    /// A family the guest updates.
    Guest { kind: Kind, labels: Vec<String> },
}

impl Spec {
    fn signature(&self) -> String {
        match self {
            Spec::Http { .. } => "default HTTP family".to_string(),
            Spec::InProgress => "in-progress gauge labelled by path".to_string(),
            Spec::Guest { kind, labels } => kind.signature(labels),
        }
    }
}

/// A registered family, as handed back to a component.
#[derive(Clone, Debug)]
pub enum Shared {
    Http(HttpMetrics),
    InProgress(InProgressFamily),
    Guest(SharedFamily),
}

#[derive(Debug)]
struct Declared {
    signature: String,
    shared: Shared,
}

#[derive(Debug, Default)]
struct Inner {
    registry: Registry,
    declared: HashMap<String, Declared>,
}

/// All metric families of the process.
#[derive(Debug)]
pub struct Families {
    inner: RwLock<Inner>,
    pub rejections: Rejections,
    pub runtime: RuntimeMetrics,
    pub misuse: Misuse,
    pub component: ComponentInfo,
}

impl Families {
    /// A registry with the host's own families in it.
    pub fn new() -> Families {
        let mut registry = Registry::default();
        let rejections = Rejections::register(&mut registry);
        let runtime = RuntimeMetrics::register(&mut registry);
        let misuse = Misuse::register(&mut registry);
        let component = ComponentInfo::register(&mut registry);
        registry.register_collector(Box::new(ProcessCollector));
        Families {
            inner: RwLock::new(Inner {
                registry,
                declared: HashMap::new(),
            }),
            rejections,
            runtime,
            misuse,
            component,
        }
    }

    /// Encodes every family for a scrape.
    pub fn encode(&self, format: Format) -> String {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        format.encode(&inner.registry)
    }

    /// Registers each `(name, help, spec)`, or hands back the family already
    /// registered under that name when its signature matches. All or none:
    /// a clash with a registered family registers nothing.
    pub fn declare(&self, wanted: Vec<(String, String, Spec)>) -> Result<Vec<Shared>> {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        for (name, _, spec) in &wanted {
            let signature = spec.signature();
            for name in names(name, spec) {
                if let Some(declared) = inner.declared.get(&name)
                    && declared.signature != signature
                {
                    bail!(
                        "{name:?} is registered as a {}; it cannot become a {signature}",
                        declared.signature
                    );
                }
            }
        }
        let Inner { registry, declared } = &mut *inner;
        Ok(wanted
            .into_iter()
            .map(|(name, help, spec)| {
                let key = names(&name, &spec).swap_remove(0);
                if let Some(existing) = declared.get(&key) {
                    if let (Shared::Guest(family), Spec::Guest { kind, .. }) =
                        (&existing.shared, &spec)
                    {
                        family.redeclared(kind);
                    }
                    return existing.shared.clone();
                }
                let shared = match &spec {
                    Spec::Http { prefix } => {
                        Shared::Http(HttpMetrics::register(registry, prefix.as_deref()))
                    }
                    Spec::InProgress => {
                        Shared::InProgress(InProgressFamily::register(registry, &name, &help))
                    }
                    Spec::Guest { kind, labels } => {
                        Shared::Guest(SharedFamily::register(registry, &name, &help, kind, labels))
                    }
                };
                for name in names(&name, &spec) {
                    declared.insert(
                        name,
                        Declared {
                            signature: spec.signature(),
                            shared: shared.clone(),
                        },
                    );
                }
                shared
            })
            .collect())
    }
}

impl Default for Families {
    fn default() -> Self {
        Families::new()
    }
}

/// The family names a spec occupies: the default HTTP families are four.
fn names(name: &str, spec: &Spec) -> Vec<String> {
    match spec {
        Spec::Http { prefix } => HttpMetrics::family_names(prefix.as_deref()).into(),
        _ => vec![name.to_string()],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest_metrics::{GuestMetrics, SeriesLimits, Update};

    fn counter(labels: &[&str]) -> Spec {
        Spec::Guest {
            kind: Kind::Counter,
            labels: labels.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn redeclaring_reuses_and_clashing_registers_nothing() {
        let families = Families::new();
        let hit = |shared: Vec<Shared>| {
            let Some(Shared::Guest(family)) = shared.into_iter().next() else {
                panic!("not a guest family");
            };
            let metrics = GuestMetrics::new(
                vec![("hits".into(), family)],
                SeriesLimits::default(),
                families.misuse.clone(),
            );
            metrics
                .update(0, Update::CounterAdd, vec!["ann".into()], 1.0)
                .unwrap();
        };
        hit(families
            .declare(vec![("hits".into(), "Hits".into(), counter(&["user"]))])
            .unwrap());
        let again = families
            .declare(vec![
                ("hits".into(), "Hits".into(), counter(&["user"])),
                ("fresh".into(), "Fresh".into(), counter(&[])),
            ])
            .unwrap();
        assert_eq!(again.len(), 2);
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
            .declare(vec![
                ("later".into(), "Later".into(), counter(&[])),
                ("hits".into(), "Hits".into(), counter(&["user", "path"])),
            ])
            .unwrap_err();
        assert_eq!(
            clash.to_string(),
            "\"hits\" is registered as a counter with labels [\"user\"]; it cannot become a counter with labels [\"user\", \"path\"]"
        );
        assert!(!families.encode(Format::Text).contains("later"));

        let http = families
            .declare(vec![(
                "x".into(),
                String::new(),
                Spec::Http {
                    prefix: Some("app".into()),
                },
            )])
            .unwrap();
        assert!(matches!(http[0], Shared::Http(_)));
        let clash = families
            .declare(vec![("app_http_request".into(), "H".into(), counter(&[]))])
            .unwrap_err();
        assert_eq!(
            clash.to_string(),
            "\"app_http_request\" is registered as a default HTTP family; it cannot become a counter with labels []"
        );
    }
}
