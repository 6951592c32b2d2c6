"""Checks of the Python client against our Go engines (registered with
the real Python ipcontroller): they run Go snippets for execute."""
import ipyparallel as ipp


def check_go_ids(ctx):
    return len(ctx.rc.ids)


def check_go_execute_stdout(ctx):
    dv = ctx.rc[:]
    dv.execute("x := 6 * 7", block=True)
    ar = dv.execute("fmt.Println(x)", block=True)
    ar.wait_for_output(timeout=30)
    return ar.stdout


def check_go_execute_result(ctx):
    ar = ctx.rc[ctx.rc.ids[0]].execute("6 * 7", silent=False, block=True)
    er = ar.execute_result
    return (er["data"] if isinstance(er, dict) else er.data)["text/plain"]


def check_go_execute_error(ctx):
    try:
        ctx.rc[:].execute("undefinedName + 1", block=True)
    except ipp.CompositeError as e:
        return [x[0] for x in e.elist]
    return "no error"


def check_go_apply_lambda(ctx):
    try:
        ctx.rc[ctx.rc.ids[0]].apply_sync(lambda: 1)
    except ipp.RemoteError as e:
        return [type(e).__name__, e.ename]
    return "no error"


def check_go_lb_apply_error(ctx):
    try:
        ctx.rc.load_balanced_view().apply_sync(lambda: 1)
    except ipp.RemoteError as e:
        return e.ename
    return "no error"


def check_go_broadcast_execute(ctx):
    ar = ctx.rc.broadcast_view().execute('fmt.Println("via broadcast")', block=True)
    ar.wait_for_output(timeout=30)
    return ar.stdout


def check_go_clear(ctx):
    dv = ctx.rc[:]
    dv.execute("gone := 1", block=True)
    ctx.rc.clear(block=True)
    try:
        dv.execute("fmt.Println(gone)", block=True)
    except ipp.CompositeError:
        return "cleared"
    return "still defined"


def check_go_queue_status(ctx):
    return sorted(str(k) for k in ctx.rc.queue_status())
