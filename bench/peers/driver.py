"""The measuring loop the ipyparallel and Dask peers share.

One cluster per engine (worker) count serves every measure taken at that
count: start-up at the --startup-sizes, load-balanced tasks at the
--task-sizes, latency and push/pull at 2, scatter/gather at 4. A count whose
cluster does not start, or a measure that fails, is reported in "skipped"
and the other counts are still taken.
"""
import argparse
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
    return ap.parse_args()


def ints(s):
    return [int(x) for x in s.split(",") if x.strip()]


def run(a, peer, start, stop, tasks, latency, data, scatter_gather):
    """Takes every measure; start(n) returns (cluster, client, seconds),
    stop(cluster, client) ends them. Returns (out, skipped)."""
    out, skipped = {}, {}
    startup, task_sizes = ints(a.startup_sizes), ints(a.task_sizes)
    counts = sorted(set(startup) | set(task_sizes) | {2} | ({4} if a.scatter_mb > 0 else set()))
    for n in counts:
        try:
            c, client, dt = start(n)
        except Exception as e:
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
            stop(c, client)
        print(f"{peer}: {n} engines done", file=sys.stderr, flush=True)
    return out, skipped
