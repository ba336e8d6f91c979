"""Real browser: JupyterLab + headless Chromium run Chapter 1 and move the explorer's slider;
a scratch notebook shows Chapter 3's unit explorer and Chapter 8's capstone widget, and moves
their controls.

The test starts JupyterLab from this virtualenv on a free loopback port with a random token,
serving a scratch folder that holds a copy of ``solutions/01_convolution_cost.ipynb`` (with
``FAST = True``, so the run is short); opens it in Debian's Chromium driven by Playwright
(``executable_path``: Playwright never downloads a browser here); runs all cells; waits for the
explorer; moves the resolution slider ``H`` from 56 to 64 with the keyboard; checks that the
MACs in the explorer's table become ``64·64·3·3·64·64`` (and agree with
:func:`course.cost.conv2d`); saves a screenshot (its path is printed). The server is stopped by
its own PID. The second test moves Chapter 3's version dropdown and resolution slider and checks
that the table shows no "≠" (formula and counter agree on every field the formula defines), and
checks that Chapter 8's capstone widget shows no broken image before its first measurement and a
real plot after one. JupyterLab runs with the course's settings (``jupyter-config/``, as
``make lab``): no "official Jupyter news" pop-up.

Needs ``chromium`` (``apt-get install chromium``; ``.ci/run`` installs it) and the Python
package ``playwright`` (the ``test`` extra). Skipped, saying why, only when they are missing.
"""

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "solutions" / "01_convolution_cost.ipynb"
CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"), "/usr/bin/chromium")
                 if p and Path(p).exists()), None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]

try:
    import playwright.sync_api  # noqa: F401

    HAVE_PLAYWRIGHT = True
except ImportError:  # pragma: no cover
    HAVE_PLAYWRIGHT = False

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium; "
                                                ".ci/run does it): the real-browser test needs it"),
    pytest.mark.skipif(not HAVE_PLAYWRIGHT, reason="the Python package playwright is not installed "
                                                   "(pip install -e '.[test]' installs it)"),
    pytest.mark.skipif(not NOTEBOOK.exists(), reason="no Chapter 1 solution notebook"),
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def explorers_notebook(folder: Path) -> Path:
    """A scratch notebook with Chapter 3's unit explorer and Chapter 8's capstone widget."""
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("from course.chapters import ch03\nch03.unit_explorer(budget_s=0.05)"),
        nbformat.v4.new_code_cell("from course.chapters import ch08\nch08.capstone_widget(fast=True, budget_s=0.05)"),
    ]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "explorers.ipynb"
    nbformat.write(nb, path)
    return path


