"""The explainer's index.html in a real browser: headless Chromium (Debian's chromium +
chromium-driver) through selenium, served by a local http.server on 127.0.0.1.

In CI (``$CI`` set) this test must run: it fails, not skips, when Chromium is missing.
"""
from __future__ import annotations

import functools
import http.server
import os
import shutil
import tempfile
import threading
from pathlib import Path

import pytest

from ogclip_utils import explain

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or "")
                 if p and Path(p).exists()), None)
DRIVER = next((p for p in ("/usr/bin/chromedriver", shutil.which("chromedriver") or "") if p and Path(p).exists()), None)
HOSTILE = "<img src=x onerror=alert(1)>"

if not os.environ.get("CI") and (CHROMIUM is None or DRIVER is None):
    pytest.skip("chromium / chromedriver not installed (apt-get install chromium chromium-driver); "
                "CI installs them and runs this test", allow_module_level=True)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    from test_explain import fake_result  # tests/ is on sys.path (rootdir conftest)

    out = tmp_path_factory.mktemp("site")
    res = fake_result()
    res.dense.classes = ["background", "red square", HOSTILE]
    explain.explain(res, out, title="browser test")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(out)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    assert CHROMIUM and DRIVER, "CI needs Debian's chromium and chromium-driver (/usr/bin/chromium, /usr/bin/chromedriver)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ogclip-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                "--window-size=1200,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def _active(driver) -> str:
    shown = [s.get_attribute("id") for s in driver.find_elements("css selector", "section.step") if s.is_displayed()]
    assert len(shown) == 1, shown
    return shown[0]


def test_navigation_and_escaping(site, browser):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    browser.get(site)
    assert _active(browser) == "step-1"
    assert "Raw image" in browser.find_element("css selector", "#step-1 h2").text
    img = browser.find_element("css selector", "#step-1 img")
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", img)

    ActionChains(browser).send_keys(Keys.ARROW_RIGHT).perform()
    assert _active(browser) == "step-2"
    ActionChains(browser).send_keys(Keys.ARROW_LEFT).perform()
    assert _active(browser) == "step-1"

    browser.find_element("css selector", 'nav#steps button[data-step="14"]').click()
    assert _active(browser) == "step-14"
    assert "active" in browser.find_element("css selector", 'nav#steps button[data-step="14"]').get_attribute("class")
    browser.find_element("id", "next").click()
    assert _active(browser) == "step-15"
    assert browser.find_element("id", "counter").text == "15 / 18"

    names = [e.text for e in browser.find_elements("css selector", "#stats .class-name")]
    assert HOSTILE in names  # shown as text …
    assert not browser.find_elements("css selector", 'img[src="x"]')  # … not turned into markup
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text
