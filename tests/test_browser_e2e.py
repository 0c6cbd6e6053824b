"""The MLflow UI in a real browser: a tiny comparison study whose data set carries hostile
texts and labels, served by ``mlflow ui``, opened in headless Chromium.

Needs Debian's ``chromium`` and ``chromium-driver`` (``make test`` installs them when it
runs as root, as CI does) and the ``selenium`` package; without them the test is skipped
and says which is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from servers import free_port
from tracehelp import scratch_store, small_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
HOSTILE_TEXT = "</script><img src=x onerror=alert(1)> & <b>bold</b> \u2028 end"
HOSTILE_LABEL = "<i>neg</i>"
# MLflow's own UI asks for the signed-in user; a server without authentication answers 404.
KNOWN_UI_ERRORS = ("/ajax-api/2.0/mlflow/users/current",)


def _missing() -> str | None:
    if CHROMIUM is None or DRIVER is None:
        return (
            "Chromium not found: install Debian's packages as root "
            "(apt-get install -y chromium chromium-driver; `make test` does this as root)"
        )
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "the selenium package is not installed (pip install -e '.[dev]')"
    return None


pytestmark = [pytest.mark.e2e, pytest.mark.skipif(_missing() is not None, reason=str(_missing()))]


def _suite(folder: Path) -> Path:
    """A two-member suite in local CSV files; one text and one label name are hostile."""
    words = {0: "dull awful boring", 1: "great lovely superb"}
    for member in ("alpha", "beta"):
        for split, n in (("train", 40), ("validation", 10), ("test", 10)):
            rows = ["text,label"]
            for i in range(n):
                label = i % 2
                rows.append(f"{member} {words[label]} item {i},{label}")
            if split == "train" and member == "alpha":
                rows[1] = f'"{HOSTILE_TEXT}",0'
            path = folder / member / f"{split}.csv"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    members = "\n".join(
        f"  {m}:\n    axis: source\n    task: sentiment\n"
        f"    label_names: ['{HOSTILE_LABEL}', positive]\n"
        f"    files: {{train: {m}/train.csv, validation: {m}/validation.csv, "
        f"test: {m}/test.csv}}\n"
        for m in ("alpha", "beta")
    )
    suite = folder / "suite.yaml"
    suite.write_text(f"name: hostile\nmembers:\n{members}", encoding="utf-8")
    return suite


@contextmanager
def mlflow_ui(folder: Path, backend_store_uri: str, timeout_s: float = 60) -> Iterator[str]:
    """``mlflow ui`` on 127.0.0.1 over an existing store; yields its address."""
    port = free_port()
    log = open(folder / "ui.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", backend_store_uri,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow ui did not start: {(folder / 'ui.log').read_text()}")
            time.sleep(0.3)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


def distinct_bytes(png: bytes) -> int:
    """How many distinct byte values the decoded image data of a PNG holds: a blank
    (one-colour) screenshot has a handful, a rendered page hundreds."""
    pos, data = 8, b""
    while pos < len(png):
        length = int.from_bytes(png[pos : pos + 4], "big")
        kind = png[pos + 4 : pos + 8]
        if kind == b"IDAT":
            data += png[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return len(set(zlib.decompress(data)))


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A tiny comparison (alpha, beta, both; 1 seed, 2 epochs) and the UI over its store."""
    from soi_mlflow.data.mixture import MixtureSpec
    from soi_mlflow.studies.single_vs_multi import SingleVsMultiSettings, run

    folder = tmp_path_factory.mktemp("browser")
    with scratch_store(tmp_path_factory, "browser-store") as uri:
        spec = MixtureSpec(str(_suite(folder)), "source", ("alpha", "beta"))
        config = replace(small_config(uri, experiment="browser"), mixture=spec)
        result = run(config, SingleVsMultiSettings(seeds=1))
        with mlflow_ui(folder, uri) as base:
            yield result, base, folder


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,1000"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _open(driver, url: str) -> None:
    """Load ``url`` afresh (the UI ignores a hash change within the same page)."""
    driver.get("about:blank")
    driver.get(url)


def _errors(driver) -> list[str]:
    return [
        e["message"]
        for e in driver.get_log("browser")
        if e["level"] == "SEVERE" and not any(k in e["message"] for k in KNOWN_UI_ERRORS)
    ]


