//! The Prometheus, Grafana, Kubernetes and Jupyter artifacts pass their
//! offline checks (scripts/validate-artifacts.sh: promtool check/test rules,
//! kubernetes-validate, dashboard and PodMonitor structure, and a smoke run
//! of every expression against a throw-away Prometheus).

mod support;

use std::process::Command;

#[test]
fn artifacts_validate() {
    support::promtool();
    let root = support::repo_root();
    let output = Command::new("bash")
        .arg("scripts/validate-artifacts.sh")
        .current_dir(&root)
        .env("PYTHON", support::python())
        .output()
        .expect("running scripts/validate-artifacts.sh");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "validate-artifacts failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let last = stdout.lines().last().unwrap_or("");
    assert!(
        last.starts_with("artifacts: ")
            && last.contains(" passed, 0 failed")
            && !last.contains("skipped"),
        "unexpected summary {last:?}:\n{stdout}"
    );
}
