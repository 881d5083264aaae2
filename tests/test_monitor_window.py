"""How small a window the monitoring job judges, and what it tells the user when it does not
(``training_code/monitor.py``; the whole job runs in ``test_monitor_job.py`` and
``tests/local/test_monitor_run.py``)."""

from __future__ import annotations

from pipeline.config.monitor import MonitorConfig
from training_code import monitor


def test_a_small_window_says_how_many_more_images_it_needs() -> None:
    minimum = MonitorConfig().min_records
    reason = monitor.too_few(4, minimum)
    assert reason is not None
    assert reason.startswith(f"4 images in the window, fewer than min_records {minimum}: {minimum - 4} more")
    assert "--since" in reason and "monitor.min_records" in reason
    assert str(monitor.too_few(1, 5)).startswith("1 image in the window")
    assert monitor.too_few(minimum, minimum) is None


def test_the_summary_of_a_window_not_judged_carries_the_reason() -> None:
    report = {
        "endpoint": "dogpipe-staging",
        "window": {"start": "2026-12-07T10:00:00+00:00", "end": "2026-12-07T11:00:00+00:00"},
        "records": 3,
        "images": 3,
        "baseline_images": 50,
        "status": "insufficient_data",
        "reason": monitor.too_few(3, 30),
    }
    summary = monitor._summary(report)
    assert "not judged: 3 images in the window, fewer than min_records 30: 27 more needed" in summary
