#!/usr/bin/env python3
"""The caio bench's driver for the Python caio (the library caio for Node is the counterpart of).

    CAIO_IMPL=uring python3 bench/python_caio.py '<WorkerSpec JSON>'

Runs ONE workload through `caio.AsyncioContext` (the backend CAIO_IMPL selects: uring,
linux, thread, python) and prints one JSON line shaped as the Node worker's result
(bench/spec.ts, WorkerResult). Same shape of work as the Node worker: `depth` asyncio
tasks, each awaiting one operation at a time at random block-aligned offsets (or a shared
sequential cursor, with an fsync every `fsyncEvery` writes); checks a few blocks first;
warms up uncounted; then measures `durationSec`: operations, wall time, the latency of one
operation in `sampleEvery`, and the CPU time of the whole process (every thread).

The Python caio's `read(nbytes, fd, offset)` allocates its result; that is its API, and
part of what is measured. It cannot do O_DIRECT (the buffer it allocates is not aligned).
"""
import asyncio
import json
import os
import random
import resource
import sys
import time
import warnings

MODULES = {
    "uring": "caio.linux_uring_asyncio",
    "linux": "caio.linux_aio_asyncio",
    "thread": "caio.thread_aio_asyncio",
    "python": "caio.python_aio_asyncio",
}
RING = 1 << 20


def uring_fds():
    try:
        n = 0
        for entry in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{entry}") == "anon_inode:[io_uring]":
                    n += 1
            except OSError:
                pass
        return n
    except OSError:
        return -1


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    rank = -(-p * len(sorted_values) // 100)  # ceil
    return sorted_values[min(len(sorted_values) - 1, max(0, int(rank) - 1))]


class Meter:
    def __init__(self):
        self.ops = 0
        self.deadline = 0.0
        self.cursor = 0
        self.syncs = 0
        self.sync_s = 0.0
        self.lat = []

    def reset(self, deadline):
        self.ops = 0
        self.syncs = 0
        self.sync_s = 0.0
        self.lat = []
        self.deadline = deadline


async def random_worker(op, blocks, block_size, mask, seed, meter):
    rnd = random.Random(seed)
    randrange = rnd.randrange
    perf = time.perf_counter
    lat = meter.lat
    k = seed
    while True:
        position = randrange(blocks) * block_size
        k += 1
        if k & mask == 0:
            t0 = perf()
            await op(position)
            t1 = perf()
            meter.ops += 1
            lat.append(t1 - t0)
            if t1 >= meter.deadline:
                return
        else:
            await op(position)
            meter.ops += 1


async def sequential(op, sync, depth, blocks, block_size, fsync_every, meter):
    perf = time.perf_counter
    segment = fsync_every if fsync_every > 0 else 64
    while True:
        left = [segment]

        async def worker():
            while left[0] > 0:
                left[0] -= 1
                position = (meter.cursor % blocks) * block_size
                meter.cursor += 1
                t0 = perf()
                await op(position)
                meter.lat.append(perf() - t0)
                meter.ops += 1

        await asyncio.gather(*(worker() for _ in range(depth)))
        if fsync_every > 0:
            t0 = perf()
            await sync()
            meter.sync_s += perf() - t0
            meter.syncs += 1
        if perf() >= meter.deadline:
            return


async def drive(spec, op, sync, meter, seed):
    w = spec["workload"]
    blocks = spec["fileSize"] // w["blockSize"]
    if w["pattern"] == "sequential":
        await sequential(op, sync, w["depth"], blocks, w["blockSize"], w["fsyncEvery"], meter)
    else:
        mask = spec["sampleEvery"] - 1
        await asyncio.gather(*(random_worker(op, blocks, w["blockSize"], mask, seed * 7919 + i, meter) for i in range(w["depth"])))


async def main():
    spec = json.loads(sys.argv[1])
    w = spec["workload"]
    impl = os.environ.get("CAIO_IMPL", "")
    if impl not in MODULES:
        raise SystemExit(f"python_caio.py: CAIO_IMPL must be one of {', '.join(MODULES)}, got {impl!r}")
    if w["cache"] != "cached" or w["batch"] != 1:
        raise SystemExit("python_caio.py: only page-cache workloads, one operation per call")
    # An unknown or unavailable CAIO_IMPL only warns in caio: here it must stop the run.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import caio
    if caio.AsyncioContext.__module__ != MODULES[impl]:
        raise SystemExit(f"python_caio.py: CAIO_IMPL={impl} selected {caio.AsyncioContext.__module__}, not {MODULES[impl]}")

    block_size = w["blockSize"]
    write = w["op"] == "write"
    fd = os.open(spec["file"], os.O_RDWR if write else os.O_RDONLY)
    ctx = caio.AsyncioContext(max_requests=max(512, w["depth"]))
    payload = os.urandom(block_size)
    try:
        if write:
            async def op(position):
                return await ctx.write(payload, fd, position)
        else:
            async def op(position):
                return await ctx.read(block_size, fd, position)

        async def sync():
            await ctx.fsync(fd)

        # Check a few blocks against os.pread before measuring.
        blocks = spec["fileSize"] // block_size
        for block in (0, blocks - 1, blocks >> 1, spec["seed"] % blocks):
            position = block * block_size
            if write:
                await ctx.write(payload, fd, position)
                if os.pread(fd, block_size, position) != payload:
                    raise SystemExit(f"python_caio.py: CAIO_IMPL={impl} wrote wrong bytes at {position}")
            elif await ctx.read(block_size, fd, position) != os.pread(fd, block_size, position):
                raise SystemExit(f"python_caio.py: CAIO_IMPL={impl} read wrong bytes at {position}")

        meter = Meter()
        if spec["warmupSec"] > 0:
            meter.reset(time.perf_counter() + spec["warmupSec"])
            await drive(spec, op, sync, meter, spec["seed"] + 1)

        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        meter.reset(t0 + spec["durationSec"])
        await drive(spec, op, sync, meter, spec["seed"])
        t1 = time.perf_counter()
        r1 = resource.getrusage(resource.RUSAGE_SELF)

        wall = t1 - t0
        lat = sorted(meter.lat[-RING:])
        user_us = (r1.ru_utime - r0.ru_utime) * 1e6
        sys_us = (r1.ru_stime - r0.ru_stime) * 1e6
        info = {"module": caio.AsyncioContext.__module__, "caio": caio.__version__, "python": sys.version.split()[0]}
        if impl == "uring":
            info["sqpoll"] = bool(ctx.context.sqpoll)
        if meter.syncs:
            info["fsyncs"] = meter.syncs
            info["fsyncMeanUs"] = meter.sync_s / meter.syncs * 1e6
        result = {
            "contender": f"py:{impl}",
            "workload": w["name"],
            "depth": w["depth"],
            "ops": meter.ops,
            "wallSec": wall,
            "opsPerSec": meter.ops / wall,
            "p50Us": percentile(lat, 50) * 1e6,
            "p99Us": percentile(lat, 99) * 1e6,
            "p999Us": percentile(lat, 99.9) * 1e6,
            "meanUs": (sum(lat) / len(lat) if lat else float("nan")) * 1e6,
            "samples": len(meter.lat),
            "cpuUserUs": user_us,
            "cpuSysUs": sys_us,
            "cpuUsPerOp": (user_us + sys_us) / meter.ops,
            "cores": (user_us + sys_us) / 1e6 / wall,
            "uringFds": uring_fds(),
            "maxRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "info": info,
        }
    finally:
        ctx.close()
        os.close(fd)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
