"""A controller killed with SIGKILL and restarted still answers for the
tasks finished before the crash."""
import ipyparallel as ipp

N_TASKS = 20
_after = []


def after_restart_client(ctx):
    """One client for the checks after the restart (a failed connection
    costs its whole timeout once, not per check)."""
    if not _after:
        try:
            _after.append(ipp.Client(ctx.path, timeout=15))
        except Exception as e:  # kept: the next check fails the same way at once
            _after.append(e)
    if isinstance(_after[0], Exception):
        raise _after[0]
    return _after[0]


def check_restart_submit(ctx):
    lv = ctx.rc.load_balanced_view()
    ars = [lv.apply_async(lambda i: i * 10, i) for i in range(N_TASKS)]
    values = [ar.get(timeout=30) for ar in ars]
    ctx.state["restart_ids"] = [ar.msg_ids[0] for ar in ars]
    ctx.state["restart_values"] = values
    ctx.state["restart_engine_ids"] = sorted(ctx.rc.ids)
    return len(values)


def check_restart_get_result(ctx):
    ids = ctx.state.get("restart_ids")
    if not ids:
        raise RuntimeError("the submit phase recorded no msg_ids")
    rc = after_restart_client(ctx)
    status = rc.result_status(ids, status_only=True)
    if status["pending"]:
        # Say which and what the controller holds, not just "not ready".
        first = status["pending"][0]
        rec = rc.db_query({"msg_id": first}, keys=["msg_id", "engine_uuid", "submitted", "completed", "result_content"])
        raise RuntimeError("%d of %d tasks pending after the restart; first: %r" % (len(status["pending"]), len(ids), rec))
    got = rc.get_result(ids).get(timeout=30)
    return got == ctx.state["restart_values"]


def check_restart_db_query(ctx):
    ids = ctx.state.get("restart_ids") or []
    recs = after_restart_client(ctx).db_query({"completed": {"$ne": None}}, keys=["msg_id", "engine_uuid"])
    found = {r["msg_id"] for r in recs}
    return all(m in found for m in ids) and len(ids) > 0


def check_restart_engines_back(ctx):
    rc = after_restart_client(ctx)
    want = ctx.state.get("restart_engine_ids") or []
    rc.wait_for_engines(len(want), timeout=60)
    return [sorted(rc.ids) == want, rc[:].apply_sync(lambda: 6 * 7) == [42] * len(want)]
