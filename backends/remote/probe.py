"""whimbrel node helper: link probes, run on a node (standard library only; sent over SSH).

rtt HOST PORT COUNT      application-level round trips to an SSH server, without logging in:
                         after the server's banner, send ours and time the server's reply
                         (its KEXINIT), which crosses the path once each way on a live TCP
                         connection (a relay may answer the TCP handshake itself; this is
                         answered by sshd). One JSON line per sample.
send BYTES ARGV_JSON     run ARGV (an ssh command to the receiver's `sink`), stream BYTES
                         zero bytes into it, and time until the receiver's line comes back.
"""

import json
import socket
import subprocess
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


def send(n_bytes, argv):
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
    ready = proc.stdout.readline()
    if not ready.startswith(b"ready"):
        proc.kill()
        print(json.dumps({"error": f"receiver did not start: {ready[:200]!r}"}), flush=True)
        sys.exit(1)
    block = bytes(1 << 20)
    sent = 0
    t0 = time.perf_counter()
    while sent < n_bytes:
        k = min(len(block), n_bytes - sent)
        proc.stdin.write(block[:k])
        sent += k
    proc.stdin.close()
    answer = proc.stdout.readline()
    elapsed = time.perf_counter() - t0
    proc.wait()
    try:
        received = json.loads(answer)["bytes"]
    except (ValueError, KeyError):
        print(json.dumps({"error": f"receiver said {answer[:200]!r}"}), flush=True)
        sys.exit(1)
    print(json.dumps({"bytes": received, "elapsed_s": elapsed}), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "rtt":
        rtt(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "send":
        send(int(sys.argv[2]), json.loads(sys.argv[3]))
    else:
        sys.exit(f"probe: unknown action {sys.argv[1]!r}")
