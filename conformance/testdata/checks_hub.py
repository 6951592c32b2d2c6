"""Checks of the hub's task records as the Python client reaches them:
db_query, resubmit, get_result from another client, and the dask
requests our controller refuses."""
import time

import ipyparallel as ipp


def settled(query, ok, seconds=10):
    """The hub records a result when it sees it, which can be just after
    the client did (Python's controller too): ask again for a while."""
    deadline = time.time() + seconds
    while True:
        got = query()
        if ok(got) or time.time() > deadline:
            return got
        time.sleep(0.1)


def check_db_query_completed(ctx):
    ar = ctx.rc[:].apply_async(lambda: 1)
    ar.get(timeout=30)
    recs = settled(
        lambda: ctx.rc.db_query({"completed": {"$ne": None}}, keys=["msg_id", "engine_uuid"]),
        lambda recs: set(ar.msg_ids) <= {r["msg_id"] for r in recs},
    )
    found = {r["msg_id"] for r in recs}
    return {
        "all_found": all(m in found for m in ar.msg_ids),
        "keys": sorted(recs[0].keys()) if recs else [],
    }


def check_db_query_msg_id(ctx):
    ar = ctx.rc[:].apply_async(lambda: "db")
    ar.get(timeout=30)
    recs = settled(
        lambda: ctx.rc.db_query({"msg_id": {"$in": ar.msg_ids}}),
        lambda recs: len(recs) == len(ar.msg_ids) and all(r.get("result_header") is not None for r in recs),
    )
    return {
        "msg_ids": sorted(r["msg_id"] for r in recs) == sorted(ar.msg_ids),
        "has_result": all(r.get("result_header") is not None for r in recs),
    }


def check_resubmit(ctx):
    lv = ctx.rc.load_balanced_view()
    ar = lv.apply_async(lambda: 7)
    ar.get(timeout=30)
    again = ctx.rc.resubmit(ar.msg_ids)
    value = again.get(timeout=30)
    if isinstance(value, list):
        value = value[0]
    return {"value": value, "new_id": again.msg_ids != ar.msg_ids}


def check_get_result_other_client(ctx):
    ar = ctx.rc[ctx.rc.ids[0]].apply_async(lambda: "from the first client")
    ar.get(timeout=30)
    other = ipp.Client(ctx.path, timeout=30)
    try:
        return other.get_result(ar.msg_ids[0]).get(timeout=30)
    finally:
        other.close()


def _hub_reply(ctx, msg_type, content):
    # The client's own become_dask/stop_dask import distributed first;
    # the wire exchange is what is checked here.
    reply = ctx.rc._send_recv(ctx.rc._query_stream, msg_type, content)
    c = reply["content"]
    return {"status": c.get("status"), "ename": c.get("ename"), "evalue": c.get("evalue")}


def check_become_dask(ctx):
    return _hub_reply(ctx, "become_dask_request", {"scheduler_args": {}})


def check_stop_distributed(ctx):
    return _hub_reply(ctx, "stop_distributed_request", {})
