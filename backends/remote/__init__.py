"""Scripts that run on the cluster nodes, not here.

Each module in this package is standard-library-only Python (3.9 or newer) that the operator
reads as text and sends over SSH to run as `python3 - ARGS`, the way Ansible ships its modules:
nodes need python3 and nothing of whimbrel installed. So nothing here imports whimbrel, and
nothing here is imported by it; `whimbrel.backends` reads these files as package resources.
"""
