"""``-o table|json|text`` and ``--query`` for every command that lists or reports; ``--max-results`` /
``--next-token`` for the listings: one set of fields, three renderings, the aws CLI's grammar.

A command builds plain dicts (``pipeline.cli.listings``) and hands them to its :class:`Output`; the table,
the text and the JSON are drawn from the same dicts, so a script reading ``-o json`` sees every column a
person sees (and the details too long for a column). ``--query`` is JMESPath (boto3 brings it) over the
JSON document, as in the aws CLI; its result is rendered in the chosen format.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import click
import jmespath
from jmespath.exceptions import JMESPathError

from pipeline.text import first_line

FORMATS = ("table", "json", "text")


@dataclass(frozen=True)
class Output:
    """How a command prints what it found: the format and an optional JMESPath query."""

    format: str = "table"
    query: str | None = None

    def rows(self, rows: Sequence[Mapping[str, Any]], columns: Sequence[str], empty: str) -> str:
        """A listing: a table of ``columns``, their tab-separated values (text) or every field (JSON).
        An empty listing is the ``empty`` sentence in a table and ``[]`` in JSON (scripts never parse
        prose)."""
        if self.query is not None:
            return self._queried([dict(row) for row in rows])
        if self.format == "json":
            return to_json([dict(row) for row in rows])
        if self.format == "text":
            return "\n".join("\t".join(cell(row.get(column), column) for column in columns) for row in rows)
        return render_table(rows, columns) if rows else empty

    def record(
        self,
        record: Mapping[str, Any],
        rows_key: str,
        columns: Sequence[str],
        json_only: Sequence[str] = (),
    ) -> str:
        """One object (``status``): ``key: value`` lines, then its ``rows_key`` list as a table;
        ``json_only`` names nested documents that only ``-o json`` (and ``--query``) show."""
        if self.query is not None:
            return self._queried(dict(record))
        if self.format == "json":
            return to_json(record)
        scalars = {key: value for key, value in record.items() if key != rows_key and key not in json_only}
        nested = record.get(rows_key) or []
        if self.format == "text":
            lines = [f"{key}\t{cell(value, key)}" for key, value in scalars.items()]
            return "\n".join([*lines, Output("text").rows(nested, columns, "")]).rstrip("\n")
        width = max(len(key) for key in scalars) + 1
        lines = [f"{key + ':':<{width}} {cell(value, key)}" for key, value in scalars.items()]
        if nested:
            lines.append(render_table(nested, columns))
        return "\n".join(lines)

    def document(self, value: Any, table: Callable[[], str]) -> str:
        """Anything else JSON-shaped (a prediction, a validation report): ``table()`` for people."""
        if self.query is not None:
            return self._queried(value)
        if self.format == "json":
            return to_json(value)
        return table()

    def _queried(self, document: Any) -> str:
        try:
            found = jmespath.search(self.query or "", json.loads(to_json(document)))
        except JMESPathError as error:
            raise click.UsageError(f"invalid --query {self.query!r}: {first_line(str(error))}") from None
        if self.format == "json":
            return to_json(found)
        if isinstance(found, list) and found and all(isinstance(item, dict) for item in found):
            columns = list(dict.fromkeys(key for item in found for key in item))
            return Output(self.format).rows(found, columns, "")
        if isinstance(found, dict):
            separator = "\t" if self.format == "text" else ": "
            return "\n".join(f"{key}{separator}{cell(value)}" for key, value in found.items())
        if isinstance(found, list):
            return "\n".join(
                cell(item) if not isinstance(item, list | dict) else to_json(item) for item in found
            )
        return "" if found is None else cell(found)


def output_option(command: Callable[..., Any]) -> Callable[..., Any]:
    """``-o/--output table|json|text`` and ``--query``, handed to the command as one ``output: Output``."""

    @functools.wraps(command)
    def with_output(*args: Any, output: str, query: str | None, **kwargs: Any) -> Any:
        return command(*args, output=Output(output, query), **kwargs)

    with_output = click.option(
        "--query",
        default=None,
        metavar="JMESPATH",
        help="JMESPath over the JSON output (as in the aws CLI), e.g. \"[?status=='Approved'].version\".",
    )(with_output)
    return click.option(
        "-o",
        "--output",
        "output",
        type=click.Choice(FORMATS),
        default="table",
        show_default=True,
        help="table for people; json for scripts (every field); text: tab-separated, no header.",
    )(with_output)


@dataclass(frozen=True)
class Page:
    """``--max-results N`` rows from ``--next-token``'s offset; None: all of them."""

    max_results: int | None = None
    next_token: str | None = None

    def apply(self, rows: Sequence[Any]) -> list[Any]:
        """This page of ``rows``; when rows remain, the next token goes to stderr (one line), so the
        page itself stays a plain list for ``-o json`` and ``--query``."""
        start = _offset_of(self.next_token) if self.next_token else 0
        if self.max_results is None:
            return list(rows[start:])
        end = start + self.max_results
        if end < len(rows):
            click.echo(f"more: --next-token {_token_of(end)}", err=True)
        return list(rows[start:end])


def paging_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--max-results`` and ``--next-token`` (the aws CLI's names), handed over as ``page: Page``."""

    @functools.wraps(command)
    def with_page(*args: Any, max_results: int | None, next_token: str | None, **kwargs: Any) -> Any:
        return command(*args, page=Page(max_results, next_token), **kwargs)

    with_page = click.option(
        "--next-token", default=None, metavar="TOKEN", help="Continue where a --max-results page stopped."
    )(with_page)
    return click.option(
        "--max-results",
        type=click.IntRange(min=1),
        default=None,
        help="At most this many rows; the token for the rest is printed on stderr.",
    )(with_page)


def _token_of(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode().rstrip("=")


def _offset_of(token: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))["offset"]
        if isinstance(offset, int) and offset >= 0:
            return offset
    except (binascii.Error, ValueError, KeyError, TypeError):
        pass
    raise click.UsageError(f"invalid --next-token {token!r}: use the token a --max-results page printed")


def to_json(value: Any) -> str:
    """Indented JSON; datetimes as ISO 8601 to the second, as the table shows them."""
    return json.dumps(value, indent=2, default=_json_default, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(microsecond=0).isoformat()
    return str(value)


def render_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A fixed-width table: header in capitals, ``-`` for empty cells."""
    cells = [[cell(row.get(column), column) for column in columns] for row in rows]
    widths = [max(len(column), *(len(line[i]) for line in cells)) for i, column in enumerate(columns)]
    lines = ["  ".join(column.upper().ljust(width) for column, width in zip(columns, widths, strict=True))]
    lines += [
        "  ".join(text.ljust(width) for text, width in zip(line, widths, strict=True)) for line in cells
    ]
    return "\n".join(line.rstrip() for line in lines)


def cell(value: Any, column: str = "") -> str:
    """A table cell: ``-`` when empty, yes/no, 4 decimals, ISO times without microseconds; a ``*_s``
    column holds seconds and reads as ``dogpipe run`` prints them (``3.9 s``)."""
    if value is None or value == "":
        return "-"
    if column.endswith("_s") and isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.1f} s"
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
