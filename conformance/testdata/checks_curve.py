"""CURVE: the client picked the server key up from the connection file."""


def check_curve_key(ctx):
    return bool(ctx.rc.curve_serverkey)
