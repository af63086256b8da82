"""The selected container's live charts, drawn the same way on every screen that shows them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from whimbrel.backends.units import format_duration, format_size
from whimbrel.widgets.charts import DirtyChart, RttChart

if TYPE_CHECKING:
    from whimbrel.app.console import WhimbrelApp


def show_rtt(app: WhimbrelApp, chart: RttChart) -> None:
    observed, container, target = app.observed, app.selected_container(), app.target
    assert observed is not None
    if container is None or target is None:
        chart.show_series("RTT ms  (select a container)", ())
        chart.border_subtitle = ""
        return
    pair = (container.node, target)
    last = observed.rtt_last.get(pair)
    title = f"RTT ms  {container.node} → {target}"
    if last is not None:
        title += f"  now {format_duration(last)}"
    chart.show_series(title, observed.rtt.get(pair, ()))
    error = observed.rtt_errors.get(pair)
    chart.border_subtitle = f"probe failed: {error}" if error else ""
    chart.set_class(bool(error), "-error")


def show_dirty(app: WhimbrelApp, chart: DirtyChart) -> None:
    observed, container = app.observed, app.selected_container()
    assert observed is not None
    if container is None:
        chart.show_series("Dirty pages/s", ())
        chart.border_subtitle = ""
        return
    samples = observed.dirty.get(container.ref, ())
    rate = observed.dirty_rate(container.ref)
    title = f"Dirty pages/s  {container.name}"
    if rate is not None:
        title += f"  {format_size(rate)}/s"
    chart.show_series(title, [(s.t, s.pages_per_s) for s in samples])
    error = observed.dirty_errors.get(container.ref)
    if app.migrating:
        chart.border_subtitle = "paused while migrating"
    elif not container.running:
        chart.border_subtitle = f"{container.state}: nothing to sample"
    else:
        chart.border_subtitle = f"sampling failed: {error}" if error else ""
    chart.set_class(bool(error), "-error")
