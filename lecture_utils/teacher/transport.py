"""The HTTP side of the engine: the teacher's client, a sharded connection pool and a lean chat POST.

One AsyncOpenAI client per engine (its URL, key, headers and connections); RawChat sends the chat requests through
its pool without the SDK's per-request work, and raises the SDK's own exception types, so wire.classify_error()
reads every failure the same way.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

import openai

from lecture_utils.teacher.wire import MalformedReplyError, TeacherError

try:  # openai >= 3 is built on httpx2, older releases on httpx
    import httpx2 as httpx
except ImportError:  # pragma: no cover
    import httpx

PLACEHOLDER_KEY = "not-needed"  # local servers ignore the key, but the client insists on one
POOL_SHARD = 8  # connections per pool


class _Release(httpx.AsyncByteStream):
    """A response body that tells its shard when it is done with the connection."""

    def __init__(self, stream: Any, release: Any) -> None:
        self.stream, self.release = stream, release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self.stream.aclose()
        finally:
            if self.release is not None:
                self.release()
                self.release = None


class ShardedTransport(httpx.AsyncBaseTransport):
    """One client's connections, kept in several small pools instead of one big one.

    httpcore's pool checks every idle connection (a poll() on its socket) each time a request starts or ends, so one
    pool of C connections costs O(C) per request: at C = 128 that was half the factory's CPU. Pools of 8, each request
    sent through the least busy one, keep that cost small and fixed.
    """

    def __init__(self, connections: int, shard: int = POOL_SHARD) -> None:
        n = max(1, -(-connections // shard))
        size = -(-connections // n)
        limits = httpx.Limits(max_connections=size, max_keepalive_connections=size, keepalive_expiry=30.0)
        ssl_context = httpx.create_ssl_context()  # loading the CA bundle once, not once per pool
        self.pools = [httpx.AsyncHTTPTransport(verify=ssl_context, limits=limits) for _ in range(n)]
        self.busy = [0] * n

    async def handle_async_request(self, request: Any) -> Any:
        i = self.busy.index(min(self.busy))
        self.busy[i] += 1

        def release() -> None:
            self.busy[i] -= 1

        try:
            response = await self.pools[i].handle_async_request(request)
        except BaseException:
            release()
            raise
        response.stream = _Release(response.stream, release)
        return response

    async def aclose(self) -> None:
        for pool in self.pools:
            await pool.aclose()


class RawChat:
    """POST /chat/completions with the client's URL, key, headers and connection pool, minus the SDK's per-request
    work (typed options, copies, header merging), which was a third of the factory's CPU per request at C = 128.
    Failures are raised as the SDK's own exception types, so classify_error() reads them as usual."""

    def __init__(self, client: openai.AsyncOpenAI, http: Any) -> None:
        self.http = http
        self.url = str(client.base_url).rstrip("/") + "/chat/completions"
        headers = {k: v for k, v in client.default_headers.items() if isinstance(v, str)}
        headers["Authorization"] = f"Bearer {client.api_key}"
        self.headers = httpx.Headers(headers)

    async def __call__(self, request: dict, timeout: float | None = None) -> dict:
        try:
            response = await self.http.post(self.url, content=json.dumps(request).encode(), headers=self.headers,
                                            timeout=timeout)
        except httpx.TimeoutException as e:
            raise openai.APITimeoutError(request=e.request) from e
        except httpx.TransportError as e:
            raise openai.APIConnectionError(request=e.request) from e
        if response.status_code >= 400:
            try:
                body = json.loads(response.content)
            except ValueError:
                body = None
            error = body.get("error", body) if isinstance(body, dict) else body
            message = error.get("message") if isinstance(error, dict) else response.text[:200]
            raise openai.APIStatusError(f"Error code: {response.status_code} - {message}", response=response,
                                        body=error)
        try:
            return json.loads(response.content)
        except ValueError as e:
            raise MalformedReplyError(f"the reply is not JSON ({e})") from None


def make_client(config: Any, async_: bool = False, **kwargs: Any) -> openai.OpenAI | openai.AsyncOpenAI:
    """An openai client for the config, with the client's own retries off: we retry ourselves, visibly."""
    if not config.base_url:
        raise TeacherError(f"mode {config.mode!r} has no server URL: use connect() (it starts the embedded teacher) "
                           "or set TEACHER_BASE_URL")
    cls = openai.AsyncOpenAI if async_ else openai.OpenAI
    timeout = openai.Timeout(config.timeout_s, connect=min(10.0, config.timeout_s))
    return cls(api_key=config.api_key or PLACEHOLDER_KEY, base_url=config.base_url, max_retries=0,
               timeout=timeout, **kwargs)
