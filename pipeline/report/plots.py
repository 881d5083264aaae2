"""The report's figures, drawn with matplotlib (Agg) and returned as ``data:image/png`` URIs, so the
report stays one self-contained file. Every function takes plain numbers, not files."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

BEST_COLOUR = "#dd8452"
COLOUR = "#4c72b0"


def data_uri(fig: plt.Figure, dpi: int = 90) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def objective_bars(labels: Sequence[str], values: Sequence[float], best: int, metric: str) -> str:
    """One bar per scored trial; ``best`` (an index into ``values``) in orange."""
    fig, ax = plt.subplots(figsize=(6, 2.6))
    ax.bar(labels, values, color=[BEST_COLOUR if i == best else COLOUR for i in range(len(values))])
    ax.set_ylabel(metric)
    ax.set_title("objective per trial (best in orange)")
    return data_uri(fig)


def epoch_curves(epochs: Sequence[dict[str, float]]) -> str:
    """Loss and accuracy per epoch, train and valid side by side."""
    x = [e["epoch"] for e in epochs]
    fig, (loss_ax, acc_ax) = plt.subplots(1, 2, figsize=(10, 3.2))
    for ax, prefix_keys in (
        (loss_ax, ("train_loss", "valid_loss")),
        (acc_ax, ("train_accuracy", "valid_accuracy")),
    ):
        for key, style in zip(prefix_keys, ("-o", "-s"), strict=True):
            ax.plot(x, [e[key] for e in epochs], style, label=key)
        ax.set_xlabel("epoch")
        ax.legend()
        ax.grid(alpha=0.3)
    loss_ax.set_title("loss per epoch")
    acc_ax.set_title("accuracy per epoch")
    return data_uri(fig)


def series_lines(
    series: Sequence[tuple[str, Sequence[float], Sequence[float], str]],
    *,
    title: str,
    ylabel: str,
    log_y: bool = False,
    legend_outside: bool = False,
) -> str:
    """Lines of ``(label, x, y, style)``: loss per saved step, gradient norms per layer."""
    fig, ax = plt.subplots(figsize=(10, 3.6 if legend_outside else 3.2))
    for label, x, y, style in series:
        ax.plot(x, y, style, label=label, markersize=3)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if legend_outside:
        ax.legend(fontsize=7, ncol=2, loc="upper left", bbox_to_anchor=(1.01, 1))
    else:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return data_uri(fig)


def step_breakdown(phases: dict[str, Sequence[float]], walls: Sequence[float]) -> str:
    """Stacked seconds per training step: each phase, then what the phases do not account for."""
    fig, ax = plt.subplots(figsize=(10, 3.2))
    x = np.arange(len(walls))
    bottom = np.zeros(len(walls))
    for phase, values in phases.items():
        ax.bar(x, values, bottom=bottom, label=phase, width=1.0)
        bottom += np.asarray(values, dtype=float)
    other = np.maximum(np.asarray(walls, dtype=float) - bottom, 0)
    ax.bar(x, other, bottom=bottom, label="other", width=1.0, color="#bbb")
    ax.set_xlabel("training step")
    ax.set_ylabel("seconds")
    ax.set_title("step time breakdown")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1))
    return data_uri(fig)


def annotated_matrix(counts: np.ndarray, labels: Sequence[str], title: str) -> str:
    """A confusion matrix with its counts written in the cells: readable up to a few dozen classes."""
    size = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 + 0.55 * size, 1 + 0.5 * size))
    ax.imshow(counts, cmap="Blues")
    ax.set_xticks(range(size), labels, rotation=45, ha="right")
    ax.set_yticks(range(size), labels)
    peak = counts.max() if counts.size else 0
    for (i, j), value in np.ndenumerate(counts):
        colour = "white" if value > peak / 2 else "black"
        ax.text(j, i, str(value), ha="center", va="center", color=colour, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    return data_uri(fig)


def heatmap(counts: np.ndarray, labels: Sequence[str], title: str) -> str:
    """A large confusion matrix as a heatmap (no numbers), every label in small type: zoomed in the
    browser, each breed's row and column can be read. Off-diagonal cells are what matters, so the
    colour scale is capped at the largest off-diagonal count and the diagonal does not wash it out."""
    size = len(labels)
    off_diagonal = counts - np.diag(np.diag(counts))
    cap = max(int(off_diagonal.max()), 1)
    inches = 2 + 0.11 * size
    fig, ax = plt.subplots(figsize=(inches, inches))
    image = ax.imshow(np.minimum(counts, cap), cmap="Blues", interpolation="nearest")
    ax.set_xticks(range(size), labels, rotation=90, fontsize=4)
    ax.set_yticks(range(size), labels, fontsize=4)
    ax.set_xlabel("predicted")
    ax.set_ylabel("actual")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.5, label=f"count (capped at {cap})")
    return data_uri(fig, dpi=150)
