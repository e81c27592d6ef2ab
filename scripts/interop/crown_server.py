#!/usr/bin/env python3
"""A Crown for interoperability checks, written with the `websockets` library.

Serves N connections (default 1) on a loopback port, prints `PORT <n>` on stdout once
listening, and answers each mission brief with `{"ack": ..., "capabilities": [...]}`.
When --token is given, a connection whose `Authorization` header is not `Bearer <token>`
gets `{"ack": false, "error": "unauthorized"}` instead. --certfile/--keyfile serve wss://.
--record appends one JSON line per connection: whether the header matched and the brief.
The token itself is never printed or recorded.
"""

import argparse
import asyncio
import json
import ssl
import sys

try:  # websockets >= 13
    from websockets.asyncio.server import serve
except ImportError:  # older releases: the legacy API
    from websockets import serve


def request_headers(ws):
    request = getattr(ws, "request", None)
    if request is not None:
        return request.headers
    return ws.request_headers


async def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--ack", default="CROWN-ACK")
    p.add_argument("--capabilities", default="GLM-4.1V")
    p.add_argument("--crown-version", default="interop-1")
    p.add_argument("--token", default=None)
    p.add_argument("--certfile", default=None)
    p.add_argument("--keyfile", default=None)
    p.add_argument("--record", default=None)
    p.add_argument("--max-seconds", type=float, default=120.0)
    args = p.parse_args()

    capabilities = [c for c in args.capabilities.split(",") if c]
    done = asyncio.Event()
    served = 0

    async def handler(ws, *_path):
        nonlocal served
        auth_ok = args.token is None or request_headers(ws).get("Authorization") == f"Bearer {args.token}"
        try:
            brief = json.loads(await asyncio.wait_for(ws.recv(), timeout=30))
        except Exception as e:  # a broken client must not stop the server
            print(f"crown_server: bad brief: {e}", file=sys.stderr)
            brief = None
        if auth_ok:
            reply = {"ack": args.ack, "capabilities": capabilities, "crown_version": args.crown_version}
        else:
            reply = {"ack": False, "error": "unauthorized"}
        await ws.send(json.dumps(reply))
        if args.record:
            with open(args.record, "a", encoding="utf-8") as f:
                f.write(json.dumps({"auth_ok": auth_ok, "brief": brief}) + "\n")
        try:
            await asyncio.wait_for(ws.wait_closed(), timeout=5)
        except asyncio.TimeoutError:
            pass
        served += 1
        if served >= args.connections:
            done.set()

    tls = None
    if args.certfile:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(args.certfile, args.keyfile)

    async with serve(handler, args.host, args.port, ssl=tls) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"PORT {port}", flush=True)
        try:
            await asyncio.wait_for(done.wait(), timeout=args.max_seconds)
        except asyncio.TimeoutError:
            print(f"crown_server: gave up after {args.max_seconds}s", file=sys.stderr)
            sys.exit(2)


if __name__ == "__main__":
    asyncio.run(main())
