"""Issue 9 item 2 against our controller: retries with a timeout, coalescing
broadcast errors, engine death during a broadcast, as the real ipyparallel
7.1 client sees them. Usage: python_semantics.py CLIENT_JSON OUT_JSON.
Needs three engines. Results go to OUT_JSON; stdout is the client's own
chatter ("got stale result", tracebacks from its IO thread), which the Go
test requires to be empty of those."""

import json
import os
import signal
import sys
import time

import ipyparallel as ipp

rc = ipp.Client(sys.argv[1])
rc.wait_for_engines(3, timeout=60)
ids = sorted(rc.ids)[:3]
out = {}


def describe(e):
    d = {"type": type(e).__name__, "ename": getattr(e, "ename", None)}
    if hasattr(e, "elist"):
        d["elist"] = sorted(x[0] for x in e.elist)
    return d


# Coalescing broadcast errors.
for i in ids:
    rc[i]["x"] = i - ids[0]  # 0 on the first engine


@ipp.interactive
def tenth():
    return 10 // x  # noqa: F821 (engine namespace)


cv = rc.broadcast_view(targets=ids[:2], is_coalescing=True)
try:
    cv.apply_sync(lambda: 1 / 0)
    out["coalesced_all_raise"] = {"type": "no error"}
except Exception as e:
    out["coalesced_all_raise"] = describe(e)
try:
    cv.apply_sync(tenth)
    out["coalesced_some_raise"] = {"type": "no error"}
except Exception as e:
    out["coalesced_some_raise"] = describe(e)
out["coalesced_ok"] = cv.apply_sync(lambda: 7)


# Retries: a task that fails everywhere.
def always_fails():
    raise ValueError("always")


lv = rc.load_balanced_view()
t0 = time.monotonic()
with lv.temp_flags(retries=5, timeout=1.5):
    ar = lv.apply_async(always_fails)
try:
    ar.get(timeout=60)
    out["retries_timeout"] = {"type": "no error"}
except Exception as e:
    out["retries_timeout"] = describe(e)
out["retries_timeout_waited"] = time.monotonic() - t0
with lv.temp_flags(retries=5):
    ar = lv.apply_async(always_fails)
try:
    ar.get(timeout=60)
    out["retries_no_timeout"] = {"type": "no error"}
except Exception as e:
    out["retries_no_timeout"] = describe(e)
tv = rc.load_balanced_view(targets=ids[:2])
with tv.temp_flags(retries=5, timeout=30):
    ar = tv.apply_async(always_fails)
try:
    ar.get(timeout=60)
    out["retries_targets"] = {"type": "no error"}
except Exception as e:
    out["retries_targets"] = describe(e)


# An engine dying during a broadcast.
def nap(s):
    import time

    time.sleep(s)
    return s


pids = {i: rc[i].apply_sync(os.getpid) for i in ids}
bv = rc.broadcast_view(targets=ids[:2])
ar = bv.apply_async(nap, 3)
os.kill(pids[ids[0]], signal.SIGKILL)
try:
    ar.get(timeout=60)
    out["bcast_death"] = {"type": "no error"}
except Exception as e:
    out["bcast_death"] = describe(e)
out["bcast_death_results"] = [r if not isinstance(r, Exception) else type(r).__name__ + ":" + r.ename
                              for r in ar.get(return_exceptions=True)]

cv = rc.broadcast_view(targets=ids[1:3], is_coalescing=True)
ar = cv.apply_async(nap, 2)
os.kill(pids[ids[1]], signal.SIGKILL)
try:
    ar.get(timeout=60)
    out["coalesced_death"] = {"type": "no error"}
except Exception as e:
    out["coalesced_death"] = describe(e)
# The survivor answers the abandoned request first (one engine, one
# connection to one leaf): a stale combined reply would arrive before this.
out["after_death"] = rc.broadcast_view(targets=[ids[2]]).apply_sync(lambda: 9)

with open(sys.argv[2], "w") as f:
    json.dump(out, f)
sys.stdout.flush()
rc.close()
