"""Drive the hub queries of our Go controller with the real ipyparallel client:
db_query, resubmit, get_result from a second client, load_request and the
Dask requests.

Usage: python_hubqueries.py CLIENT_JSON N_ENGINES; prints one JSON object of
what the client saw, which the Go test compares with what it expects.
"""
import datetime
import json
import sys
import time

import ipyparallel as ipp
from ipyparallel import serialize

path, n = sys.argv[1], int(sys.argv[2])
rc = ipp.Client(path, timeout=20)
rc.wait_for_engines(n, timeout=60)
lv = rc.load_balanced_view()
out = {}


def remote_error(f):
    try:
        f()
    except ipp.RemoteError as e:
        return [e.ename, e.evalue]
    except Exception as e:  # what the client raised instead
        return [type(e).__name__, str(e)]
    return None


# Some history: applies with arguments and results in buffers, an execute
# with output and a value, a failure.
first = lv.apply_async(lambda x: b"r" * x, 5)
first.get(timeout=20)
time.sleep(0.01)  # distinct submission dates, for the date queries below
mid = datetime.datetime.now(datetime.timezone.utc)
time.sleep(0.01)
second = lv.apply_async(lambda x, y=0: x + y, 40, y=2)
second.get(timeout=20)
ex = rc[0].execute("print('out'); 6 * 7", silent=False, block=True)
bad = lv.apply_async(lambda: 1 / 0)
out["bad"] = remote_error(lambda: bad.get(timeout=20))
ids = [first.msg_ids[0], second.msg_ids[0], ex.msg_ids[0], bad.msg_ids[0]]

# db_query as issue 9 asks, and the variants the client offers.
recs = rc.db_query({"completed": {"$ne": None}}, keys=["msg_id", "engine_uuid"])
out["completed_keys"] = sorted({k for r in recs for k in r})
out["completed_has_ours"] = all(i in {r["msg_id"] for r in recs} for i in ids)
out["engine_uuids_known"] = all(r["engine_uuid"] in rc._engines.values() for r in recs)

recs = rc.db_query({"msg_id": {"$in": ids}})
out["default_count"] = len(recs)
out["default_has_buffers"] = any("buffers" in r or "result_buffers" in r for r in recs)
r0 = [r for r in recs if r["msg_id"] == first.msg_ids[0]][0]
out["default_types"] = [
    type(r0["submitted"]).__name__,
    type(r0["completed"]).__name__,
    type(r0["started"]).__name__,
    type(r0["received"]).__name__,
    type(r0["header"]["date"]).__name__,
]
out["default_queue"] = r0["queue"]
out["session_kept"] = r0["header"]["session"] == rc.session.session
rex = [r for r in recs if r["msg_id"] == ex.msg_ids[0]][0]
out["execute_record"] = [rex["queue"], rex["stdout"], rex["execute_input"], rex["execute_result"]["data"]["text/plain"]]
rbad = [r for r in recs if r["msg_id"] == bad.msg_ids[0]][0]
out["error_record"] = rbad["result_content"]["ename"]

recs = rc.db_query({"msg_id": {"$in": [first.msg_ids[0], second.msg_ids[0]]}}, keys=["msg_id", "buffers", "result_buffers"])
got = {}
for r in recs:
    f, args, kwargs = serialize.unpack_apply_message(r["buffers"])
    value, _ = serialize.deserialize_object(r["result_buffers"])
    got[r["msg_id"]] = [list(args), kwargs, value.decode() if isinstance(value, bytes) else value]
out["buffers"] = [got[first.msg_ids[0]], got[second.msg_ids[0]]]
recs = rc.db_query({"msg_id": second.msg_ids[0]}, keys="result_buffers")
out["only_result_buffers"] = [sorted(recs[0]), serialize.deserialize_object(recs[0]["result_buffers"])[0]]

# Dates: datetimes in the query travel as ISO strings and compare as dates.
later = rc.db_query({"submitted": {"$gte": mid}, "msg_id": {"$in": ids}}, keys=["submitted"])
out["after_mid"] = sorted(ids.index(r["msg_id"]) for r in later)
earlier = rc.db_query({"submitted": {"$lt": mid}, "msg_id": {"$in": ids}}, keys=["submitted"])
out["before_mid"] = sorted(ids.index(r["msg_id"]) for r in earlier)
exact = rc.db_query({"submitted": r0["submitted"]}, keys=["msg_id"])
out["exact_date"] = [r["msg_id"] == first.msg_ids[0] for r in exact]
out["dotted"] = [r["msg_id"] == ex.msg_ids[0] for r in rc.db_query({"header.msg_type": "execute_request", "msg_id": {"$in": ids}}, keys=["msg_id"])]
out["bad_query"] = remote_error(lambda: rc.db_query({"msg_id": {"$regex": "x"}}))
out["bad_key"] = remote_error(lambda: rc.db_query({}, keys=["msg_id", "nope"]))

