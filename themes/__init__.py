"""whimbrel's Textual themes and the console's stylesheet (console.tcss, next to this file).

Colours live in themes only: the stylesheet and the charts read `$primary`, `$secondary`,
`$accent`, `$success`, `$warning`, `$error` (and the chart-* variables below), so a new theme
is one more `Theme` here. Charts take their series colours from the variables.
"""

from __future__ import annotations

from pathlib import Path

from textual.theme import Theme

STYLESHEET = Path(__file__).with_name("console.tcss")

WHIMBREL_DARK = Theme(
    name="whimbrel-dark",
    primary="#5FA8D3",  # estuary blue
    secondary="#C9A66B",  # mudflat sand
    accent="#E0803C",  # the whimbrel's bill at dusk
    foreground="#D8DEE6",
    background="#12171D",
    surface="#1A2129",
    panel="#232C36",
    success="#6CC07A",
    warning="#E5B454",
    error="#E0625A",
    dark=True,
    variables={
        "chart-rtt": "#5FA8D3",
        "chart-dirty": "#E0803C",
        "chart-predicted": "#7C8A99",
        "chart-actual": "#6CC07A",
        # The downtime's parts, in the order they happen.
        "chart-downtime-freeze": "#A58BD8",
        "chart-downtime-dump": "#5FA8D3",
        "chart-downtime-diff": "#7CC9BE",
        "chart-downtime-send": "#E0803C",
        "chart-downtime-restore": "#C9A66B",
        "chart-downtime-commit": "#6CC07A",
        "chart-downtime-resume": "#D98BB0",
        "chart-downtime-answer": "#7C8A99",  # no client waits through it: the predicted grey
        "footer-key-foreground": "#E0803C",
    },
)

WHIMBREL_LIGHT = Theme(
    name="whimbrel-light",
    primary="#1F5F8B",
    secondary="#8A6A2F",
    accent="#B85412",
    foreground="#1C232B",
    background="#F4F1EA",  # paper
    surface="#FBF9F4",
    panel="#E6E1D6",
    success="#2E7D3E",
    warning="#9A6B00",
    error="#B3261E",
    dark=False,
    variables={
        "chart-rtt": "#1F5F8B",
        "chart-dirty": "#B85412",
        "chart-predicted": "#8C96A0",
        "chart-actual": "#2E7D3E",
        "chart-downtime-freeze": "#6A4FA3",
        "chart-downtime-dump": "#1F5F8B",
        "chart-downtime-diff": "#2A7F78",
        "chart-downtime-send": "#B85412",
        "chart-downtime-restore": "#8A6A2F",
        "chart-downtime-commit": "#2E7D3E",
        "chart-downtime-resume": "#A8456F",
        "chart-downtime-answer": "#8C96A0",
        "footer-key-foreground": "#B85412",
    },
)

THEMES: dict[str, Theme] = {t.name: t for t in (WHIMBREL_DARK, WHIMBREL_LIGHT)}
DEFAULT_THEME = WHIMBREL_DARK.name
