"""A text widget for numbers that change on every key press or clock tick.

Static.update() asks for a new layout of the whole screen each time (its size
may change); a Readout has a fixed height from the stylesheet and only repaints
itself, which keeps a key press that changes t cheap.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget


class Readout(Widget):
    DEFAULT_CSS = "Readout { height: 1; }"

    def __init__(self, markup: str = "", *, id: str | None = None, classes: str | None = None):
        super().__init__(id=id, classes=classes)
        self._markup = markup
        self._text = Text.from_markup(markup)

    def set(self, markup: str) -> None:
        if markup != self._markup:
            self._markup = markup
            self._text = Text.from_markup(markup)
            self.refresh()

    def update(self, markup: str) -> None:  # the Static spelling, for callers that do not care
        self.set(markup)

    def render(self) -> Text:
        return self._text