# resubmit: finished, failed, in flight, and a chain.
re = rc.resubmit([first.msg_ids[0], second.msg_ids[0]])
out["resubmit_done"] = [v.decode() if isinstance(v, bytes) else v for v in re.get(timeout=30)]
new_first = re.msg_ids[0]
rec = rc.db_query({"msg_id": {"$in": [first.msg_ids[0], new_first]}}, keys=["resubmitted", "header", "content"])
byid = {r["msg_id"]: r for r in rec}
out["resubmitted_field"] = byid[first.msg_ids[0]]["resubmitted"] == new_first
out["resubmit_header"] = [
    byid[new_first]["header"]["session"] == byid[first.msg_ids[0]]["header"]["session"],
    byid[new_first]["header"]["msg_type"],
    byid[new_first]["header"]["username"] == byid[first.msg_ids[0]]["header"]["username"],
    byid[new_first]["header"]["msg_id"] == new_first,
]
out["resubmit_failed"] = remote_error(lambda: rc.resubmit(bad.msg_ids[0]).get(timeout=30))
slow = lv.apply_async(lambda: __import__("time").sleep(1) or "slow")
# (ar.msg_id is the metadata's, None until the result arrives: use msg_ids.)
# The request reaches the hub on another socket than this query: as with
# the Python hub, a task can be resubmitted once the hub has seen it.
deadline = time.time() + 20
while not rc.db_query({"msg_id": slow.msg_ids[0]}, keys=["msg_id"]) and time.time() < deadline:
    time.sleep(0.01)
out["inflight_pending"] = rc.result_status([slow.msg_ids[0]])["pending"] == slow.msg_ids
inflight = rc.resubmit(slow.msg_ids[0])
out["resubmit_inflight"] = [slow.get(timeout=30), inflight.get(timeout=30)]
blockers = [lv.apply_async(lambda: __import__("time").sleep(1.5)) for _ in range(n)]
victim = lv.apply_async(lambda: "victim")
rc.abort(victim, targets=rc.ids, block=True)
out["aborted"] = remote_error(lambda: victim.get(timeout=30))
out["resubmit_aborted"] = rc.resubmit(victim.msg_ids[0]).get(timeout=30)
a = lv.apply_async(lambda: "a")
with lv.temp_flags(after=[a]):
    b = lv.apply_async(lambda: "b")
b.get(timeout=20)
chain = rc.resubmit([b.msg_ids[0], a.msg_ids[0]])
out["resubmit_chain"] = chain.get(timeout=30)
newb = chain.msg_ids[0]
newa = chain.msg_ids[1]
md = rc.db_query({"msg_id": newb}, keys=["metadata"])[0]["metadata"]
out["chain_after"] = md["after"] == [newa]
out["resubmit_missing"] = remote_error(lambda: rc.resubmit("no-such-id"))

# A second client gets results it never submitted: done, failed by the
# scheduler, and still running when asked.
with lv.temp_flags(after=["no-such-msg-id"]):
    nodep = lv.apply_async(lambda: 0)
out["invalid_dependency"] = remote_error(lambda: nodep.get(timeout=20))
late = lv.apply_async(lambda: __import__("time").sleep(1) or "late")
deadline = time.time() + 20
while not rc.db_query({"msg_id": late.msg_ids[0]}, keys=["msg_id"]) and time.time() < deadline:
    time.sleep(0.01)
rc2 = ipp.Client(path, timeout=20)
out["second_client_pending"] = rc2.get_result(late.msg_ids[0]).get(timeout=20)
out["second_client_invalid_dependency"] = remote_error(lambda: rc2.get_result(nodep.msg_ids[0]).get(timeout=20))
ar = rc2.get_result([first.msg_ids[0], second.msg_ids[0]])
out["second_client"] = [v.decode() if isinstance(v, bytes) else v for v in ar.get(timeout=20)]
ar = rc2.get_result(ex.msg_ids[0])
reply = ar.get(timeout=20)
out["second_client_execute"] = [type(reply).__name__, reply.data.get("text/plain"), ar.stdout, reply.execution_count]
out["second_client_error"] = remote_error(lambda: rc2.get_result(bad.msg_ids[0]).get(timeout=20))
rc2.close()

# Dask: the client raises our error instead of hanging or "Bad Message Type".
out["stop_dask"] = remote_error(lambda: rc.stop_dask())
reply = rc._send_recv(rc._query_stream, "become_dask_request", {"scheduler_args": {}})
out["become_dask"] = [reply["msg_type"], reply["content"]["status"], reply["content"]["ename"]]
reply = rc._send_recv(rc._query_stream, "load_request", {"targets": None})
out["load"] = [reply["msg_type"], sorted(k for k in reply["content"] if k != "status")]
rc.close()
print(json.dumps(out, default=str))
