"""The READMEs: every relative link reaches a file, and every #anchor a heading of that file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT

DOCS = ["README.md", "modules/README.md"]
LINK = re.compile(r"(?<!!)\[[^\]]+\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown file (code blocks skipped)."""
    found, fenced = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.+)", line)):
            text = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            found.add(text.replace(" ", "-"))
    return found


def links(path: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_and_anchors_resolve(doc):
    source = ROOT / doc
    targets = links(source)
    assert targets, f"{doc} has no relative link to check"
    for target in targets:
        file, _, anchor = target.partition("#")
        destination = (source.parent / file).resolve() if file else source
        assert destination.is_file(), f"{doc}: {target} names a file that does not exist"
        if anchor:
            assert anchor in anchors(destination), f"{doc}: {target} names a section {destination.name} lacks"


def test_anchor_rules_match_github():
    assert anchors(ROOT / "README.md") >= {"modules", "running-runpy", "keys-the-runner-adds",
                                            "the-cifar-10-pruning-studies", "parse-python-expressions-in-values"}
