"""filter.py --format html: the report's content, and the page in a real headless Chromium."""

from __future__ import annotations

import io
import os
import random
import re
import shutil
import tempfile

import matplotlib.image
import pytest
from conftest import run_script
from study_data import NAMES, study_records, write_log

from cool_runner.logs.report import html_report

HOSTILE = "</script><script>window.pwned = 1</script>"


def report_records() -> list[dict]:
    """The study, a sweep that makes the records table longer than one page, and a record trying to inject."""
    rng = random.Random(3)
    sweep = [{"Name": "sweep", "sparsity": round(rng.random(), 3), "ACC": round(rng.random(), 4), "STATUS": "done"}
             for _ in range(80)]
    hostile = {"Name": HOSTILE, "ACC": 0.5, "STATUS": "interrupted", "note": "<img src=x onerror='window.pwned=2'>"}
    return [*study_records(), *sweep, hostile]


# --- the file ---------------------------------------------------------------------------------------------


def test_report_is_self_contained_with_summary_failures_and_plot():
    records = study_records()
    page = html_report(records, plot="ACC", x="sparsity", group_by=["Name"], agg=["ACC"],
                       sources=["logs/a.yaml", "logs/b.yaml"], loaded=40)
    # Nothing is fetched: no external scripts, styles, images or links, and a policy that forbids them.
    assert not re.search(r"""<(script|img|link|iframe)[^>]*\s(src|href)\s*=""", page)
    assert "default-src 'none'" in page and page.count("<svg") == 1
    assert "<title>cool-runner report: logs/a.yaml and 1 more</title>" in page
    assert "37 <small>of 40 loaded</small>" in page
    assert '<li class="status status-done">done <b>36</b></li>' in page
    assert '<li class="status status-failed">failed <b>1</b></li>' in page
    # 10:00 to 16:00:01.5 (the failed run, the last to start), all in UTC+01:00; 36 runs of 300 s plus 1.5 s.
    assert "<p class='big'>6 h 0 min</p>" in page and "2026-11-29 10:00 → 16:00" in page and "UTC+01:00" in page
    assert "compute time 3 h 0 min" in page
    assert "gpu-1 <b>18</b>" in page and "gpu-3 <b>1</b>" in page
    assert "ValueError: sparsity &lt;0.9&gt; is too high" in page and "<summary>traceback</summary>" in page
    assert 'id="groups-data"' in page and 'id="records-data"' in page


def test_report_without_times_or_hosts_says_so():
    page = html_report([{"Name": "a", "ACC": 1.0}])
    assert "not recorded <small>(no TIME_STARTED in the records)</small>" in page
    assert "<h3>Hosts</h3><p>not recorded</p>" in page and "Failed experiments" not in page


def test_values_cannot_break_out_of_the_page():
    page = html_report([{"Name": HOSTILE, "x": float("nan"), "y": [1, 2]}])
    assert HOSTILE not in page and "\\u003c/script>" in page


# --- in Chromium ------------------------------------------------------------------------------------------


