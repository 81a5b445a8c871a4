"""Benchmark peer: Python `websockets` (asyncio).
/echo echoes every frame; /relay relays every frame to every other /relay client."""
import asyncio
import os

from websockets.asyncio.server import broadcast, serve

relay = set()


async def handler(ws):
    path = ws.request.path.split("?")[0]
    if path == "/echo":
        async for message in ws:
            await ws.send(message)
    elif path == "/relay":
        relay.add(ws)
        try:
            async for message in ws:
                broadcast(relay - {ws}, message)
        finally:
            relay.discard(ws)


async def main():
    async with serve(handler, "127.0.0.1", int(os.environ.get("PORT", "0")), compression=None,
                     max_size=64 * 1024) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on http://127.0.0.1:{port}", flush=True)
        await asyncio.get_running_loop().create_future()


asyncio.run(main())
