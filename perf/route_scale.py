#!/usr/bin/python3
"""Route scale: 1,000,000 IPv4 routes into sagd through the bulk API and through FPM.

Figures: routes per second to add and to delete (target: >= 500,000/s) for
  - the bulk API: POST /v1/routes, text/plain batches "add PREFIX tunnel t0" / "del PREFIX"
    of --batches N lines per request (default 10k, 100k and 1M), one keep-alive connection on
    the unix socket, timed from the first byte of the first request to the last byte of the
    last response; GET /v1/status routes.ipv4 checked afterwards;
  - FPM: this script acts as zebra's dplane_fpm_nl (FRR 8.x with "no fpm use-next-hop-groups"):
    it connects to sagd's FPM port and streams one FPM message per route, as zebra does: a
    route install is one RTM_NEWROUTE, an update (all routes to a new gateway; skipped with
    --no-fpm-update) is RTM_DELROUTE + RTM_NEWROUTE in one FPM message, a withdrawal is one
    RTM_DELROUTE. Table 254, proto 186 (bgp), RTA_DST,
    RTA_PRIORITY 20, RTA_GATEWAY 10.1.0.254 (on sagd's LAN subnet), RTA_OIF 2. Timed from the
    first byte sent until sagd shows the last route of the stream installed (a cheap exact
    GET /v1/routes poll every few ms: routes are installed in stream order), then the
    totals are checked with GET /v1/status;
and memory: sagd's VmRSS + HugetlbPages (/proc/PID/status) and DPDK's heap
(telemetry /eal/heap_info,0) with the FIB empty and with the 1M routes loaded; the fixed cost
of a 1.1M-route FIB is the idle footprint minus that of a sagd with the smallest limit (1024).

sagd runs with two net_null ports (no rx: no traffic), one tunnel, one worker (lcore 1), the
control thread on lcore 0, `limits: {ipv4_routes: --limit}`, on hugepages when they can be
reserved (2 MB pages added through sysfs and given back afterwards) else `--no-huge -m 4096`.
One sagd for the API runs (memory measured on the first load), a fresh one for FPM. sagd runs
at nice -20 in an autogroup set to nice -20 (see --autogroup-nice). Each record also has the
control thread's CPU seconds and run-queue wait: on a shared machine routes per control-CPU
second is the figure that does not depend on the neighbours.

  route_scale.py [--routes N] [--batches 10000,100000,1000000] [--mix] [--order random|sequential]
                 [--no-api] [--no-fpm] [--no-fpm-update] [--no-baseline] [--no-huge]
                 [--profile] [--out DIR] [--build DIR]
  route_scale.py --report DIR/route_scale.json     # the table of an earlier run

--profile records the control thread (perf record --call-graph dwarf -t PID) during each timed
phase and writes DIR/profile-<phase>.txt (top self and inclusive symbols).
Writes DIR/route_scale.json and prints a table.
"""
import argparse
import json
import os
import random
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_pcaps as gp  # noqa: E402
import harness as h  # noqa: E402

TARGET = 500_000
LAN_GW = "10.1.0.254"
LAN_GW2 = "10.1.0.253"     # the next hop of --fpm-update
PREFIX = "sagdroutes"
MIB = 1 << 20


# ---------------------------------------------------------------- prefixes
def make_prefixes(n, mix=False, order="random", seed=7):
    """n distinct (addr, len) IPv4 prefixes (host order), none inside sagd's own subnets.
    Default: n /24s from 11.0.0.0 upwards (1M of them end at 26.15.255.0/24). --mix: an
    Internet-like mix of /16../32 (/24 60%, /22-/23 20%, /16-/21 15%, /25-/32 5%: every prefix
    longer than /24 takes a tbl8 group of its own /24, sagd has 65536) over 11.0.0.0 - 100.0.0.0."""
    r = random.Random(seed)
    if not mix:
        out = [((11 << 24) + (i << 8), 24) for i in range(n)]
    else:
        lo, hi = 11 << 24, 100 << 24
        keys, tbl8_slots, out = set(), set(), []
        weights = [(24, 60.0), (23, 10.0), (22, 10.0), (21, 5.0), (20, 4.0), (19, 2.5),
                   (18, 1.5), (17, 1.0), (16, 1.0)] + [(ln, 5.0 / 8) for ln in range(25, 33)]
        lens, w = zip(*weights)
        while len(out) < n:
            ln = r.choices(lens, w)[0]
            a = r.randrange(lo, hi) & (0xFFFFFFFF << (32 - ln)) & 0xFFFFFFFF
            if (a, ln) in keys:
                continue
            if ln > 24:
                if (a >> 8) in tbl8_slots or len(tbl8_slots) >= 60000:
                    continue
                tbl8_slots.add(a >> 8)
            keys.add((a, ln))
            out.append((a, ln))
    if order == "random":
        r.shuffle(out)
    return out


