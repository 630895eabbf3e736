"""The README and docs/*.md stay navigable: each page opens with a table of contents that lists its headings as
they are, and every relative link points at a file that exists and, with a #fragment, at a heading of that file.

Anchors are GitHub's: the heading's text without markup, lower-cased, punctuation dropped, spaces turned into
hyphens, and `-1`, `-2`… appended to repeats. Lines inside fenced code blocks are neither headings nor links."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
# The topics moved out of the README, one page each.
EXPECTED_PAGES = {
    "configuration.md",
    "checks-and-failures.md",
    "promotion.md",
    "partner-center.md",
    "ci.md",
    "performance.md",
    "testing.md",
    "layout.md",
}
README_MAX_LINES = 250

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_TOC_ENTRY = re.compile(r"^( *)- \[(.+)\]\(#([^)\s]+)\)\s*$")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CODE_SPAN = re.compile(r"(`+).*?\1")
_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


@dataclass(frozen=True)
class Heading:
    """A markdown heading: its level (1 for `#`), its text as written, and the anchor GitHub gives it."""

    level: int
    text: str
    anchor: str


def prose_lines(text: str) -> list[str]:
    """The lines of a page with fenced code blocks blanked out, so that a `# comment` in a shell block is no heading."""
    lines: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        stripped = line.lstrip()
        if fence is None and stripped.startswith(("```", "~~~")):
            fence = stripped[:3]
            lines.append("")
        elif fence is not None:
            if stripped.startswith(fence):
                fence = None
            lines.append("")
        else:
            lines.append(line)
    return lines


def github_anchor(title: str, seen: dict[str, int]) -> str:
    """The anchor GitHub derives from a heading's text; `seen` counts earlier ones to number repeats."""
    plain = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", title)  # a link in a heading anchors by its text
    slug = re.sub(r"[^\w\- ]", "", plain.strip().lower()).replace(" ", "-")
    count = seen.get(slug, 0)
    seen[slug] = count + 1
    return slug if count == 0 else f"{slug}-{count}"


def headings(text: str) -> list[Heading]:
    seen: dict[str, int] = {}
    found: list[Heading] = []
    for line in prose_lines(text):
        match = _HEADING.match(line)
        if match:
            found.append(Heading(len(match.group(1)), match.group(2), github_anchor(match.group(2), seen)))
    return found


