#!/usr/bin/python3
"""Measure Python ipyparallel's Slurm launcher on this machine, as bench/ measures ours.

Prints one JSON object on stdout. Run with Debian's /usr/bin/python3 in a private
IPYTHONDIR, with SLURM_CONF pointing at a reachable Slurm. For each size n:

  slurm_startup_<n>_s  from the start of `ipcluster start --engines=slurm -n n --daemonize`
                       until a client's wait_for_engines(n) returns
  slurm_stop_<n>_s     `ipcluster stop` until squeue no longer lists the job

7.1's Slurm template passes --profile-dir/--cluster-id as argv and sbatch exports the
submitter's environment by default, so nothing else is configured: the controller
listens on 127.0.0.1, which the engines reach because the only node is this machine.
The launcher writes slurm_engine.sbatch and slurm-<job>.out into its working
directory, so it runs in a temporary one. A job still queued after the stop is
cancelled with scancel and counted in slurm_leftover_jobs.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import ipyparallel as ipp

IPCLUSTER = "/usr/bin/ipcluster"


def queued(job_ids):
    """The subset of job_ids squeue still lists (any state it shows)."""
    if not job_ids:
        return set()
    r = subprocess.run(
        ["squeue", "-h", "-o", "%i", "-j", ",".join(sorted(job_ids))],
        capture_output=True, text=True, timeout=60,
    )
    # squeue exits 1 with "Invalid job id specified" once every id has left.
    return {line.strip() for line in r.stdout.split()} & set(job_ids)


def job_ids(profile_dir, cid):
    """Job ids recorded in the cluster file ipcluster wrote."""
    path = os.path.join(profile_dir, "security", f"cluster-{cid}.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except OSError:
        return set()
    sets = (data.get("engines") or {}).get("sets") or {}
    return {str(s["job_id"]) for s in sets.values() if s.get("job_id")}


def by_name(name):
    r = subprocess.run(["squeue", "-h", "-o", "%i", "-n", name], capture_output=True, text=True, timeout=60)
    return set(r.stdout.split())


def one(n, work, profile_dir, out):
    cid = f"bench{os.getpid()}n{n}"
    common = [f"--profile-dir={profile_dir}", f"--cluster-id={cid}"]
    jobs = set()
    err = None
    t0 = time.perf_counter()
    try:
        r = subprocess.run(
            [IPCLUSTER, "start", "--engines=slurm", "-n", str(n), "--daemonize"] + common,
            cwd=work, capture_output=True, text=True, timeout=600,
        )
        jobs = job_ids(profile_dir, cid)
        if r.returncode != 0:
            raise RuntimeError(f"ipcluster start exited {r.returncode}: {r.stderr[-2000:]}")
        rc = ipp.Client(profile_dir=profile_dir, cluster_id=cid)
        try:
            rc.wait_for_engines(n, timeout=600)
            out[f"slurm_startup_{n}_s"] = time.perf_counter() - t0
            if len(rc.ids) != n:
                raise RuntimeError(f"{len(rc.ids)} engines registered, want {n}")
        finally:
            rc.close()
    except Exception as e:  # stop and clean up before reporting
        err = e
    t1 = time.perf_counter()
    subprocess.run([IPCLUSTER, "stop"] + common, cwd=work, capture_output=True, timeout=300)
    jobs |= by_name(f"ipy-engine-{cid}")
    deadline = time.monotonic() + 60
    while queued(jobs) and time.monotonic() < deadline:
        time.sleep(0.2)
    if err is None:
        out[f"slurm_stop_{n}_s"] = time.perf_counter() - t1
    left = queued(jobs) | by_name(f"ipy-engine-{cid}")
    if left:
        subprocess.run(["scancel"] + sorted(left), timeout=60)
        out["slurm_leftover_jobs"] = out.get("slurm_leftover_jobs", 0) + len(left)
        print(f"ipyparallel_slurm_peer: jobs {sorted(left)} outlived ipcluster stop; scancelled", file=sys.stderr)
    if err is not None:
        raise err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="4,32")
    a = ap.parse_args()
    out = {"ipyparallel": ipp.__version__, "python": sys.version.split()[0]}
    work = tempfile.mkdtemp(prefix="ipp-bench-slurm-")
    ipdir = os.environ.get("IPYTHONDIR") or os.path.join(work, "ipython")
    profile_dir = os.path.join(ipdir, "profile_default")
    try:
        for n in [int(s) for s in a.sizes.split(",") if s]:
            one(n, work, profile_dir, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