def ptext(p):
    return f"{gp.ip2s(p[0])}/{p[1]}"


# ---------------------------------------------------------------- HTTP over the unix socket
class Api:
    def __init__(self, path, timeout=600):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""
        self.used = time.monotonic()

    @staticmethod
    def request_bytes(method, path, body=b"", ctype="text/plain"):
        head = f"{method} {path} HTTP/1.1\r\nHost: sagd\r\n"
        if body or method in ("POST", "PUT"):
            head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
        return head.encode() + b"\r\n" + body

    def send(self, raw):
        self.s.sendall(raw)
        self.used = time.monotonic()

    def response(self):
        while b"\r\n\r\n" not in self.buf:
            d = self.s.recv(1 << 20)
            if not d:
                raise RuntimeError("api: connection closed")
            self.buf += d
        head, rest = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        status = int(lines[0].split()[1])
        n = 0
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            if k.strip().lower() == "content-length":
                n = int(v)
        while len(rest) < n:
            d = self.s.recv(1 << 20)
            if not d:
                raise RuntimeError("api: connection closed")
            rest += d
        self.buf = rest[n:]
        return status, rest[:n]

    def call(self, method, path, body=b""):
        self.send(self.request_bytes(method, path, body))
        st, b = self.response()
        return st, b

    def json(self, method, path, body=b""):
        st, b = self.call(method, path, body)
        if st != 200:
            raise RuntimeError(f"api: {method} {path}: {st} {b[:300]!r}")
        return json.loads(b)

    def close(self):
        self.s.close()


# ---------------------------------------------------------------- FPM (zebra's dplane_fpm_nl)
RTM_NEWROUTE, RTM_DELROUTE = 24, 25
NLM_F_REQUEST, NLM_F_REPLACE, NLM_F_CREATE = 0x1, 0x100, 0x400
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY = 1, 4, 5, 6
RTPROT_BGP, RT_TABLE_MAIN, RTN_UNICAST = 186, 254, 1


def nl_route(kind, addr, ln, gw=None, oif=2, metric=20, seq=0):
    """One netlink route message laid out as zebra's netlink_route_multipath() does (see the
    FRR 8.4 captures in tests/unit/control-shim/fpm_test.cpp): rtmsg, RTA_DST, RTA_PRIORITY,
    then for an add RTA_GATEWAY and RTA_OIF."""
    attrs = struct.pack("=HH", 8, RTA_DST) + struct.pack("!I", addr)
    attrs += struct.pack("=HHI", 8, RTA_PRIORITY, metric)
    if kind == RTM_NEWROUTE:
        attrs += struct.pack("=HH", 8, RTA_GATEWAY) + socket.inet_aton(gw)
        attrs += struct.pack("=HHI", 8, RTA_OIF, oif)
        flags, rtype = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE, RTN_UNICAST
    else:
        flags, rtype = NLM_F_REQUEST | NLM_F_CREATE, 0
    rtm = struct.pack("=BBBBBBBBI", 2, ln, 0, 0, RT_TABLE_MAIN, RTPROT_BGP, 0, rtype, 0)
    body = rtm + attrs
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0x5a6b7c8d) + body


def fpm_frame(*nl):
    payload = b"".join(nl)
    return struct.pack("!BBH", 1, 1, 4 + len(payload)) + payload


def fpm_stream(prefixes, op):
    """op: 'add' (one RTM_NEWROUTE per FPM message: zebra's ROUTE_INSTALL and RIB walk),
    'update' (RTM_DELROUTE + RTM_NEWROUTE via LAN_GW2 per message: ROUTE_UPDATE), 'del'."""
    parts = []
    for i, (a, ln) in enumerate(prefixes):
        if op == "add":
            parts.append(fpm_frame(nl_route(RTM_NEWROUTE, a, ln, LAN_GW, seq=i)))
        elif op == "update":
            parts.append(fpm_frame(nl_route(RTM_DELROUTE, a, ln, seq=i),
                                   nl_route(RTM_NEWROUTE, a, ln, LAN_GW2, seq=i)))
        else:
            parts.append(fpm_frame(nl_route(RTM_DELROUTE, a, ln, seq=i)))
    return b"".join(parts)


