//! Where each component of a several-component host is mounted: a literal
//! path, or a prefix ending in `/...` (which also matches the bare
//! prefix). As in Spin, an exact mount beats a prefix and the longest
//! prefix wins; the matching is the router's own, on whole segments.

use anyhow::{Result, bail, ensure};
use hyper::Method;

use crate::routes::{Dispatch, RouteDecl, Router};

/// A checked mount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mount(String);

impl Mount {
    /// Checks a mount as the configuration gives it.
    pub fn parse(mount: &str) -> Result<Mount> {
        ensure!(
            mount.starts_with('/'),
            "mount {mount:?} does not start with '/'"
        );
        ensure!(
            !mount.contains(['{', '}']),
            "mount {mount:?}: a mount is a literal path or a prefix ending in /..., without {{parameters}}"
        );
        // The router's own checks of a template ('...' at the end only).
        Router::new([RouteDecl {
            methods: None,
            path: mount,
            track: true,
        }])?;
        Ok(Mount(mount.to_string()))
    }

    /// `/...`: every path.
    pub fn everything() -> Mount {
        Mount("/...".to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether every path the route template `template` matches lies
    /// under this mount.
    pub fn covers(&self, template: &str) -> bool {
        match self.0.strip_suffix("/...") {
            Some("") => true,
            Some(prefix) => {
                template == prefix
                    || (template.strip_prefix(prefix)).is_some_and(|rest| rest.starts_with('/'))
            }
            None => template == self.0,
        }
    }
}

impl std::fmt::Display for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The mounts of a host, each with the name of its component.
#[derive(Debug)]
pub struct Mounts {
    router: Router,
    /// One component at `/...`: every path is its own, no lookup needed
    /// (the single-component host's every request).
    only_everything: bool,
}

impl Mounts {
    /// Refuses two components on the same mount, naming both.
    pub fn new<'a>(mounts: impl IntoIterator<Item = (&'a str, &'a Mount)>) -> Result<Mounts> {
        let mounts: Vec<_> = mounts.into_iter().collect();
        for (i, (name, mount)) in mounts.iter().enumerate() {
            if let Some((other, _)) = mounts[..i].iter().find(|(_, m)| m == mount) {
                bail!("components {other:?} and {name:?} are both mounted at {mount}");
            }
        }
        let router = Router::new(mounts.iter().map(|(_, mount)| RouteDecl {
            methods: None,
            path: mount.as_str(),
            track: true,
        }))?;
        let only_everything = matches!(&mounts[..], [(_, mount)] if **mount == Mount::everything());
        Ok(Mounts {
            router,
            only_everything,
        })
    }

    /// The position of the component whose mount takes `path`.
    pub fn find(&self, path: &str) -> Option<usize> {
        if self.only_everything {
            return Some(0);
        }
        match self.router.dispatch(&Method::GET, path) {
            Dispatch::Handle(route) => Some(route.index as usize),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_beats_prefix_and_the_longest_prefix_wins() {
        let mounts = ["/...", "/shop/...", "/shop/cart", "/shop/admin/..."]
            .map(|m| Mount::parse(m).unwrap());
        let names = ["root", "shop", "cart", "admin"];
        let table = Mounts::new(names.into_iter().zip(&mounts)).unwrap();
        for (path, owner) in [
            ("/", "root"),
            ("/square", "root"),
            ("/shopping", "root"),
            ("/shop", "shop"),
            ("/shop/", "shop"),
            ("/shop/items/3", "shop"),
            ("/shop/cart", "cart"),
            ("/shop/cart/x", "shop"),
            ("/shop/admin", "admin"),
            ("/shop/admin/users/1", "admin"),
        ] {
            assert_eq!(table.find(path).map(|i| names[i]), Some(owner), "{path}");
        }
        let only = [Mount::parse("/items/...").unwrap()];
        let table = Mounts::new([("items", &only[0])]).unwrap();
        assert_eq!(table.find("/items/7"), Some(0));
        assert_eq!(table.find("/other"), None);
    }

    #[test]
    fn refusals_name_the_problem() {
        let err = |m: &str| Mount::parse(m).unwrap_err().to_string();
        assert_eq!(
            err("shop/..."),
            "mount \"shop/...\" does not start with '/'"
        );
        assert_eq!(
            err("/shop/{id}"),
            "mount \"/shop/{id}\": a mount is a literal path or a prefix ending in /..., without {parameters}"
        );
        assert_eq!(
            format!("{:#}", Mount::parse("/a.../b").unwrap_err()),
            "route \"/a.../b\": segment \"a...\": '...' stands for the rest of the path, at the end only"
        );
        let same = [
            Mount::parse("/shop/...").unwrap(),
            Mount::parse("/shop/...").unwrap(),
        ];
        let clash = Mounts::new([("a", &same[0]), ("b", &same[1])]).unwrap_err();
        assert_eq!(
            clash.to_string(),
            "components \"a\" and \"b\" are both mounted at /shop/..."
        );
    }

    #[test]
    fn a_mount_covers_the_routes_under_it() {
        let shop = Mount::parse("/shop/...").unwrap();
        for (template, under) in [
            ("/shop", true),
            ("/shop/items/{id}", true),
            ("/shop/...", true),
            ("/shopping", false),
            ("/", false),
            ("/{x}", false),
        ] {
            assert_eq!(shop.covers(template), under, "{template}");
        }
        assert!(Mount::everything().covers("/{x}/..."));
        let exact = Mount::parse("/cart").unwrap();
        assert!(exact.covers("/cart"));
        assert!(!exact.covers("/cart/x"));
    }
}
