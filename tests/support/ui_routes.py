"""The Prefect UI's own route table, read from the UI bundle that ships in the installed `prefect` package.

The V1 UI (`prefect/server/ui/assets/index-*.js`, built from @prefecthq/prefect-ui-library) declares the pages of a
workspace in one function, `createWorkspaceRouteRecords` (minified; found by its `workspace.dashboard` record): a
vue-router tree of `{name, path, children}`. The self-hosted app mounts that tree at `/` (its own router, in the
same bundle's entry chunk: `{path:"/", children:[{name:"root", path:"", children:[...workspaceRoutes, login]}]}`),
Prefect Cloud under `/account/:accountId/workspace/:workspaceId` (what `prefect.settings` `default_ui_url` and
`prefect.utilities.urls.url_for` build for a Cloud API URL). This module turns the tree into full path patterns.
"""

from __future__ import annotations

import re
from pathlib import Path

import prefect

ROUTES_MARKER = "name:`workspace.dashboard`"


def bundle_with_routes() -> Path:
    assets = Path(prefect.__ui_static_path__) / "assets"
    for path in sorted(assets.glob("index-*.js")):
        if ROUTES_MARKER in path.read_text(errors="replace"):
            return path
    raise AssertionError(f"no UI bundle in {assets} declares the workspace routes ({ROUTES_MARKER})")


def workspace_routes(source: str | None = None) -> dict[str, str]:
    """Route name → full path pattern relative to the workspace root, e.g.
    `workspace.deployments.deployment` → `/deployments/deployment/:deploymentId`."""
    text = source if source is not None else bundle_with_routes().read_text(errors="replace")
    # The marker also appears in the route helpers (`dashboard:()=>({name:…})`); the records are the array that a
    # function returns right before it.
    for match in re.finditer(re.escape(ROUTES_MARKER), text):
        start = text.rfind("return[", max(0, match.start() - 200), match.start())
        if start != -1:
            return dict(_walk(_parse_objects(text, start + len("return"))))
    raise AssertionError(f"no route array with {ROUTES_MARKER} found")


class _Node:
    def __init__(self) -> None:
        self.props: dict[str, str] = {}
        self.children: list[_Node] = []


def _parse_objects(text: str, start: int) -> list[_Node]:
    """The objects of the array literal at `start`, nested by braces; only string-valued `name`/`path` are kept.
    Strings (', ", `) are skipped whole, so braces inside them do not count."""
    root = _Node()
    stack = [root]
    depth = 0
    i = start
    while i < len(text):
        char = text[i]
        if char in "'\"`":
            end = _string_end(text, i)
            key = re.search(r"(?:^|[{,])(name|path):$", text[max(0, i - 6) : i])
            if key:
                stack[-1].props.setdefault(key.group(1), text[i + 1 : end])
            i = end + 1
            continue
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                return root.children
        elif char == "{":
            node = _Node()
            stack[-1].children.append(node)
            stack.append(node)
        elif char == "}":
            stack.pop()
        i += 1
    raise AssertionError("the route array never closes")


def _string_end(text: str, start: int) -> int:
    quote, i = text[start], start + 1
    while text[i] != quote:
        i += 2 if text[i] == "\\" else 1
    return i


def _walk(nodes: list[_Node], prefix: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for node in nodes:
        path = node.props.get("path")
        if path is None:  # not a route (meta, params, component wrappers): look inside for routes
            found += _walk(node.children, prefix)
            continue
        full = path if path.startswith("/") else f"{prefix}/{path}" if path else prefix
        if "name" in node.props:
            found.append((node.props["name"], full or "/"))
        found += _walk(node.children, full)
    return found


def matching_route(routes: dict[str, str], path: str) -> str | None:
    """The name of the route whose pattern matches this URL path (`:param` is one path segment)."""
    for name, pattern in routes.items():
        regex = "^" + re.sub(r":[A-Za-z]+", "[^/]+", pattern) + "$"
        if re.match(regex, path):
            return name
    return None
