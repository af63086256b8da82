"""The console's screens: main (clusters, nodes, containers, live charts), preview (the plan
for a target), migrate (the confirmation modal), progress, evacuate, evacuation_progress (its
migrations side by side), history, readiness (a node's doctor), help, welcome (no config
yet). What they share is in base.py."""
