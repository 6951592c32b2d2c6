"""Drive our Go controller with the real ipyparallel client and Python engines.

Usage: python_client.py CLIENT_JSON N_ENGINES; prints one JSON object.
"""
import json
import sys
import time

import ipyparallel as ipp

path, n = sys.argv[1], int(sys.argv[2])
rc = ipp.Client(path, timeout=20)
rc.wait_for_engines(n, timeout=60)
out = {"ids": rc.ids}

ar = rc[:].execute("print('hello', 6 * 7)", block=True)
out["stdout"] = ar.stdout
out["apply"] = rc[:].apply_sync(lambda x: x * 2, 21)
out["lb_map"] = rc.load_balanced_view().map_sync(lambda x: x + 1, range(50))
rc[:].push({"a": 5}, block=True)
out["pull"] = rc[:].pull("a", block=True)
try:
    rc[0].apply_sync(lambda: 1 / 0)
except ipp.RemoteError as e:
    out["remote_error"] = e.ename
try:
    rc[:].apply_sync(lambda: 1 / 0)
except ipp.CompositeError as e:
    out["composite"] = len(e.elist)

bv = rc.broadcast_view()
out["bcast_apply"] = bv.apply_sync(lambda: 3)
out["bcast_stdout"] = bv.execute("print('b')", block=True).stdout
cv = rc.broadcast_view(is_coalescing=True)
out["coalesced"] = cv.apply_sync(lambda: 4)

lv = rc.load_balanced_view()
first = lv.apply_async(lambda: 1)
with lv.temp_flags(after=[first]):
    second = lv.apply_async(lambda: 2)
out["after"] = second.get(timeout=20)
with lv.temp_flags(after=["no-such-msg-id"]):
    bad = lv.apply_async(lambda: 3)
try:
    bad.get(timeout=20)
except ipp.RemoteError as e:
    out["invalid_dep"] = e.ename

qs = rc.queue_status()
out["queue_status_keys"] = sorted(str(k) for k in qs)
out["result_status"] = rc.result_status([first.msg_ids[0]])["completed"]
rc.purge_results(jobs=[first], targets=[])
out["purged"] = True

rc.shutdown(targets=[rc.ids[-1]], block=True)
deadline = time.time() + 20
while len(rc.ids) != n - 1 and time.time() < deadline:
    time.sleep(0.05)
out["after_shutdown"] = rc.ids
print(json.dumps(out))
