#!/usr/bin/env python3
"""Smoke test of deploy/haproxy/haproxy.cfg with the real haproxy, on loopback only.

Three stand-ins for `diarist serve` (127.0.0.2-4:8717: /readyz, and /v1/stream answering the
upgrade with 101 then echoing bytes, or with diarist's 503 "too many sessions") sit behind
haproxy on 127.0.0.1:8717 (stats on 127.0.0.5:8404). Checked: health checks, X-Forwarded-For,
leastconn spreading sessions, a 503 upgrade answer retried on another instance, the 503 reaching
the client when every instance refuses, a draining instance leaving rotation within ~2 s while
its open session goes on, and HAProxy's own 503 when no instance is ready. Everything stops by
itself within 60 s. Usage: deploy/haproxy/smoke_test.py [path/to/haproxy.cfg] (SMOKE_VERBOSE=1: haproxy's log too)
"""

import asyncio
import os
import subprocess
import sys
import tempfile
import time

CFG = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "haproxy.cfg")
LB = ("127.0.0.1", 8717)
STATS = ("127.0.0.5", 8404)
INSTANCES = {f"diarist{i}": (f"127.0.0.{i + 1}", 8717) for i in (1, 2, 3)}


class Instance:
    """A stand-in for one `diarist serve`: its answers are switched by the test."""

    def __init__(self, name):
        self.name = name
        self.ready = True  # /readyz 200 (else 503: full or draining)
        self.accept = True  # upgrade answered 101 (else 503 "too many sessions")
        self.upgrades = 0  # upgrade requests received
        self.open = 0  # upgraded connections now open
        self.forwarded_for = None

    async def handle(self, reader, writer):
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        lines = head.decode("latin-1").split("\r\n")
        path = lines[0].split(" ")[1]
        headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:] if l)}
        if "x-forwarded-for" in headers:
            self.forwarded_for = headers["x-forwarded-for"]
        if path == "/v1/stream" and headers.get("upgrade", "").lower() == "websocket":
            self.upgrades += 1
            if self.accept:
                writer.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n"
                    + f"X-Instance: {self.name}\r\n\r\n".encode()
                )
                self.open += 1
                try:  # the tunnel: echo until the client goes
                    while data := await reader.read(4096):
                        writer.write(data)
                        await writer.drain()
                except ConnectionError:
                    pass
                self.open -= 1
                writer.close()
                return
            status, body = "503 Service Unavailable", "too many sessions\n"
        elif path == "/readyz":
            status, body = ("200 OK", "ready\n") if self.ready else ("503 Service Unavailable", "not ready\n")
        elif path == "/healthz":
            status, body = "200 OK", "ok\n"
        else:
            status, body = "404 Not Found", "not found\n"
        writer.write(
            f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\nCache-Control: no-store\r\nX-Instance: {self.name}\r\n\r\n{body}".encode()
        )
        try:
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()


async def request(path, upgrade=False, host=LB):
    """One request; returns (status, headers, body, (reader, writer) of an upgraded connection)."""
    reader, writer = await asyncio.open_connection(*host)
    extra = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" \
        "Sec-WebSocket-Version: 13\r\nAuthorization: Bearer t\r\n" if upgrade else ""
    # HTTP/1.0 but for the upgrade: the answer ends with the connection, never chunked
    writer.write(f"GET {path} HTTP/1.{1 if upgrade else 0}\r\nHost: lb\r\n{extra}\r\n".encode())
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ")[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in head[1:] if l)}
    if status == 101:
        return status, headers, "", (reader, writer)
    n = int(headers.get("content-length", "-1"))
    body = (await reader.readexactly(n) if n >= 0 else await reader.read()).decode()
    writer.close()
    return status, headers, body, None


async def states():
    """Each server's state as HAProxy's stats CSV has it (UP, DOWN, ...)."""
    _, _, body, _ = await request("/stats;csv", host=STATS)
    rows = [r.split(",") for r in body.splitlines()[1:]]
    return {r[1]: r[17].split(" ")[0] for r in rows if r[0] == "diarist" and r[1] in INSTANCES}


async def wait_states(want, limit):
    start = time.monotonic()
    while True:
        got = await states()
        if all(got.get(k) == v for k, v in want.items()):
            return time.monotonic() - start
        if time.monotonic() - start > limit:
            raise AssertionError(f"servers {got}, wanted {want} within {limit} s")
        await asyncio.sleep(0.1)


def check(cond, what):
    if not cond:
        raise AssertionError(what)
    print(f"  ok: {what}")


