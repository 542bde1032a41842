//! The example app built in the other languages the SDKs serve, by this
//! crate's build script (with componentize-py and componentize-js, which
//! `scripts/test-deps.sh` installs into the repository), so `cargo test`
//! needs nothing built by hand. Each is the seed app of `guest/`, whose
//! behaviour and metrics the tests hold them to.

/// `examples/python/app.py` on `sdk/python`, built with componentize-py.
pub const PYTHON_EXAMPLE: &str = concat!(env!("OUT_DIR"), "/example-python.wasm");

/// `examples/js/app.js` on `sdk/js`, built with componentize-js.
pub const JS_EXAMPLE: &str = concat!(env!("OUT_DIR"), "/example-js.wasm");
