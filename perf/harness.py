"""Shared pieces of the packet-generator harness (perf/bench.py, perf/soak.py): processes,
hugepages, telemetry, sagd/secgw config writers. Debian's /usr/bin/python3."""
import atexit
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import gen_pcaps as gp  # noqa: E402

PCAP_MAC = "02:70:63:61:70:00"   # net_pcap's fixed MAC: "\x02pcap" + device index (first = 0)
EDGE_MAC = "02:00:00:02:00:fe"   # WAN next hop 192.0.2.254 (static neighbour)
LAN_HOST_MAC = "02:00:00:01:00:02"  # 10.1.0.2
LAN_GW_MAC = "02:00:00:01:00:fe"    # 10.1.0.254 (next hop of the 1M-route LAN routes)
HP_DIR = "/sys/kernel/mm/hugepages/hugepages-2048kB"


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes
_procs = []


class Proc:
    NICE = 0   # set by bench/soak: DUT and generator processes run at this nice value

    def __init__(self, cmd, logpath, env=None, prefix=None):
        if Proc.NICE:
            cmd = ["nice", "-n", str(Proc.NICE)] + cmd
        self.cmd = cmd
        self.prefix = prefix
        self.logpath = logpath
        self.logf = open(logpath, "w")
        self.p = subprocess.Popen(cmd, stdout=self.logf, stderr=subprocess.STDOUT,
                                  start_new_session=True, env=env)
        _procs.append(self)

    def alive(self):
        return self.p.poll() is None

    def text(self):
        with open(self.logpath, errors="replace") as f:
            return f.read()

    def wait_log(self, regex, timeout):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if re.search(regex, self.text()):
                return True
            if not self.alive():
                return False
            time.sleep(0.1)
        return False

    def stop(self, timeout=15):
        if self.alive():
            try:
                os.killpg(self.p.pid, signal.SIGINT)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.logf.close()
        if self.prefix:   # EAL's runtime dir (telemetry socket, config) outlives the process
            subprocess.run(["rm", "-rf", f"/var/run/dpdk/{self.prefix}"], check=False)
        if self in _procs:
            _procs.remove(self)
        return self.p.returncode


def stop_all():
    for p in list(_procs):
        p.stop(5)


def _on_signal(sig, _frame):
    stop_all()
    sys.exit(128 + sig)


atexit.register(stop_all)
signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGINT, _on_signal)


# ---------------------------------------------------------------- hugepages
class Hugepages:
    """Reserve 2 MB hugepages through sysfs and mount a private hugetlbfs for them (this
    machine has none mounted); unmount and restore the previous count on release. Falls back
    to --no-huge when any step fails."""

    def __init__(self, pages, enable=True):
        self.MNT = f"/run/sagd-perf-huge-{os.getpid()}"   # private: concurrent runs do not collide
        self.orig = None
        self.mounted = False
        self.ok = False
        atexit.register(self.release)
        if not enable:
            return
        try:
            with open(f"{HP_DIR}/nr_hugepages") as f:
                self.orig = int(f.read())
            if self.orig < pages:
                with open(f"{HP_DIR}/nr_hugepages", "w") as f:
                    f.write(str(pages))
            with open(f"{HP_DIR}/free_hugepages") as f:
                free = int(f.read())
            os.makedirs(self.MNT, exist_ok=True)
            if not os.path.ismount(self.MNT):
                subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", self.MNT],
                               check=True)
            self.mounted = True
            self.ok = free >= 256
        except (OSError, subprocess.CalledProcessError) as e:
            log(f"hugepages: {e}; falling back to --no-huge")
        if not self.ok:
            log("hugepages: not available, using --no-huge")

    def eal(self, mem_mb=1024):
        return ["--huge-dir", self.MNT] if self.ok else ["--no-huge", "-m", str(mem_mb)]

    def release(self):
        if self.mounted:
            subprocess.run(["umount", self.MNT], check=False)
            try:
                os.rmdir(self.MNT)
            except OSError:
                pass
            self.mounted = False
        if self.orig is not None:
            try:
                with open(f"{HP_DIR}/nr_hugepages", "w") as f:
                    f.write(str(self.orig))
            except OSError:
                pass
            self.orig = None


# ---------------------------------------------------------------- telemetry
class Telemetry:
    def __init__(self, prefix, timeout=30):
        path = f"/var/run/dpdk/{prefix}/dpdk_telemetry.v2"
        end = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > end:
                    raise
                time.sleep(0.1)
        info = json.loads(self.sock.recv(4096).decode())
        self.max_len = info.get("max_output_len", 16384)

    def query(self, cmd):
        self.sock.send(cmd.encode())
        reply = json.loads(self.sock.recv(self.max_len).decode())
        return reply[cmd.split(",")[0]]

    def close(self):
        self.sock.close()


def proc_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


