"""The episode page is self-contained and works in headless Chromium: frames render, the
scrubber changes the frame and moves the plot cursors, findings are on the timeline.

Needs the Debian packages chromium and chromium-driver (scripts/setup.sh installs them; the test
fails without them). Set
VLA_VIEWER_SCREENSHOT=path.png to save a screenshot of the page.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile

import numpy as np
import pytest

from vla.data.audit import synthetic as S
from vla.data.viewer import build_page

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    base = tmp_path_factory.mktemp("view")
    eps = S.dataset(8, seed=4)
    # a frozen camera in episode 1 so the page has a finding on its timeline
    eps[1].images = eps[1].images.copy()
    eps[1].images[30:45] = eps[1].images[30]
    root = S.write(eps, base / "ds")
    out = base / "page.html"
    html = build_page(root, episode=1, out=out)
    return out, html


def test_page_is_self_contained(page):
    _, html = page
    assert "data:image/jpeg;base64," in html or '"frames":{"cam":["' in html
    assert not re.search(r"""(src|href)\s*=\s*["']https?://""", html)
    assert "modality.frozen_image" in html
    assert "synthetic.reacher" in html  # provenance


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)):
        pytest.fail(f"{CHROMIUM} / {DRIVER} missing: run scripts/setup.sh (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="vla-chromium-")
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1400,900"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    yield drv
    drv.quit()
    shutil.rmtree(profile, ignore_errors=True)


def test_page_in_chromium(page, browser):
    from selenium.webdriver.common.by import By

    out, _ = page
    browser.get(out.as_uri())
    img = browser.find_element(By.CSS_SELECTOR, "#cams img")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 0
    src0 = img.get_attribute("src")
    cursor = browser.find_element(By.ID, "plot-action-cursor")
    x0 = float(cursor.get_attribute("x1"))
    marks = browser.find_elements(By.CSS_SELECTOR, "#timeline .finding-mark")
    assert any(m.get_attribute("data-type") == "modality.frozen_image" for m in marks)
    # move the scrubber like a user: keyboard on the focused range input
    from selenium.webdriver.common.keys import Keys

    scrub = browser.find_element(By.ID, "scrubber")
    scrub.click()
    for _ in range(10):
        scrub.send_keys(Keys.ARROW_RIGHT)
    frame = int(browser.execute_script("return window.viewer.frame"))
    assert frame > 0
    assert img.get_attribute("src") != src0
    x1 = float(cursor.get_attribute("x1"))
    assert x1 > x0
    assert float(browser.find_element(By.ID, "plot-state-cursor").get_attribute("x1")) == pytest.approx(x1, abs=0.2)
    assert browser.execute_script("return arguments[0].naturalWidth", img) > 0
    # jump to the end through the input event, as a drag would
    browser.execute_script("const s=document.getElementById('scrubber'); s.value=s.max;"
                           "s.dispatchEvent(new Event('input'));")
    assert float(cursor.get_attribute("x1")) > x1
    # play advances frames
    browser.execute_script("window.viewer.setFrame(0)")
    browser.find_element(By.ID, "play").click()
    browser.implicitly_wait(0)
    import time

    time.sleep(0.5)
    assert int(browser.execute_script("return window.viewer.frame")) > 0
    shot = os.environ.get("VLA_VIEWER_SCREENSHOT")
    if shot:
        browser.execute_script("window.viewer.setFrame(38)")
        browser.save_screenshot(shot)
    logs = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"] if hasattr(browser, "get_log") else []
    assert not logs, logs
    assert np.isfinite(x1)


HOSTILE_TASKS = ["<!--<script>", "</script><script>window.pwned = 1</script>", "&lt;b&gt; & <b>bold</b>"]


@pytest.mark.parametrize("task", HOSTILE_TASKS)
def test_hostile_instruction_renders_as_text(tmp_path, browser, task):
    """A task that would comment out or end an inline script: the page still runs and shows it as text."""
    from selenium.webdriver.common.by import By

    root = S.write(S.dataset(2, seed=1, tasks=[task]), tmp_path / "ds")
    out = tmp_path / "page.html"
    build_page(root, episode=0, out=out, run_audit=False)
    browser.get(out.as_uri())
    assert browser.find_element(By.ID, "instruction").text == task
    assert browser.execute_script("return typeof window.viewer") == "object"  # the page's script ran
    assert browser.execute_script("return window.pwned === undefined")
