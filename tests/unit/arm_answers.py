"""ARM's answers as azure-core hands them to hooks.arm, built without a server: the unit tests of hooks/arm/ use
them where the fake ARM (tests/fakes/arm.py) cannot send a shape, or a test needs only one answer."""

from __future__ import annotations

import io
import json
from http import HTTPStatus
from typing import Any

import requests
from azure.core.exceptions import HttpResponseError
from azure.core.rest import HttpRequest, HttpResponse
from azure.core.rest._requests_basic import RestRequestsTransportResponse
from urllib3.response import HTTPResponse

from hooks.targets import ArmSettings, VmRef

SETTINGS = ArmSettings(
    endpoint="https://management.example", operation_timeout=120.0, request_timeout=20.0, bound_source="armKey"
)
"""Settings whose every value a message may name is distinct from the defaults."""

VM = VmRef("00000000-0000-0000-0000-0000000000aa", "rg-src", "src-vm")


def answer(
    status: int,
    body: Any = None,
    *,
    text: str | None = None,
    headers: dict[str, str] | None = None,
    method: str = "GET",
    url: str = "https://management.example/subscriptions/x",
) -> HttpResponse:
    """One answer: `body` sent as JSON, or `text` as it is (e.g. a gateway's HTML page)."""
    raw = requests.Response()
    raw.status_code = status
    raw.reason = HTTPStatus(status).phrase
    content = (text if text is not None else json.dumps(body) if body is not None else "").encode()
    raw.raw = HTTPResponse(body=io.BytesIO(content), preload_content=False, status=status)
    raw.headers["Content-Type"] = "application/json" if text is None else "text/html"
    raw.headers.update(headers or {})
    raw.url = url
    response = RestRequestsTransportResponse(  # type: ignore[no-untyped-call]
        request=HttpRequest(method, url), internal_response=raw
    )
    response.read()
    return response


def refusal(status: int, code: str = "SomeCode", message: str = "Azure's reason.", **kw: Any) -> HttpResponseError:
    """ARM's error answer, as azure-mgmt raises it."""
    return HttpResponseError(response=answer(status, {"error": {"code": code, "message": message}}, **kw))
