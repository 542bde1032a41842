#!/usr/bin/env python3
"""Attributes perf samples of promwasm to the phases of a request.

Input: `perf script -F comm,tid,ip,sym,dso` output of a DWARF call-graph
recording (bench/profile.sh). Each sample is classified by the first rule
below whose marker appears anywhere in its stack, so a sample inside the
guest's metric import counts as "metric import", not as "guest call".
Prints the share of samples per phase, with the part of each spent in the
kernel, in memset/memmove and in malloc/free. With RPS=<req/s of an
unprofiled run>, also prints an estimate in microseconds per request
(share x 1e6 / RPS; the server is saturated on one core).
"""

import os
import sys
from collections import Counter, defaultdict

# (phase, markers): first match wins. wasmtime runs guest code on a fiber
# (its own stack), and DWARF unwinding stops at the fiber's start or at JIT
# code, so those samples are recognised by the root of their stack.
FIBER = "on the fiber"
RULES = [
    ("epoch ticker thread", ["<comm>epoch-ticker"]),
    ("metrics: guest import counter_add -> GuestMetrics::update",
     ["guest_metrics::GuestMetrics::update", "GuestMetrics::update", "counter_add"]),
    ("instantiate: instantiate_async (pooling slot, core instances, imports, start functions)",
     ["instantiate_async", "InstancePre", "Instantiator", "start_raw"]),
    ("guest call: guest code and canonical ABI lift/lower on the wasm fiber", [FIBER]),
    ("guest call: host side of call_async (arguments, fiber switch, post-return)",
     ["call_handle", "call_async", "TypedFunc<Params,Return>::call"]),
    ("store drop: instance teardown, pool slot reset",
     ["drop_in_place<wasmtime::runtime::store::Store", "StoreOpaque as core::ops::drop::Drop",
      "drop_in_place<wasmtime::runtime::store::StoreInner", "deallocate_module", "DecommitQueue"]),
    ("store creation: Store::new, WasiCtx, ResourceTable",
     ["wasmtime::runtime::store::Store<T>::new", "WasiCtxBuilder", "Store<T>::new"]),
    ("metrics: host (HTTP families, runtime histograms, in-progress)",
     ["prometheus_client", "HttpMetrics", "RuntimeMetrics", "InProgress"]),
    ("promwasm: routing, request/response marshalling, timeout",
     ["call_guest", "promwasm::server::guest_response", "promwasm::runtime::Runtime::call",
      "tokio::time::timeout", "Server::route", "promwasm::routes"]),
    ("kernel: TCP send/recv on loopback (syscalls, softirq)", ["<kernel-leaf>"]),
    ("hyper: http1 parse/encode, connection", ["hyper::"]),
    ("tokio: I/O driver (epoll) and scheduler", ["tokio::"]),
]


def samples(path):
    comm, frames = None, []
    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                if comm is not None:
                    yield comm, frames
                comm, frames = None, []
            elif line[0] not in " \t":
                comm = line.split()[0]
                frames = []
            else:
                parts = line.strip().split(None, 1)
                frames.append(parts[1] if len(parts) > 1 else "")
    if comm is not None:
        yield comm, frames


def classify(comm, frames):
    stack = "\n".join(frames)
    root = frames[-1] if frames else ""
    on_fiber = "wasmtime_fiber_start" in root or "/perf-" in root
    for phase, markers in RULES:
        for marker in markers:
            if marker == "<comm>epoch-ticker":
                hit = comm.startswith("epoch")
            elif marker == FIBER:
                hit = on_fiber
            elif marker == "<kernel-leaf>":
                hit = leaf_kind(frames) == "kernel"
            else:
                hit = marker in stack
            if hit:
                return phase
    return "other (kernel scheduling, libc, unattributed)"


def leaf_kind(frames):
    leaf = frames[0] if frames else ""
    if "[kernel.kallsyms]" in leaf:
        return "kernel"
    if "memset" in leaf or "memmove" in leaf or "memcpy" in leaf:
        return "memset/memmove"
    if "malloc" in leaf or "free" in leaf or "_int_" in leaf or "unlink_chunk" in leaf:
        return "malloc/free"
    if "[JIT]" in leaf or "[unknown]" in leaf or "perf-" in leaf:
        return "jit"
    return "code"


def main():
    counts = Counter()
    kinds = defaultdict(Counter)
    total = 0
    for comm, frames in samples(sys.argv[1]):
        phase = classify(comm, frames)
        counts[phase] += 1
        kinds[phase][leaf_kind(frames)] += 1
        total += 1
    rps = float(os.environ.get("RPS", "0") or 0)
    print(f"{total} samples of the server process")
    header = f"{'phase':<74} {'share':>6}"
    if rps:
        header += f" {'µs/req':>7}"
    header += "   of which: kernel / memset+memmove / malloc+free / JIT code"
    print(header)
    for phase, n in counts.most_common():
        row = f"{phase:<74} {100 * n / total:5.1f}%"
        if rps:
            row += f" {n / total * 1e6 / rps:7.2f}"
        k = kinds[phase]
        row += "   " + " / ".join(
            f"{100 * k[x] / total:4.1f}%" for x in ("kernel", "memset/memmove", "malloc/free", "jit")
        )
        print(row)


if __name__ == "__main__":
    main()
