"""``-o table|json`` for every command that lists or reports: one set of fields, two renderings.

A command builds plain dicts (``pipeline.listings``) and hands them here; the table and the JSON are
drawn from the same dicts, so a script reading ``-o json`` sees exactly the columns a person sees.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import click

output_option = click.option(
    "-o",
    "--output",
    "output",
    type=click.Choice(["table", "json"]),
    default="table",
    show_default=True,
    help="table for people; json for scripts (the table's fields, one object per row).",
)


def to_json(value: Any) -> str:
    """Indented JSON; datetimes as ISO 8601 to the second, as the table shows them."""
    return json.dumps(value, indent=2, default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat()
    return str(value)


def render_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], output: str, empty: str) -> str:
    """A fixed-width table (header in capitals, ``-`` for empty cells) or a JSON list of the same fields.

    An empty listing is the ``empty`` sentence in a table and ``[]`` in JSON (a script must not parse
    prose)."""
    if output == "json":
        return to_json([{column: row.get(column) for column in columns} for row in rows])
    if not rows:
        return empty
    cells = [[cell(row.get(column)) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.upper().ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines += [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)) for line in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


def render_record(record: Mapping[str, Any], output: str, rows_key: str, columns: Sequence[str]) -> str:
    """One object (``status``): ``key: value`` lines, then its ``rows_key`` list as a table; or JSON."""
    if output == "json":
        return to_json(record)
    scalars = {key: value for key, value in record.items() if key != rows_key}
    width = max(len(key) for key in scalars) + 1
    lines = [f"{key + ':':<{width}} {cell(value)}" for key, value in scalars.items()]
    rows = record.get(rows_key) or []
    if rows:
        lines.append(render_rows(rows, columns, "table", ""))
    return "\n".join(lines)


def cell(value: Any) -> str:
    """A table cell: ``-`` when empty, yes/no, 4 significant decimals, ISO times without microseconds."""
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat()
    return str(value).splitlines()[0] if str(value) else "-"


def parse_table(text: str) -> list[dict[str, str]]:
    """The rows of a ``render_rows`` table, by lower-case column name (what tests and scripts read back).

    Columns are cut at the header's word starts, so cells may hold single spaces."""
    header, *lines = text.splitlines()
    starts = [
        index for index, char in enumerate(header) if char != " " and (index == 0 or header[index - 1] == " ")
    ]
    names = header.lower().split()
    bounds = [*starts[1:], None]
    return [
        {name: line[start:end].strip() for name, start, end in zip(names, starts, bounds, strict=True)}
        for line in lines
    ]
