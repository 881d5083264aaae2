"""Render a report.html in headless Chromium and save it as one PNG: the report as a person sees it.

``dogpipe report --screenshot report.png`` uses it, and ``tests/test_report.py`` checks the rendered
pixels (plots drawn, status colours applied), so a report that is valid HTML but shows broken images or
an empty page does not pass for a good one.

Chromium's ``--screenshot`` captures the window, not the page, so the window is made taller than any
report and the blank space below the last section is cut off.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from pipeline.errors import DogpipeError
from pipeline.files import atomic_path

#: Where to look for a Chromium, first match wins; ``DOGPIPE_CHROMIUM`` names one explicitly.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
WIDTH = 1280
#: Taller than any report dogpipe writes (the demo's is about 4,700 px at this width).
WINDOW_HEIGHT = 12_000
TIMEOUT_S = 120


class ScreenshotError(DogpipeError):
    """No browser, or the browser could not render the page; the message says which and what to do."""


def find_browser() -> str | None:
    """The Chromium to use: ``$DOGPIPE_CHROMIUM``, else the first of :data:`BROWSERS` on the PATH."""
    explicit = os.environ.get("DOGPIPE_CHROMIUM")
    if explicit:
        return shutil.which(explicit)
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def screenshot(report: str | Path, png: str | Path, *, width: int = WIDTH) -> Path:
    """Render ``report`` (an HTML file) at ``width`` CSS pixels and write the whole page to ``png``."""
    report, png = Path(report).resolve(), Path(png)
    if not report.is_file():
        raise ScreenshotError(f"no report at {report}")
    browser = find_browser()
    if browser is None:
        where = os.environ.get("DOGPIPE_CHROMIUM")
        raise ScreenshotError(
            f"no Chromium found{f' at DOGPIPE_CHROMIUM={where}' if where else ''}: install one "
            "(Debian/Ubuntu: apt-get install chromium) or set DOGPIPE_CHROMIUM to its path"
        )
    with tempfile.TemporaryDirectory(prefix="dogpipe-screenshot-") as scratch:
        raw = Path(scratch) / "window.png"
        command = [
            browser,
            "--headless",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={scratch}/profile",
            f"--window-size={width},{WINDOW_HEIGHT}",
            f"--screenshot={raw}",
            report.as_uri(),
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            command.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        try:
            result = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ScreenshotError(f"{browser} did not render {report} within {TIMEOUT_S} s") from None
        if result.returncode != 0 or not raw.is_file():
            raise ScreenshotError(f"{browser} could not render {report}: {result.stderr.strip()[-1000:]}")
        _save_cropped(raw, png)
    return png


def _save_cropped(raw: Path, png: Path) -> None:
    """The window's PNG cut below the page's content, written as PNG whatever ``png``'s name says.

    Written beside the target and renamed: a failed write leaves any earlier screenshot of that name
    as it was.
    """
    from PIL import Image, ImageChops

    with Image.open(raw) as window:
        page = window.convert("RGB")
    background = Image.new("RGB", page.size, page.getpixel((page.width - 1, page.height - 1)))
    content = ImageChops.difference(page, background).getbbox()
    bottom = min(page.height, (content[3] if content else 1) + 32)
    try:
        with atomic_path(png) as partial:
            page.crop((0, 0, page.width, bottom)).save(partial, format="PNG")
    except OSError as error:
        raise ScreenshotError(f"cannot write the screenshot {png}: {error.strerror or error}") from None
