"""Pickle cases for internal/pickle's tests, run by /usr/bin/python3.

gen:   prints one JSON line per case and protocol: the frames Python's
       ipyparallel serialize_object makes of the value (base64).
check: reads JSON lines {"name", "frames"} made by Go on stdin, rebuilds
       each value with deserialize_object and prints {"name", "ok", "got"}.
"""
import base64
import json
import pickle
import sys

import numpy as np
from ipyparallel.serialize import serialize, serialize_object, deserialize_object


def cases():
    return {
        "none": None,
        "true": True,
        "false": False,
        "int_small": 5,
        "int_neg": -7,
        "int_16": 40000,
        "int_32": -2_000_000_000,
        "int_64": 2**62,
        "int_min64": -(2**63),
        "int_big": 2**70,
        "int_bigneg": -(2**80) + 3,
        "float": 2.5,
        "float_neg": -1e300,
        "complex": 1.5 - 2j,
        "str": "héllo",
        "str_long": "x" * 300,
        "bytes": b"\x00\x01ab",
        "bytes_long": bytes(range(256)) * 5,
        "list": [1, "a", None, 2.5],
        "list_empty": [],
        "range": range(2, 11, 3),
        "tuple": (1, "two", 3.0),
        "tuple_big": tuple(range(5)),
        "dict": {"a": 1, "b": [1, 2], "c": {"d": None}},
        "dict_intkeys": {1: "one", 2: "two"},
        "nested": {"l": [[1, 2], (3, 4)], "t": ({"x": 1},)},
        "f64": np.arange(10.0),
        "f64_big": np.arange(300.0),
        "i64": np.arange(5, dtype="i8"),
        "i32_big": np.arange(300, dtype="i4"),
        "f32": np.array([1.5, -2.0], dtype="f4"),
        "i16": np.array([1, -2, 3], dtype="i2"),
        "i8": np.array([-1, 2], dtype="i1"),
        "u8": np.array([1, 2, 3], dtype="u1"),
        "u64": np.array([2**63 + 1], dtype="u8"),
        "bool_arr": np.array([True, False, True]),
        "c128": np.array([1 + 2j, 3 - 4j]),
        "mat": np.arange(6.0).reshape(2, 3),
        "mat_big": np.arange(400.0).reshape(20, 20),
        "mat_fortran": np.asfortranarray(np.arange(6.0).reshape(2, 3)),
        "i32_3d": np.arange(24, dtype="i4").reshape(2, 3, 4),
        "empty_arr": np.zeros(0),
        "np_f64": np.float64(2.5),
        "np_i32": np.int32(-3),
        "arrays_in_list": [np.arange(200.0), np.arange(3, dtype="i4"), "x"],
        "arrays_in_dict": {"a": np.arange(200.0), "b": np.arange(300, dtype="i4")},
        "array_nested": {"inner": {"a": np.arange(4.0)}},
    }


def unsupported():
    import datetime

    class Local:
        pass

    return {
        "set": {1, 2},
        "frozenset": frozenset([1]),
        "datetime": datetime.datetime(2020, 1, 2),
        "object_arr": np.array([1, "a"], dtype=object),
        "in_list": [1, {2}],
        "function": len,
        "lambda": lambda: 1,
    }


def b64(frames):
    return [base64.b64encode(bytes(f)).decode() for f in frames]


def gen():
    for proto in (2, 3, 4, 5):
        serialize.PICKLE_PROTOCOL = proto
        for name, v in cases().items():
            print(json.dumps({"name": name, "proto": proto, "frames": b64(serialize_object(v))}))
        for name, v in unsupported().items():
            print(json.dumps({"name": "unsupported_" + name, "proto": proto, "frames": b64(serialize_object(v))}))


def same(a, b):
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b)
        )
    if isinstance(a, np.generic):
        a = a.item()
    if isinstance(b, np.generic):
        b = b.item()
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def check():
    want = cases()
    want["range"] = list(want["range"])
    for line in sys.stdin:
        req = json.loads(line)
        frames = [base64.b64decode(f) for f in req["frames"]]
        got, rest = deserialize_object(frames)
        name = req["name"]
        exp = want[req.get("expect", name)]
        ok = same(got, exp) and not rest
        print(json.dumps({"name": name, "ok": ok, "got": repr(got)[:300]}))


def apply():
    """pack_apply_message of what the client sends for push, pull and
    apply(Reference(name), ...), and for a lambda."""
    import ipyparallel as ipp
    from ipyparallel import util
    from ipyparallel.serialize import pack_apply_message

    msgs = {
        "push": pack_apply_message(util._push, (), {"a": 5, "arr": np.arange(300.0)}),
        "pull": pack_apply_message(util._pull, (["a", "b"],), {}),
        "reference": pack_apply_message(ipp.Reference("add"), (1, np.arange(200.0)), {"k": "v"}),
        "lambda": pack_apply_message(lambda: 1, (), {}),
        "builtin": pack_apply_message(len, ([1],), {}),
    }
    for name, frames in msgs.items():
        print(json.dumps({"name": name, "frames": b64(frames)}))


if __name__ == "__main__":
    {"gen": gen, "check": check, "apply": apply}[sys.argv[1]]()
