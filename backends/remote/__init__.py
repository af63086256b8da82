"""Scripts that run on the cluster nodes, not here.

Everything in this package is standard-library-only Python (3.9 or newer) that the operator
reads as text and sends over SSH to run as `python3 -c TEXT ARGS`, the way Ansible ships its
modules: nodes need python3 and nothing of whimbrel installed. A script (source.py, receiver.py,
trust.py, probe.py, inventory.py, dirtyrate.py) is a program with its actions; the other files
are node modules the scripts import, inlined into each script that uses them when it is shipped
(backends/node_scripts.py). So nothing here imports whimbrel, and nothing here is imported by
it; `whimbrel.backends` reads these files as package resources.
"""
