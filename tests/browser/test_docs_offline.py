"""``/docs`` renders in a browser that cannot reach the internet (every non-local request is refused)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser.chromium import shot
from tests.stack import Server, isolated_settings, start_relay

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def relay(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("docs")
    with start_relay(isolated_settings(redis_url, data), log_dir=data) as server:
        yield server


def test_the_api_docs_render_offline(relay: Server, page: Any) -> None:
    refused: list[str] = []

    def only_local(route: Any) -> None:
        if route.request.url.startswith(relay.url):
            route.continue_()
        else:
            refused.append(route.request.url)
            route.abort()

    page.route("**/*", only_local)
    page.goto(relay.url + "/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/api/v1/candles/{symbol}" in [p.replace("\u200b", "") for p in paths]
    assert page.locator(".version-stamp, .title .version").count() >= 1
    shot(page, "api-docs-offline")
    assert refused == []  # it never even tried the internet
