"""whimbrel node helper: link probes, run on a node (standard library only; sent over SSH).

rtt HOST PORT COUNT      application-level round trips to an SSH server, without logging in:
                         after the server's banner, send ours and time the server's reply
                         (its KEXINIT), which crosses the path once each way on a live TCP
                         connection (a relay may answer the TCP handshake itself; this is
                         answered by sshd). One JSON line per sample.
(Throughput is measured over the migration's own data path: `source.py probe-send`.)
"""

import json
import socket
import sys
import time


def rtt(host, port, count):
    for _ in range(count):
        started = time.time()
        try:
            with socket.create_connection((host, port), timeout=10) as sock:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                t0 = time.perf_counter()
                banner = b""
                while b"\n" not in banner:
                    chunk = sock.recv(256)
                    if not chunk:
                        raise OSError("closed before its banner")
                    banner += chunk
                t1 = time.perf_counter()
                sock.sendall(b"SSH-2.0-whimbrel_probe\r\n")
                if not sock.recv(65536):
                    raise OSError("closed before key exchange")
                t2 = time.perf_counter()
                sample = {"t": started, "rtt_s": t2 - t1, "banner_s": t1 - t0}
        except OSError as exc:
            sample = {"t": started, "error": str(exc)}
        print(json.dumps(sample), flush=True)
        time.sleep(0.05)


if __name__ == "__main__":
    if sys.argv[1] == "rtt":
        rtt(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(f"probe: unknown action {sys.argv[1]!r}")