def fast_copy(folder: Path) -> Path:
    """A scratch copy of Chapter 1 with ``FAST = True`` in its parameters cell."""
    nb = json.loads(NOTEBOOK.read_text())
    for cell in nb["cells"]:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            assert "FAST = False" in source
            cell["source"] = source.replace("FAST = False", "FAST = True")
    path = folder / NOTEBOOK.name
    path.write_text(json.dumps(nb))
    return path


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on 127.0.0.1 serving a scratch folder; yields (url, token, folder)."""
    root = tmp_path / "lab"
    root.mkdir()
    fast_copy(root)
    explorers_notebook(root)
    port, token = free_port(), secrets.token_hex(24)
    env = dict(os.environ)
    for name in ("JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR"):
        env[name] = str(tmp_path / name.lower())
    env["JUPYTERLAB_WORKSPACES_DIR"] = str(tmp_path / "workspaces")
    env["MPLBACKEND"] = "Agg"
    env["JUPYTER_CONFIG_PATH"] = str(ROOT / "jupyter-config")  # the course's JupyterLab settings, as `make lab`
    log = (tmp_path / "jupyter.log").open("w")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", "--LabApp.expose_app_in_browser=True",
         f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}", "--LabApp.extension_manager=readonly"]
        + (["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),  # CI containers run as root
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as reply:
                    if reply.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail("JupyterLab did not start:\n" + (tmp_path / "jupyter.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url, token, root
    finally:
        server.send_signal(signal.SIGTERM)  # its own PID: no shell in between
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
        log.close()


def drive(page, url, token, before, after, shot):
    """Open the notebook, run all cells, move H from 56 to 64, check the MACs, screenshot."""
    from playwright.sync_api import expect

    page.goto(f"{url}/lab/tree/{NOTEBOOK.name}?token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function("() => window.jupyterapp && document.querySelector('#jp-main-statusbar')"
                           " && document.querySelector('#jp-main-statusbar').innerText.includes('Idle')",
                           timeout=90_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    # The explorer: its title, then its table with the default configuration's MACs.
    title = page.locator(".jp-OutputArea h4", has_text="the cost of one convolution")
    title.wait_for(timeout=240_000)
    title.scroll_into_view_if_needed()
    explorer = title.locator("xpath=ancestor::div[contains(@class, 'widget-vbox')][1]")
    table = explorer.locator("table").first
    table.wait_for()
    expect(table).to_contain_text(f"{before:,}", timeout=60_000)  # re-queried: the widget replaces its table
    slider = explorer.locator(".widget-hslider", has_text="H").first
    slider.scroll_into_view_if_needed()
    handle = slider.locator(".noUi-handle").first
    handle.focus()
    handle.press("ArrowRight")
    expect(slider.locator(".widget-readout")).to_have_text("64", timeout=10_000)
    expect(table).to_contain_text(f"{after:,}", timeout=60_000)
    text = table.inner_text()
    macs_row = next(line for line in text.splitlines() if line.startswith("MACs"))  # formula, counted
    assert f"{after:,}" in macs_row and f"{before:,}" not in macs_row, macs_row
    assert "≠" not in text  # formula and counter agree
    expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=60_000)  # plot redrawn
    assert page.get_by_text("official Jupyter news").count() == 0  # the course's settings turn it off
    explorer.scroll_into_view_if_needed()
    page.screenshot(path=str(shot), full_page=False)


def test_explorer_slider_updates_macs_in_chromium(lab, tmp_path, capsys):
    from playwright.sync_api import sync_playwright

    from course.cost import conv2d

    url, token, root = lab
    before = 56 * 56 * 3 * 3 * 64 * 64  # H = W = 56, K = 3, N = M = 64, stride 1, groups 1
    after = 64 * 64 * 3 * 3 * 64 * 64  # one step (8) to the right
    assert conv2d(H=64, W=64, N=64, M=64, K=3, padding=1, bias=False).macs == after
    shot = tmp_path / "chapter1_explorer.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            try:
                drive(page, url, token, before, after, shot)
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                text = page.locator(".jp-Notebook").inner_text(timeout=5_000)[-4000:]
                raise AssertionError(f"see {tmp_path / 'failure.png'}; the notebook reads:\n{text}")
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    with capsys.disabled():
        print(f"\nscreenshot of the Chapter 1 explorer after moving H to 64: {shot}")
    # The scratch copy was served; the course's own notebook is untouched.
    assert (root / NOTEBOOK.name).exists()


def open_and_run(page, url, token, name):
    page.goto(f"{url}/lab/tree/{name}?token={token}")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    page.wait_for_function("() => window.jupyterapp && document.querySelector('#jp-main-statusbar')"
                           " && document.querySelector('#jp-main-statusbar').innerText.includes('Idle')",
                           timeout=90_000)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")


BROKEN_IMAGES = """(root) => [...root.querySelectorAll('img')].filter(
    img => img.offsetParent !== null && (!img.complete || img.naturalWidth === 0)).length"""


def drive_explorers(page, url, token, shot):
    from playwright.sync_api import expect

    from course.cost.shuffle import shuffle_v2_unit

    open_and_run(page, url, token, "explorers.ipynb")
    # Chapter 3: the unit explorer at its defaults, then V2, then a larger map.
    title = page.locator(".jp-OutputArea h4", has_text="one ShuffleNet unit")
    title.wait_for(timeout=240_000)
    unit = title.locator("xpath=ancestor::div[contains(@class, 'widget-vbox')][1]")
    table = unit.locator("table").first
    table.wait_for()
    assert "≠" not in table.inner_text()
    unit.locator(".widget-dropdown", has_text="version").locator("select").select_option("V2")
    expected = shuffle_v2_unit(28, 28, 240, 240, 1).macs
    expect(table).to_contain_text(f"{expected:,}", timeout=60_000)
    slider = unit.locator(".widget-hslider", has_text="H").first
    handle = slider.locator(".noUi-handle").first
    handle.focus()
    handle.press("ArrowRight")
    expect(slider.locator(".widget-readout")).to_have_text("35", timeout=10_000)
    expected = shuffle_v2_unit(35, 35, 240, 240, 1).macs
    expect(table).to_contain_text(f"{expected:,}", timeout=60_000)
    text = table.inner_text()
    assert "≠" not in text, text  # formula and counter agree on every field the formula defines
    assert unit.evaluate(BROKEN_IMAGES) == 0
    # Chapter 8: the capstone widget, no broken image before its first run; then measure.
    capstone = page.locator(".jp-OutputArea", has_text="Capstone: published top-1").last
    capstone.wait_for(timeout=120_000)
    capstone.scroll_into_view_if_needed()
    assert capstone.evaluate(BROKEN_IMAGES) == 0
    capstone.locator(".widget-dropdown", has_text="backend").locator("select").select_option("eager")
    capstone.locator(".widget-dropdown", has_text="batch").locator("select").select_option("1")
    capstone.get_by_role("button", name="measure").click()
    expect(capstone).to_contain_text("measured in", timeout=600_000)
    expect(capstone).to_contain_text("Pareto front", timeout=10_000)
    images = capstone.locator("img")
    assert images.count() >= 1 and capstone.evaluate(BROKEN_IMAGES) == 0
    assert images.first.evaluate("img => img.naturalWidth") > 100  # a real plot
    assert "- -" not in capstone.inner_text()
    assert page.get_by_text("official Jupyter news").count() == 0
    page.screenshot(path=str(shot), full_page=False)


def test_chapter3_and_chapter8_explorers_in_chromium(lab, tmp_path, capsys):
    from playwright.sync_api import sync_playwright

    url, token, root = lab
    shot = tmp_path / "explorers.png"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            try:
                drive_explorers(page, url, token, shot)
            except Exception:
                page.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
                text = page.locator(".jp-Notebook").inner_text(timeout=5_000)[-4000:]
                raise AssertionError(f"see {tmp_path / 'failure.png'}; the notebook reads:\n{text}")
        finally:
            browser.close()
    assert shot.stat().st_size > 10_000
    with capsys.disabled():
        print(f"\nscreenshot of the Chapter 3 and Chapter 8 explorers: {shot}")
