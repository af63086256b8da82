"""The console: the Textual app an operator opens with `whimbrel`.

The app owns the Backend, the `Observations` of the clusters and the workers that feed them
(their loops in app/measuring.py): inventory per node (a slow node never holds up the others),
each node's doctor once it first answers, RTT of the selected path, the dirty rate of the
selected container. Each loop waits its interval after the previous round finished, so rounds
never overlap. Results arrive as typed messages (app/messages.py); the app files them in
`Observations` and tells the open screens what changed (app/changes.py); each screen on view
redraws what it shows.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import App
from textual.binding import Binding, BindingType
from textual.screen import Screen

from whimbrel.app.backend import Backend
from whimbrel.app.changes import (
    ConsoleStateChanged,
    DirtyChanged,
    HistoryChanged,
    InventoryChanged,
    ReadinessChanged,
    ReadOnlyChanged,
    RttChanged,
    SelectionChanged,
    ThroughputChanged,
)
from whimbrel.app.history_records import HistoryRecord
from whimbrel.app.measuring import (
    examine_node,
    follow_inventory,
    keep_sampling_dirty,
    measure_path,
    poll_rtt,
)
from whimbrel.app.messages import (
    DirtyFailed,
    DirtySampled,
    HistoryLoaded,
    NodeExamined,
    NodeInventoryLoaded,
    ProbeFailed,
    Recovered,
    RttMeasured,
    ThroughputMeasured,
)
from whimbrel.app.observations import Observations
from whimbrel.app.orders import MigrationOrder
from whimbrel.app.palette import WhimbrelCommands
from whimbrel.app.preconditions import move_refusal, read_only_refusal
from whimbrel.app.screens.evacuate import EvacuateScreen
from whimbrel.app.screens.evacuation_progress import EvacuationProgressScreen
from whimbrel.app.screens.help import HelpScreen
from whimbrel.app.screens.history import HistoryScreen
from whimbrel.app.screens.main import MainScreen
from whimbrel.app.screens.migrate import MigrateModal
from whimbrel.app.screens.preview import PreviewScreen
from whimbrel.app.screens.progress import ProgressScreen
from whimbrel.app.screens.readiness import ReadinessScreen
from whimbrel.app.screens.welcome import WelcomeScreen
from whimbrel.app.settings import ConsoleSettings, RememberedState
from whimbrel.backends.engine import MigrationRequest
from whimbrel.backends.evacuation import EvacuationPlan
from whimbrel.backends.inventory import ContainerInfo
from whimbrel.backends.units import format_bandwidth, format_duration
from whimbrel.themes import DEFAULT_THEME, STYLESHEET, THEMES
from whimbrel.widgets.container_table import ContainerTable

EXIT_OK = 0
TERMINAL_CHECK_S = 2.0
NARROW_BELOW = 100  # columns: the main table's columns and a side panel fit side by side
SHORT_BELOW = 30  # lines: the main screen's charts and a useful table fit one above the other
# Every screen the console opens: their bindings are what `[console] keys` may remap.
SCREENS: tuple[type[Screen], ...] = (
    MainScreen,
    PreviewScreen,
    MigrateModal,
    ProgressScreen,
    EvacuateScreen,
    EvacuationProgressScreen,
    HistoryScreen,
    ReadinessScreen,
    HelpScreen,
    WelcomeScreen,
)


class WhimbrelApp(App[int]):
    TITLE = "whimbrel"
    CSS_PATH = STYLESHEET
    COMMANDS: ClassVar = App.COMMANDS | {WhimbrelCommands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="app.quit"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("colon", "command_palette", "Commands", show=False, id="app.palette"),
    ]
    # Every screen carries `-narrow` below NARROW_BELOW columns (80x24 is a common terminal)
    # and `-short` below SHORT_BELOW lines: the stylesheet folds side panels away on them.
    HORIZONTAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [
        (0, "-narrow"),
        (NARROW_BELOW, "-wide"),
    ]
    VERTICAL_BREAKPOINTS: ClassVar[list[tuple[int, str]]] = [(0, "-short"), (SHORT_BELOW, "-tall")]

    def __init__(
        self,
        backend: Backend | None,
        *,
        config_path: Path,
        settings: ConsoleSettings | None = None,
        read_only: bool = False,
        remembered: RememberedState | None = None,
        watch_terminal: bool = False,
        timings: Path | None = None,
    ) -> None:
        super().__init__()
        self.backend = backend
        self.config_path = config_path
        self.settings = settings or ConsoleSettings()
        # Read-only from the command line or the config stays on; the palette may add it.
        self.imposed_read_only = read_only or self.settings.read_only
        self.read_only = self.imposed_read_only
        self.remembered = remembered or RememberedState()
        self.observed: Observations | None = Observations(backend.config) if backend else None
        self.selected: str | None = None  # NODE/NAME of the container being watched
        self.target: str | None = None  # node the selected container would go to
        self._sampled_pid: int | None = None  # the process the dirty-rate loop samples
        self.follow: str | None = None  # a container name to put the cursor on once it shows
        self.migrating = False
        self.downtime_target_s = self.settings.downtime_target_s
        self.history_records: list[HistoryRecord] | None = None  # None: not read yet
        self.history_error: str | None = None
        self._watch_terminal = watch_terminal
        self._timings = timings
        self._recorded: set[str] = set()
        for theme in THEMES.values():
            self.register_theme(theme)

    # --- lifecycle ---------------------------------------------------------------------------

    def on_mount(self) -> None:
        self._record_timing("mounted")
        self.theme = self.remembered.theme(self.settings.theme, THEMES) or DEFAULT_THEME
        self.update_keymap(dict(self.settings.keys))
        self.theme_changed_signal.subscribe(self, self._remember_theme)
        self._update_subtitle()
        if self.backend is None:
            self.push_screen(WelcomeScreen(self.config_path))
            return
        self.refresh_inventory()  # first: the nodes' answers overlap building the screen
        self.push_screen(MainScreen())
        self.load_history()  # to say whether unfinished migrations wait to be settled
        if self._watch_terminal:
            self._watch_for_hangup()

    async def on_unmount(self) -> None:
        if self.backend is not None:
            await self.backend.close()

    def _watch_for_hangup(self) -> None:
        """Leave cleanly when the terminal goes away, never spin on a dead one (Dolphie did)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGHUP, signal.SIGTERM):
            loop.add_signal_handler(sig, self.exit, EXIT_OK)
        self.set_interval(TERMINAL_CHECK_S, self._check_terminal)

    def _check_terminal(self) -> None:
        # A pty whose other end closed reads as EOF for ever (Textual's input thread would
        # spin on it) and stops being a tty: that is the sign to leave.
        try:
            alive = os.isatty(sys.__stdin__.fileno())
        except (OSError, ValueError, AttributeError):
            alive = False
        if not alive:
            self.exit(EXIT_OK)

    def _remember_theme(self, theme: object) -> None:
        self.remembered.remember_theme(self.theme, self.settings.theme)

    def _update_subtitle(self) -> None:
        where = str(self.config_path)
        self.sub_title = f"{where}  ·  READ-ONLY" if self.read_only else where

    def set_read_only(self, on: bool) -> None:
        if not on and self.imposed_read_only:
            self.notify(
                "read-only was set by --read-only or the config; it stays on", severity="warning"
            )
            return
        self.read_only = on
        self._update_subtitle()
        self.notify("read-only: no migration can start" if on else "read-only off")
        self._announce(ReadOnlyChanged)

    def _announce(self, change: type[ConsoleStateChanged]) -> None:
        """Tell the screen on top what changed (once it has mounted and drawn itself). Those
        under it catch up when resumed: Textual repaints the top screen whole for each message
        the one right under it handles (its idle check resumes that screen's updates, and a
        screen right under the top counts as seen through), twice a second with the charts
        live: 27 KB/s to the terminal from a history screen showing nothing new. While the app
        closes no screen is left: an answer that arrives then is filed and told to no one."""
        stack = self.screen_stack
        if stack and stack[-1].is_mounted:
            stack[-1].post_message(change())

    def _record_timing(self, name: str) -> None:
        """For benchmarks/console_cpu.py: when set, WHIMBREL_TIMINGS gets one JSON line per
        milestone, in wall-clock seconds."""
        if self._timings is not None and name not in self._recorded:
            self._recorded.add(name)
            with self._timings.open("a") as out:
                out.write(json.dumps({"event": name, "t": time.time()}) + "\n")

    def settle_unfinished(self) -> None:
        """Settle migrations a whimbrel that died left pending. Only on request: a pending
        record may as well belong to a whimbrel still running in another terminal."""
        if self.migrating:
            self.notify("not while a migration runs from this console", severity="warning")
            return
        self.run_worker(self._recover, group="recover", exclusive=True)

    async def _recover(self) -> None:
        assert self.backend is not None
        try:
            lines = await self.backend.recover()
        except Exception as exc:  # the nodes may be unreachable; the console carries on
            lines = [f"could not settle unfinished migrations: {exc}"]
        self.post_message(Recovered(lines or ["no unfinished migration to settle"]))

    @on(Recovered)
    def _recovered(self, message: Recovered) -> None:
        for line in message.lines:
            self.notify(line, title="unfinished migrations", timeout=30)
        self.load_history()

    # --- inventory ---------------------------------------------------------------------------

    def refresh_inventory(self) -> None:
        """Poll every node now, and from then on every `refresh` after each answer."""
        if self.backend is None:
            return
        for node in self.backend.config.nodes:
            self.run_worker(
                partial(
                    follow_inventory,
                    self.backend,
                    node.name,
                    self.settings.refresh_s,
                    self.post_message,
                ),
                group=f"inventory:{node.name}",
                exclusive=True,
            )

    @on(NodeInventoryLoaded)
    def _inventory_loaded(self, message: NodeInventoryLoaded) -> None:
        assert self.observed is not None
        inventory = message.inventory
        self.observed.set_node(inventory)
        self._announce(InventoryChanged)
        # Each node's doctor once, when every node has answered: its checks are seconds of
        # work on the node, and started at each node's first answer they slowed the answers
        # still to come (20 nodes: 3.9 s to a full table, 1.8 s without). A node that does not
        # answer is asked once it does (its SSH check would only repeat why not).
        if self.observed.all_answered:
            asked = self.observed.readiness.keys() | self.observed.examining
            for node, answer in self.observed.nodes.items():
                if answer is not None and answer.reachable and node not in asked:
                    self.examine(node)
        container = self.selected_container()
        if self.selected and container is None:
            self.select(None)
        elif (
            container is not None
            and container.running
            and container.pid != self._sampled_pid
            and not self.migrating
        ):
            # It started (a restore completes, a restart) since sampling began: sample the
            # process it runs now.
            self._restart_monitors()

    def examine(self, node: str) -> None:
        """Ask the node's doctor (again): every readiness check, a few seconds' work on the
        node, never on a timer."""
        assert self.backend is not None and self.observed is not None
        self.observed.examining.add(node)
        self.run_worker(
            partial(examine_node, self.backend, node, self.post_message),
            group=f"doctor:{node}",
            exclusive=True,
        )
        self._announce(ReadinessChanged)

    @on(NodeExamined)
    def _node_examined(self, message: NodeExamined) -> None:
        assert self.observed is not None
        self.observed.set_readiness(message.report)
        self._announce(ReadinessChanged)

    def first_table_shown(self) -> None:
        """The main screen calls this each time it fills its table."""
        if self.observed is not None and self.observed.all_answered:
            self._record_timing("first_full_table")

    # --- the watched container and path ------------------------------------------------------

    def select(self, ref: str | None) -> None:
        """Watch a container: its dirty rate, and the RTT to its target."""
        if self.observed is None or ref == self.selected:
            return
        self.selected = ref
        container = self.observed.container(ref) if ref else None
        if container is not None and (
            self.target is None or self.target not in self.observed.targets_for(container)
        ):
            self.target = self.observed.default_target(container)
        self._restart_monitors()
        self._announce(SelectionChanged)

    def set_target(self, node: str) -> None:
        if node == self.target:
            return
        self.target = node
        self._restart_monitors(dirty=False)
        self._announce(SelectionChanged)

    def selected_container(self) -> ContainerInfo | None:
        if self.observed is None or self.selected is None:
            return None
        return self.observed.container(self.selected)

    def _restart_monitors(self, dirty: bool = True) -> None:
        container = self.selected_container()
        self.workers.cancel_group(self, "rtt")
        if dirty:
            self.workers.cancel_group(self, "dirty")
            self._sampled_pid = None
        if container is None or self.migrating:
            return
        assert self.backend is not None and self.observed is not None
        if self.target:
            self.run_worker(
                partial(
                    poll_rtt,
                    self.backend,
                    self.observed,
                    container.node,
                    self.target,
                    self.settings.rtt_every_s,
                    self.post_message,
                ),
                group="rtt",
                exclusive=True,
            )
        if dirty and container.running:
            self._sampled_pid = container.pid
            self.run_worker(
                partial(
                    keep_sampling_dirty,
                    self.backend,
                    self.observed,
                    container.ref,
                    self.post_message,
                ),
                group="dirty",
                exclusive=True,
            )

    def pause_dirty_sampling(self) -> None:
        """Stop sampling before anything else clears the container's soft-dirty bits (a
        migration's pre-dumps, an evacuation's own samples): two samplers would hide each
        other's pages."""
        self.workers.cancel_group(self, "dirty")

    def resume_monitors(self) -> None:
        self._restart_monitors()

    def measure_throughput(self, src: str, dst: str) -> None:
        """Once per preview of a path: it moves tens of MiB, so never on a timer."""
        assert self.backend is not None and self.observed is not None
        self.run_worker(
            partial(measure_path, self.backend, self.observed, src, dst, self.post_message),
            group=f"throughput:{src}>{dst}",
            exclusive=True,
        )

    @on(RttMeasured)
    def _rtt_measured(self, message: RttMeasured) -> None:
        assert self.observed is not None
        self.observed.add_rtt(message.result)
        self._record_timing("first_rtt_sample")
        self._announce(RttChanged)

    @on(ThroughputMeasured)
    def _throughput_measured(self, message: ThroughputMeasured) -> None:
        assert self.observed is not None
        self.observed.set_throughput(message.result)
        self._announce(ThroughputChanged)
        result = message.result
        if isinstance(self.screen, MainScreen):  # the preview shows it; main does not
            self.notify(
                f"{result.src} → {result.dst}: {format_bandwidth(result.bytes_per_s)}, "
                f"RTT {format_duration(result.rtt_s)}",
                timeout=5,
            )

    @on(ProbeFailed)
    def _probe_failed(self, message: ProbeFailed) -> None:
        assert self.observed is not None
        self.observed.probe_failed(message.kind, (message.src, message.dst), message.error)
        self._announce(RttChanged if message.kind == "rtt" else ThroughputChanged)

    @on(DirtySampled)
    def _dirty_sampled(self, message: DirtySampled) -> None:
        assert self.observed is not None
        self.observed.add_dirty(message.ref, message.sample)
        self._record_timing("first_dirty_sample")
        self._announce(DirtyChanged)

    @on(DirtyFailed)
    def _dirty_failed(self, message: DirtyFailed) -> None:
        assert self.observed is not None
        self.observed.dirty_errors[message.ref] = message.error
        self._announce(DirtyChanged)

    # --- migrations --------------------------------------------------------------------------

    def refusal(self, container: ContainerInfo, target: str | None) -> str | None:
        """Why this migration may not start, in words; None when it may."""
        assert self.observed is not None
        if reason := read_only_refusal(self.read_only):
            return reason
        if self.migrating:
            return "a migration is already running"
        answers = self.observed.reachable(target) if target else None
        return move_refusal(container, target, self.observed.config, self.config_path, answers)

    def start_migration(self, order: MigrationOrder) -> None:
        self._follow_on(ProgressScreen(order))

    def start_evacuation(self, plan: EvacuationPlan, template: MigrationRequest) -> None:
        self._follow_on(EvacuationProgressScreen(plan, template))

    def _follow_on(self, screen: Screen) -> None:
        while len(self.screen_stack) > 1 and not isinstance(self.screen, MainScreen):
            self.pop_screen()  # the progress screen closes onto the main screen
        self.push_screen(screen)

    def migration_started(self, ref: str, target: str) -> None:
        """A container is on its way (or waits its turn in an evacuation): no other migration
        starts from this console until migrations_ended."""
        assert self.observed is not None
        self.migrating = True
        self.pause_dirty_sampling()
        self.observed.busy[ref] = f"→ {target}"
        self._announce(InventoryChanged)

    def migrations_ended(self, follow: str | None, moved: Iterable[tuple[str, str]] = ()) -> None:
        """Migrations from this console are over: `moved` names each container that moved
        (NODE/NAME, where it runs now), `follow` the one the table's cursor goes after."""
        assert self.observed is not None
        self.migrating = False
        self.observed.busy.clear()
        for ref, running_on in moved:
            self.observed.moved(ref, running_on)
        self.follow = follow
        self.selected = None  # the container may have moved: select afresh
        self.refresh_inventory()
        self._announce(InventoryChanged)

    # --- history -----------------------------------------------------------------------------

    def load_history(self) -> None:
        self.run_worker(self._read_history, thread=True, group="history", exclusive=True)

    def _read_history(self) -> None:
        assert self.backend is not None
        try:
            records = self.backend.history()
        except Exception as exc:  # the engine's records are optional to the console
            self.post_message(HistoryLoaded([], error=str(exc)))
        else:
            self.post_message(HistoryLoaded(records))

    @on(HistoryLoaded)
    def _history_loaded(self, message: HistoryLoaded) -> None:
        first = self.history_records is None
        self.history_records, self.history_error = message.records, message.error
        pending = [r for r in message.records if r.status == "pending"]
        if first and pending:
            self.notify(
                f"{len(pending)} migration(s) in the history never finished "
                f"({', '.join(r.container for r in pending[:3])}). If no other whimbrel is "
                "running them, settle them from the command palette (:).",
                title="unfinished migrations",
                severity="warning",
                timeout=30,
            )
        self._announce(HistoryChanged)

    # --- actions -----------------------------------------------------------------------------

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    async def action_quit(self) -> None:
        if self.migrating:
            self.notify(
                "a migration is running: abort it (a) or let it finish, then quit",
                severity="warning",
            )
            return
        self.exit(EXIT_OK)


def binding_ids() -> set[str]:
    """Every binding id the console has, for validating `[console] keys`."""

    ids = set()
    for cls in (WhimbrelApp, ContainerTable, *SCREENS):
        for binding in cls.__dict__.get("BINDINGS", []):
            if isinstance(binding, Binding) and binding.id:
                ids.add(binding.id)
    return ids
