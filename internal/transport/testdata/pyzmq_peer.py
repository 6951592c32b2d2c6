"""pyzmq side of the transport conformance suite (run by conformance_test.go).

Modes:
  dealer ENDPOINT   DEALER with identity b"py-dealer" connects to the Go ROUTER.
  router            ROUTER binds, prints its endpoint, serves one Go DEALER.
  router-peer       ROUTER with identity b"mux_out" binds, prints its endpoint,
                    and talks to a Go ROUTER that connects (the engine pattern).

Prints "ok" on success; any failure exits non-zero with the reason on stderr.
"""
import sys

import zmq

TIMEOUT_MS = 10000
BIG = b"y" * 1000


def fail(why):
    sys.stderr.write("pyzmq peer: %s\n" % why)
    sys.exit(1)


def recv(sock):
    if not sock.poll(TIMEOUT_MS):
        fail("nothing received within %d ms" % TIMEOUT_MS)
    return sock.recv_multipart()


def bind_any(sock):
    sock.bind("tcp://127.0.0.1:*")
    print(sock.getsockopt(zmq.LAST_ENDPOINT).decode(), flush=True)


def dealer(ctx, endpoint):
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.IDENTITY, b"py-dealer")
    s.connect(endpoint)
    s.send_multipart([b"hello", b"", b"x" * 1000])
    got = recv(s)
    if got != [b"reply", b"", BIG]:
        fail("dealer got %r" % (got[:2],))
    s.close(linger=1000)


def router(ctx):
    s = ctx.socket(zmq.ROUTER)
    bind_any(s)
    got = recv(s)
    if got[:3] != [b"go-dealer", b"ping", b""] or got[3:] != [b"x" * 1000]:
        fail("router got %r" % (got[:3],))
    s.send_multipart([b"go-dealer", b"pong", b"", BIG])
    s.close(linger=1000)


def router_peer(ctx):
    s = ctx.socket(zmq.ROUTER)
    s.setsockopt(zmq.IDENTITY, b"mux_out")
    bind_any(s)
    engine = None
    while True:
        got = recv(s)
        if len(got) != 2:
            fail("router-peer got %r" % (got,))
        if got[1] == b"ready":
            # The Go side probes until it hears back; answer the first probe.
            if engine is None:
                engine = got[0]
                s.send_multipart([engine, b"req", b""])
            continue
        if got[1] == b"rep" and got[0] == engine:
            break
        fail("router-peer got %r" % (got,))
    s.close(linger=1000)


def main():
    ctx = zmq.Context()
    mode = sys.argv[1]
    if mode == "dealer":
        dealer(ctx, sys.argv[2])
    elif mode == "router":
        router(ctx)
    elif mode == "router-peer":
        router_peer(ctx)
    else:
        fail("unknown mode %r" % mode)
    ctx.term()
    print("ok", flush=True)


if __name__ == "__main__":
    main()
