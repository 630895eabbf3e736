"""The stack-file corpus (stack_file_corpus.py) through `make plan`'s code path: every bad stack file is refused
cleanly naming its key, every ambiguous one is warned about naming its key, every legitimate edge value is
accepted. The result line (`N cases: N clean`) is printed in the test summary."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.config import stack_file_corpus as corpus
from tests.unit.config.stack_file_corpus import BAD as CASES

CORPUS_RESULT = pytest.StashKey[str]()


def test_every_bad_stack_file_is_refused_cleanly_naming_its_key(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    assert len(CASES) >= 100
    assert len({case.id for case in CASES}) == len(CASES), "case ids must be unique"
    failures = corpus.failures(CASES, "refused", tmp_path)
    line = f"{len(CASES)} cases: {len(CASES) - len(failures)} clean"
    request.config.stash[CORPUS_RESULT] = line
    assert not failures, line + "\n" + "\n".join(f"--- {k}: {v}" for k, v in failures.items())


def test_every_ambiguous_stack_file_is_warned_about_naming_its_key(tmp_path: Path) -> None:
    failures = corpus.failures(corpus.WARNED, "warned", tmp_path)
    assert not failures, "\n".join(f"--- {k}: {v}" for k, v in failures.items())


def test_every_legitimate_edge_value_is_accepted(tmp_path: Path) -> None:
    ids = [case.id for case in [*CASES, *corpus.WARNED, *corpus.GOOD]]
    assert len(set(ids)) == len(ids), "case ids must be unique across the corpus"
    failures = corpus.failures(corpus.GOOD, "accepted", tmp_path)
    assert not failures, "\n".join(f"--- {k}: {v}" for k, v in failures.items())


def test_the_counts_the_benchmark_reports() -> None:
    assert corpus.counts() == {
        "bad_configs": len(CASES) + len(corpus.WARNED),
        "bad_configs_accepted": 0,
        "good_configs": len(corpus.GOOD),
        "good_configs_refused": 0,
    }
