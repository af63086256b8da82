#!/usr/bin/env bash
# Drive the console against the lab inside tmux, the way an operator would, and keep what the
# screen showed at each step under docs/screens/ (NN-name.txt plain, NN-name.ansi in colour:
# `cat` it in a terminal).
#
#   main (kv selected, live charts) -> plan preview to west-1 -> migrate modal -> progress
#   -> main again (kv on west-1) -> the same back to east-1 -> history
#
# Needs the lab up (`whimbrel lab up`, root). Leaves kv where it found it (east-1).
# Usage: scripts/tmux_demo.sh [CONFIG]   (default /var/lib/wblab/config.toml)
set -euo pipefail
export LC_ALL=C.UTF-8

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONFIG="${1:-/var/lib/wblab/config.toml}"
OUT="$ROOT/docs/screens"
SOCKET="whimbrel-demo-$$"
SESSION="demo"
WHIMBREL="$ROOT/.venv/bin/whimbrel"

[[ -r "$CONFIG" ]] || { echo "tmux_demo: no lab config at $CONFIG (whimbrel lab up)" >&2; exit 2; }
command -v tmux >/dev/null || { echo "tmux_demo: tmux is not installed" >&2; exit 2; }
mkdir -p "$OUT"

tm() { tmux -L "$SOCKET" "$@"; }
cleanup() { tm kill-server 2>/dev/null || true; }
trap cleanup EXIT

screen() { tm capture-pane -p -t "$SESSION"; }

# wait_for PATTERN SECONDS: until the screen shows PATTERN (an extended regex).
wait_for() {
    local pattern="$1" limit="$2" waited=0
    until screen | grep -Eq "$pattern"; do
        if (( waited >= limit * 10 )); then
            echo "tmux_demo: '$pattern' did not show within $limit s; the screen was:" >&2
            screen >&2
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
}

# save NN-NAME: the screen now, plain and in colour.
save() {
    screen >"$OUT/$1.txt"
    tm capture-pane -p -e -t "$SESSION" >"$OUT/$1.ansi"
    echo "saved docs/screens/$1.txt"
}

keys() { tm send-keys -t "$SESSION" "$@"; sleep 0.4; }

# migrate NODE/NAME TARGET NN: filter to the container, preview, confirm, wait for the end.
migrate() {
    local target="$2" step="$3" name="${1#*/}" node="${1%/*}"
    n() { printf "%02d" $((10#$step + $1)); }
    wait_for "│ +$name +$node " 30
    keys p
    wait_for "Plan: $name on $node" 10
    # Pick the target: the list starts on the default one; move down until it is highlighted.
    for _ in 1 2 3 4; do
        screen | grep -q "Plan: $name on $node → $target" && break
        keys Down
    done
    wait_for "Plan: $name on $node → $target" 5
    wait_for "verdict" 90          # RTT, throughput and dirty rate measured, plan shown
    sleep 3                        # a few more points on the charts
    save "$step-preview-$name-to-$target"
    keys m
    wait_for "Migrate $name\?" 5
    save "$(n 1)-modal-$name-to-$target"
    keys Right Enter
    wait_for "preflight" 10
    wait_for "round 0|stop-and-copy" 120
    save "$(n 2)-progress-$name-running"
    wait_for "─ (Done|Stopped) ─" 600
    save "$(n 3)-progress-$name-done"
    screen | grep -q "─ Done ─" || { echo "tmux_demo: the migration did not succeed" >&2; exit 1; }
    keys Escape
}

tm new-session -d -s "$SESSION" -x 120 -y 40 \
    "COLORTERM=truecolor TERM=xterm-256color $WHIMBREL --config $CONFIG; sleep 5"
tm set-option -t "$SESSION" escape-time 0 >/dev/null

wait_for "Containers" 20
wait_for "│ +kv +east-1 " 30
keys /                         # filter to kv: the cursor is on it, its charts start
keys k v
keys Enter
wait_for "Dirty pages/s +kv" 10
sleep 25                       # some RTT and dirty-rate points on the charts
save "01-main-kv-on-east-1"

migrate east-1/kv west-1 02
wait_for "│ +kv +west-1 " 30
sleep 8
save "06-main-kv-on-west-1"

migrate west-1/kv east-1 07
wait_for "│ +kv +east-1 " 30

keys h
wait_for "History" 10
sleep 1
save "11-history"
keys Escape q

# The charts must have drawn something: braille dots in the main and preview captures.
for f in "$OUT/01-main-kv-on-east-1.txt" "$OUT/02-preview-kv-to-west-1.txt"; do
    if ! grep -qP '[\x{2801}-\x{28FF}]' "$f"; then
        echo "tmux_demo: no chart points in $(basename "$f")" >&2
        exit 1
    fi
done
echo "tmux_demo: done; screens in docs/screens/"
