"""The measuring loop the ipyparallel and Dask peers share.

One cluster per engine (worker) count serves every measure taken at that
count: start-up at the --startup-sizes, load-balanced tasks at the
--task-sizes, latency and push/pull at 2, scatter/gather at 4. A count whose
cluster does not start, or a measure that fails, is reported in "skipped"
and the other counts are still taken.

A count that takes longer than --count-timeout seconds ends the run: Dask's
32-worker cluster once hung for 18 minutes (a worker's heartbeat connection
closed, nothing failed), and the bench's 40-minute limit on a peer would
have lost every number. On SIGALRM the peer prints what it measured so far,
with the count as skipped, stops its children and exits. Raising from the
handler instead is not enough: a signal handled inside a garbage-collector
callback has its exception ignored (seen with Dask).
"""
import argparse
import json
import multiprocessing
import os
import signal
import sys


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--startup-sizes", default="2,8,32,128")
    ap.add_argument("--task-sizes", default="1,2,4,8,32")
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--curve-tasks", type=int, default=5000)
    ap.add_argument("--calls", type=int, default=1000)
    ap.add_argument("--data-mb", default="1,10,100,1000")
    ap.add_argument("--scatter-mb", type=int, default=100)
    ap.add_argument("--count-timeout", type=int, default=900,
                    help="seconds one engine count may take, start to stop")
    return ap.parse_args()


# What the run measured so far, for the alarm's report.
_progress = {"peer": "", "n": 0, "out": {}, "skipped": {}, "extra": {}}


def _alarm(signum, frame):
    p = _progress
    p["skipped"][f"engines_{p['n']}"] = f"the count took longer than --count-timeout; the run ended there"
    print(f"{p['peer']}: at {p['n']} engines: over --count-timeout, ending the run", file=sys.stderr, flush=True)
    print(json.dumps({**p["out"], **p["extra"], "skipped": p["skipped"]}), flush=True)
    for child in multiprocessing.active_children():
        child.kill()
    os._exit(0)


def ints(s):
    return [int(x) for x in s.split(",") if x.strip()]


def run(a, peer, start, stop, tasks, latency, data, scatter_gather):
    """Takes every measure; start(n) returns (cluster, client, seconds),
    stop(cluster, client) ends them. Returns (out, skipped)."""
    out, skipped = {}, {}
    startup, task_sizes = ints(a.startup_sizes), ints(a.task_sizes)
    counts = sorted(set(startup) | set(task_sizes) | {2} | ({4} if a.scatter_mb > 0 else set()))
    _progress.update(peer=peer, out=out, skipped=skipped)
    signal.signal(signal.SIGALRM, _alarm)
    for n in counts:
        _progress["n"] = n
        signal.alarm(a.count_timeout)
        try:
            c, client, dt = start(n)
        except Exception as e:
            signal.alarm(0)
            skipped[f"startup_{n}_s"] = f"{type(e).__name__}: {e}"[:300]
            print(f"{peer}: {n} engines did not start: {e}", file=sys.stderr, flush=True)
            continue
        try:
            if n in startup:
                out[f"startup_{n}_s"] = dt
            if n in task_sizes:
                out[f"lb_tasks_per_s_{n}"] = tasks(client, a.tasks if n == 2 else a.curve_tasks)
            if n == 2:
                latency(client, a.calls, out)
                data(client, ints(a.data_mb), out, skipped)
            if n == 4 and a.scatter_mb > 0:
                scatter_gather(client, a.scatter_mb, out)
        except Exception as e:
            skipped[f"engines_{n}"] = f"{type(e).__name__}: {e}"[:300]
            print(f"{peer}: at {n} engines: {e}", file=sys.stderr, flush=True)
        finally:
            signal.alarm(120)  # a stop gets two minutes of its own
            stop(c, client)
            signal.alarm(0)
        print(f"{peer}: {n} engines done", file=sys.stderr, flush=True)
    return out, skipped
