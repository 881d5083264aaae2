"""Progress as its reader needs it: a bar in a terminal (a real pty), plain log lines in a pipe or a log."""

from __future__ import annotations

import fcntl
import logging
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from PIL import Image

from training_code import progress

ROOT = Path(__file__).resolve().parent.parent
TRAIN_IMAGES = 520  # past preprocess.PROGRESS_EVERY, so the plain mode prints a "verified" line


def run_in_pty(argv: list[str], timeout: float = 240) -> str:
    """Run ``argv`` with stdin/stdout/stderr on a pseudo-terminal, as a person's shell would; its output."""
    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # 40 rows, 120 columns
    process = subprocess.Popen(argv, stdin=child, stdout=child, stderr=child, cwd=ROOT, close_fds=True)
    os.close(child)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([main], [], [], timeout)
            if not ready:
                raise TimeoutError(f"no output for {timeout} s from {argv}")
            try:
                data = os.read(main, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    finally:
        process.wait(timeout=timeout)
        os.close(main)
    assert process.returncode == 0, b"".join(chunks).decode(errors="replace")
    return b"".join(chunks).decode(errors="replace")


@pytest.fixture(scope="module")
def many_small_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("many")
    for split, count in (("train", TRAIN_IMAGES), ("valid", 4), ("test", 4)):
        for index in range(count):
            folder = root / split / ("a" if index % 2 else "b")
            folder.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (12, 10), (index % 256, 40, 90)).save(folder / f"{index}.png")
    return root


def _preprocess_argv(data: Path, out: Path) -> list[str]:
    script = ROOT / "training_code" / "preprocess.py"
    return [sys.executable, str(script), "--input-dir", str(data), "--output-dir", str(out / "data"),
            "--stats-dir", str(out / "stats"), "--image-size", "8", "--num-workers", "1"]  # fmt: skip


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_preprocess_in_a_terminal_draws_bars_not_lines(many_small_images: Path, tmp_path: Path) -> None:
    output = run_in_pty(_preprocess_argv(many_small_images, tmp_path))
    assert "verified 500/" not in output  # no line per 500 files
    assert "\r" in output and "verify: 100%" in output and f"{TRAIN_IMAGES + 8}/{TRAIN_IMAGES + 8}" in output
    assert "stats: 100%" in output
    assert "preprocess INFO done: 2 classes" in output  # log lines still shown, above the bars


@pytest.mark.slow  # fast lane: among the heaviest of `pytest -m 'not slow' --durations`
def test_preprocess_in_a_pipe_prints_plain_lines(many_small_images: Path, tmp_path: Path) -> None:
    result = subprocess.run(
        _preprocess_argv(many_small_images, tmp_path), capture_output=True, text=True, cwd=ROOT, timeout=240
    )
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert f"verified 500/{TRAIN_IMAGES + 8} files (0 quarantined)" in output
    assert "\r" not in output and "%|" not in output


