"""Run conformance checks with the real ipyparallel client.

Usage: driver.py CLIENT_JSON N_ENGINES STATE_DIR CHECK...

Every check is a function check_<name>(ctx) in one of the checks_*.py
files beside this one. Each prints one JSON line as soon as it ends:
{"check": name, "ok": true, "value": <its return value>} or
{"check": name, "ok": false, "error": "<Type>: <message>"}. A check that
raises or hangs (60 s alarm) does not stop the next one. ctx.state is a
dict saved in STATE_DIR between driver runs (phases) of one cluster.
"""
import glob
import importlib.util
import json
import os
import signal
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK_SECONDS = 60


class CheckTimeout(Exception):
    pass


def on_alarm(signum, frame):
    raise CheckTimeout(f"no answer within {CHECK_SECONDS} s")


def load_checks():
    checks, where = {}, {}
    for path in sorted(glob.glob(os.path.join(HERE, "checks_*.py"))):
        name = os.path.splitext(os.path.basename(path))[0]
        # As __main__: the client pickles functions of other modules by
        # reference, and engines cannot import checks_*.
        spec = importlib.util.spec_from_file_location("__main__", path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        for attr in dir(mod):
            if attr.startswith("check_") and callable(getattr(mod, attr)):
                if attr in checks:
                    raise SystemExit(f"{attr} is defined in both {where[attr]} and {name}")
                checks[attr], where[attr] = getattr(mod, attr), name
    return checks


class Ctx:
    """What checks share: the client file, the engine count, the
    client (connected on first use), and state kept between phases."""

    def __init__(self, path, n, state_dir):
        self.path, self.n, self.state_dir = path, n, state_dir
        self._rc = None
        self._err = None
        self.state_file = os.path.join(state_dir, "state.json")
        self.state = {}
        if os.path.exists(self.state_file):
            with open(self.state_file) as f:
                self.state = json.load(f)

    @property
    def rc(self):
        if self._err is not None:
            # Connecting failed once: every check fails at once with why.
            raise self._err
        if self._rc is None:
            import ipyparallel as ipp

            try:
                rc = ipp.Client(self.path, timeout=30)
                if self.n > 0:
                    rc.wait_for_engines(self.n, timeout=CHECK_SECONDS - 10)
            except Exception as e:
                self._err = e
                raise
            self._rc = rc
        return self._rc

    def save(self):
        with open(self.state_file, "w") as f:
            json.dump(self.state, f)


def main():
    path, n, state_dir, names = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
    checks = load_checks()
    ctx = Ctx(path, n, state_dir)
    signal.signal(signal.SIGALRM, on_alarm)
    for name in names:
        fn = checks.get("check_" + name)
        out = {"check": name}
        signal.alarm(CHECK_SECONDS)
        try:
            if fn is None:
                raise LookupError(f"no function check_{name} in testdata/checks_*.py")
            out["value"] = fn(ctx)
            out["ok"] = True
        except BaseException as e:  # noqa: B036 - a check must never stop the run
            if isinstance(e, KeyboardInterrupt):
                raise
            out["ok"] = False
            out["error"] = f"{type(e).__name__}: {e}"
        finally:
            signal.alarm(0)
        try:
            line = json.dumps(out)
        except (TypeError, ValueError):
            out["value"] = repr(out.get("value"))
            line = json.dumps(out)
        print(line, flush=True)
    ctx.save()
    # The client's threads may linger on sockets of a dead controller.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
