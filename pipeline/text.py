"""Small text rules every listing shares, declared once (a copy cut at 60 characters once disagreed)."""

from __future__ import annotations


def first_line(text: str | None) -> str | None:
    """The first non-empty line of ``text``, stripped (an error's headline), or None for no text."""
    return next((line.strip() for line in (text or "").splitlines() if line.strip()), None)
