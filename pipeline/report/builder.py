"""``build_report(inputs, out_path)``: one self-contained ``report.html`` (PNGs embedded as base64).

Sections, in the order a reader asks the questions: first the approver's (the summary an approval is
decided on, then candidate against production when the Compare step ran), then the engineer's: tuning
(which hyperparameters won), training curves (did it learn), gradients per layer (did every layer
learn), Debugger rules, profiler (was the machine used well), model summary, evaluation (worst breeds,
most-confused pairs, confusion matrix, per-class metrics) and a sample prediction. A missing input
leaves its section with a note, never a broken report.

What each section shows is decided in :mod:`pipeline.report.sections`, drawn in
:mod:`pipeline.report.plots` and laid out in ``templates/`` (Jinja2).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from markupsafe import Markup

from pipeline.files import write_atomic
from pipeline.report import sections
from pipeline.report.inputs import ReportInputs
from pipeline.report.markup import render

#: (title, what reads the inputs, the template that shows them); the anchor is the title in kebab case.
SECTIONS: list[tuple[str, Callable[[ReportInputs], sections.Context | sections.Note], str]] = [
    ("Approver summary", sections.approver_summary, "sections/summary.html.j2"),
    ("Candidate vs production", sections.candidate_vs_production, "sections/versus.html.j2"),
    ("Pipeline steps", sections.steps, "sections/steps.html.j2"),
    ("Hyperparameter tuning", sections.tuning, "sections/tuning.html.j2"),
    ("Training", sections.training, "sections/training.html.j2"),
    ("Gradient norms per layer", sections.gradients, "sections/gradients.html.j2"),
    ("Debugger rules", sections.rules, "sections/rules.html.j2"),
    ("Profiler", sections.profiler, "sections/profiler.html.j2"),
    ("Model summary", sections.model, "sections/model.html.j2"),
    ("Evaluation", sections.evaluation, "sections/evaluation.html.j2"),
    ("Sample prediction", sections.prediction, "sections/prediction.html.j2"),
]
NOTE_TEMPLATE = "sections/note.html.j2"
#: Sections shown only when their input exists (the others say what is missing).
ONLY_WITH: dict[str, Callable[[ReportInputs], bool]] = {
    "Candidate vs production": lambda inputs: inputs.comparison is not None,
}


def render_section(
    read: Callable[[ReportInputs], sections.Context | sections.Note], template: str, inputs: ReportInputs
) -> str:
    """One section's markup; an error while reading or drawing becomes the section's note instead of
    sinking the rest of the report."""
    try:
        content = read(inputs)
        if isinstance(content, sections.Note):
            return render(NOTE_TEMPLATE, text=content.text)
        return render(template, **content)
    except Exception as error:
        return render(NOTE_TEMPLATE, text=f"could not draw this section: {type(error).__name__}: {error}")


def build_report(inputs: ReportInputs, out_path: str | Path) -> Path:
    """Write the report atomically (a reader never sees half a file)."""
    parts = [
        {
            "title": title,
            "anchor": title.lower().replace(" ", "-"),
            "html": Markup(render_section(read, template, inputs)),  # escaped by its own template
        }
        for title, read, template in SECTIONS
        if ONLY_WITH.get(title, lambda _: True)(inputs)
    ]
    document = render("report.html.j2", title=inputs.title, sections=parts)
    return write_atomic(out_path, document)
