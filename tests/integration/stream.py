#!/usr/bin/python3
"""Bulk TCP stream for the demo and soak runs.

  stream.py sink PORT              accept one connection, count bytes until it closes
  stream.py send HOST PORT SECONDS  send zeros for SECONDS, then close
Both print one line with the bytes moved and the rate.
"""
import socket
import sys
import time


def sink(port):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(1)
    c, peer = s.accept()
    total, t0 = 0, time.monotonic()
    while True:
        d = c.recv(1 << 20)
        if not d:
            break
        total += len(d)
    dt = max(time.monotonic() - t0, 1e-6)
    print(f"sink: {total} bytes from {peer[0]} in {dt:.1f} s ({total * 8 / dt / 1e6:.0f} Mbit/s)", flush=True)


def send(host, port, seconds):
    c = socket.create_connection((host, port), timeout=10)
    buf = bytes(64 * 1024)
    total, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        total += c.send(buf)
    c.close()
    dt = time.monotonic() - t0
    print(f"send: {total} bytes in {dt:.1f} s ({total * 8 / dt / 1e6:.0f} Mbit/s)", flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "sink":
        sink(int(sys.argv[2]))
    elif len(sys.argv) == 5 and sys.argv[1] == "send":
        send(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit(__doc__)
