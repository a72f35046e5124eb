"""End to end in a real headless Chromium (Debian's chromium + chromedriver, driven by Selenium):
log in as a rater, rate one item with the keyboard and one with the mouse, check the store.

`.ci/run` installs chromium; where it is missing the test is skipped with the reason. The
screenshot is kept in $FACTORY_ARTIFACTS (default: the test's tmp folder)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from factory.store import Store
from tests.helpers import free_port

pytestmark = pytest.mark.slow
EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")




@pytest.fixture
def served(tmp_path):
    if not (CHROMIUM and DRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    pytest.importorskip("selenium", reason="selenium is not installed (dev extra)")
    for name in ("campaign.yaml", "campaign_items.jsonl"):
        shutil.copy(EXAMPLES / name, tmp_path / name)
    port, store = free_port(), tmp_path / "store"
    server = subprocess.Popen(
        [sys.executable, "-m", "factory.cli", "annotate", "serve", "--campaign", str(tmp_path / "campaign.yaml"),
         "--store", str(store), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(base + "/login", timeout=2).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "the app did not start"
            time.sleep(0.3)
    try:
        yield base, store
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1280,1500"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def current_item(driver) -> str:
    return driver.find_element("id", "rate-form").get_attribute("action").rsplit("/", 1)[-1]


def test_rate_with_keyboard_and_mouse(served, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    base, store = served
    browser.get(base + "/login")
    browser.find_element("id", "token").send_keys("alice-demo-token", Keys.ENTER)
    assert "of" in browser.find_element("tag name", "body").text  # progress, e.g. "1 of 4"

    # Item 1, keyboard only: each key sets the highlighted row and moves on; the last row's key
    # focuses the justification; Ctrl+Enter submits.
    first = current_item(browser)
    rows = browser.find_elements("css selector", ".scale")
    keys = ActionChains(browser)
    for _ in rows[:-1]:  # every attribute row: 3
        keys.send_keys("3")
    keys.send_keys("5").perform()  # preference: the 5th option, +1 (response 2 slightly better)
    browser.switch_to.active_element.send_keys("Response 2 is a little clearer.")
    ActionChains(browser).key_down(Keys.CONTROL).send_keys(Keys.ENTER).key_up(Keys.CONTROL).perform()
    time.sleep(1.0)
    second = current_item(browser)
    assert second != first

    # Item 2, mouse only: click a value in every row, write the justification, click Submit.
    for row in browser.find_elements("css selector", ".scale"):
        row.find_elements("css selector", ".options label")[1].click()  # what a person clicks: the label
    browser.find_element("id", "justification").send_keys("Response 1 is much better.")
    artefacts = Path(os.environ.get("FACTORY_ARTIFACTS", store.parent))
    artefacts.mkdir(parents=True, exist_ok=True)
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(artefacts / "rating-page.png"))
    browser.find_element("id", "submit").click()
    time.sleep(1.0)

    ratings = Store(store).sql(
        "SELECT parent_id, helpfulness, correctness FROM ratings WHERE rater = 'alice' ORDER BY parent_id")
    preferences = Store(store).sql(
        "SELECT preference_strength, justification FROM helpsteer_preferences WHERE rater = 'alice' "
        "ORDER BY preference_strength")
    assert ratings.height == 4  # two items x two responses
    assert sorted(set(ratings["helpfulness"].to_list())) == [1, 3]
    assert preferences["preference_strength"].to_list() == [-2, 1]
    assert preferences["justification"].to_list() == ["Response 1 is much better.", "Response 2 is a little clearer."]
    assert (artefacts / "rating-page.png").stat().st_size > 10_000
