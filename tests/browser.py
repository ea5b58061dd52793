"""A real headless browser for the report tests: Debian's Chromium driven by its chromedriver through
Selenium (WebDriver). `.ci/run` installs both when they are missing; a test that needs them skips, with the
reason, only where they truly cannot be installed.

`inspect_page(path)` loads one HTML file from disk, with networking of the browser itself turned off, and
returns what a reader would see: console errors, where an element sits in the first screen, the widest
table against the page, and whether a script injected through user text ran."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

# A payload for user strings (variant, method, group or dataset names). If the report failed to escape it,
# the page would set this global.
INJECTED_FLAG = "__slimlab_injected"
INJECTION = f"<script>window.{INJECTED_FLAG}=1</script><img src=x onerror=window.{INJECTED_FLAG}=1>"

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
)


def _binaries() -> tuple[str, str] | None:
    candidates = ("/usr/lib/chromium/chromium", shutil.which("chromium"), shutil.which("chromium-browser"))
    browser = next((p for p in candidates if p and Path(p).exists()), None)
    driver = shutil.which("chromedriver") or (
        "/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").exists() else None
    )
    return (browser, driver) if browser and driver else None


def require_browser() -> tuple[str, str]:
    found = _binaries()
    if found is None:
        pytest.skip("Chromium and chromedriver are not installed (.ci/run installs Debian's chromium)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[dev]')")
    return found


@dataclass(frozen=True)
class PageView:
    console_errors: list[str]
    in_first_screen: dict[str, bool]  # selector -> its first match is (at least partly) in the first screen
    page_width: int
    widest_table: int  # the largest right edge of any table's box, in CSS pixels
    document_scroll_width: int
    injected_ran: bool
    script_count: int
    tables: int
    hover_points: int


def inspect_page(
    path: Path, selectors: tuple[str, ...] = (), width: int = 1280, height: int = 800, actions: str = ""
) -> PageView:
    """Load `path` in headless Chromium at width x height and measure it. `actions` is JavaScript run
    before the measurement (for example a click on a table header)."""
    browser, driver_path = require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    profile = tempfile.mkdtemp(prefix="slimlab-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        driver.set_page_load_timeout(60)
        driver.get(Path(path).resolve().as_uri())
        if actions:
            driver.execute_script(actions)
        measured = driver.execute_script(
            """
            const sel = arguments[0];
            const vh = window.innerHeight;
            const first = {};
            for (const s of sel) {
              const el = document.querySelector(s);
              if (!el) { first[s] = false; continue; }
              const r = el.getBoundingClientRect();
              first[s] = r.height > 0 && r.top < vh && r.bottom > 0;
            }
            let widest = 0;
            for (const t of document.querySelectorAll('table')) {
              widest = Math.max(widest, Math.ceil(t.getBoundingClientRect().right));
            }
            return {
              first: first,
              pageWidth: document.documentElement.clientWidth,
              widest: widest,
              scrollWidth: document.documentElement.scrollWidth,
              injected: window[arguments[1]] === 1,
              scripts: document.querySelectorAll('script').length,
              tables: document.querySelectorAll('table').length,
              points: document.querySelectorAll('figure.plot .pt').length,
            };
            """,
            list(selectors),
            INJECTED_FLAG,
        )
        errors = [e["message"] for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return PageView(
        console_errors=errors,
        in_first_screen=measured["first"],
        page_width=measured["pageWidth"],
        widest_table=measured["widest"],
        document_scroll_width=measured["scrollWidth"],
        injected_ran=measured["injected"],
        script_count=measured["scripts"],
        tables=measured["tables"],
        hover_points=measured["points"],
    )


def run_script(path: Path, script: str, width: int = 1280, height: int = 800):
    """Load `path` and return the value of `script` (JavaScript with a `return`)."""
    browser, driver_path = require_browser()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--window-size={width},{height}")
    profile = tempfile.mkdtemp(prefix="slimlab-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        driver.get(Path(path).resolve().as_uri())
        return driver.execute_script(script)
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
