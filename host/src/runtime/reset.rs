//! How the pooling allocator gives a slot's linear memory back to its
//! initial state between instances, which decides what a fresh instance
//! costs.
//!
//! - `DirtyPages`: the `PAGEMAP_SCAN` ioctl (Linux 6.7+) finds the pages the
//!   last instance touched and only those are reset, in place: they stay
//!   mapped (up to 16 MiB a slot), so the next instance takes no page faults
//!   on them. The price is memory: each slot a guest used keeps what it
//!   touched resident.
//! - `Prefix`: the first 128 KiB are reset with `memset` and the rest is
//!   handed back to the kernel with `madvise` (wasmtime's default).
//!
//! Either way memory is initialised by copying the data segments, not by
//! mapping an image copy-on-write (`Config::memory_init_cow(false)`): a
//! copy-on-write fault costs a TLB shootdown on every core the process runs
//! on, and a Python or JavaScript guest, whose snapshot is 9-12 MiB, took
//! some 230 of them per request (docs/PERFORMANCE.md). Both ways compile
//! alike, so one cache entry serves either.
//!
//! Isolation: wasmtime 48's scan sees only pages that are in memory, so a
//! dirty page the kernel had swapped out would be skipped and a later
//! instance could read it. `DirtyPages` is therefore chosen only when no
//! swap is active at start (`/proc/swaps`); `watch_swap` re-reads it and
//! logs an error if swap is turned on while promwasm runs, which then needs
//! a restart to get `Prefix` (the README says so).

use std::time::Duration;

use wasmtime::{Config, Enabled, PoolingAllocationConfig};

/// How a slot's memory is reset; see the module documentation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryReset {
    DirtyPages,
    Prefix,
}

/// What `Prefix` keeps resident and resets with `memset`.
const PREFIX_KEEP_RESIDENT: usize = 128 << 10;

/// The most of a slot's touched memory `DirtyPages` keeps resident (the rest
/// is unmapped): room for a Python or JavaScript snapshot (9-12 MiB) and
/// its heap, and the bound on what each slot a guest has used keeps
/// resident while idle.
pub const DIRTY_KEEP_RESIDENT: usize = 16 << 20;

impl MemoryReset {
    /// `DirtyPages` when the kernel has the scan and no swap is active,
    /// else `Prefix`, with the reason.
    pub fn detect() -> (MemoryReset, &'static str) {
        if !PoolingAllocationConfig::is_pagemap_scan_available() {
            return (
                MemoryReset::Prefix,
                "the kernel has no PAGEMAP_SCAN (Linux 6.7+)",
            );
        }
        match active_swap() {
            Some(false) => (MemoryReset::DirtyPages, "no swap is active"),
            Some(true) => (MemoryReset::Prefix, "swap is active"),
            None => (MemoryReset::Prefix, "/proc/swaps is unreadable"),
        }
    }

    /// Sets the pool's and the engine's memory settings for this reset,
    /// for memories of at most `max_memory` bytes.
    pub fn configure(
        self,
        pool: &mut PoolingAllocationConfig,
        config: &mut Config,
        max_memory: usize,
    ) {
        match self {
            MemoryReset::DirtyPages => {
                pool.pagemap_scan(Enabled::Yes)
                    .linear_memory_keep_resident(max_memory.min(DIRTY_KEEP_RESIDENT));
            }
            MemoryReset::Prefix => {
                pool.pagemap_scan(Enabled::No)
                    .linear_memory_keep_resident(PREFIX_KEEP_RESIDENT);
            }
        }
        config.memory_init_cow(false);
    }
}

/// Whether `/proc/swaps` lists an active swap area; none when it cannot be
/// read.
fn active_swap() -> Option<bool> {
    let swaps = std::fs::read_to_string("/proc/swaps").ok()?;
    // A header line, then one line per active area.
    Some(swaps.lines().skip(1).any(|line| !line.trim().is_empty()))
}

/// How often `watch_swap` reads `/proc/swaps`.
const SWAP_CHECK: Duration = Duration::from_secs(10);

/// Under `DirtyPages`, logs an error once if swap becomes active: from then
/// on a swapped-out dirty page could outlive its instance until promwasm is
/// restarted.
pub fn watch_swap(reset: MemoryReset) {
    if reset != MemoryReset::DirtyPages {
        return;
    }
    let spawned = std::thread::Builder::new()
        .name("swap-watch".into())
        .spawn(|| {
            loop {
                std::thread::sleep(SWAP_CHECK);
                if active_swap() != Some(false) {
                    tracing::error!(
                        "swap became active (or /proc/swaps unreadable) after start: memory is reset by dirty pages, which skips swapped-out pages; restart promwasm so it resets memory without the page scan"
                    );
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("not watching /proc/swaps: {e}");
    }
}
