//! Builds the WebAssembly guests with a nested cargo, as wasmtime's
//! test-programs do, so `cargo build`, `cargo run` and `cargo test` need
//! nothing built by hand: the example app, embedded into the binary as its
//! default component, and the test fixtures.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
/// The target of the example's no-WASI build: a core module that imports
/// nothing but promwasm:app/metrics, made a component here.
const NO_WASI_TARGET: &str = "wasm32-unknown-unknown";

fn main() {
    let host =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = host.parent().expect("host/ sits in the workspace root");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // Guests get a target directory of their own: sharing the outer one
    // would block on the lock the outer cargo holds.
    let target_dir = root.join("target").join("guest");

    for watched in [
        "wit",
        "guest/src",
        "sdk/rust/src",
        "sdk/rust/Cargo.toml",
        "seed/src",
        "seed/Cargo.toml",
        "guest/Cargo.toml",
        "guest/Cargo.lock",
        "guest/.cargo",
        "tests/fixtures/src",
        "tests/fixtures/Cargo.toml",
        "tests/fixtures/Cargo.lock",
        "tests/fixtures/clash",
        "tests/fixtures/http",
        "tests/fixtures/command",
        "tests/fixtures/stray",
        "tests/fixtures/mistyped",
        "tests/fixtures/shop",
        "sdk/rust/examples",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let wasip2 = build_guest(&root.join("guest"), &target_dir, TARGET, "promwasm_example");
    println!(
        "cargo:rustc-env=PROMWASM_EXAMPLE_WASIP2_WASM={}",
        wasip2.display()
    );
    // The embedded default: the same app without WASI, which a fresh
    // instance makes faster (docs/PERFORMANCE.md).
    let core = build_guest(
        &root.join("guest"),
        &target_dir,
        NO_WASI_TARGET,
        "promwasm_example",
    );
    let example = core.with_file_name("promwasm_example.component.wasm");
    componentize(&core, &example);
    let embedded = out.join("promwasm_example.wasm");
    std::fs::copy(&example, &embedded).unwrap_or_else(|e| {
        panic!(
            "copying {} to {}: {e}",
            example.display(),
            embedded.display()
        )
    });
    println!(
        "cargo:rustc-env=PROMWASM_EXAMPLE_WASM={}",
        example.display()
    );

    let fixture = build_guest(
        &root.join("tests").join("fixtures"),
        &target_dir,
        TARGET,
        "promwasm_fixture",
    );
    println!(
        "cargo:rustc-env=PROMWASM_FIXTURE_WASM={}",
        fixture.display()
    );
    for (file, var) in [
        ("promwasm_fixture_clash.wasm", "PROMWASM_FIXTURE_CLASH_WASM"),
        ("promwasm_fixture_http.wasm", "PROMWASM_FIXTURE_HTTP_WASM"),
        ("promwasm_fixture_stray.wasm", "PROMWASM_FIXTURE_STRAY_WASM"),
        (
            "promwasm_fixture_mistyped.wasm",
            "PROMWASM_FIXTURE_MISTYPED_WASM",
        ),
        ("promwasm_fixture_shop.wasm", "PROMWASM_FIXTURE_SHOP_WASM"),
        (
            "promwasm-fixture-command.wasm",
            "PROMWASM_FIXTURE_COMMAND_WASM",
        ),
    ] {
        let path = fixture.with_file_name(file);
        println!("cargo:rustc-env={var}={}", path.display());
    }
}

/// Builds every cdylib or command of the guest workspace at `dir` in
/// release mode for `target` and returns the path of the one named
/// `artifact` (a component for wasm32-wasip2, a core module otherwise).
fn build_guest(dir: &Path, target_dir: &Path, target: &str, artifact: &str) -> PathBuf {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(dir)
        .args([
            "build",
            "--workspace",
            "--release",
            "--target",
            target,
            "--target-dir",
        ])
        .arg(target_dir);
    // The outer build's flags are for the host; the guest's own come from
    // its .cargo/config.toml.
    for leaked in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WORKSPACE_WRAPPER",
        "RUSTC_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_MAKEFLAGS",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        command.env_remove(leaked);
    }
    let status = command
        .status()
        .unwrap_or_else(|e| panic!("running cargo to build the guest in {}: {e}", dir.display()));
    if !status.success() {
        panic!(
            "building the guest in {} for {target} failed ({status}); if the target is missing, \
             install it with `rustup target add {target}`",
            dir.display()
        );
    }
    target_dir
        .join(target)
        .join("release")
        .join(format!("{artifact}.wasm"))
}

/// Makes the core module at `core` a component at `out`, from the WIT
/// world its bindings embedded, as `cargo component` and `wasm-tools
/// component new` do.
fn componentize(core: &Path, out: &Path) {
    let module = std::fs::read(core).unwrap_or_else(|e| panic!("reading {}: {e}", core.display()));
    let component = wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .unwrap_or_else(|e| panic!("making {} a component: {e:?}", core.display()));
    std::fs::write(out, component).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}
