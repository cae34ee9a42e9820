"""What the server engines share: an httpx client whose every failure is one line, and the
server-sent-events stream both llama-server and OpenAI-compatible servers answer with."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from airochat.errors import AirochatError, UsageError

if TYPE_CHECKING:
    import httpx


class ServerError(AirochatError):
    """The server cannot be reached, or answered with an error."""


class ServerGone(AirochatError):
    """The server went away in the middle of a reply: the turn is dropped, the chat kept."""


def check_api_key(api_key: str) -> None:
    """A key goes into an HTTP header: a newline there would add headers of the key's own
    (and httpx's error quotes the whole header), a non-ASCII one cannot be sent. Refused in a
    line that never shows the key."""
    if not all(" " <= c <= "~" for c in api_key):
        raise UsageError(
            "the API key (--api-key or AIROCHAT_API_KEY) holds a control character, a line "
            "break or a non-ASCII character; it is not shown here: check how it was copied"
        )


def client(url: str, api_key: str | None) -> httpx.Client:
    import httpx

    if api_key:
        check_api_key(api_key)
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(
        base_url=url.rstrip("/"),
        headers=headers,
        # No read timeout: a long prompt on a slow machine may take minutes to the first token.
        timeout=httpx.Timeout(15.0, read=None),
        # Servers close idle connections (llama-server after 5 s); a pooled connection kept
        # as long would be reused just as the server drops it.
        limits=httpx.Limits(keepalive_expiry=1.0),
        transport=httpx.HTTPTransport(retries=1),
    )


def _body(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return " ".join(response.text.split())[:300]
    err = data.get("error", data) if isinstance(data, dict) else data
    if isinstance(err, dict):
        err = err.get("message", err)
    return " ".join(str(err).split())[:300]


def check(response: httpx.Response, what: str) -> None:
    if response.status_code >= 400:
        response.read()
        if response.status_code in (401, 403):
            raise ServerError(f"{what}: {response.status_code} (give the key with --api-key)")
        raise ServerError(f"{what}: the server answered {response.status_code}: {_body(response)}")


def request(http: httpx.Client, method: str, path: str, what: str, **kwargs: Any) -> Any:
    """One JSON request; connection problems and HTTP errors as one line."""
    import httpx

    for attempt in (1, 2):
        try:
            response = http.request(method, path, **kwargs)
            break
        except httpx.RemoteProtocolError:  # dropped unanswered: nothing happened, ask again
            if attempt == 2:
                raise ServerError(
                    f"the server at {http.base_url} keeps dropping requests"
                ) from None
        except httpx.TransportError as exc:
            raise ServerError(f"cannot reach the server at {http.base_url}: {_why(exc)}") from None
    check(response, what)
    try:
        return response.json()
    except ValueError:
        raise ServerError(f"{what}: the server's answer is not JSON") from None


@contextmanager
def stream(http: httpx.Client, path: str, body: dict[str, Any], what: str) -> Iterator[Any]:
    """A streamed POST. A request the server dropped without answering (it had just closed a
    kept-alive connection) is sent once more: nothing was generated for it."""
    import httpx

    for attempt in (1, 2):
        try:
            with http.stream("POST", path, json=body) as response:
                check(response, what)
                yield response
                return
        except httpx.RemoteProtocolError as exc:
            if attempt == 2 or "without sending a response" not in str(exc):
                raise


def _why(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:200]


def events(response: httpx.Response) -> Iterator[dict[str, Any]]:
    """The JSON objects of a server-sent-events stream (`data: {...}` lines), until [DONE]."""
    import httpx

    try:
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                event = json.loads(data)
            except ValueError:
                continue
            if isinstance(event, dict) and "error" in event:
                raise ServerError(f"the server failed mid-reply: {_body_of(event)}")
            if isinstance(event, dict):
                yield event
    except (httpx.RemoteProtocolError, httpx.ReadError, httpx.NetworkError) as exc:
        raise ServerGone(
            f"the server went away mid-reply ({_why(exc)}); this turn is dropped, the chat is "
            "as it was before it"
        ) from None


def _body_of(event: dict[str, Any]) -> str:
    err = event.get("error")
    if isinstance(err, dict):
        err = err.get("message", err)
    return " ".join(str(err).split())[:300]
