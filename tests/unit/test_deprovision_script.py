"""hooks/scripts/deprovision.sh as a file: valid POSIX sh, shellcheck-clean, and refusing to run without root.
(It is run for real, with the real waagent, in tests/integration/test_linux_guest.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from hooks.errors import PreCheckFailed
from hooks.linux import (
    COMPLETE_MARKER,
    ERROR_PREFIX,
    EXIT_NO_HOST_KEY_GENERATOR,
    EXIT_NO_WAAGENT,
    EXIT_NOT_ROOT,
    EXIT_USAGE,
    KEEP_MACHINE_ID,
    SCRIPT,
    DeprovisionFailed,
    NoHostKeyGenerator,
    deprovision_failure,
)


def test_parses_as_posix_sh() -> None:
    for shell in ("sh", "dash", "bash"):
        if shutil.which(shell):
            subprocess.run([shell, "-n", str(SCRIPT)], check=True)


def test_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (apt-get install shellcheck)")
    result = subprocess.run(["shellcheck", "-s", "sh", str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_the_output_contract_matches_the_python_side() -> None:
    text = SCRIPT.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert 'say "deprovision complete"' in text and COMPLETE_MARKER == "image-gallery: deprovision complete"
    assert "printf 'image-gallery: error: %s\\n'" in text and ERROR_PREFIX == "image-gallery: error: "
    assert f"EXIT_NOT_ROOT={EXIT_NOT_ROOT}" in text
    assert f"EXIT_USAGE={EXIT_USAGE}" in text
    assert f"EXIT_NO_HOST_KEY_GENERATOR={EXIT_NO_HOST_KEY_GENERATOR}" in text
    assert f"{KEEP_MACHINE_ID}) keep_machine_id=true" in text


def test_refuses_to_run_without_root() -> None:
    # Safe on any machine: the root check comes before anything else. (Never run it as root outside a sandbox.)
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("setpriv is needed to drop root")
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-s"]
    else:
        argv = ["sh", "-s"]
    result = subprocess.run(argv, input=SCRIPT.read_text(), capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == EXIT_NOT_ROOT
    assert f"{ERROR_PREFIX}must run as root" in result.stderr
    assert COMPLETE_MARKER not in result.stdout


def test_an_unknown_option_is_refused_before_anything_else() -> None:
    # Safe on any machine, root or not: the options are read before the root check and before any change.
    result = subprocess.run(
        ["sh", "-s", "--", "--keep-machine-ids"],
        input=SCRIPT.read_text(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == EXIT_USAGE
    assert f"{ERROR_PREFIX}unknown option --keep-machine-ids (known: {KEEP_MACHINE_ID}); nothing was changed" in (
        result.stderr
    )
    assert result.stdout == ""


def test_the_exit_codes_are_distinct() -> None:
    codes = [EXIT_NOT_ROOT, EXIT_NO_WAAGENT, EXIT_USAGE, EXIT_NO_HOST_KEY_GENERATOR]
    assert len(set(codes)) == len(codes)
    # Clear of waagent's own (0/1), the shell's (2, 126, 127, 128+n) and sudo's (1).
    assert all(2 < code < 126 for code in codes)


def test_the_host_key_pre_check_runs_before_anything_is_changed() -> None:
    # Its refusal must come before step 2 (cloud-init clean), the first change.
    text = SCRIPT.read_text()
    main = text[text.index("\nmain() {") :]
    assert main.index('fail "$EXIT_NO_HOST_KEY_GENERATOR"') < main.index('say "step 2/4')
    assert main.index("generator=$(host_key_generator)") < main.index("cloud-init clean")


NO_GENERATOR_TAIL = (
    "image-gallery: step 1/4: looking for the Azure Linux agent and for what creates SSH host keys at first boot\n"
    "image-gallery: found /usr/sbin/waagent\n"
    f"{ERROR_PREFIX}nothing on this VM would create SSH host keys at first boot (...); nothing was changed"
)


def test_no_host_key_generator_is_a_pre_check_failure_the_user_acts_on() -> None:
    error = deprovision_failure("10.0.0.4:22", "azureuser", EXIT_NO_HOST_KEY_GENERATOR, NO_GENERATOR_TAIL)

    assert isinstance(error, NoHostKeyGenerator)
    assert isinstance(error, PreCheckFailed) and isinstance(error, DeprovisionFailed)
    assert error.exit_code == EXIT_NO_HOST_KEY_GENERATOR
    assert error.output_tail == NO_GENERATOR_TAIL
    message = str(error)
    assert message.startswith(
        "pre-check failed on 10.0.0.4:22: nothing on this VM would create SSH host keys at first boot"
    )
    assert "Nothing was changed. Install cloud-init, or set Provisioning.RegenerateSshHostKeyPair=y in " in message
    assert "/etc/waagent.conf, then run again." in message
    assert f"exit code: {EXIT_NO_HOST_KEY_GENERATOR}" in message
    assert "partly deprovisioned" not in message


@pytest.mark.parametrize("exit_code", [1, EXIT_NO_WAAGENT, EXIT_USAGE, None])
def test_other_failures_are_not_pre_check_failures(exit_code: int | None) -> None:
    error = deprovision_failure("10.0.0.4:22", "azureuser", exit_code, "image-gallery: error: something")

    assert type(error) is DeprovisionFailed
    assert not isinstance(error, PreCheckFailed)
    assert error.exit_code == exit_code
    assert "SSH host keys" not in str(error)
