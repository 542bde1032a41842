//! The README documents `cargo component build` as one way to build a guest:
//! build the example that way and serve the result.

mod support;

use std::process::Command;

use support::{Promwasm, repo_root};

#[test]
fn example_built_with_cargo_component_serves_the_same_routes() {
    assert!(
        support::which("cargo-component").is_some(),
        "cargo-component not found: install it with `cargo install cargo-component --locked` (scripts/test-deps.sh does)"
    );
    let root = repo_root();
    let target_dir = root.join("target").join("cargo-component");
    let mut build = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    build
        .current_dir(root.join("guest"))
        .args(["component", "build", "--release", "--target-dir"])
        .arg(&target_dir);
    for leaked in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
    ] {
        build.env_remove(leaked);
    }
    let output = build.output().expect("running cargo component build");
    assert!(
        output.status.success(),
        "cargo component build failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let component = target_dir.join("wasm32-wasip1/release/promwasm_example.wasm");
    let app = Promwasm::start(&["--component", component.to_str().unwrap()]);
    let square = app.get_as("/square?num=3", "john");
    assert_eq!((square.status, square.body.as_str()), (200, "9.0"));
    let scrape = app.scrape();
    assert_eq!(
        scrape.get("flask_app_total_auths_total", &[("user", "john")]),
        Some(1.0)
    );
    assert_eq!(
        scrape.get(
            "flask_http_request_duration_seconds_count",
            &[("method", "GET"), ("path", "/square"), ("status", "200")]
        ),
        Some(1.0)
    );
}
