"""Provider plumbing that needs no host: how expected failures become the user's message."""

from __future__ import annotations

import operator
import sys
import traceback
from collections.abc import Callable

import pulumi
import pytest

from hooks.errors import GuestCommandFailed
from hooks.log import Log
from hooks.providers.base import ReportsFailures, user_facing
from hooks.step_failures import StepFailed, StepFailureFrames


def test_expected_failure_becomes_one_redacted_message() -> None:
    secret = "Pa55-w0rd-that-a-guest-echoed"
    lines: list[str] = []
    log = Log("win-1.0.0-guest", secrets=[secret], sink=lines.append)

    def step() -> None:
        raise GuestCommandFailed(f"guest script failed: net user imageadmin {secret}")

    with pytest.raises(StepFailed) as err:
        user_facing(log, step)
    assert str(err.value) == "[win-1.0.0-guest] guest script failed: net user imageadmin [secret]"
    assert err.value.__cause__ is None and err.value.__suppress_context__, "no chained traceback"


def test_unexpected_errors_keep_their_traceback() -> None:
    def bug() -> None:
        raise KeyError("vm_id")

    with pytest.raises(KeyError):
        user_facing(Log("x", sink=lambda _: None), bug)


VM = (
    "/subscriptions/00000000-0000-0000-0000-00000000aaaa/resourceGroups/rg-src"
    "/providers/Microsoft.Compute/virtualMachines/web"
)


def test_vm_ids_compare_without_case() -> None:
    from hooks.providers.chain import GuestGeneralizationProvider, VmGeneralizationProvider

    olds = {"vm_id": VM, "os_type": "Linux", "generalize": True, "deallocate": True}
    news = {**olds, "vm_id": VM.upper().replace("/SUBSCRIPTIONS/", "/subscriptions/") + "/"}
    assert not VmGeneralizationProvider().diff("id", olds, news).changes
    assert not GuestGeneralizationProvider().diff("id", olds, news).changes


def test_generalize_or_deallocate_changes_are_updates_of_the_arm_half() -> None:
    from hooks.providers.chain import VmGeneralizationProvider

    olds = {"vm_id": VM, "generalize": False, "deallocate": True}
    diff = VmGeneralizationProvider().diff("id", olds, {**olds, "generalize": True})
    assert diff.changes and not diff.replaces
    diff = VmGeneralizationProvider().diff("id", olds, {**olds, "deallocate": False})
    assert diff.changes and not diff.replaces
    assert not VmGeneralizationProvider().diff("id", olds, dict(olds)).changes


class _Provider(ReportsFailures):
    def create(self, props: dict[str, object]) -> None:
        raise RuntimeError(f"could not use {props['credentials']}")  # a bug that quotes a secret

    def delete(self, _id: str, props: dict[str, object]) -> None:
        raise StepFailed("[x] explained")


def test_a_bug_in_a_provider_call_is_logged_with_its_traceback_and_named_without_secrets(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    logged: list[str] = []
    monkeypatch.setattr(pulumi.log, "error", logged.append)
    monkeypatch.setattr(sys, "tracebacklimit", 0, raising=False)  # as in the host: explicit limits still show
    with pytest.raises(StepFailed) as err:
        _Provider().create({"credentials": {"password": "Hunter2-secret"}})
    assert str(err.value) == (
        "_Provider.create failed unexpectedly (RuntimeError: could not use {'password': '[secret]'}); "
        "its traceback is logged above."
    )
    assert err.value.__suppress_context__
    [report] = logged
    assert "Traceback (most recent call last)" in report and "test_providers.py" in report
    assert "Hunter2-secret" not in report


def test_an_explained_failure_passes_as_it_is_and_nothing_global_changes_outside_the_host(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delattr(sys, "tracebacklimit", raising=False)
    with pytest.raises(StepFailed, match=r"^\[x\] explained$"):
        _Provider().delete("id", {})
    assert not hasattr(sys, "tracebacklimit"), "only the provider host drops traceback frames"


def _formatted(fail: Callable[[], None]) -> str:
    """What the dynamic provider host sends the engine for a failed call: `traceback.format_exc()`."""
    try:
        fail()
    except Exception:
        return traceback.format_exc()
    raise AssertionError("did not fail")


def test_in_the_host_an_explained_failure_is_formatted_without_frames_and_nothing_else_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "tracebacklimit", 0, raising=False)  # so that the test's end removes what it put there
    monkeypatch.delattr(sys, "tracebacklimit")
    monkeypatch.setattr(sys, "argv", ["/venv/lib/python3.11/site-packages/pulumi/dynamic/__main__.py", "127.0.0.1:1"])

    class Quiet(ReportsFailures):
        def read(self, id_: str, props: dict[str, object]) -> str:
            return id_

    assert Quiet().read("id", {}) == "id"
    assert not hasattr(sys, "tracebacklimit"), "a call that does not fail changes nothing"

    def bug() -> None:
        raise RuntimeError("a bug elsewhere in the host")

    assert _formatted(lambda: _Provider().delete("id", {})) == "hooks.step_failures.StepFailed: [x] explained\n"
    assert isinstance(sys.tracebacklimit, StepFailureFrames)
    other = _formatted(bug)
    assert other.startswith("Traceback (most recent call last):") and "test_providers.py" in other, other
    try:
        _Provider().delete("id", {})
    except StepFailed as exc:
        explicit = "".join(traceback.format_exception(exc, limit=5))
        assert "Traceback (most recent call last):" in explicit, "an explicit limit still shows frames"


def test_the_frame_limit_counts_no_frames_only_while_a_step_failure_is_handled() -> None:
    limit = StepFailureFrames()
    assert operator.index(limit) == sys.maxsize and limit >= 0 and not limit < 0
    try:
        raise StepFailed("[x] explained")
    except StepFailed:
        assert operator.index(limit) == 0
        try:
            raise KeyError("during the handling of it")
        except KeyError:
            assert operator.index(limit) == sys.maxsize
    assert operator.index(limit) == sys.maxsize


def test_the_login_configure_receives_stays_on_the_provider_and_reaches_its_arm_calls() -> None:
    from pulumi.dynamic import Config, ConfigureRequest

    from hooks.providers.base import arm_settings
    from hooks.providers.chain import VmGeneralizationProvider

    stack = {"azure-native:clientId": "client-a", "azure-native:tenantId": "tenant-a", "image-gallery:gallery": "{}"}
    first, second = VmGeneralizationProvider(), VmGeneralizationProvider()
    first.configure(ConfigureRequest(Config(stack, "image-gallery")))
    second.configure(ConfigureRequest(Config({**stack, "azure-native:clientId": "client-b"}, "image-gallery")))
    assert first.login_settings({}).value("clientId") == "client-a"
    assert second.login_settings({}).value("clientId") == "client-b"
    props = {"arm": {"endpoint": "https://arm.example", "poll_interval": 1, "operation_timeout": 60}}
    settings = arm_settings(props, first.login_settings({}))
    assert settings.login is not None and settings.login.value("tenantId") == "tenant-a"
    assert vars(VmGeneralizationProvider()) == {}, "nothing set before configure(), so nothing pickled"
