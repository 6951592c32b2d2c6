#!/usr/bin/python3
"""Measure Python ipyparallel on this machine, the same way bench/ measures us.

Prints one JSON object on stdout. Run with Debian's /usr/bin/python3 (it sees
python3-ipyparallel). Each measure mirrors one in bench/main.go:

  startup_<n>_s        Cluster(n).start_and_connect + wait_for_engines(n)
  lb_tasks_per_s       load-balanced map of a no-op over --tasks items, chunksize 1, 2 engines
  apply_median_ms/p99  rc[0].apply_sync(no-op), --calls times
  push_s               dview.push of --push-mb of float64 to 2 engines (best of 2)
"""
import argparse
import json
import statistics
import sys
import time

import numpy as np
import ipyparallel as ipp


def identity(x=None):
    return x


def cluster(n):
    t0 = time.perf_counter()
    c = ipp.Cluster(n=n, controller_ip="127.0.0.1", log_level=40)
    rc = c.start_and_connect_sync()
    rc.wait_for_engines(n, timeout=600)
    return c, rc, time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="2,8,32")
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--push-mb", type=int, default=100)
    a = ap.parse_args()
    out = {"ipyparallel": ipp.__version__, "python": sys.version.split()[0]}

    for n in [int(s) for s in a.sizes.split(",") if s]:
        if n == 2:
            continue
        c, rc, dt = cluster(n)
        out[f"startup_{n}_s"] = dt
        rc.close()
        c.stop_cluster_sync()

    c, rc, dt = cluster(2)
    out["startup_2_s"] = dt
    try:
        lv = rc.load_balanced_view()
        lv.apply_sync(identity, 0)
        t0 = time.perf_counter()
        res = lv.map_sync(identity, range(a.tasks))
        dt = time.perf_counter() - t0
        assert list(res) == list(range(a.tasks))
        out["lb_tasks_per_s"] = a.tasks / dt

        e0 = rc[0]
        for _ in range(20):
            e0.apply_sync(identity)
        lat = []
        for _ in range(a.calls):
            t = time.perf_counter()
            e0.apply_sync(identity)
            lat.append(time.perf_counter() - t)
        lat.sort()
        out["apply_median_ms"] = statistics.median(lat) * 1e3
        out["apply_p99_ms"] = lat[int(0.99 * len(lat))] * 1e3

        arr = np.random.default_rng(1).random(a.push_mb * 1000 * 1000 // 8)
        best = None
        for _ in range(2):
            t0 = time.perf_counter()
            rc[:].push({"a": arr}, block=True)
            dt = time.perf_counter() - t0
            best = dt if best is None else min(best, dt)
        rc[:].execute("_check = float(a.sum())", block=True)
        sums = rc[:].pull("_check", block=True)
        assert all(abs(s - float(arr.sum())) < 1e-6 * abs(float(arr.sum())) for s in sums), sums
        out["push_s"] = best
    finally:
        rc.close()
        c.stop_cluster_sync()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
