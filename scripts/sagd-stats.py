#!/usr/bin/python3
"""Live sagd counters from its DPDK telemetry socket, one line per interval.

  sagd-stats.py [--prefix sagd] [--interval 1] [--count 0] [--tunnel NAME]

Prints packets and rates (rx, tx, drops) and, with --tunnel, that tunnel's ESP counters.
--count 0 runs until interrupted. --once prints /sagd/stats, /sagd/drops and exits.
"""
import argparse
import json
import socket
import sys
import time


class Telemetry:
    def __init__(self, prefix):
        path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.connect(path)
        info = json.loads(self.sock.recv(4096).decode())
        self.max_len = info.get("max_output_len", 16384)

    def query(self, cmd):
        self.sock.send(cmd.encode())
        reply = json.loads(self.sock.recv(self.max_len).decode())
        return reply[cmd.split(",")[0]]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prefix", default="sagd", help="sagd's EAL --file-prefix (default sagd)")
    ap.add_argument("--interval", type=float, default=1.0)
    ap.add_argument("--count", type=int, default=0, help="lines to print (0: until interrupted)")
    ap.add_argument("--tunnel", help="also show this tunnel's counters")
    ap.add_argument("--once", action="store_true", help="print totals and drops as JSON and exit")
    a = ap.parse_args()
    try:
        t = Telemetry(a.prefix)
    except OSError as e:
        sys.exit(f"sagd-stats: cannot reach sagd's telemetry (prefix '{a.prefix}'): {e}")
    if a.once:
        print(json.dumps({"stats": t.query("/sagd/stats"), "drops": t.query("/sagd/drops")}))
        return
    cols = f"{'time':>8} {'rx':>11} {'tx':>11} {'rx/s':>9} {'tx/s':>9} {'drops':>7}"
    if a.tunnel:
        cols += f" {'tun tx':>10} {'tun rx':>10} {'tx Mbit/s':>9} {'icv':>5} {'replay':>6}"
    print(cols, flush=True)
    prev, prev_t, prev_tb = None, time.monotonic(), 0
    n = 0
    while a.count == 0 or n < a.count:
        time.sleep(a.interval)
        now = time.monotonic()
        s = t.query("/sagd/stats")
        dt = now - prev_t
        rx_rate = (s["rx"] - prev["rx"]) / dt if prev else 0
        tx_rate = (s["tx"] - prev["tx"]) / dt if prev else 0
        line = f"{time.strftime('%H:%M:%S'):>8} {s['rx']:>11} {s['tx']:>11} {rx_rate:>9.0f} {tx_rate:>9.0f} {s['drops']:>7}"
        if a.tunnel:
            u = t.query(f"/sagd/tunnel,{a.tunnel}")
            mbit = (u["tx_bytes"] - prev_tb) * 8 / dt / 1e6 if prev else 0
            prev_tb = u["tx_bytes"]
            line += f" {u['tx_packets']:>10} {u['rx_packets']:>10} {mbit:>9.1f} {u['icv_fail']:>5} {u['replay']:>6}"
        print(line, flush=True)
        prev, prev_t = s, now
        n += 1


if __name__ == "__main__":
    main()