def toc_entries(text: str) -> list[tuple[int, str, str]]:
    """The table of contents: the `- [text](#anchor)` list between the page's title and its first `##` heading,
    as (heading level, text, anchor); two spaces of indentation per level below `##`."""
    entries: list[tuple[int, str, str]] = []
    for line in prose_lines(text)[1:]:
        if _HEADING.match(line):
            break
        match = _TOC_ENTRY.match(line)
        if match:
            entries.append((2 + len(match.group(1)) // 2, match.group(2), match.group(3)))
    return entries


def toc_problems(text: str) -> list[str]:
    """What is wrong with a page's table of contents: it must list every `##` and `###` heading, in order."""
    lines = prose_lines(text)
    if not lines or not lines[0].startswith("# "):
        return ["the page does not start with its `# ` title"]
    expected = [(h.level, h.text, h.anchor) for h in headings(text) if 2 <= h.level <= 3]
    actual = toc_entries(text)
    if not actual:
        return ["no table of contents between the title and the first `##` heading"]
    problems = [
        f"the contents list {entry}, which is no heading of the page" for entry in actual if entry not in expected
    ]
    problems += [f"the contents miss the heading {e}" for e in expected if e not in actual]
    if not problems and actual != expected:
        problems.append(f"the contents are not in the order of the headings: {actual} vs {expected}")
    return problems


def relative_links(text: str) -> list[str]:
    """Link targets that are not URLs (`#anchor`, `file`, `file#anchor`), outside code blocks and code spans."""
    targets: list[str] = []
    for line in prose_lines(text):
        targets += [t for t in _LINK.findall(_CODE_SPAN.sub("", line)) if not _SCHEME.match(t)]
    return targets


def link_problems(page: Path, text: str) -> list[str]:
    problems: list[str] = []
    for target in relative_links(text):
        path, _, anchor = target.partition("#")
        destination = (page.parent / path).resolve() if path else page
        if path and not destination.exists():
            problems.append(f"{target}: no file {destination}")
            continue
        if not anchor:
            continue
        if destination.suffix != ".md":
            problems.append(f"{target}: an anchor into {destination.name}, which is no markdown page")
            continue
        anchors = {h.anchor for h in headings(text if destination == page else destination.read_text())}
        if anchor not in anchors:
            problems.append(f"{target}: {destination.name} has no heading with the anchor #{anchor}")
    return problems


def test_every_topic_has_its_page() -> None:
    assert EXPECTED_PAGES - {page.name for page in DOCS} == set()


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_page_opens_with_its_current_contents(page: Path) -> None:
    assert toc_problems(page.read_text()) == []


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_relative_links_reach_a_file_and_heading(page: Path) -> None:
    assert link_problems(page, page.read_text()) == []


def test_readme_links_every_docs_page() -> None:
    linked = {(README.parent / t.partition("#")[0]).resolve() for t in relative_links(README.read_text())}
    assert [page.name for page in DOCS if page.resolve() not in linked] == []


def test_readme_fits_on_a_few_screens() -> None:
    assert len(README.read_text().splitlines()) <= README_MAX_LINES


# The checks above, shown to fail on pages that are wrong.

GOOD_PAGE = """# Title

Intro.

- [First `one`](#first-one)
  - [Sub: part](#sub-part)
- [Again](#again)
- [Again](#again-1)

## First `one`

```sh
# not a heading
## nor this
```

### Sub: part

## Again

## Again
"""


def test_a_matching_contents_list_passes_and_code_blocks_hold_no_headings() -> None:
    assert [h.anchor for h in headings(GOOD_PAGE)] == ["title", "first-one", "sub-part", "again", "again-1"]
    assert toc_problems(GOOD_PAGE) == []


@pytest.mark.parametrize(
    ("broken", "problem"),
    [
        (GOOD_PAGE.replace("  - [Sub: part](#sub-part)\n", ""), "miss the heading (3, 'Sub: part', 'sub-part')"),
        (GOOD_PAGE.replace("(#first-one)", "(#first)"), "which is no heading of the page"),
        (GOOD_PAGE.replace("  - [Sub: part]", "- [Sub: part]"), "which is no heading of the page"),
        (GOOD_PAGE.replace("## Again\n\n## Again\n", "## Again\n\n## Again\n\n## Later\n"), "miss the heading"),
        (GOOD_PAGE.replace("- [First", "Not a list [First"), "miss the heading"),
        ("Intro first.\n\n# Title\n", "does not start with its `# ` title"),
        ("# Title\n\n## Only\n", "no table of contents"),
    ],
)
def test_a_stale_contents_list_is_reported(broken: str, problem: str) -> None:
    assert any(problem in p for p in toc_problems(broken)), toc_problems(broken)


def test_contents_out_of_order_are_reported() -> None:
    swapped = GOOD_PAGE.replace(
        "- [First `one`](#first-one)\n  - [Sub: part](#sub-part)\n- [Again](#again)\n",
        "- [Again](#again)\n- [First `one`](#first-one)\n  - [Sub: part](#sub-part)\n",
    )
    assert any("not in the order" in p for p in toc_problems(swapped))


def test_broken_relative_links_are_reported(tmp_path: Path) -> None:
    (tmp_path / "other.md").write_text("# Other\n\n## Known part\n")
    (tmp_path / "script.py").write_text("")
    page = tmp_path / "page.md"
    text = (
        "# Page\n\n## Here\n\n"
        "[ok](#here) [ok](other.md) [ok](other.md#known-part) [ok](script.py) [url](https://example.com/x.md#y)\n"
        "`[in code](missing.md)` [missing](missing.md) [no anchor](#nowhere) [stale](other.md#unknown-part)\n"
        "[line](script.py#L3)\n"
        "```\n[in a block](gone.md)\n```\n"
    )
    problems = link_problems(page, text)
    assert len(problems) == 4, problems
    assert problems[0].startswith("missing.md: no file")
    assert problems[1] == "#nowhere: page.md has no heading with the anchor #nowhere"
    assert problems[2] == "other.md#unknown-part: other.md has no heading with the anchor #unknown-part"
    assert "no markdown page" in problems[3]
