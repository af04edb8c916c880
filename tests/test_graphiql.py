"""The GraphiQL page loads nothing from the internet: every asset is vendored under ``app/static/graphiql``.

Self-contained: these tests use no fixture, no database and no server.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

from app.graphiql import (
    GRAPHIQL_ASSET_INTEGRITY,
    GRAPHIQL_STATIC_DIR,
    GRAPHIQL_STATIC_PREFIX,
    render_graphiql_html,
)

# URLs that are names, not resources the browser fetches (the SVG namespace in the inline data: favicon).
_NOT_FETCHED_URLS = frozenset({"http://www.w3.org/2000/svg"})
_URL = re.compile(r"""https?://[^\s"'<>`)%]+""", re.IGNORECASE)
_REFERENCE = re.compile(r"""\b(src|href)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))""", re.IGNORECASE)


def _references(page: str) -> list[tuple[str, str]]:
    """All ``(attribute, value)`` pairs of ``src=``/``href=`` attributes in ``page``."""
    return [
        (m.group(1).lower(), m.group(2) or m.group(3) or m.group(4) or "") for m in _REFERENCE.finditer(page)
    ]


def _fetched_references(page: str) -> list[str]:
    """``src``/``href`` values the browser fetches: inline ``data:`` URIs are not fetched."""
    return [value for _, value in _references(page) if not value.strip().lower().startswith("data:")]


def test_K3_graphiql_page_uses_only_local_assets() -> None:
    page = render_graphiql_html()
    external = sorted({url for url in _URL.findall(page) if url not in _NOT_FETCHED_URLS})
    assert external == [], f"external URLs in the GraphiQL page: {external}"
    assert "unpkg" not in page.lower()
    assert "cdn" not in page.lower()
    assert "//" not in " ".join(_fetched_references(page)), "protocol-relative or absolute URL in src/href"


def test_K3_graphiql_page_references_exist_in_static_dir() -> None:
    page = render_graphiql_html()
    references = _fetched_references(page)
    # React, ReactDOM, js-cookie, GraphiQL JS + CSS, explorer plugin JS + CSS.
    assert len(references) == 7, references
    prefix = GRAPHIQL_STATIC_PREFIX.rstrip("/") + "/"
    for reference in references:
        assert reference.startswith(prefix), f"{reference!r} is not under {GRAPHIQL_STATIC_PREFIX}"
        relative = reference[len(prefix) :]
        assert relative and ".." not in relative.split("/") and "?" not in relative and "#" not in relative
        path = GRAPHIQL_STATIC_DIR / relative
        assert path.is_file(), f"{reference} is missing from {GRAPHIQL_STATIC_DIR}"
        assert path.stat().st_size > 0, f"{path} is empty"


def test_K3_graphiql_page_loads_every_needed_library() -> None:
    page = render_graphiql_html()
    loaded = {value.rsplit("/", 1)[-1] for value in _fetched_references(page)}
    assert loaded == set(GRAPHIQL_ASSET_INTEGRITY)
    # Scripts are loaded in dependency order: React before ReactDOM before GraphiQL before its plugin.
    order = [
        page.index(f"{GRAPHIQL_STATIC_PREFIX}/{name}")
        for name in (
            "react.production.min.js",
            "react-dom.production.min.js",
            "graphiql.min.js",
            "graphiql-plugin-explorer.umd.js",
        )
    ]
    assert order == sorted(order)
    assert "GraphiQLPluginExplorer.explorerPlugin()" in page


def test_K3_graphiql_integrity_matches_vendored_files() -> None:
    page = render_graphiql_html()
    for name, integrity in GRAPHIQL_ASSET_INTEGRITY.items():
        digest = hashlib.sha384((GRAPHIQL_STATIC_DIR / name).read_bytes()).digest()
        assert integrity == "sha384-" + base64.b64encode(digest).decode("ascii"), name
        assert f'integrity="{integrity}"' in page
    assert "crossorigin" not in page


def test_K3_graphiql_page_posts_to_itself_and_subscribes_over_websocket() -> None:
    page = render_graphiql_html()
    assert 'const fetchURL = window.location.href.split("?")[0];' in page
    assert 'parsedURL.protocol === "http:" ? "ws:" : "wss:"' in page
    assert re.search(r"GraphiQL\.createFetcher\(\{\s*url: fetchURL,[^}]*subscriptionUrl,", page)
    assert "SUBSCRIPTION_ENABLED" not in page and "REPLACE_VARIABLES" not in page


def test_K3_graphiql_title_is_escaped() -> None:
    assert "<title>Kabinet GraphiQL</title>" in render_graphiql_html()
    page = render_graphiql_html(title="<script>alert(1)</script> & co")
    assert "<title>&lt;script&gt;alert(1)&lt;/script&gt; &amp; co</title>" in page


def test_K3_graphiql_static_readme_lists_every_file() -> None:
    readme = (GRAPHIQL_STATIC_DIR / "README.md").read_text(encoding="utf-8")
    vendored = {
        path.name for path in GRAPHIQL_STATIC_DIR.iterdir() if path.is_file() and path.name != "README.md"
    }
    assert vendored == set(GRAPHIQL_ASSET_INTEGRITY)
    for name in vendored:
        assert f"`{name}`" in readme, f"{name} is not listed in {GRAPHIQL_STATIC_DIR / 'README.md'}"
    assert not (GRAPHIQL_STATIC_DIR / "node_modules").exists()
    assert not list(Path(GRAPHIQL_STATIC_DIR).rglob("*.tgz"))


def test_K3_graphiql_examples_validate_against_the_live_schema() -> None:
    """Issue 17: the analysts' example tabs are valid, the analytics ones included."""
    from graphql import parse, validate

    from app.graphiql import example_documents
    from schema.schema import build_schema

    schema = build_schema()._schema
    examples = example_documents()
    assert len(examples) >= 7
    assert sum("analytics(" in document for _, document in examples) >= 4
    for name, document in examples:
        parsed = parse(document)
        assert validate(schema, parsed) == [], name
        assert document.startswith("# "), f"{name}: the first line is the tab's title comment"
