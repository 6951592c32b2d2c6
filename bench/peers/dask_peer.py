#!/usr/bin/python3
"""Measure Dask distributed on this machine for the same workloads as bench/.

Prints one JSON object: startup_2_s, lb_tasks_per_s (client.map of a no-op over
--tasks items with 2 single-threaded worker processes), apply_median_ms and
apply_p99_ms (submit(no-op).result(), --calls times).
"""
import argparse
import json
import statistics
import time

from dask.distributed import Client, LocalCluster


def identity(x=None):
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--calls", type=int, default=1000)
    a = ap.parse_args()
    out = {}
    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                           host="127.0.0.1", dashboard_address=None)
    client = Client(cluster)
    client.wait_for_workers(2)
    out["startup_2_s"] = time.perf_counter() - t0
    try:
        client.submit(identity, 0, pure=False).result()
        t0 = time.perf_counter()
        futs = client.map(identity, range(a.tasks), pure=False)
        res = client.gather(futs)
        dt = time.perf_counter() - t0
        assert res == list(range(a.tasks))
        out["lb_tasks_per_s"] = a.tasks / dt
        lat = []
        for i in range(a.calls):
            t = time.perf_counter()
            client.submit(identity, i, pure=False).result()
            lat.append(time.perf_counter() - t)
        lat.sort()
        out["apply_median_ms"] = statistics.median(lat) * 1e3
        out["apply_p99_ms"] = lat[int(0.99 * len(lat))] * 1e3
    finally:
        client.close()
        cluster.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