# ---------------------------------------------------------------- configs
def write_routes_file(path, n, seed=42):
    """n random non-overlapping prefixes (distinct /24 slots; 90% /24, 10% /28 inside the
    slot), even entries to tunnels, odd ones to the LAN gateway. 'addr len kind idx' lines."""
    r = random.Random(seed)
    slots = set()
    reserved = {0, 10, 127, 169, 172, 192, 198}
    while len(slots) < n:
        s = r.randrange(1 << 24)
        if (s >> 16) in reserved or (s >> 16) >= 224:
            continue
        slots.add(s)
    with open(path, "w") as f:
        for i, s in enumerate(sorted(slots, key=lambda x: hash((x, seed)))):
            if r.random() < 0.1:
                a, ln = (s << 8) | (r.randrange(16) << 4), 28
            else:
                a, ln = s << 8, 24
            f.write(f"{a} {ln} {'t' if i % 2 == 0 else 'l'} {i // 2}\n")


def sagd_yaml(path, lan_dev, wan_dev, tunnels, workers, replay_window, routes_file=None):
    L = [f"workers: {workers}", "ports:",
         f'  - {{ name: lan0, role: lan, device: "{lan_dev}", address: 10.1.0.1/24 }}',
         f'  - {{ name: wan0, role: wan, device: "{wan_dev}", address: 192.0.2.1/24, gateway: 192.0.2.254 }}',
         "tunnels:"]
    for i in range(tunnels):
        t = gp.tunnel(i)
        L.append(f"  - {{ name: {t['name']}, port: wan0, peer: {gp.ip2s(t['peer'])}, encap: esp, "
                 f"replay_window: {replay_window}, esn: false, "
                 f"outbound_sa: {{ spi: {t['spi_out']:#x}, cipher: aes-gcm-128, key: \"0x{t['key_out'].hex()}\" }}, "
                 f"inbound_sas: [ {{ spi: {t['spi_in']:#x}, cipher: aes-gcm-128, key: \"0x{t['key_in'].hex()}\" }} ] }}")
    L.append("routes:")
    if routes_file:
        with open(routes_file) as f:
            n_routes = sum(1 for _ in f)
        # The FIB is sized by limits.ipv4_routes (default 65536): room for the table.
        L.insert(1, f"limits: {{ ipv4_routes: {max(65536, n_routes + 1024)} }}")
        with open(routes_file) as f:
            for line in f:
                a, ln, kind, idx = line.split()
                if kind == "t":
                    L.append(f"  - {{ prefix: {gp.ip2s(int(a))}/{ln}, tunnel: tun{int(idx) % tunnels} }}")
                else:
                    L.append(f"  - {{ prefix: {gp.ip2s(int(a))}/{ln}, gateway: 10.1.0.254 }}")
    elif tunnels == 1:
        L.append("  - { prefix: 10.2.0.0/16, tunnel: tun0 }")
    else:
        for i in range(tunnels):
            L.append(f"  - {{ prefix: {gp.ip2s(0x0A800000 + (i << 8))}/24, tunnel: tun{i} }}")
    L += ["neighbours:",
          f'  - {{ port: wan0, address: 192.0.2.254, mac: "{EDGE_MAC}" }}',
          f'  - {{ port: lan0, address: 10.1.0.2, mac: "{LAN_HOST_MAC}" }}',
          f'  - {{ port: lan0, address: 10.1.0.254, mac: "{LAN_GW_MAC}" }}']
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def secgw_cfg(path, direction, extra_sa=""):
    """ipsec-secgw in sagd's place: port 0 = LAN (protected), port 1 = WAN (unprotected, -u 0x2),
    the same SA pair (SPI 0x1001 out, 0x2001 in) and keys as sagd's tun0."""
    t = gp.tunnel(0)
    k_out = ":".join(f"{b:02x}" for b in t["key_out"])
    k_in = ":".join(f"{b:02x}" for b in t["key_in"])
    txt = f"""# generated by perf/harness.py: ipsec-secgw in sagd's place ({direction})
sp ipv4 out esp protect {t['spi_out']} pri 1 dst 10.2.0.0/16 sport 0:65535 dport 0:65535
sp ipv4 in esp protect {t['spi_in']} pri 1 dst 10.1.0.0/16 sport 0:65535 dport 0:65535
sa out {t['spi_out']} aead_algo aes-128-gcm aead_key {k_out} mode ipv4-tunnel src 192.0.2.1 dst 192.0.2.254 {extra_sa}
sa in {t['spi_in']} aead_algo aes-128-gcm aead_key {k_in} mode ipv4-tunnel src 192.0.2.254 dst 192.0.2.1 {extra_sa}
rt ipv4 dst 192.0.2.254/32 port 1
rt ipv4 dst 10.1.0.0/16 port 0
neigh port 1 {EDGE_MAC}
neigh port 0 {LAN_HOST_MAC}
"""
    with open(path, "w") as f:
        f.write(txt)


def pcap_dev(idx, pcaps, infinite=True):
    s = f"net_pcap{idx}," + ",".join(f"rx_pcap={p}" for p in pcaps)
    s += "," + ",".join("tx_pcap=/dev/null" for _ in pcaps)
    return s + (",infinite_rx=1" if infinite else "")
