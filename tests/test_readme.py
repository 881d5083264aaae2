"""The README's promises that a reader follows: every linked page exists, and every ``dogpipe X``
it shows is a command (after a rename, the README would otherwise send users to nothing)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from pipeline.cli.main import cli

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def test_linked_pages_exist() -> None:
    links = re.findall(r"\]\(([^)#:]+)\)", README)
    assert "docs/approval.md" in links
    assert [link for link in links if not (REPO / link).exists()] == []


def test_every_command_shown_exists() -> None:
    shown = set(re.findall(r"`dogpipe ((?:[a-z][a-z-]*)(?: [a-z][a-z-]*)?)", README))
    missing = []
    for words in shown:
        first, *rest = words.split()
        command = cli.commands.get(first)
        if command is None or (isinstance(command, click.Group) and rest and rest[0] not in command.commands):
            missing.append(words)
    assert missing == []
