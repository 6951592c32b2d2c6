"""The Python client's side of TestRestartPythonClient.

Usage: python_restart_client.py submit CLIENT_JSON  -> prints the msg_ids (JSON) and exits,
       python_restart_client.py fetch CLIENT_JSON ID... -> a new client after the restart
       fetches every result with get_result and prints {msg_id: outcome} (JSON).
"""
import json
import sys
import time

import ipyparallel as ipp

mode, path = sys.argv[1], sys.argv[2]
rc = ipp.Client(path, timeout=20)
if mode == "submit":
    rc.wait_for_engines(2, timeout=60)
    ids = []
    for i, ms in enumerate([4000, 3000]):
        ar = rc[i].execute("time.Sleep(%d * time.Millisecond)" % ms, block=False)
        ids.extend(ar.msg_ids)
    # The hub has them (pending) before this client goes away. The
    # requests travel on the mux socket and the query on another, so the
    # hub may not have recorded them yet when the query arrives: ask
    # again until it has (bounded).
    deadline = time.time() + 20
    while True:
        try:
            rc.result_status(ids)
            break
        except ipp.RemoteError as e:
            if "No such message" not in str(e) or time.time() > deadline:
                raise
            time.sleep(0.05)
    print(json.dumps(ids), flush=True)
else:
    out = {}
    for mid in sys.argv[3:]:
        try:
            ar = rc.get_result(mid)
            ar.get(timeout=60)
            out[mid] = "ok"
        except Exception as e:  # noqa: BLE001 - the test prints what happened
            out[mid] = "%s: %s" % (type(e).__name__, e)
    print(json.dumps(out), flush=True)
rc.close()
