//! promwasm: HTTP route handlers compiled as WebAssembly components, served
//! by a native host that records Prometheus metrics for every route at the
//! host boundary. A component implements promwasm's own
//! `promwasm:app/route-handler` world (it declares its routes and metrics)
//! or the standard `wasi:http/proxy` world (the configuration labels it).
//!
//! The binary (`main.rs`) wires these together; the modules are a library so
//! that benchmarks and tests can drive them directly. A request goes
//! hyper ([`server`]) -> [`client_limits`] -> [`routes`] -> a
//! [`pipeline::Handler`] ([`component`]: [`route_handler`] or
//! [`wasi_http`], which run the guest through [`runtime`]) -> response, and
//! [`pipeline`] records it, when its body ends for a streamed answer. A
//! host of several components finds the component by its [`mounts`] first.
//!
//! ```no_run
//! use std::sync::Arc;
//! use promwasm::app::MetricOptions;
//! use promwasm::client_limits::ClientLimits;
//! use promwasm::component::{Source, Spec};
//! use promwasm::pipeline::{Pipeline, Role};
//! use promwasm::registry::Families;
//! use promwasm::runtime::{Limits, MemoryReset, Runtime};
//!
//! # async fn serve() -> anyhow::Result<()> {
//! let source = Source {
//!     runtime: Runtime::new(Limits::default(), None, MemoryReset::detect().0)?,
//!     options: MetricOptions { default_metrics: true, series: Default::default() },
//!     metrics_path: Some(Default::default()),
//!     // The built-in example at every path, as `promwasm` with no flags.
//!     components: vec![Spec::single(None, Default::default(), Limits::default())],
//! };
//! let families = Families::new();
//! let mounted = source.load_all(&families).await?;
//! let pipeline = Arc::new(Pipeline::mounted(families, ClientLimits::default(), mounted)?);
//! let listener = promwasm::server::bind("127.0.0.1:5000".parse()?).await?;
//! let (_stop, stopped) = tokio::sync::watch::channel(false);
//! let role = Role::Main { serves_metrics: true };
//! promwasm::server::serve(pipeline, listener, role, None, stopped, std::time::Duration::from_secs(10))
//!     .await;
//! # Ok(())
//! # }
//! ```

pub mod app;
pub mod basic_auth;
pub mod cache;
pub mod call_stats;
pub mod client_limits;
pub mod component;
pub mod config;
pub mod exposition;
pub mod guest_metrics;
pub mod host_metrics;
pub mod http_metrics;
pub mod info;
pub mod labels;
pub mod mounts;
pub mod pipeline;
pub mod process;
pub mod registry;
pub mod response;
pub mod route_handler;
pub mod routes;
pub mod runtime;
pub mod runtime_metrics;
pub mod scrape;
pub mod server;
pub mod tls;
pub mod trace;
pub mod wasi_http;
pub mod web;
pub mod web_config;

/// The example app, built from `guest/` by the build script.
pub static EXAMPLE_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/promwasm_example.wasm"));
