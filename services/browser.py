"""Where Chromium is: one answer for the demo capture (``services.capture``) and the browser tests.

In the order ``.ci/run`` looks: ``chromium`` on PATH (what it installs when missing), then the other
names, then the packages' known paths (Debian, snap, macOS apps, Windows).
"""

from __future__ import annotations

import os
import shutil

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
CHROMIUM_PATHS = (
    "/usr/bin/chromium",
    "/usr/bin/chromium-browser",
    "/usr/lib/chromium/chromium",
    "/snap/bin/chromium",
    "/usr/bin/google-chrome",
    "/Applications/Chromium.app/Contents/MacOS/Chromium",
    "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
    r"C:\Program Files\Google\Chrome\Application\chrome.exe",
    r"C:\Program Files (x86)\Google\Chrome\Application\chrome.exe",
)
# headless in containers and CI: no sandbox (root), no GPU, /tmp instead of a small /dev/shm
CHROME_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"]


def find_chromium(explicit: str | None = None) -> str | None:
    """``explicit`` when it runs, else a Chromium or Chrome on PATH, else a known path; None when none is found."""
    if explicit:
        found = shutil.which(explicit)
        return found or (explicit if os.access(explicit, os.X_OK) else None)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return next((p for p in CHROMIUM_PATHS if os.access(p, os.X_OK)), None)
