"""Optional API-key auth: every call but health and reflection needs `authorization: Bearer <key>`."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

import grpc

# Probes and tooling stay open, as in TEI and Qdrant.
OPEN_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


UNAUTHENTICATED_DETAILS = "missing or wrong API key: send metadata `authorization: Bearer <key>`"


class ApiKey:
    """The check of a call's `authorization: Bearer <key>` metadata (also used by hosts without interceptors,
    such as the Ray Serve router deployment)."""

    def __init__(self, api_key: str):
        self._expected = f"Bearer {api_key}".encode()

    def authorized(self, metadata: Iterable[tuple[str, str | bytes]] | None) -> bool:
        for key, value in metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(given, self._expected)
        return False


class ApiKeyInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, api_key: str):
        self._key = ApiKey(api_key)

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if (handler is None or handler_call_details.method.startswith(OPEN_PREFIXES)
                or self._key.authorized(handler_call_details.invocation_metadata)):
            return handler

        async def deny(request, context):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, UNAUTHENTICATED_DETAILS)

        # The refusal must have the same streaming shape as the method it replaces.
        factory = {
            (False, False): grpc.unary_unary_rpc_method_handler,
            (False, True): grpc.unary_stream_rpc_method_handler,
            (True, False): grpc.stream_unary_rpc_method_handler,
            (True, True): grpc.stream_stream_rpc_method_handler,
        }[(handler.request_streaming, handler.response_streaming)]
        return factory(deny, request_deserializer=handler.request_deserializer,
                       response_serializer=handler.response_serializer)
