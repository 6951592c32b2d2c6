"""Checks of the Python client against a cluster of Python engines: the
everyday client API (views, errors, scheduling, hub queries)."""
import time

import ipyparallel as ipp


def enames(e):
    return [x[0] for x in e.elist]


def check_ids(ctx):
    return ctx.rc.ids


def check_execute_stdout(ctx):
    ar = ctx.rc[:].execute("print('hello', 6 * 7)", block=True)
    ar.wait_for_output(timeout=30)
    return ar.stdout


def check_execute_result(ctx):
    ar = ctx.rc[ctx.rc.ids[0]].execute("6 * 7", silent=False, block=True)
    er = ar.execute_result
    return (er["data"] if isinstance(er, dict) else er.data)["text/plain"]


def check_apply(ctx):
    return ctx.rc[:].apply_sync(lambda x: x * 2, 21)


def check_map(ctx):
    return ctx.rc[:].map_sync(lambda x: x * x, range(10))


def check_push_pull(ctx):
    dv = ctx.rc[:]
    dv.push({"a": 5, "b": [1, "two"]}, block=True)
    return dv.pull(["a", "b"], block=True)


def check_scatter_gather(ctx):
    dv = ctx.rc[:]
    dv.scatter("s", list(range(8)), block=True)
    return dv.gather("s", block=True)


def check_remote_error(ctx):
    try:
        ctx.rc[ctx.rc.ids[0]].apply_sync(lambda: 1 / 0)
    except ipp.RemoteError as e:
        return [type(e).__name__, e.ename]
    return "no error"


def check_composite_error(ctx):
    try:
        ctx.rc[:].apply_sync(lambda: 1 / 0)
    except ipp.CompositeError as e:
        return enames(e)
    return "no error"


def check_execute_error(ctx):
    try:
        ctx.rc[:].execute("undefined_name + 1", block=True)
    except ipp.CompositeError as e:
        return enames(e)
    return "no error"


def check_lb_map(ctx):
    return ctx.rc.load_balanced_view().map_sync(lambda x: x + 1, range(50))


def check_lb_apply_targets(ctx):
    target = ctx.rc.ids[-1]
    lv = ctx.rc.load_balanced_view(targets=[target])
    ar = lv.apply_async(lambda: 1)
    ar.get(timeout=30)
    return [ar.engine_id, target]


def check_dependency_after(ctx):
    lv = ctx.rc.load_balanced_view()
    first = lv.apply_async(lambda: 1)
    with lv.temp_flags(after=[first]):
        second = lv.apply_async(lambda: 2)
    ctx.state["first_msg_id"] = first.msg_ids[0]
    return second.get(timeout=30)


def check_dependency_invalid(ctx):
    lv = ctx.rc.load_balanced_view()
    with lv.temp_flags(after=["no-such-msg-id"]):
        bad = lv.apply_async(lambda: 3)
    try:
        bad.get(timeout=30)
    except ipp.RemoteError as e:
        return e.ename
    return "no error"


def check_abort(ctx):
    v = ctx.rc[ctx.rc.ids[0]]
    slow = v.apply_async(time.sleep, 1)
    queued = v.apply_async(lambda: "ran")
    ctx.rc.abort(queued, block=True)
    slow.get(timeout=30)
    try:
        return queued.get(timeout=30)
    except Exception as e:  # the error type is the point
        return type(e).__name__


def check_queue_status(ctx):
    qs = ctx.rc.queue_status()
    return sorted(str(k) for k in qs)


def check_result_status(ctx):
    ar = ctx.rc[:].apply_async(lambda: 1)
    ar.get(timeout=30)
    st = ctx.rc.result_status(ar.msg_ids)
    return [len(st["completed"]), len(st["pending"])]


def check_hub_history(ctx):
    ar = ctx.rc[:].apply_async(lambda: 1)
    ar.get(timeout=30)
    hist = ctx.rc.hub_history()
    return all(m in hist for m in ar.msg_ids)


def check_purge_results(ctx):
    ar = ctx.rc[:].apply_async(lambda: 1)
    ar.get(timeout=30)
    ctx.rc.purge_results(jobs=ar.msg_ids, targets=[])
    return "purged"


def check_clear(ctx):
    dv = ctx.rc[:]
    dv.push({"gone": 1}, block=True)
    ctx.rc.clear(block=True)
    try:
        dv.pull("gone", block=True)
    except ipp.CompositeError as e:
        return enames(e)
    return "still defined"


def check_broadcast_apply(ctx):
    return ctx.rc.broadcast_view().apply_sync(lambda: 3)


def check_broadcast_execute(ctx):
    ar = ctx.rc.broadcast_view().execute("print('b')", block=True)
    ar.wait_for_output(timeout=30)
    return ar.stdout


def check_coalescing_apply(ctx):
    return ctx.rc.broadcast_view(is_coalescing=True).apply_sync(lambda: 4)


def check_broadcast_error(ctx):
    try:
        ctx.rc.broadcast_view().apply_sync(lambda: 1 / 0)
    except ipp.CompositeError as e:
        return enames(e)
    except Exception as e:
        return f"{type(e).__name__} (not CompositeError)"
    return "no error"


def check_coalescing_error(ctx):
    # The real 7.1 controller gives a RemoteError carrying the engines'
    # own error type when every engine raised.
    try:
        ctx.rc.broadcast_view(is_coalescing=True).apply_sync(lambda: 1 / 0)
    except ipp.RemoteError as e:
        return [type(e).__name__, e.ename]
    return "no error"


def check_shutdown_engine(ctx):
    rc = ctx.rc
    last = rc.ids[-1]
    rc.shutdown(targets=[last], block=True)
    deadline = time.time() + 30
    while last in rc.ids and time.time() < deadline:
        time.sleep(0.05)
    return rc.ids
