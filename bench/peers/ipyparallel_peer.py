#!/usr/bin/python3
"""Measure Python ipyparallel on this machine, the same way bench/ measures us.

Prints one JSON object on stdout (its last line). Run with Debian's
/usr/bin/python3 (it sees python3-ipyparallel). Each measure mirrors one in
bench/local.go; one cluster is started per engine count and serves every
measure taken at that count:

  startup_<n>_s             Cluster(n).start_and_connect + wait_for_engines(n), n in --startup-sizes
  lb_tasks_per_s_<n>        load-balanced map of a no-op, chunksize 1, n in --task-sizes
                            (--tasks items at 2 engines, --curve-tasks elsewhere)
  apply_median_ms/p99       rc[0].apply_sync(no-op), --calls times (2 engines)
  push_s_<mb>, pull_s_<mb>  dview.push / dview.pull of <mb> MB of float64 to/from 2 engines, median of 5 (1 from 1 GB on)
  scatter_s, gather_s       dview.scatter / gather of --scatter-mb MB of float64 over 4 engines, median of 5

"skipped" maps a measure to why it was not taken; "versions" names what ran.
"""
import json
import statistics
import sys
import time

import numpy as np
import ipyparallel as ipp

import driver


def identity(x=None):
    return x



def cluster(n):
    t0 = time.perf_counter()
    # ~1.3 s an engine on 2 vCPUs (32 in 39-48 s): give up well after that.
    # start_and_connect waits engine_timeout (60 s by default) by itself,
    # and 128 engines importing at once all finish late, together.
    timeout = 120 + 2 * n
    c = ipp.Cluster(n=n, controller_ip="127.0.0.1", log_level=40, engine_timeout=timeout)
    try:
        rc = c.start_and_connect_sync()
        rc.wait_for_engines(n, timeout=timeout)
    except BaseException:
        c.stop_cluster_sync()
        raise
    return c, rc, time.perf_counter() - t0


def tasks(rc, count):
    lv = rc.load_balanced_view()
    lv.apply_sync(identity, 0)
    t0 = time.perf_counter()
    res = lv.map_sync(identity, range(count))
    dt = time.perf_counter() - t0
    assert list(res) == list(range(count))
    return count / dt


def latency(rc, calls, out):
    e0 = rc[0]
    for _ in range(20):
        e0.apply_sync(identity)
    lat = []
    for _ in range(calls):
        t = time.perf_counter()
        e0.apply_sync(identity)
        lat.append(time.perf_counter() - t)
    lat.sort()
    out["apply_median_ms"] = statistics.median(lat) * 1e3
    out["apply_p99_ms"] = lat[int(0.99 * len(lat))] * 1e3


def data(rc, sizes, out, skipped):
    dv = rc[:]
    for mb in sizes:
        # the median of 5, of 1 from 1 GB on (as bench/local.go's dataRounds)
        rounds = 1 if mb >= 1000 else 5
        try:
            arr = np.random.default_rng(mb).random(mb * 1000 * 1000 // 8)
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                dv.push({"a": arr}, block=True)
                times.append(time.perf_counter() - t0)
            dv.execute("_check = float(a.sum())", block=True)
            want = float(arr.sum())
            sums = dv.pull("_check", block=True)
            assert all(abs(s - want) <= 1e-6 * abs(want) for s in sums), sums
            out[f"push_s_{mb}"] = statistics.median(times)
            times = []
            for _ in range(rounds):
                t0 = time.perf_counter()
                got = dv.pull("a", block=True)
                times.append(time.perf_counter() - t0)
                assert len(got) == len(rc.ids) and all(len(g) == len(arr) for g in got)
                del got
            out[f"pull_s_{mb}"] = statistics.median(times)
            dv.execute("del a; del _check", block=True)
            del arr
        except MemoryError as e:
            for k in (f"push_s_{mb}", f"pull_s_{mb}"):
                if k not in out:
                    skipped[k] = f"MemoryError: {e}"


def scatter_gather(rc, mb, out):
    dv = rc[:]
    arr = np.random.default_rng(7).random(mb * 1000 * 1000 // 8)
    # the median of 5, as bench/local.go's oursScatterGather
    scatters, gathers = [], []
    for _ in range(1 if mb >= 1000 else 5):
        t0 = time.perf_counter()
        dv.scatter("s", arr, block=True)
        scatters.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        got = dv.gather("s", block=True)
        gathers.append(time.perf_counter() - t0)
        assert len(got) == len(arr) and float(got[-1]) == float(arr[-1])
        del got
    out["scatter_s"] = statistics.median(scatters)
    out["gather_s"] = statistics.median(gathers)


def main():
    a = driver.parse_args()
    out, skipped = driver.run(a, "ipyparallel", cluster, lambda c, rc: (rc.close(), c.stop_cluster_sync()),
                              tasks, latency, data, scatter_gather)
    out["versions"] = {"ipyparallel": ipp.__version__, "python": sys.version.split()[0],
                       "numpy": np.__version__}
    out["skipped"] = skipped
    print(json.dumps(out))


if __name__ == "__main__":
    main()
