//! The compiled-artifact cache: compiled components kept on disk so the next
//! start skips Cranelift (6-10 s for a Python or JavaScript component, well
//! under a second from the cache). On by default, in `promwasm` under the
//! user's cache directory; `--cache-dir` moves it, `--no-cache` turns it off.
//!
//! Trust: `Component::deserialize` runs the machine code it is given, so
//! whoever can write an entry can run code in promwasm. The cache is only as
//! safe as its directory: it is created owner-only (0700), and a directory
//! that another user owns or that group or others may write is not used (a
//! warning, then the component is compiled). Each entry carries the sha256
//! of its payload, which catches a torn write or a corrupt file, not a
//! writer with access to the directory.
//!
//! Size: every rebuild of a component is a new sha256 and so a new entry.
//! After each store the directory is brought back under `--cache-max-size`
//! by removing the least recently used entries (a hit renews an entry's
//! modification time).
//!
//! wasmtime's own cache (`Config::cache`, the `cache` feature) was not used:
//! it adds a TOML configuration, zstd compression and a background cleanup
//! thread, places entries by its own scheme, and performs no ownership check
//! either; this module is one file with a key and a check that say exactly
//! what an entry is.

use std::fs::DirBuilder;
use std::hash::{Hash, Hasher};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The default of `--cache-max-size`: 1 GiB, some 30 builds of a Python
/// component (about 35 MB each).
pub const DEFAULT_MAX_SIZE: usize = 1 << 30;

/// Where the cache is and how large it may grow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub dir: PathBuf,
    /// Named with `--cache-dir`, rather than the default.
    pub named: bool,
    pub max_size: u64,
}

/// `promwasm` in the user's cache directory: `$XDG_CACHE_HOME`, else
/// `$HOME/.cache`; none without either.
pub fn default_dir() -> Option<PathBuf> {
    let absolute = |var: &str| {
        std::env::var_os(var)
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
    };
    let base = absolute("XDG_CACHE_HOME").or_else(|| absolute("HOME").map(|h| h.join(".cache")))?;
    Some(base.join("promwasm"))
}

/// A cache directory that passed the ownership checks.
#[derive(Debug)]
pub struct Cache {
    dir: PathBuf,
    max_size: u64,
    /// This process's user, who owns the directory and must own each entry.
    owner: u32,
}

impl Cache {
    /// Creates the directory owner-only if it is missing, and refuses (with
    /// one warning; `None`) one that cannot be created, that this user does
    /// not own or that others may write.
    pub fn open(settings: &Settings) -> Option<Cache> {
        let dir = &settings.dir;
        let hint = if settings.named {
            ""
        } else {
            " (the default; pass --cache-dir to move it or --no-cache to turn it off)"
        };
        if let Err(e) = DirBuilder::new().recursive(true).mode(0o700).create(dir) {
            tracing::warn!(dir = %dir.display(), "cache directory unusable, compiling without it{hint}: {e}");
            return None;
        }
        match trusted(dir) {
            Ok(owner) => Some(Cache {
                dir: dir.to_path_buf(),
                max_size: settings.max_size,
                owner,
            }),
            Err(why) => {
                tracing::warn!(dir = %dir.display(), "cache directory not used, compiling without it{hint}: {why}");
                None
            }
        }
    }

    /// The component for `bytes` (whose sha256 is `sha256`): from its entry
    /// when one is there and intact, else from `compile`, then stored.
    pub fn get_or_compile(
        &self,
        engine: &Engine,
        sha256: &str,
        compile: impl FnOnce() -> wasmtime::Result<Component>,
    ) -> wasmtime::Result<Component> {
        let entry = self
            .dir
            .join(format!("{sha256}-{}.cwasm", engine_key(engine)));
        if let Some(component) = load(engine, &entry, self.owner) {
            return Ok(component);
        }
        let component = compile()?;
        match store(&component, &entry) {
            Ok(()) => {
                tracing::info!(entry = %entry.display(), "compiled component stored in the cache");
                self.evict(&entry);
            }
            Err(e) => {
                tracing::warn!(entry = %entry.display(), "could not store the compiled component: {e:#}")
            }
        }
        Ok(component)
    }

