"""Scheduling semantics where ipyparallel's behaviour is the reference."""
import time

import ipyparallel as ipp


def check_retries_exhausted(ctx):
    # retries < engines: the last engine's own error reaches the client.
    lv = ctx.rc.load_balanced_view()
    with lv.temp_flags(retries=ctx.n - 1):
        ar = lv.apply_async(lambda: 1 / 0)
    try:
        ar.get(timeout=30)
    except ipp.RemoteError as e:
        return e.ename
    return "no error"


def check_retries_timeout(ctx):
    # More retries than engines, with a timeout: ipyparallel holds the task
    # once every engine failed it, until the timeout ends it (TaskTimeout).
    lv = ctx.rc.load_balanced_view()
    start = time.time()
    with lv.temp_flags(retries=ctx.n + 3, timeout=2):
        ar = lv.apply_async(lambda: 1 / 0)
    try:
        ar.get(timeout=30)
    except ipp.RemoteError as e:
        return {"ename": e.ename, "held": time.time() - start >= 1.5}
    return "no error"
