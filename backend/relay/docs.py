"""``/docs`` that works without internet: Swagger UI from an installed package, not from a CDN.

FastAPI's default page loads Swagger UI from cdn.jsdelivr.net, so on a machine
offline (or behind a strict proxy) ``/docs`` is blank. The ``fastapi-swagger``
package ships a current Swagger UI 5 build (OpenAPI 3.1, which FastAPI emits);
its files are served here under ``/docs/`` and FastAPI's own page builder
points at them. The assets are public, like any static file: the page itself
and ``/openapi.json`` keep the API token's protection.
"""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.responses import HTMLResponse, Response

ASSETS: dict[str, str] = {  # file of fastapi_swagger.resources → its media type
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
ASSET_PATHS = frozenset(f"/docs/{name}" for name in ASSETS)
SWAGGER_PARAMETERS = {"persistAuthorization": True, "filter": True, "displayRequestDuration": True}


def install_docs(app: FastAPI) -> None:
    """``GET /docs`` (the Swagger UI page) and ``GET /docs/{asset}`` on ``app`` (created with ``docs_url=None``)."""
    package = resources.files("fastapi_swagger.resources")
    blobs = {name: (package / name).read_bytes() for name in ASSETS}  # 2 MB, read once

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - API docs",
            swagger_js_url="/docs/swagger-ui-bundle.js",
            swagger_css_url="/docs/swagger-ui.css",
            swagger_favicon_url="/docs/favicon-32x32.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    def asset_route(name: str) -> None:
        async def asset() -> Response:
            return Response(blobs[name], media_type=ASSETS[name], headers={"Cache-Control": "public, max-age=86400"})

        app.add_api_route(f"/docs/{name}", asset, methods=["GET"], include_in_schema=False, name=f"docs-{name}")

    for name in ASSETS:
        asset_route(name)
