#!/usr/bin/python3
"""Measure Dask distributed on this machine for the same workloads as bench/.

Prints one JSON object on stdout (its last line). Workers are single-threaded
processes (as ipyparallel's and our engines are); one LocalCluster per worker
count serves every measure at that count:

  startup_<n>_s             LocalCluster(n) + Client + wait_for_workers(n), n in --startup-sizes
  lb_tasks_per_s_<n>        client.map of a no-op (--tasks items at 2 workers, --curve-tasks elsewhere)
  apply_median_ms/p99       submit(no-op).result(), --calls times (2 workers)
  push_s_<mb>               client.scatter(array, broadcast=True) to 2 workers, median of 5 (1 from 1 GB on)
  pull_s_<mb>               client.run returning each worker's copy, median of 5 (1 from 1 GB on)
  scatter_s, gather_s       client.scatter of 4 parts of --scatter-mb MB over 4 workers, client.gather, median of 5

"skipped" maps a measure to why it was not taken; "versions" names what ran.
"""
import json
import statistics
import time

import dask
import distributed
import numpy as np
from dask.distributed import Client, LocalCluster

import driver


def identity(x=None):
    return x



def held(key, dask_worker=None):
    return dask_worker.data[key]


def cluster(n):
    t0 = time.perf_counter()
    c = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                     host="127.0.0.1", dashboard_address=None)
    try:
        client = Client(c)
        client.wait_for_workers(n, timeout=120 + 2 * n)
    except BaseException:
        c.close()
        raise
    return c, client, time.perf_counter() - t0


def tasks(client, count):
    client.submit(identity, 0, pure=False).result()
    t0 = time.perf_counter()
    futs = client.map(identity, range(count), pure=False)
    res = client.gather(futs)
    dt = time.perf_counter() - t0
    assert res == list(range(count))
    del futs
    return count / dt


def latency(client, calls, out):
    lat = []
    for i in range(calls):
        t = time.perf_counter()
        client.submit(identity, i, pure=False).result()
        lat.append(time.perf_counter() - t)
    lat.sort()
    out["apply_median_ms"] = statistics.median(lat) * 1e3
    out["apply_p99_ms"] = lat[int(0.99 * len(lat))] * 1e3


def data(client, sizes, out, skipped):
    for mb in sizes:
        # the median of 5, of 1 from 1 GB on (as bench/local.go's dataRounds)
        rounds = 1 if mb >= 1000 else 5
        try:
            arr = np.random.default_rng(mb).random(mb * 1000 * 1000 // 8)
            times, fut = [], None
            for _ in range(rounds):
                fut = None
                t0 = time.perf_counter()
                fut = client.scatter(arr, broadcast=True, hash=False)
                # the push is done when both workers hold a copy
                while len(client.who_has(fut).get(fut.key, ())) < 2:
                    time.sleep(0.001)
                times.append(time.perf_counter() - t0)
            out[f"push_s_{mb}"] = statistics.median(times)
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                got = client.run(held, fut.key)
                times.append(time.perf_counter() - t0)
                assert len(got) == 2 and all(len(g) == len(arr) for g in got.values())
                del got
            out[f"pull_s_{mb}"] = statistics.median(times)
            del fut, arr
        except Exception as e:  # a peer that cannot move this size says why
            for k in (f"push_s_{mb}", f"pull_s_{mb}"):
                if k not in out:
                    skipped[k] = f"{type(e).__name__}: {e}"[:300]


def scatter_gather(client, mb, out):
    arr = np.random.default_rng(7).random(mb * 1000 * 1000 // 8)
    parts = np.array_split(arr, 4)
    # the median of 5, as bench/local.go's oursScatterGather
    scatters, gathers = [], []
    for _ in range(1 if mb >= 1000 else 5):
        t0 = time.perf_counter()
        futs = client.scatter(parts, hash=False)
        scatters.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got = np.concatenate(client.gather(futs))
        gathers.append(time.perf_counter() - t0)
        assert len(got) == len(arr) and float(got[-1]) == float(arr[-1])
        del futs, got
    out["scatter_s"] = statistics.median(scatters)
    out["gather_s"] = statistics.median(gathers)


def main():
    a = driver.parse_args()
    # The active memory manager drops replicas no task waits for (every 2 s
    # by default): it would undo the broadcast before the pull reads the
    # copies back ('Run Failed ... KeyError' on one worker).
    dask.config.set({"distributed.scheduler.active-memory-manager.start": False})
    out, skipped = driver.run(a, "dask", cluster, lambda c, client: (client.close(), c.close()),
                              tasks, latency, data, scatter_gather)
    out["versions"] = {"dask": dask.__version__, "distributed": distributed.__version__}
    out["skipped"] = skipped
    print(json.dumps(out))


if __name__ == "__main__":
    main()
