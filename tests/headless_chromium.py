"""Real headless Chromium (Debian ``chromium`` + ``chromedriver``) driven by selenium, for the HTML page tests."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run")


@contextmanager
def chromium(profile_dir: str | Path):
    """A selenium Chrome driver on the system's ``chromium``, its user data in ``profile_dir``; quit on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for flag in (*FLAGS, f"--user-data-dir={profile_dir}"):
        opts.add_argument(flag)
    opts.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