async def scenario(inst, servers):
    await wait_states({n: "UP" for n in INSTANCES}, 10)
    check(True, "all three instances UP by their /readyz checks")

    status, _, body, _ = await request("/readyz")
    check(status == 200 and body == "ready\n", "GET /readyz is forwarded")
    check(any(i.forwarded_for == "127.0.0.1" for i in inst.values()), "X-Forwarded-For: 127.0.0.1 reaches the instance")

    sessions = []
    for _ in range(6):
        status, h, _, conn = await request("/v1/stream", upgrade=True)
        assert status == 101, status
        sessions.append(conn)
    spread = sorted(i.open for i in inst.values())
    check(spread == [2, 2, 2], f"leastconn: 6 open sessions spread 2/2/2 (got {spread})")
    reader, writer = sessions[0]
    writer.write(b"audio")
    check(await asyncio.wait_for(reader.readexactly(5), 5) == b"audio", "bytes flow through the tunnel")
    for _, w in sessions:
        w.close()
    while any(i.open for i in inst.values()):
        await asyncio.sleep(0.05)

    # Two instances full or draining but not yet caught by their checks: retried on the third.
    inst["diarist1"].accept = inst["diarist2"].accept = False
    before = inst["diarist1"].upgrades + inst["diarist2"].upgrades
    got = []
    for _ in range(12):
        status, h, _, conn = await request("/v1/stream", upgrade=True)
        got.append((status, h.get("x-instance")))
        if conn:
            conn[1].close()
        while inst["diarist3"].open:
            await asyncio.sleep(0.05)
    refused = inst["diarist1"].upgrades + inst["diarist2"].upgrades - before
    check(
        got == [(101, "diarist3")] * 12 and refused > 0,
        f"two instances answering the upgrade with 503: 12 of 12 sessions reach the third "
        f"({refused} tries refused first and retried)",
    )

    inst["diarist3"].accept = False
    status, h, body, _ = await request("/v1/stream", upgrade=True)
    check(status == 503 and body == "too many sessions\n", "every instance refusing: the client gets diarist's 503")

    for i in inst.values():
        i.accept = True
    sessions = []
    for _ in range(3):
        status, h, _, conn = await request("/v1/stream", upgrade=True)
        sessions.append((h["x-instance"], conn))
    inst["diarist1"].ready = False  # draining: /readyz 503
    took = await wait_states({"diarist1": "DOWN"}, 5)
    check(took < 3.0, f"a draining instance leaves rotation in {took:.1f} s")
    reader, writer = next(c for n, c in sessions if n == "diarist1")
    writer.write(b"still here")
    check(await asyncio.wait_for(reader.readexactly(10), 5) == b"still here", "its open session goes on")
    got = set()
    for _ in range(6):
        status, h, _, conn = await request("/v1/stream", upgrade=True)
        got.add((status, h.get("x-instance")))
        if conn:
            conn[1].close()
    check(got == {(101, "diarist2"), (101, "diarist3")}, f"new sessions go to the other two instances ({sorted(got)})")
    for _, (_, w) in sessions:
        w.close()

    inst["diarist2"].ready = inst["diarist3"].ready = False
    await wait_states({n: "DOWN" for n in INSTANCES}, 5)
    status, _, _, _ = await request("/v1/stream", upgrade=True)
    check(status == 503, "no instance ready: HAProxy answers 503 itself")
    inst["diarist1"].ready = True
    took = await wait_states({"diarist1": "UP"}, 5)
    check(True, f"an instance ready again returns in {took:.1f} s")

    # An instance that has just exited (its port refuses connections), before its check notices:
    # each try there is redispatched at once (`option redispatch 1`), not retried on it after 1 s.
    for i in inst.values():
        i.ready = True
    await wait_states({n: "UP" for n in INSTANCES}, 5)
    servers["diarist1"].close()
    await servers["diarist1"].wait_closed()
    got, slowest = set(), 0.0
    for _ in range(6):
        start = time.monotonic()
        status, h, _, conn = await request("/v1/stream", upgrade=True)
        slowest = max(slowest, time.monotonic() - start)
        got.add((status, h.get("x-instance")))
        if conn:
            conn[1].close()
    check(
        got == {(101, "diarist2"), (101, "diarist3")} and slowest < 0.5,
        f"an instance refusing connections: sessions go to the others at once (slowest {slowest:.2f} s)",
    )


async def main():
    inst = {n: Instance(n) for n in INSTANCES}
    servers = {n: await asyncio.start_server(inst[n].handle, *addr) for n, addr in INSTANCES.items()}
    env = dict(os.environ, DIARIST_LB_BIND="%s:%d" % LB, DIARIST_LB_STATS_BIND="%s:%d" % STATS)
    for i, addr in enumerate(INSTANCES.values(), 1):
        env[f"DIARIST_BACKEND_{i}"] = "%s:%d" % addr
    log = tempfile.TemporaryFile()
    lb = subprocess.Popen(["haproxy", "-db", "-f", CFG], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(50):  # until it listens
            if lb.poll() is not None:
                raise AssertionError(f"haproxy exited with {lb.returncode}")
            try:
                await states()
                break
            except (OSError, asyncio.IncompleteReadError):
                await asyncio.sleep(0.1)
        await asyncio.wait_for(scenario(inst, servers), 50)
        if os.environ.get("SMOKE_VERBOSE"):
            log.seek(0)
            sys.stdout.write(log.read().decode(errors="replace"))
    except BaseException:
        log.seek(0)
        sys.stderr.write("haproxy's output:\n" + log.read().decode(errors="replace")[-4000:])
        raise
    finally:
        # (the stand-ins' handlers still waiting are cancelled at exit: no tracebacks for those)
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)
        lb.terminate()
        try:
            lb.wait(5)
        except subprocess.TimeoutExpired:
            lb.kill()
        for s in servers.values():
            s.close()


if __name__ == "__main__":
    print(f"haproxy smoke test of {CFG}")
    try:
        asyncio.run(main())
    except (AssertionError, OSError, asyncio.TimeoutError) as e:
        print(f"haproxy smoke test FAILED: {e!r}", file=sys.stderr)
        sys.exit(1)
    print("haproxy smoke test passed")
