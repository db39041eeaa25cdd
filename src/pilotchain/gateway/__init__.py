"""The node's REST and Server-Sent Events gateway (FastAPI), written against NodeAPI only.

    app = create_app(node)                      # any pilotchain.node.api.NodeAPI
    server = await serve(app, "127.0.0.1", 26601, ready=None)
    ...
    await server.close()

Endpoints, error codes, limits, health and the SSE format: docs/api.md.
"""

from __future__ import annotations

from pilotchain.gateway._limits import GatewayLimits, RateLimitFilter
from pilotchain.gateway.app import HTTP_STATUS_OF_CODE, GatewayOptions, create_app
from pilotchain.gateway.server import GatewayServer, serve

__all__ = [
    "create_app", "GatewayOptions", "GatewayLimits", "HTTP_STATUS_OF_CODE", "serve", "GatewayServer",
    "RateLimitFilter",
]