def test_printed_link_opens_the_runs_table_in_the_model_training_view(study, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    result, base, folder = study
    link = next(
        line.split(": ", 1)[1].strip()
        for line in result.ui_command.splitlines()
        if line.strip().startswith("runs table:")
    )
    assert link.startswith("http://127.0.0.1:5000/") and "workflowType=machine_learning" in link
    _open(browser, link.replace("http://127.0.0.1:5000", base))
    wait = WebDriverWait(browser, 30)
    parent = "compare-source-alpha+beta"
    wait.until(ec.presence_of_element_located((By.PARTIAL_LINK_TEXT, parent)))
    body = browser.find_element(By.TAG_NAME, "body").text
    assert parent in body and "Model training" in body
    shot = browser.get_screenshot_as_png()
    (folder / "runs_table.png").write_bytes(shot)
    assert distinct_bytes(shot) > 50
    assert _errors(browser) == []


def test_parent_shows_a_figure_and_its_summary_table(study, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    result, base, folder = study
    run = f"{base}/#/experiments/1/runs/{result.parent_run_id}/artifacts"
    _open(browser, f"{run}/figures/accuracy_single_vs_multi.png?workflowType=machine_learning")
    wait = WebDriverWait(browser, 30)
    image = wait.until(
        lambda d: next(
            (
                i
                for i in d.find_elements(By.TAG_NAME, "img")
                if d.execute_script("return arguments[0].naturalWidth", i) > 300
            ),
            None,
        )
    )
    assert distinct_bytes(image.screenshot_as_png) > 50
    _open(browser, f"{run}/tables/summary.json?workflowType=machine_learning")
    cells = wait.until(
        lambda d: (
            [c.text for c in d.find_elements(By.CSS_SELECTOR, "[role=cell], [role=gridcell], td")]
            or None
        )
    )
    assert "alpha" in cells and "beta" in cells
    (folder / "parent_table.png").write_bytes(browser.get_screenshot_as_png())
    assert _errors(browser) == []


def test_child_data_map_shows_hovered_examples_literally(study, browser) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    result, base, folder = study
    child = result.single["alpha"][0]
    _open(
        browser,
        f"{base}/#/experiments/1/runs/{child}/artifacts/html/datamap_train.html"
        "?workflowType=machine_learning",
    )
    wait = WebDriverWait(browser, 30)
    frame = wait.until(lambda d: d.find_elements(By.TAG_NAME, "iframe") or None)[0]
    assert frame.get_attribute("sandbox") == "allow-scripts"
    browser.switch_to.frame(frame)
    points = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "circle.pt") or None)
    assert len(points) == 40  # every training example of alpha
    index = browser.execute_script(
        "return SOI.data.cols.text.findIndex((t) => t !== null && t.startsWith('</script>'))"
    )
    hostile = browser.find_element(By.CSS_SELECTOR, f'circle.pt[data-i="{index}"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", hostile)
    ActionChains(browser).move_to_element(hostile).perform()
    tip = browser.find_element(By.ID, "soi-tip")
    wait.until(lambda d: tip.is_displayed())
    assert "</script><img src=x onerror=alert(1)> & <b>bold</b>" in tip.text
    assert HOSTILE_LABEL in tip.text and "alpha" in tip.text
    assert browser.execute_script("return document.querySelectorAll('img, b, i').length") == 0
    browser.switch_to.default_content()
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 - the hostile onerror=alert(1) never ran
    shot = browser.get_screenshot_as_png()
    (folder / "data_map.png").write_bytes(shot)
    assert distinct_bytes(shot) > 50
    assert _errors(browser) == []


def test_parent_transitions_list_a_clicked_cell_literally(study, browser) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    result, base, folder = study
    _open(
        browser,
        f"{base}/#/experiments/1/runs/{result.parent_run_id}/artifacts/html/"
        "transitions_alpha.html?workflowType=machine_learning",
    )
    wait = WebDriverWait(browser, 30)
    frame = wait.until(lambda d: d.find_elements(By.TAG_NAME, "iframe") or None)[0]
    browser.switch_to.frame(frame)
    cells = wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "td.cell") or None)
    assert sum(int(c.text) for c in cells) == 40  # alpha's examples, matched by id
    a, b = browser.execute_script(
        "const c = SOI.data.cols, k = SOI.data.subsets.length;"
        "const code = c.cell[c.text.findIndex((t) => t !== null && t.startsWith('</script>'))];"
        "return [SOI.data.subsets[Math.floor(code / k)], SOI.data.subsets[code % k]];"
    )
    browser.find_element(By.CSS_SELECTOR, f'td.cell[data-a="{a}"][data-b="{b}"]').click()
    listed = browser.find_element(By.ID, "soi-list").text
    assert "</script><img src=x onerror=alert(1)> & <b>bold</b>" in listed
    assert HOSTILE_LABEL in listed
    assert browser.execute_script("return document.querySelectorAll('img, b, i').length") == 0
    browser.switch_to.default_content()
    (folder / "transitions.png").write_bytes(browser.get_screenshot_as_png())
    assert _errors(browser) == []