    /// Removes the least recently used entries until the directory holds at
    /// most `max_size` bytes of them; `kept`, just stored, goes last (when
    /// it alone is larger than the cache may be).
    fn evict(&self, kept: &Path) {
        let Ok(listing) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<(bool, SystemTime, u64, PathBuf)> = listing
            .filter_map(Result::ok)
            .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                let used = meta.modified().ok()?;
                Some((e.path() == kept, used, meta.len(), e.path()))
            })
            .collect();
        // Oldest first, the new entry after every other.
        entries.sort();
        let mut total: u64 = entries.iter().map(|(_, _, len, _)| len).sum();
        for (_, _, len, path) in entries {
            if total <= self.max_size {
                break;
            }
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    total -= len;
                    tracing::info!(entry = %path.display(), bytes = len, max = self.max_size, "cache entry evicted to keep the cache within --cache-max-size");
                }
                Err(e) => {
                    tracing::warn!(entry = %path.display(), "could not evict a cache entry: {e}")
                }
            }
        }
    }
}

/// This process's user when it owns `dir` and nobody else may write it;
/// otherwise why the directory cannot hold code promwasm will run.
fn trusted(dir: &Path) -> Result<u32, String> {
    let meta = std::fs::metadata(dir).map_err(|e| e.to_string())?;
    // From the kernel, not /proc, which a chroot or a bare container may lack.
    let me = rustix::process::geteuid().as_raw();
    if meta.uid() != me {
        return Err(format!(
            "it belongs to user {}, not to this process's user {me}",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "group or others may write it (mode {:o}); make it owner-only with chmod 700",
            meta.mode() & 0o777
        ));
    }
    Ok(me)
}

/// Lower-case hex sha256 of everything in the engine that compiled code
/// depends on (wasmtime's version and settings). A digest, not
/// `DefaultHasher`, so the name is the same whatever Rust built promwasm.
fn engine_key(engine: &Engine) -> String {
    struct Sha(Sha256);
    impl Hasher for Sha {
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
        fn finish(&self) -> u64 {
            unreachable!("only the digest is read")
        }
    }
    let mut sha = Sha(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut sha);
    hex(&sha.0.finalize()[..8])
}

/// The entry's component, or `None` (logged) when it is missing, corrupt or
/// from an incompatible engine.
fn load(engine: &Engine, entry: &Path, owner: u32) -> Option<Component> {
    let data = match read_owned(entry, owner) {
        Ok(data) => data,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => {
            tracing::warn!(entry = %entry.display(), "cache entry unusable, recompiling: {e}");
            return None;
        }
    };
    if data.len() <= 32 || Sha256::digest(&data[32..])[..] != data[..32] {
        tracing::warn!(entry = %entry.display(), "cache entry corrupt, recompiling");
        return None;
    }
    // SAFETY: `deserialize` runs the code it is given. The payload is what
    // `serialize` wrote as long as the directory is writable by this user
    // only, which `Cache::open` checked; the digest rules out a torn or
    // corrupted file, and `deserialize` checks the engine compatibility.
    match unsafe { Component::deserialize(engine, &data[32..]) } {
        Ok(component) => {
            tracing::info!(entry = %entry.display(), "compiled component taken from the cache");
            // Its use, for the eviction order.
            let _ = std::fs::File::options()
                .append(true)
                .open(entry)
                .and_then(|f| f.set_modified(SystemTime::now()));
            Some(component)
        }
        Err(e) => {
            tracing::warn!(entry = %entry.display(), "cache entry unusable, recompiling: {e:#}");
            None
        }
    }
}

/// The entry's bytes, when `owner` owns it and nobody else may write it
/// (checked on the open file, so a swap after the check changes nothing).
fn read_owned(entry: &Path, owner: u32) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut file = std::fs::File::open(entry)?;
    let meta = file.metadata()?;
    if meta.uid() != owner || meta.mode() & 0o022 != 0 {
        return Err(std::io::Error::other(format!(
            "owned by user {} with mode {:o}; entries must be the directory owner's and writable by them only",
            meta.uid(),
            meta.mode() & 0o777
        )));
    }
    let mut data = Vec::new();
    file.read_to_end(&mut data)?;
    Ok(data)
}

/// Writes the entry owner-only (0600) beside its final name, then renames
/// it: a reader never sees half an entry.
fn store(component: &Component, entry: &Path) -> wasmtime::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let payload = component.serialize()?;
    let staged = entry.with_extension(format!("tmp{}", std::process::id()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&staged)?;
        file.write_all(&Sha256::digest(&payload))?;
        file.write_all(&payload)?;
        std::fs::rename(&staged, entry)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&staged);
    }
    Ok(written?)
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
