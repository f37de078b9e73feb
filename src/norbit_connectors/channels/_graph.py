"""Calling Meta's Graph API (WhatsApp Cloud API, Messenger Send API) and mapping its errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..exceptions import NotFound, PermissionDenied, RateLimited, RemoteError, TransportError
from ._http import HttpClient

__all__ = ["GraphError", "graph_call", "graph_error"]

# Graph error codes that mean "slow down" (app, user, page and WhatsApp throughput limits).
_RATE_CODES = frozenset({4, 17, 32, 613, 80007, 130429, 131048, 131056})
_TRANSIENT_CODES = frozenset({1, 2, 131000, 131016, 133004})
_PERMISSION_CODES = frozenset({3, 10, 190, 200, 230, 131005, 131031})
_NOT_FOUND_SUBCODES = frozenset({2018001, 1545041, 2018108})
_NOT_FOUND_CODES = frozenset({131026, 131030, 551})
DEFAULT_RETRY_AFTER = 30.0


class GraphError(RemoteError):
    """A Graph API error that none of the more specific classes fits; ``graph_code``/``subcode`` as sent."""

    def __init__(self, message: str, *, service: str, graph_code: int | None, subcode: int | None) -> None:
        super().__init__(message, code=str(graph_code) if graph_code is not None else None, service=service)
        self.graph_code = graph_code
        self.subcode = subcode


def graph_error(service: str, what: str, status: int, answer: Any, headers: Mapping[str, str]) -> RemoteError:
    """The NorbitError for a failed Graph call."""
    error = answer.get("error") if isinstance(answer, dict) else None
    error = error if isinstance(error, dict) else {}
    code = error.get("code") if isinstance(error.get("code"), int) else None
    subcode = error.get("error_subcode") if isinstance(error.get("error_subcode"), int) else None
    message = str(error.get("message") or f"HTTP {status}")
    data = error.get("error_data")
    if isinstance(data, dict) and isinstance(data.get("details"), str):
        message = f"{message} ({data['details']})"
    text = f"{service} {what}: {message}"
    if status == 429 or code in _RATE_CODES:
        retry = headers.get("Retry-After") or headers.get("retry-after")
        try:
            wait = float(retry) if retry is not None else DEFAULT_RETRY_AFTER
        except ValueError:
            wait = DEFAULT_RETRY_AFTER
        return RateLimited(text, retry_after=wait, code=str(code or status), service=service)
    if status >= 500 or code in _TRANSIENT_CODES or error.get("is_transient") is True:
        return TransportError(text, code=str(code or status), service=service)
    if code in _NOT_FOUND_CODES or subcode in _NOT_FOUND_SUBCODES:
        return NotFound(text, code=str(code), service=service)
    if status in (401, 403) or code in _PERMISSION_CODES:
        if code == 10 and subcode == 2018278:
            return GraphError(text, service=service, graph_code=code, subcode=subcode)  # outside the window
        return PermissionDenied(text, code=str(code or status), service=service)
    return GraphError(text, service=service, graph_code=code, subcode=subcode)


async def graph_call(
    http: HttpClient, service: str, what: str, method: str, url: str, token: str, **kwargs: Any
) -> dict[str, Any]:
    """One Graph API call with a bearer token; the JSON answer, or a NorbitError."""
    response = await http.request(method, url, headers={"Authorization": f"Bearer {token}"}, **kwargs)
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if 200 <= response.status_code < 300 and isinstance(answer, dict):
        return answer
    raise graph_error(service, what, response.status_code, answer, dict(response.headers))
