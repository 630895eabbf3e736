"""config.load on stack files of the wrong shape: a section written as text, a list where a map belongs. Each is one
problem at its key path, never a traceback and never a cascade of problems that follow from the first."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.config.test_loader import DELETE, assert_reported, config_with, problems_of, the_problem


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("sourceVms.win-build.winrm.sysprep", "vm"),
        ("images[0].identifier", "contoso:ubuntu:22_04"),
        ("images[0].recommended", 4),
        ("images[0].features", ["IsAcceleratedNetworkSupported"]),
    ],
)
def test_a_section_that_is_not_an_object_is_one_problem_at_its_path(path: str, value: Any) -> None:
    problem = the_problem(config_with({path: value}))
    assert problem.startswith(f"{path}: must be an object, got {type(value).__name__}")


@pytest.mark.parametrize("key", ["galleryName", "galleryResourceGroup", "galleryLocation"])
def test_a_missing_gallery_key_is_the_only_problem(key: str) -> None:
    assert the_problem(config_with({key: DELETE})) == f"{key}: is required"


@pytest.mark.parametrize(
    ("path", "value"), [("sourceVms.linux-build.ssh", "10.0.0.4"), ("sourceVms.win-build.winrm", ["x"])]
)
def test_a_connection_block_that_is_not_an_object_is_reported_at_its_path(path: str, value: Any) -> None:
    # (the versions that use the source are then also told it has no usable block)
    assert_reported(problems_of(config_with({path: value})), path, f"must be an object, got {type(value).__name__}")
