//! The example apps built in the other languages the SDKs serve, by this
//! crate's build script (with componentize-py and componentize-js, which
//! `scripts/test-deps.sh` installs into the repository), so `cargo test`
//! needs nothing built by hand. `app` is the seed app of `guest/`, `shop`
//! the README's app of the Rust SDK (`sdk/rust/examples/shop.rs`): the tests
//! hold each to its Rust original's behaviour and metrics. `failing`
//! (`apps/`) fails on purpose, for the SDKs' error paths.

/// `examples/python/app.py` on `sdk/python`, built with componentize-py.
pub const PYTHON_EXAMPLE: &str = concat!(env!("OUT_DIR"), "/python-app.wasm");

/// `examples/js/app.js` on `sdk/js`, built with componentize-js.
pub const JS_EXAMPLE: &str = concat!(env!("OUT_DIR"), "/js-app.wasm");

/// `examples/python/shop.py`, the README's Python app.
pub const PYTHON_SHOP: &str = concat!(env!("OUT_DIR"), "/python-shop.wasm");

/// `examples/js/shop.js`, the README's JavaScript app.
pub const JS_SHOP: &str = concat!(env!("OUT_DIR"), "/js-shop.wasm");

/// `apps/failing.py`: handlers that raise, answer nothing, misuse metrics.
pub const PYTHON_FAILING: &str = concat!(env!("OUT_DIR"), "/python-failing.wasm");

/// `apps/failing.js`: the same in JavaScript.
pub const JS_FAILING: &str = concat!(env!("OUT_DIR"), "/js-failing.wasm");
