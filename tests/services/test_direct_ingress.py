"""A direct-ingress listener binds a port its predecessor's closed connections still hold (TIME_WAIT).

What `counterpoint up` meets when it starts again within a minute of `down`: Serve's own replica
listener cannot bind the gateway port then; with ``reuse_port_on_restart`` (the gateway replica calls
it) it binds and answers.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import httpx
import pytest
from ray.serve._private import replica
from ray.serve.config import HTTPOptions

from counterpoint.infra.processes import free_port
from counterpoint.services.gateway.direct_ingress import reuse_port_on_restart


def leave_time_wait(port: int) -> None:
    """Close a connection server side first, as a stopped gateway replica does: TIME_WAIT on ``port``."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as the listeners before it did
    listener.bind(("127.0.0.1", port))
    listener.listen()
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()
    client.close()
    listener.close()


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"gateway"})


async def serve_once(port: int) -> str:
    """Start a listener the way Serve starts a replica's, ask it once, stop it."""
    loop = asyncio.get_running_loop()
    task, server = await replica.start_asgi_http_server(
        hello, HTTPOptions(host="127.0.0.1", port=port), event_loop=loop
    )
    try:
        async with httpx.AsyncClient() as client:
            for _ in range(100):
                try:
                    return (await client.get(f"http://127.0.0.1:{port}/")).text
                except httpx.ConnectError:
                    await asyncio.sleep(0.05)
            raise AssertionError("the listener never answered")
    finally:
        server.should_exit = True
        await task


def test_serve_alone_cannot_take_back_a_port_in_time_wait() -> None:
    """The reason for the patch (if Ray fixes this, the patch can go)."""
    port = free_port()
    leave_time_wait(port)
    with pytest.raises(RuntimeError, match="Failed to bind") as failure:
        asyncio.run(serve_once(port))
    assert isinstance(failure.value.__cause__, OSError)


def test_the_patched_listener_takes_back_its_port_and_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replica, "start_asgi_http_server", replica.start_asgi_http_server)  # undone after
    reuse_port_on_restart()
    reuse_port_on_restart()  # a second call does not wrap twice
    assert replica.start_asgi_http_server.reuses_port
    port = free_port()
    leave_time_wait(port)
    assert asyncio.run(serve_once(port)) == "gateway"
