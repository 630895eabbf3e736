"""hooks/scripts/deprovision.sh as a file: valid POSIX sh, shellcheck-clean, and refusing to run without root.
(It is run for real, with the real waagent, in tests/integration/test_linux_guest.py.)"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from hooks.linux import COMPLETE_MARKER, ERROR_PREFIX, EXIT_NOT_ROOT, EXIT_USAGE, KEEP_MACHINE_ID, SCRIPT


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
