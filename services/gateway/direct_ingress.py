"""Ray Serve direct ingress: the gateway replica's own listener must get its port back at once.

Under `counterpoint up` the gateway replica listens on the gateway port itself (see
``infra/launcher.py``'s ``direct_ingress_env``). Serve binds such a listener without
``SO_REUSEPORT`` (its HTTP proxy sets it), so a stack started again within a minute of the last one
could not bind the port: the old listener's closed connections stay in TIME_WAIT on it for 60 s,
and Linux only lets a new socket share the port with them when both set ``SO_REUSEPORT``. Serve
then blocks the port and the gateway never starts. :func:`reuse_port_on_restart` makes the replica
bind as the proxy does.

This patches a private Ray API (``ray==2.60.0`` is pinned exactly for such patches);
``tests/services/test_direct_ingress.py`` fails on a Ray whose replica module lost the function.
"""

from __future__ import annotations

from typing import Any


def reuse_port_on_restart() -> None:
    """Direct-ingress listeners started in this process bind with ``SO_REUSEPORT`` (idempotent)."""
    from ray.serve._private import replica

    original = replica.start_asgi_http_server
    if getattr(original, "reuses_port", False):
        return

    async def start_with_reuse_port(app: Any, http_options: Any, **kwargs: Any) -> Any:
        return await original(app, http_options, **{**kwargs, "enable_so_reuseport": True})

    start_with_reuse_port.reuses_port = True  # type: ignore[attr-defined]
    replica.start_asgi_http_server = start_with_reuse_port
