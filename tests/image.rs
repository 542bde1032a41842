//! The container image, built from the repository as a user would
//! (`bash scripts/build-image.sh`), then taken apart: its configuration,
//! every file in it, and its entrypoint run in a chroot under the image's
//! user, answering the seed's routes and `/metrics` from the precompiled
//! component. Needs root (chroot) and buildah (scripts/test-deps.sh
//! installs it).

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use support::{Promwasm, repo_root};

const TAG: &str = "promwasm:0.1.0";
const HELLO: &str = "Hello! This is an example app for demonstrating prometheus metrics collection";

/// `buildah ARGS` on the vfs storage the build script uses.
fn buildah_command(args: &[&str]) -> Command {
    let mut command = Command::new("buildah");
    command.env("STORAGE_DRIVER", "vfs").args(args);
    command
}

/// Runs buildah and gives its stdout.
fn buildah(args: &[&str]) -> String {
    let out = buildah_command(args)
        .output()
        .unwrap_or_else(|e| panic!("running buildah {args:?}: {e} (apt-get install -y buildah)"));
    assert!(
        out.status.success(),
        "buildah {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A working container of the image, mounted; removed on drop.
struct Unpacked {
    container: String,
    root: PathBuf,
}

impl Unpacked {
    fn new() -> Unpacked {
        let container = buildah(&["from", "--pull-never", TAG]);
        let root = PathBuf::from(buildah(&["mount", &container]));
        Unpacked { container, root }
    }
}

impl Drop for Unpacked {
    fn drop(&mut self) {
        let _ = buildah_command(&["umount", &self.container]).status();
        let _ = buildah_command(&["rm", &self.container]).status();
    }
}

/// Every path below `root`, relative, with its owner and mode.
fn files(root: &Path) -> BTreeMap<String, (u32, u32, u32)> {
    let mut found = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            found.insert(name, (meta.uid(), meta.gid(), meta.mode() & 0o7777));
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    found
}

#[test]
fn the_image_builds_and_its_entrypoint_serves_under_its_user() {
    assert!(
        is_root(),
        "the image test runs the entrypoint in a chroot, which needs root"
    );
    let out = std::env::temp_dir().join(format!("promwasm-image-{}.oci.tar", std::process::id()));
    let status = Command::new("bash")
        .arg(repo_root().join("scripts/build-image.sh"))
        .env("OUT", &out)
        .env("TAG", TAG)
        .status()
        .expect("running scripts/build-image.sh");
    assert!(status.success(), "scripts/build-image.sh failed");
    assert!(std::fs::metadata(&out).unwrap().len() > 1 << 20);
    let _ = std::fs::remove_file(&out);

    let inspect: Value =
        serde_json::from_str(&buildah(&["inspect", "--type", "image", TAG])).unwrap();
    let config = &inspect["OCIv1"]["config"];
    assert_eq!(config["User"], "65532:65532");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/promwasm"]));
    assert_eq!(
        config["Cmd"],
        serde_json::json!([
            "--listen",
            "0.0.0.0:5000",
            "--metrics-listen",
            "0.0.0.0:9200",
            "--cache-dir",
            "/cache"
        ])
    );
    assert_eq!(
        config["ExposedPorts"],
        serde_json::json!({"5000/tcp": {}, "9200/tcp": {}})
    );

    let image = Unpacked::new();
    let found = files(&image.root);
    let names: Vec<&str> = found.keys().map(String::as_str).collect();
    // The binary and one compiled entry: no shell, no package manager.
    assert_eq!(names.len(), 3, "{names:?}");
    assert_eq!(found["promwasm"], (0, 0, 0o755));
    // Writable by its owner only, as --cache-dir requires.
    assert_eq!(found["cache"], (65532, 65532, 0o755));
    let entry = names.iter().find(|n| n.starts_with("cache/")).unwrap();
    assert!(entry.ends_with(".cwasm"), "{entry}");
    assert_eq!(found[*entry], (65532, 65532, 0o600));

    let mut command = Command::new("chroot");
    command
        .arg("--userspec=65532:65532")
        .arg(&image.root)
        .args([
            "/promwasm",
            "--listen",
            "127.0.0.1:0",
            "--metrics-listen",
            "127.0.0.1:0",
            "--cache-dir",
            "/cache",
        ]);
    let app = Promwasm::start_command(command, true);
    for (path, body) in [
        ("/", HELLO),
        ("/square?num=20", "400.0"),
        ("/even?num=20", "true"),
    ] {
        let reply = app.get_as(path, "john");
        assert_eq!((reply.status, reply.body.as_str()), (200, body), "{path}");
    }
    let scrape = app.scrape();
    assert_eq!(
        scrape.value(
            "flask_http_request_total",
            &[("method", "GET"), ("status", "200")]
        ),
        3.0
    );
    assert_eq!(
        scrape.value("flask_app_total_auths_total", &[("user", "john")]),
        3.0
    );
    assert_eq!(
        app.get("/healthz").status,
        200,
        "the Deployment's probe path"
    );
    app.signal("TERM");
    let (code, stderr) = app.wait(std::time::Duration::from_secs(15));
    assert_eq!(code, Some(0), "{stderr}");
    // Served from the compiled entry: nothing was compiled or stored.
    assert!(!stderr.contains("stored in the cache"), "{stderr}");
    assert!(!stderr.contains("cache directory"), "{stderr}");
}

/// Whether this process runs as root.
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1).map(|euid| euid == "0"))
        .unwrap_or(false)
}
