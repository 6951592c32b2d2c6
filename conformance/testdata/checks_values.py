"""Values between the Python client and Go engines (pickle subset)."""


def check_go_push_pull_plain(ctx):
    dv = ctx.rc[:]
    values = {"i": 3, "f": 1.5, "s": "text", "by": b"raw", "l": [1, 2], "t": (1, "a"), "d": {"k": 1}, "n": None}
    dv.push(values, block=True)
    got = dv.pull(list(values), block=True)
    want = [values[k] for k in values]
    return [{"same": g == want, "got": repr(g)} for g in got]


def check_go_push_pull_numpy(ctx):
    import numpy as np

    dv = ctx.rc[:]
    a = np.arange(12, dtype="float64").reshape(3, 4)
    dv.push({"arr": a}, block=True)
    return [bool(np.array_equal(np.asarray(x), a)) for x in dv.pull("arr", block=True)]


def check_go_push_unsupported(ctx):
    import ipyparallel as ipp

    try:
        import datetime

        ctx.rc[ctx.rc.ids[0]].push({"c": datetime.datetime(2020, 1, 1)}, block=True)
    except ipp.RemoteError as e:
        return [e.ename, "datetime" in e.evalue]
    return "no error"


def check_go_apply_reference(ctx):
    import ipyparallel as ipp

    dv = ctx.rc[:]
    dv.execute("func twice(x int) int { return 2 * x }", block=True)
    return dv.apply_sync(ipp.Reference("twice"), 21)