# ---------------------------------------------------------------- hugepages
class Hugepages:
    """Adds `pages` 2 MB hugepages to whatever the system has (other users may hold some: this
    only ever adds and later removes its own), mounts a private hugetlbfs, undoes both."""

    def __init__(self, pages, enable=True):
        self.mnt = f"/run/sagd-route-scale-huge-{os.getpid()}"
        self.added = 0
        self.mounted = False
        self.ok = False
        self.trace = []
        if not enable:
            return
        try:
            nr = self._read("nr_hugepages")
            with open(f"{h.HP_DIR}/nr_hugepages", "w") as f:
                f.write(str(nr + pages))
            self.added = self._read("nr_hugepages") - nr
            self.trace = [f"nr_hugepages {nr} -> {nr + self.added} (+{self.added})"]
            free = self._read("free_hugepages")
            os.makedirs(self.mnt, exist_ok=True)
            subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", self.mnt],
                           check=True)
            self.mounted = True
            self.ok = free >= pages
            if not self.ok:
                h.log(f"hugepages: only {free} free of the {pages} wanted")
        except (OSError, subprocess.CalledProcessError) as e:
            h.log(f"hugepages: {e}")
        if not self.ok:
            h.log("hugepages: not available, using --no-huge -m 4096")
            self.release()

    @staticmethod
    def _read(name):
        with open(f"{h.HP_DIR}/{name}") as f:
            return int(f.read())

    def eal(self):
        return ["--huge-dir", self.mnt] if self.ok else ["--no-huge", "-m", "4096"]

    def release(self):
        if self.mounted:
            subprocess.run(["umount", self.mnt], check=False)
            self.mounted = False
        try:
            os.rmdir(self.mnt)
        except OSError:
            pass
        if self.added:
            try:
                nr = self._read("nr_hugepages")
                with open(f"{h.HP_DIR}/nr_hugepages", "w") as f:
                    f.write(str(max(0, nr - self.added)))
                self.trace.append(f"released: nr_hugepages {nr} -> {self._read('nr_hugepages')}")
            except OSError:
                pass
            self.added = 0
        self.ok = False


