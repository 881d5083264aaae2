"""What a confusion matrix says at any class count: the worst breeds, the most-confused pairs, the
breeds worth drawing, and the whole matrix as CSV.

At 5 breeds the matrix itself is readable; at 133 it is a grid of 17,689 cells whose labels cannot be
read, so the report leads with the rankings and keeps the full matrix as a zoomable figure and a file.
"""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Rows of the "worst breeds" and "most-confused pairs" tables.
TOP = 10
#: Up to this many breeds the matrix is drawn whole with its counts; above, only the breeds of the
#: most-confused pairs are, and the full matrix is a heatmap to zoom into.
READABLE_CLASSES = 20


@dataclass(frozen=True)
class Confusion:
    """``counts[i, j]``: test images of ``labels[i]`` predicted as ``labels[j]``."""

    labels: list[str]
    counts: np.ndarray

    @classmethod
    def from_mapping(cls, matrix: Mapping[str, Mapping[str, int]]) -> Confusion:
        """From evaluation.json's ``{actual: {predicted: count}}``."""
        labels = list(matrix)
        counts = np.array([[int(matrix[a].get(p, 0)) for p in labels] for a in labels], dtype=np.int64)
        return cls(labels, counts.reshape(len(labels), len(labels)))

    def pairs(self, top: int = TOP) -> list[dict[str, Any]]:
        """The largest off-diagonal counts: which breed is taken for which, and how often."""
        off = self.counts - np.diag(np.diag(self.counts))
        support = self.counts.sum(axis=1)
        order = np.argsort(-off, axis=None, kind="stable")[:top]
        rows = []
        for flat in order:
            actual, predicted = divmod(int(flat), len(self.labels))
            count = int(off[actual, predicted])
            if count == 0:
                break
            rows.append(
                {
                    "actual": self.labels[actual],
                    "predicted as": self.labels[predicted],
                    "images": count,
                    "share of the breed's test images": count / support[actual] if support[actual] else 0.0,
                }
            )
        return rows

    def most_confused_with(self, index: int) -> str:
        """The breed ``labels[index]`` is most often predicted as, with the count ("" when never wrong)."""
        row = self.counts[index].copy()
        row[index] = 0
        if not row.any():
            return ""
        other = int(row.argmax())
        return f"{self.labels[other]} ({int(row[other])})"

    def readable_subset(self, limit: int = READABLE_CLASSES) -> list[int]:
        """Indices of the breeds to draw with counts: all when few, else those of the top pairs."""
        if len(self.labels) <= limit:
            return list(range(len(self.labels)))
        chosen: list[int] = []
        index = {label: i for i, label in enumerate(self.labels)}
        for pair in self.pairs(top=limit * limit):
            for label in (pair["actual"], pair["predicted as"]):
                if index[label] not in chosen and len(chosen) < limit:
                    chosen.append(index[label])
            if len(chosen) >= limit:
                break
        return sorted(chosen)

    def csv_data_uri(self) -> str:
        """The whole matrix as CSV (header row of predicted breeds, one row per actual breed), as a
        ``data:`` link: the report stays one file and the matrix goes with it."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["actual \\ predicted", *self.labels])
        for label, row in zip(self.labels, self.counts.tolist(), strict=True):
            writer.writerow([label, *row])
        return "data:text/csv;base64," + base64.b64encode(buffer.getvalue().encode()).decode()


def per_class_rows(per_class: Mapping[str, Mapping[str, Any]], confusion: Confusion | None) -> list[dict]:
    """One row per breed, worst first: lowest F1, then lowest recall, then most test images."""
    index = {label: i for i, label in enumerate(confusion.labels)} if confusion else {}
    rows = []
    for name, values in per_class.items():
        row: dict[str, Any] = {"class": name, **values}
        if confusion is not None and name in index:
            row["most often predicted as"] = confusion.most_confused_with(index[name])
        rows.append(row)

    def badness(row: dict[str, Any]) -> tuple[float, float, float]:
        return (
            float(row.get("f1", 0.0)),
            float(row.get("recall", 0.0)),
            -float(row.get("support", 0)),
        )

    return sorted(rows, key=badness)
