//! Builds the Python and JavaScript examples into components with the tools
//! `scripts/test-deps.sh` installs into the repository (`.venv`,
//! `node_modules`). A missing tool fails the build naming it: the tests of
//! these examples are never skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let here = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"),
    );
    let root = here
        .join("../..")
        .canonicalize()
        .expect("the crate sits in tests/ of the repository");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for watched in [
        "wit",
        "sdk/python/promwasm",
        "examples/python",
        "sdk/js",
        "examples/js",
        "tests/lang-examples/apps",
        "package-lock.json",
        "scripts/requirements-test.txt",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let componentize_py = tool(&root, ".venv/bin/componentize-py");
    let componentize_js = tool(&root, "node_modules/.bin/componentize-js");
    // componentize-py writes `__pycache__` beside the modules it imports:
    // it builds from a copy, so the source tree (which cargo watches) stays
    // as it is.
    let python_src = out.join("python-src");
    let _ = std::fs::remove_dir_all(&python_src);
    copy_py(
        &root.join("sdk/python/promwasm"),
        &python_src.join("sdk/promwasm"),
    );
    copy_py(&root.join("examples/python"), &python_src.join("examples"));
    copy_py(&here.join("apps"), &python_src.join("apps"));
    for (module, dir) in [
        ("app", "examples"),
        ("shop", "examples"),
        ("failing", "apps"),
    ] {
        let mut python = Command::new(&componentize_py);
        python
            .current_dir(&root)
            .args(["-d", "wit", "-w", "route-handler", "componentize", "-p"])
            .arg(python_src.join("sdk"))
            .arg("-p")
            .arg(python_src.join(dir))
            .arg(module)
            .arg("-o")
            .arg(out.join(format!("python-{module}.wasm")));
        run(python, &format!("{module}.py of {dir}"));

        let mut js = Command::new(&componentize_js);
        js.current_dir(&root)
            .args(["--wit", "wit", "--world-name", "route-handler"])
            .args(["-d", "http", "fetch-event", "-o"])
            .arg(out.join(format!("js-{module}.wasm")))
            .arg(js_source(dir, module));
        run(js, &js_source(dir, module));
    }
}

/// The JavaScript source of `module`, from the repository root.
fn js_source(dir: &str, module: &str) -> String {
    match dir {
        "examples" => format!("examples/js/{module}.js"),
        _ => format!("tests/lang-examples/apps/{module}.js"),
    }
}

/// Copies the `.py` files of `from` into `to`.
fn copy_py(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("creating {}: {e}", to.display()));
    let listing =
        std::fs::read_dir(from).unwrap_or_else(|e| panic!("reading {}: {e}", from.display()));
    for entry in listing {
        let path = entry.expect("a directory entry").path();
        if path.extension().is_some_and(|x| x == "py") {
            let copy = to.join(path.file_name().expect("a file name"));
            std::fs::copy(&path, &copy)
                .unwrap_or_else(|e| panic!("copying {}: {e}", path.display()));
        }
    }
}

/// The tool at `relative` in the repository, or a failed build that says how
/// to install it.
fn tool(root: &Path, relative: &str) -> PathBuf {
    let path = root.join(relative);
    if !path.exists() {
        panic!(
            "{} is missing: the Python and JavaScript examples are built with it; \
             install the test tools with `bash scripts/test-deps.sh`",
            path.display()
        );
    }
    path
}

fn run(mut command: Command, what: &str) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("building {what}: running {command:?}: {e}"));
    if !output.status.success() {
        panic!(
            "building {what} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
