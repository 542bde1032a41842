//! promwasm: HTTP route handlers compiled as a WebAssembly component, served
//! by a native host that records Prometheus metrics for every route at the
//! host boundary.
//!
//! The binary (`main.rs`) wires these together; the modules are a library so
//! that benchmarks and tests can drive them directly.

pub mod app;
pub mod config;
pub mod families;
pub mod guest_metrics;
pub mod metrics;
pub mod routes;
pub mod runtime;
pub mod server;

/// The example app, built from `guest/` by the build script.
pub static EXAMPLE_COMPONENT: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/promwasm_example.wasm"));
