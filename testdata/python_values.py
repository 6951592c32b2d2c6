"""The Python client pushes, pulls and applies by name on Go engines.

Run by TestPythonValuesOnGoEngines (pyvalues_test.go) as
/usr/bin/python3 python_values.py <ipcontroller-client.json>; prints one
JSON object: check name -> true, or a string saying what went wrong.
"""
import json
import sys

import numpy as np
import ipyparallel as ipp

out = {}


def same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b)
        )
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def check(name, got, want):
    out[name] = True if same(got, want) else "got %r, want %r" % (got, want)


def remote_error(name, fn, ename, *words):
    try:
        r = fn()
        out[name] = "no error: %r" % (r,)
        return
    except ipp.CompositeError as e:
        en, ev = e.elist[0][0], e.elist[0][1]
    except ipp.RemoteError as e:
        en, ev = e.ename, e.evalue
    if en == ename and all(w in ev for w in words):
        out[name] = True
    else:
        out[name] = "%s: %s" % (en, ev)


rc = ipp.Client(sys.argv[1], timeout=30)
rc.wait_for_engines(2, timeout=60)
dv = rc[:]
dv.block = True
e0, e1 = rc[0], rc[1]
e0.block = e1.block = True

values = {
    "v_none": None,
    "v_true": True,
    "v_int": 5,
    "v_negint": -123456789012,
    "v_bigint": 2**70,
    "v_float": 2.5,
    "v_complex": 1 - 2j,
    "v_str": "héllo wörld",
    "v_bytes": b"\x00\xffab",
    "v_list": [1, "a", None, [2.5, False]],
    "v_tuple": (1, "two", (3.0,)),
    "v_dict": {"a": 1, "b": {"c": [1, 2]}},
    "v_intkeys": {1: "one", 2: "two"},
    "v_f64": np.arange(10.0),
    "v_f64_big": np.arange(1000.0),
    "v_i32": np.arange(7, dtype="int32"),
    "v_i64_big": np.arange(500, dtype="int64"),
    "v_u8": np.arange(5, dtype="uint8"),
    "v_bools": np.array([True, False]),
    "v_c128": np.array([1 + 1j, 2 - 2j]),
    "v_mat": np.arange(12.0).reshape(3, 4),
    "v_cube": np.arange(24, dtype="int16").reshape(2, 3, 4),
    "v_empty": np.zeros(0),
}
dv.push(values)
for name, v in values.items():
    check("pull_" + name, dv.pull(name), [v, v])
check("pull_list_of_names", e0.pull(["v_int", "v_str"]), [5, "héllo wörld"])
dv["a"] = 5
check("setitem_getitem", dv["a"], [5, 5])
dv.push({"arrays": [np.arange(300.0), np.arange(3, dtype="i4")]})
check("pull_arrays_in_list", e1.pull("arrays"), [np.arange(300.0), np.arange(3, dtype="i4")])

# What Python pushed is plain Go on the engine.
# (yaegi cannot compile c := f64[3] + 0.5 on a pushed slice; a typed var works)
dv.execute("b := a * 2\nvar c float64 = v_f64[3] + 0.5\nn := len(v_f64_big)\nm := v_mat.At(1, 2)")
check("go_uses_pushed", e0.pull(["b", "c", "n", "m"]), [10, 3.5, 1000, 6.0])

# Scatter and gather are pushes and pulls too.
dv.scatter("part", list(range(8)))
check("scatter_gather", dv.gather("part"), list(range(8)))

# Values the subset does not carry are RemoteErrors naming the type.
remote_error("push_set", lambda: dv.push({"s": {1, 2}}), "TypeError", "set")
remote_error("push_object_array", lambda: dv.push({"o": np.array([1, "x"], dtype=object)}), "TypeError", "numpy.ndarray")
remote_error("push_class_instance", lambda: dv.push({"e": ValueError("x")}), "TypeError", "ValueError")
dv.execute("type point struct{ X int }\npt := point{1}")
remote_error("pull_go_struct", lambda: dv.pull("pt"), "TypeError", "struct")
remote_error("push_predeclared_name", lambda: dv.push({"int": 1}), "ValueError", "predeclared")
remote_error("pull_undefined", lambda: dv.pull("nope"), "NameError", "nope")
remote_error("apply_lambda", lambda: dv.apply_sync(lambda: 1), "NotImplementedError", "Python function")

# apply of a function name: registered natively, or defined in Go source.
check("apply_registered", dv.apply_sync(ipp.Reference("add"), 1, 2.5), [3.5, 3.5])
check("apply_registered_array", e0.apply_sync(ipp.Reference("sum"), np.arange(5.0)), 10.0)
dv.execute("func twice(x int) int { return 2 * x }")
check("apply_interpreted", e1.apply_sync(ipp.Reference("twice"), 21), 42)
remote_error("apply_bad_argument", lambda: e0.apply_sync(ipp.Reference("add"), "x", 1), "TypeError", "add")
remote_error("apply_unknown_name", lambda: e0.apply_sync(ipp.Reference("nosuch")), "NameError", "nosuch")
remote_error("apply_kwargs", lambda: e0.apply_sync(ipp.Reference("add"), 1, b=2), "TypeError", "keyword")
check("map_registered", dv.map_sync(ipp.Reference("square"), range(7)), [0, 1, 4, 9, 16, 25, 36])
e0.push({"seven": 7})
check("apply_reference_argument", e0.apply_sync(ipp.Reference("square"), ipp.Reference("seven")), 49)
remote_error("map_python_function", lambda: dv.map_sync(lambda x: x, range(3)), "NotImplementedError", "Python")
lview = rc.load_balanced_view()
check("map_load_balanced", lview.map_sync(ipp.Reference("add"), [1, 2, 3], [0.5, 0.5, 0.5]), [1.5, 2.5, 3.5])
check("apply_load_balanced", lview.apply_sync(ipp.Reference("square"), 7), 49)

bv = rc.broadcast_view()
bv.block = True
bv.push({"bvx": np.arange(3, dtype="i4")})
check("broadcast_push_pull", bv.pull("bvx"), [np.arange(3, dtype="i4")] * 2)
check("broadcast_apply_reference", bv.apply_sync(ipp.Reference("square"), 3), [9, 9])

# Values the Go client pushed before this script ran.
check("pull_from_go_f64", e0.pull("gof"), np.array([1.0, 2.0, 3.0]))
check("pull_from_go_mat", e0.pull("gomat"), np.array([[1.0, 2.0], [3.0, 4.0]]))
check("pull_from_go_map", e0.pull("gomap"), {"k": 1, "s": ["x", "y"]})
check("pull_from_go_ints", e0.pull("goints"), np.array([1, 2, 3], dtype="int64"))

print(json.dumps(out))
