"""The report at dogImages' class count (133 breeds), from generated evaluation data: the worst breeds
and the most-confused pairs lead, every breed's row is there and sortable, the matrix stays readable
(the breeds that matter, with counts) and whole (a zoomable heatmap and a CSV)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import random
import re
import subprocess
from pathlib import Path

import pytest

from pipeline.report import ReportInputs, build_report
from pipeline.report.confusion import READABLE_CLASSES
from pipeline.report.screenshot import find_browser
from training_code.evaluate import classification_metrics

CLASSES = [f"{index:03d}.Breed_{index}" for index in range(1, 134)]
WORST, TAKEN_FOR = 41, 42  # 041 is mostly predicted as 042: the worst breed and the top pair
SECOND_PAIR = (100, 7)  # 100 is often predicted as 007


def _evaluation(root: Path) -> Path:
    rng = random.Random(0)
    y_true, y_pred = [], []
    for label in range(len(CLASSES)):
        for _ in range(8):
            y_true.append(label)
            if label == WORST:
                y_pred.append(TAKEN_FOR if rng.random() < 0.85 else label)
            elif label == SECOND_PAIR[0]:
                y_pred.append(SECOND_PAIR[1] if rng.random() < 0.5 else label)
            else:  # mostly right, the odd random mistake
                y_pred.append(label if rng.random() < 0.9 else rng.randrange(len(CLASSES)))
    path = root / "evaluation.json"
    path.write_text(json.dumps(classification_metrics(y_true, y_pred, CLASSES)))
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("scale")
    evaluation = _evaluation(root)
    return build_report(ReportInputs(evaluation=evaluation), root / "report.html"), json.loads(
        evaluation.read_text()
    )


def _rows(document: str, table_id: str) -> list[list[str]]:
    table = re.search(rf'<table id="{table_id}"[^>]*>(.*?)</table>', document, re.S)
    assert table, f"table {table_id} missing"
    body = table.group(1).split("<tbody>")[1]
    return [
        [re.sub(r"<[^>]+>", "", cell).strip() for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


def test_worst_breeds_and_most_confused_pairs_come_first(report: tuple[Path, dict]) -> None:
    document = report[0].read_text()
    section = document.split('<section id="evaluation">')[1]
    assert section.index("Worst breeds") < section.index("Most-confused pairs") < section.index("Per-class")
    worst = _rows(document, "worst-breeds-table")
    assert len(worst) == 10 and worst[0][0] == CLASSES[WORST]
    pairs = _rows(document, "confused-pairs-table")
    assert pairs[0][:2] == [CLASSES[WORST], CLASSES[TAKEN_FOR]]
    assert pairs[1][:2] == [CLASSES[SECOND_PAIR[0]], CLASSES[SECOND_PAIR[1]]]
    assert int(pairs[0][2]) >= int(pairs[1][2]) >= int(pairs[-1][2]) > 0


def test_every_breed_has_a_sortable_row_worst_first(report: tuple[Path, dict]) -> None:
    document, evaluation = report[0].read_text(), report[1]
    assert '<table id="per-class" class="sortable">' in document
    rows = _rows(document, "per-class")
    assert sorted(row[0] for row in rows) == sorted(CLASSES)
    f1 = [evaluation["per_class"][row[0]]["f1"] for row in rows]
    assert f1 == sorted(f1) and rows[0][0] == CLASSES[WORST]
    assert rows[0][-1].startswith(CLASSES[TAKEN_FOR])  # "most often predicted as"
    assert "function sortTable" in document and "<script src" not in document  # inline: works offline


def test_the_matrix_is_readable_and_whole(report: tuple[Path, dict]) -> None:
    document, evaluation = report[0].read_text(), report[1]
    shown = re.search(r"Among the (\d+) breeds of the most-confused pairs", document)
    assert shown and int(shown.group(1)) == READABLE_CLASSES
    assert 'alt="full confusion matrix"' in document  # the heatmap of all 133, to zoom into
    link = re.search(
        r'<a id="matrix-csv" download="confusion_matrix.csv" href="data:text/csv;base64,([^"]+)"', document
    )
    assert link, "the full matrix is linked as a CSV"
    table = list(csv.reader(io.StringIO(base64.b64decode(link.group(1)).decode())))
    assert table[0][1:] == CLASSES and len(table) == 134
    matrix = evaluation["multiclass_classification_metrics"]["confusion_matrix"]
    assert all([int(v) for v in row[1:]] == [matrix[row[0]][p] for p in CLASSES] for row in table[1:])


def test_a_few_breeds_get_the_whole_matrix_inline(tmp_path: Path) -> None:
    names = ["beagle", "boxer", "pug"]
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text(json.dumps(classification_metrics([0, 1, 2, 2], [0, 1, 1, 2], names)))
    document = build_report(ReportInputs(evaluation=evaluation), tmp_path / "r.html").read_text()
    assert "Among the" not in document and "full confusion matrix" not in document
    assert "Worst breeds" not in document  # the per-class table, worst first, is short enough
    assert _rows(document, "confused-pairs-table")[0][:2] == ["pug", "boxer"]
    perfect = tmp_path / "perfect.json"
    perfect.write_text(json.dumps(classification_metrics([0, 1, 2], [0, 1, 2], names)))
    document = build_report(ReportInputs(evaluation=perfect), tmp_path / "p.html").read_text()
    assert (
        "No test image was predicted as another breed." in document and "confused-pairs-table" not in document
    )


def _clicked(report: Path, tmp_path: Path, headers: list[str]) -> list[list[str]]:
    """Click ``headers`` in turn in Chromium (the page's own script sorts) and return, after each click,
    the first column of the per-class table and the clicked column, read from the DOM."""
    script = (
        "<script>const out=[];for(const name of " + json.dumps(headers) + "){"
        "const th=[...document.querySelectorAll('#per-class th')].find(h=>h.textContent==name);th.click();"
        "out.push([...document.querySelectorAll('#per-class tbody tr')]"
        ".map(r=>{const c=r.cells[th.cellIndex];"
        "return [r.cells[0].textContent,c.dataset.sort??c.textContent]}))}"
        "document.title=JSON.stringify(out)</script></body>"
    )
    page = tmp_path / "clicked.html"
    page.write_text(report.read_text().replace("</body>", script))
    dom = subprocess.run(
        [find_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    return json.loads(html.unescape(re.search(r"<title>(.*?)</title>", dom, re.S).group(1)))


@pytest.mark.skipif(find_browser() is None, reason="no Chromium here (.ci/run installs one)")
def test_clicking_a_header_sorts_the_rows_in_chromium(report: tuple[Path, dict], tmp_path: Path) -> None:
    by_class, recall_up, recall_down = _clicked(report[0], tmp_path, ["class", "recall", "recall"])
    assert [name for name, _ in by_class] == CLASSES
    up = [float(value) for _, value in recall_up]
    down = [float(value) for _, value in recall_down]
    assert up == sorted(up) and down == sorted(up, reverse=True) and up[0] < up[-1]
    assert recall_down[-1][0] == CLASSES[WORST]