# ---------------------------------------------------------------- sagd
def write_config(path, sock, fpm_port, limit):
    t = gp.tunnel(0)
    txt = f"""# generated by perf/route_scale.py: no traffic (net_null, no rx), one tunnel
workers: 1
api: {{ socket: {sock} }}
fpm: {{ listen: "127.0.0.1:{fpm_port}", grace_seconds: 30 }}
limits: {{ ipv4_routes: {limit} }}
ports:
  - {{ name: lan0, role: lan, device: "net_null0,no-rx=1", address: 10.1.0.1/24 }}
  - {{ name: wan0, role: wan, device: "net_null1,no-rx=1", address: 192.0.2.1/24, gateway: 192.0.2.254 }}
tunnels:
  - {{ name: t0, port: wan0, peer: {gp.ip2s(t['peer'])}, encap: esp,
      outbound_sa: {{ spi: {t['spi_out']:#x}, cipher: aes-gcm-128, key: "0x{t['key_out'].hex()}" }},
      inbound_sas: [ {{ spi: {t['spi_in']:#x}, cipher: aes-gcm-128, key: "0x{t['key_in'].hex()}" }} ] }}
"""
    with open(path, "w") as f:
        f.write(txt)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Sagd:
    def __init__(self, a, hp, tag, limit):
        self.work = a.out
        self.sock = os.path.join(self.work, f"api-{tag}.sock")
        self.fpm_port = free_port()
        cfg = os.path.join(self.work, f"sagd-{tag}.yaml")
        write_config(cfg, self.sock, self.fpm_port, limit)
        prefix = f"{PREFIX}{os.getpid()}"
        self.cmd = [a.sagd, "-c", cfg, "--", "-l", "0-1", "--main-lcore", "0", "--file-prefix",
                    prefix] + hp.eal()
        t0 = time.monotonic()
        self.p = h.Proc(self.cmd, os.path.join(self.work, f"sagd-{tag}.log"), prefix=prefix)
        self.autogroup = None
        if a.autogroup_nice is not None:
            # h.Proc starts sagd in a new session, so (kernel.sched_autogroup_enabled=1) in an
            # autogroup of its own: a nice value only ranks threads inside their autogroup,
            # while CPU time is shared fairly between autogroups. Give sagd's group the priority.
            try:
                with open(f"/proc/{self.p.p.pid}/autogroup", "w") as f:
                    f.write(str(a.autogroup_nice))
                with open(f"/proc/{self.p.p.pid}/autogroup") as f:
                    self.autogroup = f.read().strip()
            except OSError as e:
                h.log(f"route_scale: autogroup nice: {e}")
        if not self.p.wait_log(r"sagd: fpm listening", 600):
            h.log(self.p.text()[-3000:])
            self.p.stop()
            raise RuntimeError("sagd did not start")
        self.startup_s = round(time.monotonic() - t0, 2)
        self.pid = self._sagd_pid()
        self.tel = h.Telemetry(prefix)
        self.api = Api(self.sock)

    def _sagd_pid(self):
        # h.Proc may have wrapped the command in `nice`, which execs: same pid
        return self.p.p.pid

    def memory(self):
        st = {}
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "RssAnon", "RssFile", "RssShmem", "HugetlbPages", "VmHWM"):
                    st[k] = int(v.split()[0]) * 1024
        heap = self.tel.query("/eal/heap_info,0")
        st["dpdk_heap_alloc"] = heap["Alloc_size"]
        st["dpdk_heap_size"] = heap["Heap_size"]
        st["rss_plus_hugetlb"] = st.get("VmRSS", 0) + st.get("HugetlbPages", 0)
        return st

    def memzones(self):
        out = {}
        for i in self.tel.query("/eal/memzone_list"):
            z = self.tel.query(f"/eal/memzone_info,{i}")
            out[z["Name"]] = z["Length"]
        return out

    def status(self):
        if time.monotonic() - self.api.used > 20:
            self.reconnect()
        return self.api.json("GET", "/v1/status")

    def reconnect(self):
        """A fresh API connection (sagd closes one idle for 30 s: building 1M-line bodies takes
        a while)."""
        self.api.close()
        self.api = Api(self.sock)

    def cpu(self):
        """CPU seconds (user + system) of the control thread (tid == pid: EAL's main lcore runs
        the control loop) and of the whole process (the worker busy-polls: ~1 s/s)."""
        tck = os.sysconf("SC_CLK_TCK")

        def read(path):
            with open(path) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / tck
        with open(f"/proc/{self.pid}/task/{self.pid}/schedstat") as f:
            run_ns, wait_ns, _ = (int(x) for x in f.read().split())
        # [0] control thread CPU s, [1] whole process CPU s, [2] control thread on-CPU s and
        # [3] runnable-but-waiting s (schedstat: time lost to other tasks on the CPU)
        return (read(f"/proc/{self.pid}/task/{self.pid}/stat"), read(f"/proc/{self.pid}/stat"),
                run_ns / 1e9, wait_ns / 1e9)

    def stop(self):
        try:
            self.api.close()
            self.tel.close()
        except OSError:
            pass
        return self.p.stop(60)


