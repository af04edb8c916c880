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
import json
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
_CONFIG = "__KABINET_GRAPHIQL_CONFIG__"


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

      .kabinet-login {{
        margin: 10vh auto;
        width: 22em;
        display: flex;
        flex-direction: column;
        gap: 0.6em;
        font-family: sans-serif;
      }}

      .kabinet-staff {{
        display: flex;
        flex-direction: column;
        width: 100%;
        height: 100vh;
      }}

      .kabinet-logout {{
        align-self: flex-end;
        margin: 2px 8px;
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
    <script type="application/json" id="kabinet-graphiql-config">{_CONFIG}</script>
    <script>
      // Kabinet's settings for this page: staff login (production) and the example tabs.
      const config = JSON.parse(
        document.getElementById("kabinet-graphiql-config").textContent,
      );
      const TOKEN_KEY = "kabinet.graphiql.accessToken";
      const STAFF_ROLES = ["OPERATOR", "ANALYST", "ADMIN"];
      const LOGIN = config.loginDocument;

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

      // The staff token lives in this tab's sessionStorage and travels only as the Authorization header
      // (and in the websocket's connection_init): never a cookie, so no other site can use it (no CSRF).
      function makeFetcher(token) {{
        const headers = Object.assign({{}}, defaultHeaders);
        if (token) {{
          headers["Authorization"] = "Bearer " + token;
        }}
        // graphiql.min.js bundles the graphql-ws client that createFetcher uses for subscriptionUrl.
        const fetcher = GraphiQL.createFetcher({{
          url: fetchURL,
          headers: headers,
          subscriptionUrl,
          wsConnectionParams: token ? {{ token: token }} : undefined,
        }});
        return fetcher;
      }}

      function LoginForm(props) {{
        const [login, setLogin] = React.useState("");
        const [password, setPassword] = React.useState("");
        const [error, setError] = React.useState(null);
        const [busy, setBusy] = React.useState(false);

        async function submit(event) {{
          event.preventDefault();
          setBusy(true);
          setError(null);
          try {{
            const response = await fetch(fetchURL, {{
              method: "POST",
              credentials: "omit",
              headers: {{ "content-type": "application/json" }},
              body: JSON.stringify({{
                query: LOGIN,
                operationName: "GraphiQLStaffLogin",
                variables: {{ input: {{ login: login, password: password, deviceName: "GraphiQL" }} }},
              }}),
            }});
            const body = await response.json();
            const result = body.data && body.data.loginWithPassword;
            if (!result || !result.tokens) {{
              const errors = (result && result.userErrors) || body.errors || [];
              setError(errors.length ? errors[0].message : "Вход не выполнен");
            }} else if (STAFF_ROLES.indexOf(result.user.role) < 0) {{
              setError("GraphiQL открыт только сотрудникам");
            }} else {{
              sessionStorage.setItem(TOKEN_KEY, result.tokens.accessToken);
              props.onLogin(result.tokens.accessToken);
            }}
          }} catch (failure) {{
            setError("Сервер недоступен");
          }}
          setBusy(false);
        }}

        const e = React.createElement;
        return e(
          "form",
          {{ id: "kabinet-login", className: "kabinet-login", onSubmit: submit }},
          e("h1", null, "Kabinet GraphiQL"),
          e("p", null, "Вход для сотрудников (аналитик, оператор, администратор)"),
          e("input", {{
            id: "kabinet-login-name", name: "login", autoComplete: "username",
            placeholder: "Телефон или e-mail", value: login,
            onChange: function (ev) {{ setLogin(ev.target.value); }},
          }}),
          e("input", {{
            id: "kabinet-login-password", name: "password", type: "password",
            autoComplete: "current-password", placeholder: "Пароль", value: password,
            onChange: function (ev) {{ setPassword(ev.target.value); }},
          }}),
          e("button", {{ id: "kabinet-login-submit", type: "submit", disabled: busy }}, "Войти"),
          error ? e("p", {{ id: "kabinet-login-error", role: "alert" }}, error) : null,
        );
      }}

      function Explorer(props) {{
        const fetcher = React.useMemo(function () {{ return makeFetcher(props.token); }}, [props.token]);
        const explorerPlugin = React.useMemo(function () {{
          return GraphiQLPluginExplorer.explorerPlugin();
        }}, []);
        const [variables, setVariables] = React.useState(parameters.variables);

        function onEditQuery(newQuery) {{
          updateURL({{ q: newQuery }});
        }}

        function onEditVariables(newVariables) {{
          setVariables(newVariables);
          updateURL({{ variables: newVariables }});
        }}

        const tabs = config.examples.map(function (example) {{
          return {{ query: example.query }};
        }});
        const graphiql = React.createElement(GraphiQL, {{
          fetcher: fetcher,
          defaultEditorToolsVisibility: true,
          plugins: [explorerPlugin],
          defaultTabs: tabs.length ? tabs : undefined,
          query: parameters.q || undefined,
          variables: variables,
          onEditQuery: onEditQuery,
          onEditVariables: onEditVariables,
          inputValueDeprecation: true,
          isHeadersEditorEnabled: !config.staffLogin,
          shouldPersistHeaders: !config.staffLogin,  // never store the staff token (localStorage)
        }});
        if (!config.staffLogin) {{
          return graphiql;
        }}
        return React.createElement(
          "div",
          {{ className: "kabinet-staff" }},
          React.createElement(
            "button",
            {{ id: "kabinet-logout", className: "kabinet-logout", onClick: props.onLogout }},
            "Выйти",
          ),
          graphiql,
        );
      }}

      function KabinetGraphiQL() {{
        const [token, setToken] = React.useState(
          config.staffLogin ? sessionStorage.getItem(TOKEN_KEY) : null,
        );
        function logout() {{
          sessionStorage.removeItem(TOKEN_KEY);
          setToken(null);
        }}
        if (config.staffLogin && !token) {{
          return React.createElement(LoginForm, {{ onLogin: setToken }});
        }}
        return React.createElement(Explorer, {{ token: token, onLogout: logout }});
      }}

      const root = ReactDOM.createRoot(document.getElementById("graphiql"));
      root.render(React.createElement(KabinetGraphiQL));
    </script>
  </body>
</html>
"""


STAFF_LOGIN_DOCUMENT: Final[str] = """mutation GraphiQLStaffLogin($input: LoginWithPasswordInput!) {
  loginWithPassword(input: $input) {
    tokens { accessToken }
    user { role }
    userErrors { message }
  }
}"""
"""The one document the production page sends before a login; ``app.persisted`` lets it through even when
only persisted documents are served (``KABINET_PERSISTED_DOCUMENTS_ONLY``)."""

GRAPHIQL_EXAMPLES_DIR: Final[Path] = GRAPHIQL_STATIC_DIR / "examples"
"""Example documents opened as tabs (``*.graphql``, in file-name order; first comment line: the title)."""


def example_documents(directory: Path = GRAPHIQL_EXAMPLES_DIR) -> list[tuple[str, str]]:
    """``(file name, document text)`` of every example, in file-name order."""
    return [(path.name, path.read_text(encoding="utf-8")) for path in sorted(directory.glob("*.graphql"))]


def render_graphiql_html(
    title: str = "Kabinet GraphiQL",
    *,
    staff_login: bool = False,
    examples: list[tuple[str, str]] | None = None,
) -> str:
    """Return the GraphiQL page, loading every asset from :data:`GRAPHIQL_STATIC_PREFIX`.

    The page is meant to be served at the GraphQL endpoint itself (for a browser ``GET``): it posts
    operations to its own URL and opens subscriptions on the ``ws(s)://`` form of that URL.

    Args:
        title: Text of the page's ``<title>``; HTML-escaped.
        staff_login: Production: show a staff login form first and run GraphiQL only after a staff login;
            the access token is kept in the tab's ``sessionStorage`` and sent as the ``Authorization``
            header (never a cookie).
        examples: ``(name, document)`` pairs opened as tabs; default: :func:`example_documents`.

    Returns:
        A complete HTML document with no external URL in it.
    """
    found = example_documents() if examples is None else examples
    config = json.dumps(
        {
            "staffLogin": staff_login,
            "loginDocument": STAFF_LOGIN_DOCUMENT,
            "examples": [{"name": name, "query": text} for name, text in found],
        },
        ensure_ascii=False,
    )
    # inside <script>: no "</script>" or "<!--" can be formed by the documents' text
    config = config.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return (
        _TEMPLATE.replace(_STATIC, GRAPHIQL_STATIC_PREFIX)
        .replace(_TITLE, html.escape(title))
        .replace(_CONFIG, config)
    )