def _need(what: str) -> None:
    """Missing browser pieces skip the tests on a developer's machine, and fail them in CI."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} (CI installs chromium and chromium-driver with apt-get in .ci/run)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _need("selenium is not installed (pip install -e '.[test]')")
    binary = next((shutil.which(n) for n in ("chromium", "chromium-browser") if shutil.which(n)), None)
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        _need("Chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    profile = tempfile.mkdtemp(prefix="cool-runner-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1300,1000"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def report_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("report")
    log = write_log(folder / "log.yaml", report_records())
    path = folder / "report.html"
    # A real process: filter.py configures logging, which an in-process run here would leave configured for
    # the tests after this module (a module fixture runs outside each test's logger reset).
    result = run_script("filter.py", log.name, "--plot", "ACC", "--x", "sparsity", "--group-by", "Name", "--agg",
                        "ACC", "--format", "html", "-o", path.name, cwd=folder)
    assert result.returncode == 0 and result.stdout == "report.html\n", result.stderr
    return path.as_uri()


@pytest.fixture
def page(browser, report_url):
    browser.get_log("browser")  # forget what earlier pages printed
    browser.get(report_url)
    return browser


def rows(driver, section="records"):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0] + ' tbody tr'))"
        ".map(tr => Array.from(tr.cells).map(td => td.textContent));", f"#{section}")


def column(driver, name, section="records"):
    headers = driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0] + ' th')).map(th => th.textContent);",
        f"#{section}")
    index = headers.index(name)
    return [row[index] for row in rows(driver, section)]


def header(driver, name, section="records"):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.XPATH, f"//section[@id='{section}']//th[text()='{name}']")


def test_page_loads_without_console_errors(page):
    assert page.title.startswith("cool-runner report: ") and page.title.endswith("log.yaml")
    severe = [entry for entry in page.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []
    assert len(rows(page)) == 100  # first page of 118 records
    assert page.find_element("css selector", "#records .count").text == "118 rows"
    assert page.execute_script("return window.pwned === undefined")  # the hostile record stayed text
    legend = page.execute_script("return Array.from(document.querySelectorAll('#plots svg text'))"
                                 ".map(t => t.textContent)")
    assert {"vgg (n=12)", "res (n=12)", "wrn (n=13)", "sweep (n=80)"} <= set(legend)
    assert column(page, "Name", "groups") == [*NAMES, "sweep", HOSTILE]


def test_clicking_a_header_sorts_the_rows(page):
    before = column(page, "RND_IDX")
    header(page, "ACC").click()
    accs = column(page, "ACC")
    numbers = [float(a) for a in accs if a]
    assert numbers == sorted(numbers) and column(page, "RND_IDX") != before
    assert header(page, "ACC").get_attribute("aria-sort") == "ascending"
    header(page, "ACC").click()
    numbers = [float(a) for a in column(page, "ACC") if a]
    assert numbers == sorted(numbers, reverse=True) and numbers[0] == max(numbers)
    assert header(page, "ACC").get_attribute("aria-sort") == "descending"
    # The one record without ACC (the failed run) is last in both directions.
    page.find_element("css selector", "#records .pager button:last-child").click()
    assert column(page, "ACC")[-1] == "" and column(page, "STATUS")[-1] == "failed"
    header(page, "Name").click()
    names = column(page, "Name")
    assert names[0] == HOSTILE and names[1] == "res"  # "<" sorts before letters; the page went back to 1


def test_the_text_filter_hides_rows(page):
    from selenium.webdriver.support.ui import WebDriverWait

    box = page.find_element("css selector", "#records input.filter")
    box.send_keys("RES gpu-1")  # words that must all appear, in any case
    WebDriverWait(page, 10).until(lambda d: d.find_element("css selector", "#records .count").text != "118 rows")
    assert column(page, "Name") == ["res"] * 6 and column(page, "HOST") == ["gpu-1"] * 6
    assert page.find_element("css selector", "#records .count").text == "6 of 118 rows"
    box.clear()
    box.send_keys("failed")
    WebDriverWait(page, 10).until(lambda d: d.find_element("css selector", "#records .count").text == "1 of 118 rows")
    assert column(page, "ERROR") == ["ValueError: sparsity <0.9> is too high"]
    box.clear()
    box.send_keys("no such text")
    WebDriverWait(page, 10).until(lambda d: d.find_element("css selector", "#records .count").text == "0 of 118 rows")
    assert rows(page) == [] and "no rows match" in page.find_element("css selector", "#records .pager").text


def test_a_screenshot_is_not_blank(page):
    image = matplotlib.image.imread(io.BytesIO(page.get_screenshot_as_png()))
    assert image.shape[0] >= 600 and image.shape[1] >= 1000
    pixels = image[:, :, :3]
    assert pixels.std() > 0.05  # not one flat colour
    background = (abs(pixels - pixels[-1, -1]) < 0.02).all(axis=2)
    assert background.mean() < 0.9  # the header, the cards and the plot cover part of the page
