"""``/docs`` works offline: Swagger UI's script, stylesheet and favicon come from the server
itself, and a headless Chromium that can reach nothing but loopback renders the model's routes.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from lepton.serve.app import LeptonApp
from lepton.serve.models import ModelSource
from lepton.serve.options import ServeOptions
from tests.serve.conftest import cnn_runner, run_app

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def docs_server():
    app = LeptonApp([ModelSource("mnist", cnn_runner)], ServeOptions(log_predictions=False))
    with run_app(app) as running:
        yield running


def test_the_docs_page_and_its_assets_are_served_locally(docs_server):
    with docs_server.client() as c:
        page = c.get("/docs")
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href|url)\s*[=:]\s*['"]([^'"]+)['"]""", page.text)
        assert urls and all(u.startswith("/") for u in urls), urls  # nothing from outside
        for url in urls:
            asset = c.get(url)
            assert asset.status_code == 200 and len(asset.content) > 100, url
        assert "SwaggerUIBundle" in c.get("/docs/assets/swagger-ui-bundle.js").text
        redoc = c.get("/redoc").text
        assert "fonts.googleapis" not in redoc and "cdn." not in redoc


def test_swagger_ui_renders_the_model_routes_with_the_network_off(docs_server, tmp_path):
    if CHROMIUM is None:  # CI installs it (scripts/system-deps.sh): missing there is a failure
        message = "chromium is not installed (scripts/system-deps.sh installs it)"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    # Every host but loopback resolves nowhere and goes to a proxy that is not there; Chromium
    # never proxies loopback, so only the server under test can answer.
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--proxy-server=http://127.0.0.1:9",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
         "--virtual-time-budget=15000", "--dump-dom", f"{docs_server.url}/docs"],
        check=True, capture_output=True, text=True, timeout=120).stdout
    # the raw page holds none of these: Swagger UI's script ran and read /openapi.json
    assert 'class="swagger-ui"' in dom
    for path in ("/v2/models/{name}/infer", "/v2/models/{name}/versions/{version}/infer",
                 "/v1/models/{name}/predict", "/v1/feedback", "/metrics"):
        assert path in dom, path
    assert "Lepton model server" in dom
