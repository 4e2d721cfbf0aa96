#!/usr/bin/python3
"""Soak sagd at its maximum rate in both directions (run it through scripts/soak.sh).

LAN port: net_pcap replaying plain LAN traffic (outbound, encrypt); WAN port: net_pcap replaying
ESP made with the tunnel's inbound SA (inbound, decrypt; anti-replay off: the pcap repeats its
sequence numbers). Both ports drop what sagd transmits (net_pcap without tx_pcap = tx_drop, counted). One worker (lcore 1), main lcore 0.

Once a second: throughput, mbuf pool occupancy (perf/mempool_probe, a DPDK secondary process),
sagd's RSS, free hugepages, /sagd/stats, /sagd/drops and the ports' ethdev counters.

Fails (exit 1) when, after the warm-up:
  - mbufs in use grow: max of the last third exceeds max of the first third by > --mbuf-margin
    (or rx_nombuf grows, or the pool runs dry);
  - process memory grows: RSS at the end exceeds RSS after warm-up by > --rss-margin-mb,
    or free hugepages shrink;
  - counters stop balancing: sagd's in_flight (rx + injected + handoff_in - tx - punted -
    handoff_out - drops) outside [-B, B] on any sample (B = --balance-tolerance), or not
    exactly balanced in sagd's own exit line;
  - packets vanish: ethdev rx - ethdev tx - (sagd drops + punted + in_flight) outside the
    read-skew tolerance on any sample (what the ports saw but sagd did not count);
  - throughput stalls: a one-second sample with no packets sent;
  - sagd exits early or does not start.
Prints a summary and writes DIR/soak.json and DIR/soak.png.

  soak.py [--duration 600] [--warmup 10] [--out DIR] [--sagd BIN] [--size 512]
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_pcaps as gp  # noqa: E402
import harness as h  # noqa: E402

PREFIX = "sagdsoak"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=600, help="seconds at full rate (default 600)")
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--out", default=os.path.join(h.ROOT, "build-perf", "soak"))
    ap.add_argument("--build", default=os.environ.get("SAGD_BUILD", os.path.join(h.ROOT, "build-perf")))
    ap.add_argument("--sagd", default=os.environ.get("SAGD_BIN"))
    ap.add_argument("--size", default="imix", help="frame size or imix (default imix)")
    ap.add_argument("--count", type=int, default=2048, help="frames per pcap")
    ap.add_argument("--mbuf-margin", type=int, default=512)
    ap.add_argument("--rss-margin-mb", type=float, default=4.0)
    ap.add_argument("--balance-tolerance", type=int, default=4096)
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--self-test-leak", type=int, default=0, metavar="N",
                    help="self-test: the probe takes N mbufs/s from sagd's pool and keeps them; "
                         "the soak must then FAIL")
    ap.add_argument("--nice", type=int, default=-10, help="nice value for sagd (default -10)")
    a = ap.parse_args()
    sagd = a.sagd or os.path.join(a.build, "control-shim", "sagd")
    probe = os.path.join(a.build, "perf", "mempool_probe")
    os.makedirs(a.out, exist_ok=True)
    hp = h.Hugepages(1024)
    h.Proc.NICE = a.nice
    failures, notes = [], []

    # inputs: LAN = first net_pcap (MAC ...:00), WAN = second (MAC ...:01)
    lan_mac, wan_mac = h.PCAP_MAC, h.PCAP_MAC[:-2] + "01"
    out_pcap = os.path.join(a.out, "soak_out.pcap")
    in_pcap = os.path.join(a.out, "soak_in.pcap")
    gp.write_pcap(out_pcap, gp.generate("out", a.size, 1, a.count, lan_mac))
    gp.write_pcap(in_pcap, gp.generate("in", a.size, 1, a.count, wan_mac))
    cfg = os.path.join(a.out, "sagd.yaml")
    h.sagd_yaml(cfg, f"net_pcap0,rx_pcap={out_pcap},infinite_rx=1",
                f"net_pcap1,rx_pcap={in_pcap},infinite_rx=1", 1, 1, 0)
    cmd = [sagd, "-c", cfg, "--", "-l", "0-1", "--main-lcore", "0", "--file-prefix", PREFIX] + hp.eal(1024)
    p = h.Proc(cmd, os.path.join(a.out, "sagd.log"), prefix=PREFIX)
    t_start = time.monotonic()
    if not p.wait_log(r"sagd: running", 60):
        print(p.text()[-3000:])
        print("SOAK FAIL: sagd did not start")
        p.stop()
        return 1
    startup = time.monotonic() - t_start
    tel = h.Telemetry(PREFIX)
    for port, mac in ((0, lan_mac), (1, wan_mac)):
        got = tel.query(f"/ethdev/info,{port}")["mac_addr"].lower()
        if got != mac:
            failures.append(f"port {port} MAC {got} != {mac} baked into the pcap")

    # mbuf probe (needs hugepages: DPDK secondaries cannot attach to a --no-huge primary)
    mb = {"last": None}
    probe_proc = None
    if hp.ok and os.path.exists(probe):
        probe_proc = subprocess.Popen(
            [probe, "sagd_mbufs", "1", "0"] + ([str(a.self_test_leak)] if a.self_test_leak else []) + ["--", "--proc-type=secondary", "--file-prefix", PREFIX,
             "--huge-dir", hp.MNT, "--no-pci", "-l", "0", "--log-level=error", "--no-telemetry"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)

        def reader():
            for line in probe_proc.stdout:
                try:
                    mb["last"] = json.loads(line)
                except ValueError:
                    pass
        threading.Thread(target=reader, daemon=True).start()
    else:
        notes.append("mbuf occupancy from sagd's own telemetry (/sagd/stats mbufs_in_use): "
                     "no hugepages for the perf/mempool_probe secondary process")

    samples = []
    t0 = time.monotonic()
    end = t0 + a.warmup + a.duration
    prev = None
    while time.monotonic() < end:
        if not p.alive():
            failures.append("sagd exited during the soak")
            break
        q0 = time.monotonic()
        e0, e1 = tel.query("/ethdev/stats,0"), tel.query("/ethdev/stats,1")
        st = tel.query("/sagd/stats")
        dr = tel.query("/sagd/drops")
        q1 = time.monotonic()
        s = {"t": round(q0 - t0, 2), "rx": st["rx"], "tx": st["tx"], "drops": st["drops"],
             "punted": st["punted"], "injected": st["injected"], "in_flight": st["in_flight"],
             "eth_rx": e0["ipackets"] + e1["ipackets"], "eth_tx": e0["opackets"] + e1["opackets"],
             "eth_oerrors": e0["oerrors"] + e1["oerrors"], "rx_nombuf": e0["rx_nombuf"] + e1["rx_nombuf"],
             "tx_lan": e0["opackets"], "tx_wan": e1["opackets"],
             "rss_kb": h.proc_rss_kb(p.p.pid), "query_s": q1 - q0,
             "drops_by_reason": {k: v for k, v in dr.items() if v}}
        with open(f"{h.HP_DIR}/free_hugepages") as f:
            s["free_hugepages"] = int(f.read())
        if mb["last"]:
            s["mbuf_in_use"] = mb["last"]["in_use"]
            s["mbuf_avail"] = mb["last"]["avail"]
        elif "mbufs_in_use" in st:
            s["mbuf_in_use"] = st["mbufs_in_use"]
            s["mbuf_avail"] = st["mbufs_available"]
        if prev:
            dt = s["t"] - prev["t"]
            s["mpps_out"] = (s["tx_wan"] - prev["tx_wan"]) / dt / 1e6    # encrypted, leaves on WAN
            s["mpps_in"] = (s["tx_lan"] - prev["tx_lan"]) / dt / 1e6     # decrypted, leaves on LAN
            rate = (s["eth_rx"] - prev["eth_rx"]) / dt
            # what the ports saw minus what sagd accounts for; reads are not atomic, so allow
            # the packets that move during the query plus a few bursts
            s["unaccounted"] = s["eth_rx"] - s["eth_tx"] - s["eth_oerrors"] - s["drops"] - s["punted"] - s["in_flight"] + s["injected"]
            s["skew_tol"] = int(rate * s["query_s"] * 2) + 1024
        samples.append(s)
        prev = s
        line = (f"t={s['t']:6.1f}s out {s.get('mpps_out', 0):6.3f} Mpps in {s.get('mpps_in', 0):6.3f} Mpps "
                f"mbufs {s.get('mbuf_in_use', '-')} rss {s['rss_kb'] / 1024:.1f} MB "
                f"in_flight {s['in_flight']} drops {s['drops']} unacc {s.get('unaccounted', 0)}")
        print(line, flush=True)
        time.sleep(max(0.0, 1.0 - (time.monotonic() - q0)))
    tel.close()
    if probe_proc:
        probe_proc.terminate()
        try:
            probe_proc.wait(5)
        except subprocess.TimeoutExpired:
            probe_proc.kill()
    rc = p.stop()
    log_text = p.text()
    if rc not in (0, None):
        failures.append(f"sagd exit code {rc}")

    # ---- verdicts
    steady = [s for s in samples if s["t"] >= a.warmup]
    if len(steady) < 6:
        failures.append(f"too few samples after warm-up ({len(steady)})")
    else:
        third = max(2, len(steady) // 3)
        first, last = steady[:third], steady[-third:]
        if "mbuf_in_use" in steady[0]:
            m0 = max(s["mbuf_in_use"] for s in first if "mbuf_in_use" in s)
            m1 = max(s["mbuf_in_use"] for s in last if "mbuf_in_use" in s)
            if m1 - m0 > a.mbuf_margin:
                failures.append(f"mbufs in use grew {m0} -> {m1} (margin {a.mbuf_margin})")
            if min(s.get("mbuf_avail", 1) for s in steady) == 0:
                failures.append("mbuf pool ran dry")
        if steady[-1]["rx_nombuf"] > steady[0]["rx_nombuf"]:
            failures.append(f"rx_nombuf grew by {steady[-1]['rx_nombuf'] - steady[0]['rx_nombuf']}")
        rss0, rss1 = steady[0]["rss_kb"], steady[-1]["rss_kb"]
        if (rss1 - rss0) / 1024 > a.rss_margin_mb:
            failures.append(f"RSS grew {rss0 / 1024:.1f} -> {rss1 / 1024:.1f} MB (margin {a.rss_margin_mb} MB)")
        if steady[-1]["free_hugepages"] < steady[0]["free_hugepages"]:
            failures.append("free hugepages shrank during the soak")
        bad_bal = [s for s in steady if abs(s["in_flight"]) > a.balance_tolerance]
        if bad_bal:
            failures.append(f"counters unbalanced on {len(bad_bal)} samples (first: in_flight "
                            f"{bad_bal[0]['in_flight']} at t={bad_bal[0]['t']})")
        bad_acc = [s for s in steady if "unaccounted" in s and abs(s["unaccounted"]) > s["skew_tol"]]
        if bad_acc:
            failures.append(f"packets unaccounted on {len(bad_acc)} samples (first: "
                            f"{bad_acc[0]['unaccounted']} > {bad_acc[0]['skew_tol']} at t={bad_acc[0]['t']})")
        stalls = [s for s in steady if s.get("mpps_out", 1) == 0 or s.get("mpps_in", 1) == 0]
        if stalls:
            failures.append(f"throughput stalled on {len(stalls)} samples (first t={stalls[0]['t']})")
    # sagd's exit line: workers have stopped, so the balance must be exact
    import re
    m = re.search(r"sagd: rx (\d+) tx (\d+) punted (\d+) drops (\d+)", log_text.split("sagd: running")[-1])
    final = None
    if m:
        rx, tx, punted, drops = map(int, m.groups())
        final = {"rx": rx, "tx": tx, "punted": punted, "drops": drops}
        if rx != tx + punted + drops:
            failures.append(f"exit counters do not balance: rx {rx} != tx {tx} + punted {punted} + drops {drops}")
    else:
        failures.append("no exit counter line from sagd")

    mo = [s["mpps_out"] for s in steady if "mpps_out" in s]
    mi = [s["mpps_in"] for s in steady if "mpps_in" in s]
    summary = {
        "duration_s": a.duration, "warmup_s": a.warmup, "startup_s": round(startup, 2),
        "frame_size": a.size, "anti_replay": "off (replayed ESP)",
        "mpps_out_mean": round(sum(mo) / len(mo), 3) if mo else None,
        "mpps_in_mean": round(sum(mi) / len(mi), 3) if mi else None,
        "mpps_out_min": round(min(mo), 3) if mo else None,
        "mpps_in_min": round(min(mi), 3) if mi else None,
        "packets_total": final["rx"] if final else None,
        "drops_total": final["drops"] if final else None,
        "drops_by_reason": samples[-1]["drops_by_reason"] if samples else {},
        "mbuf_in_use_first_last": [steady[0].get("mbuf_in_use"), steady[-1].get("mbuf_in_use")] if steady else None,
        "rss_mb_first_last": [round(steady[0]["rss_kb"] / 1024, 1), round(steady[-1]["rss_kb"] / 1024, 1)] if steady else None,
        "max_abs_in_flight": max((abs(s["in_flight"]) for s in steady), default=None),
        "max_abs_unaccounted": max((abs(s.get("unaccounted", 0)) for s in steady), default=None),
        "exit_counters": final, "failures": failures, "notes": notes,
        "verdict": "PASS" if not failures else "FAIL"}
    with open(os.path.join(a.out, "soak.json"), "w") as f:
        json.dump({"summary": summary, "samples": samples}, f, indent=1)
    if not a.no_plot:
        plot(samples, a.warmup, os.path.join(a.out, "soak.png"))
    print(json.dumps(summary, indent=1))
    print(f"SOAK {summary['verdict']}" + ("".join(f"\n  - {x}" for x in failures)))
    return 0 if not failures else 1


def plot(samples, warmup, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        h.log("soak: matplotlib missing: no plot")
        return
    t = [s["t"] for s in samples if "mpps_out" in s]
    fig, ax = plt.subplots(2, 2, figsize=(12, 7), sharex=True)
    ax[0][0].plot(t, [s["mpps_out"] for s in samples if "mpps_out" in s], label="outbound (encrypt)")
    ax[0][0].plot(t, [s["mpps_in"] for s in samples if "mpps_out" in s], label="inbound (decrypt)")
    ax[0][0].set_ylabel("Mpps"); ax[0][0].legend(fontsize=8)
    ax[0][1].plot(t, [s.get("mbuf_in_use", 0) for s in samples if "mpps_out" in s])
    ax[0][1].set_ylabel("mbufs in use (sagd_mbufs)")
    ax[1][0].plot(t, [s["rss_kb"] / 1024 for s in samples if "mpps_out" in s])
    ax[1][0].set_ylabel("sagd RSS (MB)")
    ax[1][1].plot(t, [s["in_flight"] for s in samples if "mpps_out" in s], label="sagd in_flight")
    ax[1][1].plot(t, [s.get("unaccounted", 0) for s in samples if "mpps_out" in s], label="ports - sagd")
    ax[1][1].plot(t, [s["drops"] for s in samples if "mpps_out" in s], label="drops (cum.)")
    ax[1][1].set_ylabel("packets"); ax[1][1].legend(fontsize=8)
    for x in ax.flat:
        x.axvline(warmup, color="grey", ls=":")
        x.grid(True, alpha=0.3)
    ax[1][0].set_xlabel("seconds"); ax[1][1].set_xlabel("seconds")
    fig.suptitle("sagd soak: both directions at full rate, one worker")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