def test_plain_progress_logs_every_n_items(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("progress-test")
    with (
        caplog.at_level(logging.INFO, logger="progress-test"),
        progress.Progress(
            25, "count", log=log, line="{done}/{total} ({bad} bad)", every=10, terminal=False
        ) as shown,
    ):
        for index in range(25):
            shown.update(bad=index // 10)
    assert [record.getMessage() for record in caplog.records] == ["10/25 (0 bad)", "20/25 (1 bad)"]
    assert not shown.is_bar


def test_a_stream_that_is_not_a_terminal_is_not_one(tmp_path: Path) -> None:
    with (tmp_path / "log").open("w") as handle:
        assert not progress.is_terminal(handle)
    main, child = pty.openpty()
    with os.fdopen(child, "w") as terminal:
        assert progress.is_terminal(terminal)
    os.close(main)


def _train_argv(data: Path, stats: Path, out: Path) -> list[str]:
    from tests.test_train import TRAIN_SCRIPT, train_argv

    argv = train_argv(data, stats, out, epochs=2, max_steps_per_epoch=3, image_size=32)
    return [sys.executable, str(TRAIN_SCRIPT), *argv]


@pytest.mark.slow
def test_training_epochs_show_a_bar_in_a_terminal_and_lines_in_a_pipe(
    preprocessed_dataset: Path, tmp_path: Path
) -> None:
    data, stats = preprocessed_dataset / "data", preprocessed_dataset / "stats"
    terminal = run_in_pty(_train_argv(data, stats, tmp_path / "tty"))
    assert "epochs: 100%" in terminal and "2/2" in terminal  # the epochs bar
    assert "epoch 1:" in terminal  # the steps bar of an epoch (erased when it ends)
    assert re.search(r"epoch=2 train_loss=[0-9.]+ valid_loss=[0-9.]+ valid_accuracy=[0-9.]+\r?\n", terminal)
    piped = subprocess.run(
        _train_argv(data, stats, tmp_path / "pipe"), capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert piped.returncode == 0, piped.stdout + piped.stderr
    lines = (piped.stdout + piped.stderr).splitlines()
    # the tuning objective's regex reads whole lines: each epoch's is there, and no bar anywhere
    assert (
        sum(
            bool(re.fullmatch(r"epoch=\d+ train_loss=\S+ valid_loss=\S+ valid_accuracy=\S+", x))
            for x in lines
        )
        == 2
    )
    assert "\r" not in piped.stdout + piped.stderr and "%|" not in piped.stdout + piped.stderr


STEP_PROGRESS = """
import click
from pipeline.console_progress import StepProgress
console = StepProgress(click.echo, 3, "  [Tune] trials", "trial")
console.say("  [Tune] trial 1/2 lr=0.01")
console.status("  [Tune]   trial 1 valid_accuracy=0.5 (report 1)")
console.advance("  [Tune] trial 1 done: valid_accuracy=0.5")
console.say("  [Tune] trial 2/2 lr=0.02")
console.advance("  [Tune] trial 2 done: valid_accuracy=0.7")
console.advance(None)  # a pruned trial: counted, no line
console.close()
"""


def test_the_engine_shows_tuning_trials_as_a_bar_on_a_terminal() -> None:
    output = run_in_pty([sys.executable, "-c", STEP_PROGRESS])
    assert "[Tune] trials: 100%" in output and "3/3" in output
    assert "trial 1 done: valid_accuracy=0.5" in output and "trial 2 done" in output
    news = [part for part in re.split(r"[\r\n]", output) if "(report 1)" in part]
    assert news and all("trials:" in part for part in news)  # passing news lives in the bar, not a line


def test_the_engine_echoes_plain_lines_when_not_a_terminal() -> None:
    result = subprocess.run(
        [sys.executable, "-c", STEP_PROGRESS], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "  [Tune] trial 1/2 lr=0.01",
        "  [Tune]   trial 1 valid_accuracy=0.5 (report 1)",
        "  [Tune] trial 1 done: valid_accuracy=0.5",
        "  [Tune] trial 2/2 lr=0.02",
        "  [Tune] trial 2 done: valid_accuracy=0.7",
    ]
    assert result.stderr == ""


def test_a_test_or_benchmark_echo_never_gets_a_bar() -> None:
    from pipeline.console_progress import echoes_to_terminal

    lines: list[str] = []
    assert not echoes_to_terminal(lines.append)


JOB_LINES = """
import click
from pipeline.console_progress import JobLines
shown = JobLines(click.echo, "  [Preprocess] ")
for done in range(500, 8500, 500):
    shown.show(f"2026-12-02 08:00:00,000 preprocess INFO verified {done}/8351 files (3 quarantined)")
shown.show("2026-12-02 08:00:01,000 preprocess WARNING quarantined train/a/x.jpg: not an image")
shown.close()
"""


def test_the_engine_turns_a_jobs_progress_lines_into_a_bar_on_a_terminal() -> None:
    output = run_in_pty([sys.executable, "-c", JOB_LINES])
    assert "[Preprocess] verified" in output and "8000/8351" in output and "3 quarantined" in output
    kept = [part for part in re.split(r"[\r\n]", output) if "INFO verified" in part]
    assert kept == []  # none of the 16 progress lines is printed as a line
    assert "  [Preprocess] 2026-12-02 08:00:01,000 preprocess WARNING quarantined train/a/x.jpg" in output


def test_the_engine_echoes_a_jobs_progress_lines_when_not_a_terminal() -> None:
    result = subprocess.run([sys.executable, "-c", JOB_LINES], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 17 and lines[0].endswith("INFO verified 500/8351 files (3 quarantined)")
    assert all(line.startswith("  [Preprocess] 2026-12-02") for line in lines)
