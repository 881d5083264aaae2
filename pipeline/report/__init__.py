"""The run report: ``build_report(ReportInputs(...), "report.html")``."""

from pipeline.report.builder import build_report
from pipeline.report.inputs import ReportInputs

__all__ = ["ReportInputs", "build_report"]
