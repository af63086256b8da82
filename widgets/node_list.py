"""Clusters and their nodes, each with its reachability: answering, not answering (and why),
or not heard from yet; and what an answering node's doctor found wanting: "not ready" and the
first required check it failed, else its first warning. A ready node, or one not checked yet,
says nothing more: only what needs the operator shows. Prompts are replaced in place, only when
they change."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option


@dataclass(frozen=True)
class NodeStatus:
    name: str
    cluster: str
    reachable: bool | None  # None: no answer yet
    containers: int = 0
    error: str | None = None
    answer_s: float | None = None  # how long the last inventory took
    failed: tuple[str, ...] = ()  # the doctor's failed required checks, by name
    warnings: tuple[str, ...] = ()  # its failed optional checks


@dataclass(frozen=True)
class ClusterStatus:
    name: str
    read_only: bool
    nodes: tuple[NodeStatus, ...]


CLUSTER_PREFIX = "cluster:"


def _cluster_prompt(cluster: ClusterStatus, colours: Mapping[str, str]) -> Text:
    up = sum(1 for n in cluster.nodes if n.reachable)
    text = Text(cluster.name, style=f"bold {colours.get('secondary', '')}")
    text.append(f"  {up}/{len(cluster.nodes)} up", style="dim")
    if cluster.read_only:
        text.append("  read-only", style=colours.get("warning", ""))
    return text


def _node_prompt(node: NodeStatus, colours: Mapping[str, str]) -> Text:
    if node.reachable is None:
        text = Text("  ○ ", style="dim")
        text.append(node.name)
        text.append("  connecting…", style="dim")
        return text
    if not node.reachable:
        text = Text("  ✗ ", style=colours.get("error", ""))
        text.append(node.name, style=colours.get("error", ""))
        text.append("\n    " + (node.error or "unreachable"), style="dim")
        return text
    text = Text("  ● ", style=colours.get("success", ""))
    text.append(node.name)
    if node.failed:
        # In place of the count, as an unreachable node's ✗ is: trouble first. The check's
        # name on a line of its own: "not ready: experimental" overflows the panel's width.
        text.append("  not ready", style=colours.get("error", ""))
        text.append("\n    " + _first(node.failed), style=colours.get("error", ""))
        return text
    count = node.containers
    text.append(f"  {count} container{'s' if count != 1 else ''}", style="dim")
    if node.warnings:
        text.append("\n    warn: " + _first(node.warnings), style="dim")
    return text


def _first(names: tuple[str, ...]) -> str:
    """The first name, and how many more: a line of the panel holds one."""
    return names[0] + (f" +{len(names) - 1}" if len(names) > 1 else "")


class NodeList(OptionList):
    """Clusters as headers, their nodes under them; the highlighted option is a node."""

    def __init__(self, colours: Callable[[], Mapping[str, str]], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._colours = colours
        self._prompts: dict[str, Text] = {}

    @property
    def highlighted_node(self) -> str | None:
        option = self.highlighted_option
        if option is None or option.id is None or option.id.startswith(CLUSTER_PREFIX):
            return None
        return option.id

    def show(self, clusters: Sequence[ClusterStatus]) -> None:
        colours = self._colours()
        wanted: list[tuple[str, Text, bool]] = []
        for cluster in clusters:
            wanted.append((CLUSTER_PREFIX + cluster.name, _cluster_prompt(cluster, colours), True))
            wanted.extend((n.name, _node_prompt(n, colours), False) for n in cluster.nodes)
        if [w[0] for w in wanted] != list(self._prompts):
            # The set of nodes changed (only at start): build the list once.
            self.set_options(Option(p, id=i, disabled=d) for i, p, d in wanted)
            self._prompts = {i: p for i, p, _ in wanted}
            return
        for option_id, prompt, _ in wanted:
            if self._prompts[option_id] != prompt:
                self.replace_option_prompt(option_id, prompt)
                self._prompts[option_id] = prompt