# ---------------------------------------------------------------- profiling
class Profiler:
    def __init__(self, a, pid, name):
        self.a, self.name, self.p = a, name, None
        if not a.profile:
            return
        self.data = os.path.join(a.out, f"perf-{name}.data")
        ctl, ack = self.data + ".ctl", self.data + ".ack"
        for f in (ctl, ack):
            if os.path.exists(f):
                os.unlink(f)
            os.mkfifo(f)
        # The control thread only (tid == pid: EAL's main lcore runs the control loop); the
        # worker busy-polls on lcore 1 and would swamp a whole-process profile. Started with
        # the events off and enabled through the control fifo once perf has read sagd's maps
        # (hundreds of hugepage mappings: the default 500 ms map timeout loses symbols).
        self.p = subprocess.Popen(["perf", "record", "-q", "-F", str(a.profile_hz), "--call-graph",
                                   "dwarf,8192", "--proc-map-timeout", "30000", "-D", "-1",
                                   "--control", f"fifo:{ctl},{ack}", "-t", str(pid), "-o", self.data],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(ctl, "w") as c, open(ack) as k:
            c.write("enable\n")
            c.flush()
            k.readline()
        self.fifos = (ctl, ack)

    def stop(self):
        if not self.p:
            return None
        self.p.send_signal(2)
        self.p.wait(120)
        for f in self.fifos:
            os.unlink(f)
        txt = os.path.join(self.a.out, f"profile-{self.name}.txt")
        with open(txt, "w") as f:
            for title, extra in (("self", ["--no-children"]), ("inclusive (children)", ["--children"])):
                f.write(f"==== {title}\n")
                f.flush()
                subprocess.run(["perf", "report", "-i", self.data, "--stdio", "-g", "none",
                                "--percent-limit", "0.8", "--sort", "dso,symbol"] + extra,
                               stdout=f, stderr=subprocess.DEVNULL)
            f.write("==== self, with callers (caller graph, >= 2%)\n")
            f.flush()
            subprocess.run(["perf", "report", "-i", self.data, "--stdio", "--no-children",
                            "-g", "caller,2,callee,function,percent", "--percent-limit", "3",
                            "--sort", "symbol"], stdout=f, stderr=subprocess.DEVNULL)
        return txt


# ---------------------------------------------------------------- phases
def wait_until(fn, timeout, step=0.003):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if fn():
            return time.monotonic()
        time.sleep(step)
    raise RuntimeError("timed out")


def api_phase(a, s, prefixes, base_ipv4, results):
    n = len(prefixes)
    adds = [f"add {ptext(p)} tunnel t0\n" for p in prefixes]
    dels = [f"del {ptext(p)}\n" for p in prefixes]
    first = True
    for b in a.batches:
        b = min(b, n)
        for op, lines, want in (("add", adds, base_ipv4 + n), ("del", dels, base_ipv4)):
            reqs = [Api.request_bytes("POST", "/v1/routes", "".join(lines[i:i + b]).encode())
                    for i in range(0, n, b)]
            s.reconnect()
            mem0 = s.memory() if (first and op == "add") else None
            prof = Profiler(a, s.pid, f"api-{op}-{b}")
            c0 = s.cpu()
            t0 = time.monotonic()
            for r in reqs:
                s.api.send(r)
                st, body = s.api.response()
                if st != 200:
                    raise RuntimeError(f"api {op} batch {b}: {st} {body[:300]!r}")
            dt = time.monotonic() - t0
            c1 = s.cpu()
            ptxt = prof.stop()
            stt = s.status()
            got = stt["routes"]["ipv4"]
            rec = {"path": "api", "op": op, "batch": b, "requests": len(reqs), "routes": n,
                   "seconds": round(dt, 3), "routes_per_s": round(n / dt), **cpu_fields(c0, c1, n),
                   "request_bytes": sum(len(r) for r in reqs),
                   "status_ipv4": got, "expected_ipv4": want, "ok": got == want}
            if ptxt:
                rec["profile"] = ptxt
            if mem0 is not None:
                mem1 = s.memory()
                rec["memory_before"], rec["memory_after"] = mem0, mem1
                rec["memory_per_route"] = per_route(mem0, mem1, n)
                first = False
            results.append(rec)
            h.log(f"  api {op:3} batch {b:>8}: {n} routes in {dt:7.3f} s = {n / dt:>10,.0f} routes/s"
                  f" (control thread CPU {c1[0] - c0[0]:.2f} s, runqueue wait {c1[3] - c0[3]:.2f} s)  status ipv4 {got} (want {want}) {'OK' if got == want else 'MISMATCH'}")
            if got != want:
                raise RuntimeError(f"api {op}: routes.ipv4 {got}, expected {want}")


def cpu_fields(c0, c1, n):
    cpu = c1[0] - c0[0]
    return {"control_cpu_s": round(cpu, 2),                   # utime + stime of the thread
            "routes_per_control_cpu_s": round(n / max(cpu, 0.01)),
            "control_runqueue_wait_s": round(c1[3] - c0[3], 3),  # runnable, other tasks ran
            "process_cpu_s": round(c1[1] - c0[1], 2)}           # + the busy-polling worker


def per_route(m0, m1, n):
    return {k: round((m1[k] - m0[k]) / n, 1) for k in
            ("rss_plus_hugetlb", "VmRSS", "RssAnon", "HugetlbPages", "dpdk_heap_alloc") if k in m0}


def sender_sched():
    """(CPU ns, run-queue wait ns) of this process's main thread (/proc/self/schedstat)."""
    with open("/proc/self/schedstat") as f:
        run, wait, _ = f.read().split()
    return int(run), int(wait)


def fpm_phase(a, s, prefixes, base_ipv4, results):
    n = len(prefixes)
    last = ptext(prefixes[-1])
    exact = Api.request_bytes("GET", f"/v1/routes?prefix={last}&match=exact")

    def last_route():
        s.api.send(exact)
        st, b = s.api.response()
        r = json.loads(b)["routes"]
        return r[0] if r else None

    ops = [("add", lambda: (last_route() or {}).get("via", {}).get("gateway") == LAN_GW,
            base_ipv4 + n, n)]
    if a.fpm_update:
        ops.append(("update", lambda: (last_route() or {}).get("via", {}).get("gateway") == LAN_GW2,
                    base_ipv4 + n, n))
    ops.append(("del", lambda: last_route() is None, base_ipv4, 0))
    fpm = socket.create_connection(("127.0.0.1", s.fpm_port))
    fpm.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    wait_until(lambda: s.status()["fpm"]["state"] == "connected", 10, 0.01)
    for op, done, want_ipv4, want_learned in ops:
        t_build = time.monotonic()
        stream = fpm_stream(prefixes, op)
        build_s = time.monotonic() - t_build
        s.reconnect()
        mem0 = s.memory() if op == "add" else None
        st0 = s.status()["fpm"]
        prof = Profiler(a, s.pid, f"fpm-{op}")
        view = memoryview(stream)
        c0 = s.cpu()
        snd0 = sender_sched()
        t0 = time.monotonic()
        for i in range(0, len(stream), 1 << 20):
            fpm.sendall(view[i:i + (1 << 20)])
        t_sent = time.monotonic()
        snd1 = sender_sched()
        t1 = wait_until(done, 600)
        dt = t1 - t0
        c1 = s.cpu()
        ptxt = prof.stop()
        stt = s.status()
        f = stt["fpm"]
        got, learned = stt["routes"]["ipv4"], stt["routes"]["learned"]
        ok = (got == want_ipv4 and learned == want_learned and f["decode_errors"] == 0 and
              f["framing_errors"] == 0 and f["install_failures"] == 0)
        rec = {"path": "fpm", "op": op, "routes": n, "fpm_messages": f["messages"] - st0["messages"],
               "netlink_messages_per_fpm_message": 2 if op == "update" else 1,
               "stream_bytes": len(stream), "seconds": round(dt, 3),
               "send_seconds": round(t_sent - t0, 3), "routes_per_s": round(n / dt),
               **cpu_fields(c0, c1, n),
               "status_ipv4": got, "expected_ipv4": want_ipv4, "learned": learned,
               "fpm_status": {k: f[k] for k in ("installed", "adds", "deletes", "decode_errors",
                                                "framing_errors", "install_failures", "unresolved")},
               "stream_build_s": round(build_s, 2),
               # This script as zebra: its CPU while sending, and its wait for a CPU (on two
               # cores it shares one with sagd's control thread or its busy-polling worker).
               "sender_cpu_s": round((snd1[0] - snd0[0]) / 1e9, 3),
               "sender_runqueue_wait_s": round((snd1[1] - snd0[1]) / 1e9, 3), "ok": ok}
        if ptxt:
            rec["profile"] = ptxt
        if mem0 is not None:
            mem1 = s.memory()
            rec["memory_before"], rec["memory_after"] = mem0, mem1
            rec["memory_per_route"] = per_route(mem0, mem1, n)
        results.append(rec)
        h.log(f"  fpm {op:6}: {n} routes in {dt:7.3f} s = {n / dt:>10,.0f} routes/s (sent in "
              f"{t_sent - t0:.3f} s, control thread CPU {c1[0] - c0[0]:.2f} s, runqueue wait {c1[3] - c0[3]:.2f} s; "
              f"sender CPU {rec['sender_cpu_s']:.2f} s, waiting {rec['sender_runqueue_wait_s']:.2f} s)  status ipv4 {got} learned {learned} {'OK' if ok else 'MISMATCH'}")
        if not ok:
            raise RuntimeError(f"fpm {op}: status {json.dumps(stt)[:800]}")
    fpm.close()


# ---------------------------------------------------------------- report
def table(res):
    lines = [f"{'path':4} {'op':6} {'batch':>8} {'routes':>8} {'seconds':>8} {'routes/s':>10} "
             f"{'target':>7} {'ctl CPU s':>9} {'routes/CPU-s':>12} {'rq wait s':>9} "
             f"{'B/route (RSS+huge)':>19} {'B/route (DPDK heap)':>20}"]
    for r in res["runs"]:
        mp = r.get("memory_per_route", {})
        lines.append(
            f"{r['path']:4} {r['op']:6} {str(r.get('batch', '-')):>8} {r['routes']:>8} "
            f"{r['seconds']:>8.3f} {r['routes_per_s']:>10,} "
            f"{'MET' if r['routes_per_s'] >= TARGET else 'NOT MET':>7} "
            f"{r.get('control_cpu_s', 0):>9.2f} {r.get('routes_per_control_cpu_s', 0):>12,} "
            f"{r.get('control_runqueue_wait_s', 0):>9.2f} "
            f"{str(mp.get('rss_plus_hugetlb', '')):>19} {str(mp.get('dpdk_heap_alloc', '')):>20}")
    fx = res.get("fixed")
    if fx:
        lines.append("")
        lines.append(f"fixed cost of limits.ipv4_routes {fx['limit']} (idle, FIB empty) over limit "
                     f"{fx['baseline_limit']}: RSS+hugetlb {fx['rss_plus_hugetlb'] / MIB:.0f} MiB, "
                     f"DPDK heap {fx['dpdk_heap_alloc'] / MIB:.0f} MiB; start-up "
                     f"{fx['startup_s']} s vs {fx['baseline_startup_s']} s")
        for k, v in fx.get("memzones", {}).items():
            lines.append(f"  memzone {k:22} {v / MIB:8.1f} MiB")
        lines.append(f"  not in memzones (rte_zmalloc: DIR24_8 tbl24 + tbl8 of both FIB copies, "
                     f"...): {fx['heap_outside_memzones'] / MIB:.0f} MiB")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--routes", type=int, default=1_000_000)
    ap.add_argument("--batches", default="10000,100000,1000000",
                    help="API lines per request, comma separated (default 10000,100000,1000000)")
    ap.add_argument("--limit", type=int, default=1_100_000, help="sagd limits.ipv4_routes")
    ap.add_argument("--mix", action="store_true", help="an Internet-like /16../32 mix instead of /24s")
    ap.add_argument("--order", choices=("random", "sequential"), default="random")
    ap.add_argument("--no-api", action="store_true")
    ap.add_argument("--no-fpm", action="store_true")
    ap.add_argument("--no-fpm-update", dest="fpm_update", action="store_false",
                    help="skip the FPM update phase (RTM_DELROUTE + RTM_NEWROUTE per message)")
    ap.add_argument("--no-baseline", action="store_true",
                    help="skip the limit-1024 sagd that gives the fixed cost of the big FIB")
    ap.add_argument("--no-huge", action="store_true")
    ap.add_argument("--hugepages", type=int, default=1400,
                    help="2 MB pages to add for the run (default 1400: the 1.1M-route FIB takes ~2.2 GB)")
    ap.add_argument("--profile", action="store_true", help="perf record the control thread per phase")
    ap.add_argument("--profile-hz", type=int, default=499)
    ap.add_argument("--nice", type=int, default=-20, help="nice value of sagd (as bench.py)")
    ap.add_argument("--autogroup-nice", type=int, default=-20,
                    help="nice value of sagd's autogroup (/proc/PID/autogroup; default -20): with "
                         "sched_autogroup the per-process nice only ranks sagd against itself")
    ap.add_argument("--no-autogroup-nice", dest="autogroup_nice", action="store_const", const=None)
    ap.add_argument("--out", default=os.path.join(h.ROOT, "build", "route-scale"))
    ap.add_argument("--build", default=os.environ.get("SAGD_BUILD", os.path.join(h.ROOT, "build")))
    ap.add_argument("--sagd", help="sagd binary (default BUILD/control-shim/sagd)")
    ap.add_argument("--report", metavar="JSON", help="only print the table of an earlier run")
    a = ap.parse_args()
    if a.report:
        with open(a.report) as f:
            res = json.load(f)
        print(table(res))
        print(f"\ncommand: {res['meta']['command']}")
        return 0
    a.batches = [int(x) for x in a.batches.split(",") if x]
    a.sagd = a.sagd or os.path.join(a.build, "control-shim", "sagd")
    os.makedirs(a.out, exist_ok=True)
    if os.geteuid() != 0:
        sys.exit("route_scale: run as root (hugepages, DPDK)")
    h.Proc.NICE = a.nice
    t_all = time.monotonic()
    res = {"meta": {"command": " ".join([sys.executable] + sys.argv), "routes": a.routes,
                    "limit": a.limit, "mix": a.mix, "order": a.order, "batches": a.batches,
                    "nice": a.nice, "autogroup_nice": a.autogroup_nice, "sagd": a.sagd,
                    "load_before": open("/proc/loadavg").read().split()[:3],
                    "cpus": os.cpu_count(), "target_routes_per_s": TARGET},
           "runs": []}
    prefixes = make_prefixes(a.routes, a.mix, a.order)
    lens = {}
    for _, ln in prefixes:
        lens[ln] = lens.get(ln, 0) + 1
    res["meta"]["prefix_lengths"] = dict(sorted(lens.items()))
    hp = Hugepages(a.hugepages, enable=not a.no_huge)
    res["meta"]["memory"] = "hugepages (2 MB, private hugetlbfs)" if hp.ok else "--no-huge -m 4096"
    try:
        if not a.no_baseline:
            s = Sagd(a, hp, "baseline", 1024)
            base_mem = s.memory()
            base_startup = s.startup_s
            s.stop()
        idle = None
        for path in (("api",) if not a.no_api else ()) + (("fpm",) if not a.no_fpm else ()):
            h.log(f"route_scale: starting sagd for {path} ({res['meta']['memory']})")
            s = Sagd(a, hp, path, a.limit)
            try:
                st = s.status()
                base_ipv4 = st["routes"]["ipv4"]
                if idle is None:
                    idle = s.memory()
                    zones = s.memzones()
                    res["idle"] = {"memory": idle, "memzones": zones, "startup_s": s.startup_s,
                                   "status_routes": st["routes"], "sagd_cmd": " ".join(s.cmd)}
                if path == "api":
                    api_phase(a, s, prefixes, base_ipv4, res["runs"])
                else:
                    fpm_phase(a, s, prefixes, base_ipv4, res["runs"])
            finally:
                rc = s.stop()
                if rc not in (0, None):
                    h.log(f"route_scale: sagd exited {rc}; log {s.p.logpath}")
        if idle is not None and not a.no_baseline:
            zones = res["idle"]["memzones"]
            big = {k: v for k, v in zones.items() if v >= MIB}
            res["fixed"] = {
                "limit": a.limit, "baseline_limit": 1024,
                "rss_plus_hugetlb": idle["rss_plus_hugetlb"] - base_mem["rss_plus_hugetlb"],
                "dpdk_heap_alloc": idle["dpdk_heap_alloc"] - base_mem["dpdk_heap_alloc"],
                "idle_rss_plus_hugetlb": idle["rss_plus_hugetlb"],
                "idle_dpdk_heap_alloc": idle["dpdk_heap_alloc"],
                "baseline_memory": base_mem, "startup_s": res["idle"]["startup_s"],
                "baseline_startup_s": base_startup, "memzones": big,
                "heap_outside_memzones": idle["dpdk_heap_alloc"] - sum(zones.values()),
                "note": "rte_fib DIR24_8 per copy (sagd keeps two): tbl24 2^24 x 4 B = 64 MiB and "
                        "tbl8 (groups+1) x 256 x 4 B (rte_zmalloc, not memzones); the RIB node "
                        "mempool MP_<fib name> (rte_fib sizes it max_routes x 2 nodes, and sagd "
                        "passes max_routes = 2 x limit) with its ring RG_MP_<fib name>"}
    finally:
        hp.release()
        res["meta"]["hugepages"] = hp.trace
    res["meta"]["elapsed_s"] = round(time.monotonic() - t_all, 1)
    out = os.path.join(a.out, "route_scale.json")
    with open(out, "w") as f:
        json.dump(res, f, indent=1)
    print(table(res))
    print(f"\ncommand: {res['meta']['command']}\nresults: {out}  ({res['meta']['elapsed_s']} s, "
          f"{res['meta']['memory']}, load before {' '.join(res['meta']['load_before'])})")
    bad = [r for r in res["runs"] if not r["ok"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
