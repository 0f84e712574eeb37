"""The admin in a real browser: Debian's Chromium (Playwright only drives it; its own
browser download cannot work here and is never run), and logging staff in. The `page`
fixture is in tests/integration/conftest.py."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
# What works in this sandbox: no GPU, no QUIC, and none of Chromium's calls home (the
# closed network refuses them, many at a time).
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PASSWORD = "pw-for-browser-tests-only"


def chromium_path() -> str:
    """Debian's Chromium, or a loud failure: a missing browser must not pass as a skip,
    except on a machine that has no apt-get to install it with."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if shutil.which("apt-get") is None:
        pytest.skip(f"{CHROMIUM} is missing and this machine has no apt-get to install it")
    pytest.fail(f"{CHROMIUM} is missing: scripts/test.sh installs it (apt-get install chromium); did that fail?")


def log_in(page, user) -> None:
    page.goto("/admin/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/")


def assert_styled(page) -> None:
    """The admin's CSS loaded: the header has the admin's colours, not the browser's
    default transparent background."""
    background = page.eval_on_selector("#header", "e => getComputedStyle(e).backgroundColor")
    assert background not in ("", "rgba(0, 0, 0, 0)", "transparent"), background
