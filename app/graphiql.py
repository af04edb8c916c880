"""GraphiQL page that works without internet access.

Strawberry's built-in GraphiQL page (``strawberry/static/graphiql.html``) loads React, ReactDOM, js-cookie,
GraphiQL and the GraphiQL explorer plugin from a public CDN. Kabinet vendors the very same files, at the same
versions Strawberry pins, in ``app/static/graphiql/`` (see the README there for provenance and licenses) and
this module renders an equivalent page that loads every script and style sheet from
:data:`GRAPHIQL_STATIC_PREFIX`, where the ASGI app mounts :data:`GRAPHIQL_STATIC_DIR` with Starlette's
``StaticFiles``::

    Mount(GRAPHIQL_STATIC_PREFIX, app=StaticFiles(directory=GRAPHIQL_STATIC_DIR), name="graphiql-static")

The page sends queries and mutations by HTTP POST to its own URL and subscriptions over the
``graphql-transport-ws`` protocol to the ``ws://``/``wss://`` equivalent of that URL, exactly like
Strawberry's page (``GraphiQL.createFetcher`` with ``url`` and ``subscriptionUrl``; the GraphiQL 3.8.3 bundle
already contains the ``graphql-ws`` client, so no extra script is needed). The ``x-csrftoken`` header is still
sent when a ``csrftoken`` cookie exists.

The vendored files are byte-identical to the CDN files Strawberry's template references, so the Subresource
Integrity hashes of that template are kept (same-origin, hence without ``crossorigin``): a botched refresh of
the vendored files makes the browser refuse them instead of running something unexpected.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Final

__all__ = [
    "GRAPHIQL_ASSET_INTEGRITY",
    "GRAPHIQL_STATIC_DIR",
    "GRAPHIQL_STATIC_PREFIX",
    "render_graphiql_html",
]

GRAPHIQL_STATIC_DIR: Final[Path] = Path(__file__).resolve().parent / "static" / "graphiql"
"""Directory holding the vendored GraphiQL assets (served at :data:`GRAPHIQL_STATIC_PREFIX`)."""

GRAPHIQL_STATIC_PREFIX: Final[str] = "/graphiql-static"
"""URL path where the ASGI app mounts :data:`GRAPHIQL_STATIC_DIR` with ``StaticFiles``."""

GRAPHIQL_ASSET_INTEGRITY: Final[Mapping[str, str]] = MappingProxyType(
    {
        # react@18.2.0 umd/react.production.min.js
        "react.production.min.js": "sha384-tMH8h3BGESGckSAVGZ82T9n90ztNXxvdwvdM6UoR56cYcf+0iGXBliJ29D+wZ/x8",
        # react-dom@18.2.0 umd/react-dom.production.min.js
        "react-dom.production.min.js": (
            "sha384-bm7MnzvK++ykSwVJ2tynSE5TRdN+xL418osEVF2DE/L/gfWHj91J2Sphe582B1Bh"
        ),
        # js-cookie@3.0.5 dist/js.cookie.min.js
        "js.cookie.min.js": "sha384-/vxhYfM1LENRhdpZ8dwEsQn/X4VhpbEZSiU4m/FwR+PVpzar4fkEOw8FP9Y+OfQN",
        # graphiql@3.8.3 graphiql.min.css
        "graphiql.min.css": "sha384-Mq3vbRBY71jfjQAt/DcjxUIYY33ksal4cgdRt9U/hNPvHBCaT2JfJ/PTRiPKf0aM",
        # @graphiql/plugin-explorer@1.0.2 dist/style.css
        "graphiql-plugin-explorer.css": (
            "sha384-5DFJlDPW2tSATRbM8kzoP1j194jexLswuNmClWoRr2Q0x7R68JIQzPHZ02Faktwi"
        ),
        # graphiql@3.8.3 graphiql.min.js (bundles @graphiql/react, graphql and the graphql-ws client)
        "graphiql.min.js": "sha384-HbRVEFG0JGJZeAHCJ9Xm2+tpknBQ7QZmNlO/DgZtkZ0aJSypT96YYGRNod99l9Ie",
        # @graphiql/plugin-explorer@1.0.2 dist/index.umd.js
        "graphiql-plugin-explorer.umd.js": (
            "sha384-2oonKe47vfHIZnmB6ZZ10vl7T0Y+qrHQF2cmNTaFDuPshpKqpUMGMc9jgj9MLDZ9"
        ),
    }
)
"""Subresource Integrity value (``sha384-…``) of every vendored file the page loads, keyed by file name."""

_STATIC = "__KABINET_GRAPHIQL_STATIC__"
_TITLE = "__KABINET_GRAPHIQL_TITLE__"


def _integrity(filename: str) -> str:
    """Return the ``integrity`` attribute value for the vendored file ``filename``."""
    return GRAPHIQL_ASSET_INTEGRITY[filename]


_TEMPLATE: Final[str] = f"""<!doctype html>
<html>
  <head>
    <meta charset="utf-8" />
    <title>{_TITLE}</title>
    <link
      rel="icon"
      href="data:image/svg+xml,
        <svg xmlns=%22http://www.w3.org/2000/svg%22 viewBox=%220 0 100 100%22>
            <!-- Strawberry Emoji as a HTML Entity (hex)  -->
            <text y=%22.9em%22 font-size=%2280%22>&#x1f353;</text>
        </svg>"
    />
    <style>
      body {{
        height: 100%;
        margin: 0;
        width: 100%;
        overflow: hidden;
      }}

      #graphiql {{
        height: 100vh;
        display: flex;
      }}

      .docExplorerHide {{
        display: none;
      }}

      .doc-explorer-contents {{
        overflow-y: hidden !important;
      }}

      .docExplorerWrap {{
        width: unset !important;
        min-width: unset !important;
      }}

      .graphiql-explorer-actions select {{
        margin-left: 4px;
      }}
    </style>

    <script
      src="{_STATIC}/react.production.min.js"
      integrity="{_integrity("react.production.min.js")}"
    ></script>
    <script
      src="{_STATIC}/react-dom.production.min.js"
      integrity="{_integrity("react-dom.production.min.js")}"
    ></script>

    <script
      src="{_STATIC}/js.cookie.min.js"
      integrity="{_integrity("js.cookie.min.js")}"
    ></script>

    <link
      rel="stylesheet"
      href="{_STATIC}/graphiql.min.css"
      integrity="{_integrity("graphiql.min.css")}"
    />

    <link
      rel="stylesheet"
      href="{_STATIC}/graphiql-plugin-explorer.css"
      integrity="{_integrity("graphiql-plugin-explorer.css")}"
    />
  </head>

  <body>
    <div id="graphiql" class="graphiql-container">Loading...</div>
    <script
      src="{_STATIC}/graphiql.min.js"
      integrity="{_integrity("graphiql.min.js")}"
    ></script>
    <script
      src="{_STATIC}/graphiql-plugin-explorer.umd.js"
      integrity="{_integrity("graphiql-plugin-explorer.umd.js")}"
    ></script>
    <script>
      const EXAMPLE_QUERY = `# Welcome to GraphiQL 🍓
#
# GraphiQL is an in-browser tool for writing, validating, and
# testing GraphQL queries.
#
# Type queries into this side of the screen, and you will see intelligent
# typeaheads aware of the current GraphQL type schema and live syntax and
# validation errors highlighted within the text.
#
# GraphQL queries typically start with a "{{" character. Lines that starts
# with a # are ignored.
#
# An example GraphQL query might look like:
#
#     {{
#       field(arg: "value") {{
#         subField
#       }}
#     }}
#
# Keyboard shortcuts:
#
#       Run Query:  Ctrl-Enter (or press the play button above)
#
#   Auto Complete:  Ctrl-Space (or just start typing)
#
`;

      // Parse URL parameters for sharing queries
      const parameters = {{}};

      for (const entry of window.location.search.slice(1).split("&")) {{
        const eq = entry.indexOf("=");
        if (eq >= 0) {{
          parameters[decodeURIComponent(entry.slice(0, eq))] =
            decodeURIComponent(entry.slice(eq + 1));
        }}
      }}

      function updateURL(data) {{
        Object.assign(parameters, data);

        const newSearch =
          "?" +
          Object.keys(parameters)
            .filter(function (key) {{
              return Boolean(parameters[key]);
            }})
            .map(function (key) {{
              return (
                encodeURIComponent(key) +
                "=" +
                encodeURIComponent(parameters[key])
              );
            }})
            .join("&");
        history.replaceState(null, null, newSearch);
      }}

      // Queries and mutations: HTTP POST to this very page's URL.
      const fetchURL = window.location.href.split("?")[0];

      // Subscriptions: graphql-transport-ws on the ws(s):// equivalent of the same URL.
      function httpUrlToWebSockeUrl(url) {{
        const parsedURL = new URL(url);
        const protocol = parsedURL.protocol === "http:" ? "ws:" : "wss:";
        parsedURL.protocol = protocol;
        parsedURL.hash = "";
        return parsedURL.toString();
      }}

      const defaultHeaders = {{}};
      const csrfToken = Cookies.get("csrftoken");

      if (csrfToken) {{
        defaultHeaders["x-csrftoken"] = csrfToken;
      }}

      const subscriptionUrl = httpUrlToWebSockeUrl(fetchURL);

      // graphiql.min.js bundles the graphql-ws client that createFetcher uses for subscriptionUrl.
      const fetcher = GraphiQL.createFetcher({{
        url: fetchURL,
        headers: defaultHeaders,
        subscriptionUrl,
      }});

      function GraphiQLWithExplorer() {{
        const [query, setQuery] = React.useState(
          parameters.q || EXAMPLE_QUERY,
        );
        const [variables, setVariables] = React.useState(
          parameters.variables,
        );
        const [headers, setHeaders] = React.useState(parameters.headers);

        function onEditQuery(newQuery) {{
          setQuery(newQuery);
          updateURL({{ q: newQuery }});
        }}

        function onEditVariables(newVariables) {{
          setVariables(newVariables);
          updateURL({{ variables: newVariables }});
        }}

        function onEditHeaders(newHeaders) {{
          setHeaders(newHeaders);
        }}

        const explorerPlugin = GraphiQLPluginExplorer.explorerPlugin();

        return React.createElement(GraphiQL, {{
          fetcher: fetcher,
          defaultEditorToolsVisibility: true,
          plugins: [explorerPlugin],
          query: query,
          variables: variables,
          headers: headers,
          onEditQuery: onEditQuery,
          onEditVariables: onEditVariables,
          onEditHeaders: onEditHeaders,
          inputValueDeprecation: true,
          isHeadersEditorEnabled: true,
          shouldPersistHeaders: true,
        }});
      }}

      const root = ReactDOM.createRoot(document.getElementById("graphiql"));
      root.render(React.createElement(GraphiQLWithExplorer));
    </script>
  </body>
</html>
"""


def render_graphiql_html(title: str = "Kabinet GraphiQL") -> str:
    """Return the GraphiQL page, loading every asset from :data:`GRAPHIQL_STATIC_PREFIX`.

    The page is meant to be served at the GraphQL endpoint itself (for a browser ``GET``): it posts
    operations to its own URL and opens subscriptions on the ``ws(s)://`` form of that URL.

    Args:
        title: Text of the page's ``<title>``; HTML-escaped.

    Returns:
        A complete HTML document with no external URL in it.
    """
    return _TEMPLATE.replace(_STATIC, GRAPHIQL_STATIC_PREFIX).replace(_TITLE, html.escape(title))
