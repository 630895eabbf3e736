"""Raw ARM requests (`request()`) for what azure-mgmt has no method for, and the asynchronous operations they start
(a 201/202 with Azure-AsyncOperation or Location), followed until they end: each poll bounded by what is left of
the wait, only at URLs on the ARM endpoint itself (the token is never sent elsewhere), a Retry-After honoured as
ARM's poll interval, never past the wait."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

from hooks.arm.budget import WaitEnded
from hooks.arm.errors import Call, quote_azure
from hooks.arm.session import request
from hooks.errors import ArmError, WaitTimeout
from hooks.log import Log
from hooks.targets import ArmSettings
from hooks.waiting import Deadline


class ArmRequests:
    """Raw ARM requests for one subscription, through the process-wide session (auth, retries, bounds), and the
    asynchronous operations they start, followed until they end."""

    def __init__(self, settings: ArmSettings, subscription_id: str, log: Log, next_run: str = "") -> None:
        self.settings = settings
        self.subscription_id = subscription_id
        self.log = log
        self.next_run = next_run
        """What the next run does about an operation that may still be running in Azure, for messages."""

    def send(
        self,
        method: str,
        url: str,
        doing: str,
        target: str,
        permission: str,
        body: Any = None,
        *,
        within: Deadline | None = None,
        bound_source: str | None = None,
        accepted: str = "",
    ) -> tuple[int, Any, Mapping[str, str]]:
        """One request; returns (status, JSON body or None, headers). 4xx/5xx other than 404 raise ArmError.

        `within`: the wait this request is part of, which bounds it too (`bound_source`: its config key);
        `accepted`: set when the request follows an operation ARM accepted, and ends every error."""
        call = Call(self._bounded(within, bound_source), doing, target, permission, accepted=accepted)
        response = request(call, self.subscription_id, method, url, json=body, accept=(404,), within=within)
        try:
            data = response.json() if response.content else None
        except ValueError:
            data = None
        return response.status_code, data, response.headers

    def _bounded(self, within: Deadline | None, bound_source: str | None) -> ArmSettings:
        """The settings a request's messages name: the wait `within` it is part of (its config key
        `bound_source`) when that is the tighter bound; `arm.request` bounds the request by what is left of it."""
        if within is None or within.seconds >= self.settings.operation_timeout:
            return self.settings
        bounded = replace(self.settings, operation_timeout=within.seconds)
        return replace(bounded, bound_source=bound_source) if bound_source else bounded

    def get(
        self,
        path: str,
        api_version: str,
        target: str,
        permission: str,
        query: str = "",
        *,
        within: Deadline | None = None,
        bound_source: str | None = None,
    ) -> Any | None:
        url = f"{path}?api-version={api_version}{query}"
        status, body, _ = self.send("GET", url, "read", target, permission, within=within, bound_source=bound_source)
        return None if status == 404 else body

    def wait_operation(
        self,
        headers: Mapping[str, str],
        doing: str,
        target: str,
        deadline: Deadline,
        bound_source: str | None = None,
    ) -> None:
        """Poll an asynchronous operation (Azure-AsyncOperation, else Location) until it ends, each poll within
        `deadline` (`bound_source`: its config key); a Failed one raises ArmError quoting Azure's error. Any other
        failure says the operation may still be running in Azure, and what the next run does (`next_run`)."""
        url = headers.get("Azure-AsyncOperation") or headers.get("azure-asyncoperation")
        monitor = url is None
        url = url or headers.get("Location") or headers.get("location")
        if not url:
            return
        if not _on_endpoint(url, self.settings.endpoint):
            raise ArmError(
                f"ARM answered the request to {doing} {target} with an operation URL outside {self.settings.endpoint} "
                f"({urlsplit(url).netloc}); it is not followed (the token is never sent elsewhere)."
            )
        accepted = f"ARM had accepted the request to {doing} {target}, so it may still be running in Azure."
        accepted = f"{accepted} {self.next_run}".rstrip()
        while True:
            try:
                status, body, answer = self.send(
                    "GET",
                    url,
                    f"follow the operation to {doing}",
                    target,
                    "",
                    within=deadline,
                    bound_source=bound_source,
                    accepted=accepted,
                )
            except WaitEnded:
                # The end of the wait cut this poll short: the operation is still running as far as we know.
                raise self._still_running(deadline, doing, target) from None
            if monitor:
                if status != 202:
                    return
            else:
                state = str((body or {}).get("status") or "InProgress")
                if state.lower() == "succeeded":
                    return
                if state.lower() in ("failed", "canceled"):
                    error = (body or {}).get("error") or {}
                    message = quote_azure(str(error.get("message") or "no details"))
                    raise ArmError(
                        f"Azure could not {doing} {target}: the operation ended {state} with "
                        f"{error.get('code') or 'no code'}: {message}"
                    )
            if deadline.expired:
                raise self._still_running(deadline, doing, target)
            deadline.sleep(_retry_after(answer, self.settings.poll_interval))

    def _still_running(self, deadline: Deadline, doing: str, target: str) -> WaitTimeout:
        return WaitTimeout(
            f"{deadline.timeout()}: the operation to {doing} {target} is still running. {self.next_run}".rstrip()
        )

    def delete(self, path: str, api_version: str, what: str, permission: str, deadline: Deadline) -> bool:
        """Delete and wait; False when it was not there."""
        status, _, headers = self.send("DELETE", f"{path}?api-version={api_version}", "delete", what, permission)
        if status in (204, 404):
            return False
        self.wait_operation(headers, "delete", what, deadline)
        return True


def _on_endpoint(url: str, endpoint: str) -> bool:
    u, e = urlsplit(url), urlsplit(endpoint)
    return u.scheme == "https" and u.netloc.lower() == e.netloc.lower()


def _retry_after(headers: Mapping[str, str], default: float) -> float:
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return max(0.0, float(value)) if value is not None else default
    except ValueError:
        return default
