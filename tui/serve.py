"""`vdm tui --serve`: textual-serve's server, with a page that asks for nothing beyond this machine.

textual-serve's page (templates/app_index.html) links Google Fonts' stylesheet for "Roboto Mono", which
fails offline (and tells Google of every visit). The package ships the font itself
(static/fonts/RobotoMono-*.ttf), so the page here declares it with @font-face from the server's own
/static/ instead: the terminal (xterm.js, which asks for "'Roboto Mono', Monaco, 'Courier New', monospace")
looks as upstream intended, and a page opened without a network loads every asset it needs.

The template is upstream's, read from the installed package and rewritten on load (``LocalAssetsLoader``),
so the rest of the page follows textual-serve's releases; a template whose link is no longer found is
served as is, and tests/tui/test_serve.py says so (no URL beyond the server may remain).
"""

from __future__ import annotations

import re

import jinja2
from textual_serve.server import Server

# the <link rel="stylesheet" href="https://fonts.googleapis.com/..."> of upstream's page, across line breaks
_REMOTE_STYLESHEET = re.compile(r"<link\b[^>]*\bhref=\"https?://(?!localhost\b|127\.)[^\"]*\"[^>]*/?>", re.S)

LOCAL_FONTS = """<style>
      /* the font the page and xterm.js ask for, from textual-serve's own static files (no web font service) */
      @font-face {
        font-family: "Roboto Mono";
        font-style: normal;
        font-weight: 100 700;
        src: url("{{ config.static.url }}fonts/RobotoMono-VariableFont_wght.ttf") format("truetype");
      }
      @font-face {
        font-family: "Roboto Mono";
        font-style: italic;
        font-weight: 100 700;
        src: url("{{ config.static.url }}fonts/RobotoMono-Italic-VariableFont_wght.ttf") format("truetype");
      }
    </style>"""


def localise(source: str) -> str:
    """Upstream's page source with every stylesheet linked from another host replaced by the local @font-face
    rules (the only such link is Google Fonts' Roboto Mono)."""
    return _REMOTE_STYLESHEET.sub(lambda m: LOCAL_FONTS, source)


class LocalAssetsLoader(jinja2.FileSystemLoader):
    """textual-serve's templates, with the remote font stylesheet swapped for local @font-face rules."""

    def get_source(self, environment, template):
        source, filename, uptodate = super().get_source(environment, template)
        return localise(source), filename, uptodate


class LocalServer(Server):
    """textual_serve.server.Server whose index page requests only this server's own /static/ files."""

    async def _make_app(self):
        import aiohttp_jinja2

        app = await super()._make_app()
        aiohttp_jinja2.setup(app, loader=LocalAssetsLoader(self.templates_path))  # replaces upstream's environment
        return app
