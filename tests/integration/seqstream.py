#!/usr/bin/python3
"""seqstream.py: sequence-numbered UDP streams that count loss, duplicates, reordering and
misrouting at the receiver (Python 3 standard library only).

  seqstream.py send --to IP:PORT [--to IP:PORT ...] --rate PPS --duration S [options]
  seqstream.py recv --listen [IP:]PORT [--local IP ...] [options]
  seqstream.py trap --iface IF --port PORT [--local IP ...] [options]

send   One stream per --to (stream id = --stream-base + index), each at --rate packets/s for
       --duration seconds, paced against the monotonic clock: the number of packets due at any
       moment is elapsed * rate, sent in batches (sendmmsg(2) through ctypes, one connected UDP
       socket per stream; plain send() if that is unavailable). After a stall it catches up in
       bursts of at most ~2 ms worth of packets; it reports how far it ever fell behind its
       schedule (max_lag_ms), and if it falls more than --slip-ms behind, the schedule slips
       (slipped_ms; the stream stays gapless). "pacing_ok" is false when the lag exceeded
       --max-lag-ms or the schedule slipped: the sender (not the network) could not keep the
       rate. With --duration 0 it runs until SIGTERM/SIGINT. After the
       last data packet it sends END markers (--end-copies, 20 ms apart) that carry the number
       of packets sent, so the receiver can count tail loss.
       Payload: magic "SQS1", type (0 data, 1 end), stream id, seq (0, 1, ...), send time
       (CLOCK_MONOTONIC ns, one clock for every namespace), intended destination address and
       port; padded to --size bytes.
recv   A UDP socket (recvmmsg(2) through ctypes, with IP_PKTINFO so every packet's real
       destination address is known; recvmsg() if ctypes fails). Per stream: received, lost,
       duplicates, reordered, the longest gap in packets and in ms (send-time span between the
       packets around the gap), the longest silence between two arrivals, latency.
       misrouted = packets whose IP destination is not one of --local (default: the --listen
       address, if any) or differs from the destination the sender put in the payload.
       Stops when every stream seen has sent its END markers (and --expect-streams have been
       seen), after --duration, after --idle S without packets once something arrived, or on
       SIGTERM/SIGINT. SIGUSR1 writes the current counters to --stats-file.
trap   An AF_PACKET listener on --iface (incoming frames only) that counts stream packets to
       --port whose destination is not one of --local: packets that reached the wrong host.
       Same output and stop conditions as recv.

All modes print one JSON line at the end (and write it to --stats-file, atomically).
lost = sent - distinct received when the END marker arrived (sent is in the marker), else
(highest seq + 1) - distinct received with "end_seen": false.
"""
import argparse
import bisect
import ctypes
import ctypes.util
import errno
import json
import os
import select
import signal
import socket
import struct
import sys
import time

MAGIC = b"SQS1"
HDR = struct.Struct("!4sB3xIQQ4sHxx")   # magic, type, stream, seq, send ns, dst ip, dst port
HDR_SIZE = HDR.size                     # 36
T_DATA, T_END = 0, 1
SOL_IP = 0
IP_PKTINFO = 8
MSG_DONTWAIT = 0x40
MSG_WAITFORONE = 0x10000
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4


# ------------------------------------------------------------------------------- ctypes glue
class IoVec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


class MsgHdr(ctypes.Structure):
    _fields_ = [("msg_name", ctypes.c_void_p), ("msg_namelen", ctypes.c_uint32),
                ("msg_iov", ctypes.POINTER(IoVec)), ("msg_iovlen", ctypes.c_size_t),
                ("msg_control", ctypes.c_void_p), ("msg_controllen", ctypes.c_size_t),
                ("msg_flags", ctypes.c_int)]


class MMsgHdr(ctypes.Structure):
    _fields_ = [("msg_hdr", MsgHdr), ("msg_len", ctypes.c_uint)]


MSIZE = ctypes.sizeof(MMsgHdr)


def load_libc():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.sendmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int]
        libc.sendmmsg.restype = ctypes.c_int
        libc.recvmmsg.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_uint, ctypes.c_int,
                                  ctypes.c_void_p]
        libc.recvmmsg.restype = ctypes.c_int
        return libc
    except (OSError, AttributeError):
        return None


class Batch:
    """n packet buffers of `size` bytes with an mmsghdr vector pointing at them."""

    def __init__(self, n, size, control=0):
        self.n, self.size, self.control = n, size, control
        self.buf = ctypes.create_string_buffer(n * size)
        self.view = memoryview(self.buf).cast("B")
        self.iov = (IoVec * n)()
        self.msgs = (MMsgHdr * n)()
        self.addr = ctypes.addressof(self.msgs)
        self.cbuf = ctypes.create_string_buffer(n * control) if control else None
        base = ctypes.addressof(self.buf)
        cbase = ctypes.addressof(self.cbuf) if control else 0
        for i in range(n):
            self.iov[i].iov_base = base + i * size
            self.iov[i].iov_len = size
            h = self.msgs[i].msg_hdr
            h.msg_iov = ctypes.pointer(self.iov[i])
            h.msg_iovlen = 1
            if control:
                h.msg_control = cbase + i * control
                h.msg_controllen = control


def write_json(path, obj):
    line = json.dumps(obj, sort_keys=True)
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(line + "\n")
        os.replace(tmp, path)
    return line


def parse_hostport(s, default_host=None):
    host, _, port = s.rpartition(":")
    if not host:
        if default_host is None:
            raise argparse.ArgumentTypeError("%r: expected IP:PORT" % s)
        host = default_host
    socket.inet_aton(host)
    return host, int(port)


# ------------------------------------------------------------------------------- sender
def run_send(a):
    libc = None if a.no_mmsg else load_libc()
    streams = []
    for i, (host, port) in enumerate(a.to):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        if a.bind:
            s.bind((a.bind, 0))
        s.connect((host, port))
        sid = a.stream_base + i
        dst = socket.inet_aton(host)
        batch = Batch(a.batch, a.size) if libc else None
        if batch:
            for j in range(a.batch):
                HDR.pack_into(batch.buf, j * a.size, MAGIC, T_DATA, sid, 0, 0, dst, port)
        streams.append({"sock": s, "id": sid, "dst": dst, "port": port, "sent": 0,
                        "batch": batch, "name": "%s:%d" % (host, port), "errors": 0,
                        "last_error": None})
    pad = bytes(a.size - HDR_SIZE)
    # --duration 0: until SIGTERM/SIGINT (then the END markers go out as usual)
    total_due = int(a.rate * max(a.duration - a.ramp / 2.0, 0)) if a.duration else float("inf")
    interval = max(a.batch / a.rate / 2.0, 0.0002)   # wake up twice per full batch
    max_lag = 0      # packets behind schedule (worst moment)
    stop = [False]

    def on_signal(*_):
        stop[0] = True
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if a.ready_file:
        write_json(a.ready_file, {"ready": True})
    # Catch up after a stall in bursts of at most ~2 ms worth of packets; if the sender falls
    # more than --slip-ms behind (it did not get the CPU), the schedule slips instead of a huge
    # burst: the stream stays gapless, the slip is reported and pacing_ok turns false.
    max_burst = max(a.batch, int(a.rate * 0.002))
    slip_pkts = max(a.batch, int(a.rate * a.slip_ms / 1000.0))
    slipped_ns = 0
    t0 = time.monotonic_ns()
    ramp_ns = int(a.ramp * 1e9)

    def due_at(now):
        """packets due by `now`: rate * elapsed, after a linear ramp from 0 over --ramp s"""
        el = now - t0
        if el < ramp_ns:
            n = a.rate * el * el / (2.0 * ramp_ns * 1e9)
        else:
            n = a.rate * (el - ramp_ns / 2.0) / 1e9
        return int(min(total_due, n))

    while not stop[0]:
        now = time.monotonic_ns()
        due = due_at(now)
        worst = max(due - st["sent"] for st in streams)
        if worst > max_lag:
            max_lag = worst
        if worst > slip_pkts:
            shift = int((worst - slip_pkts) * 1_000_000_000 / a.rate)
            t0 += shift
            slipped_ns += shift
            due = due_at(now)
        done = True
        still_behind = False
        for st in streams:
            behind = min(due - st["sent"], max_burst)
            while behind > 0 and not stop[0]:
                n = min(behind, a.batch)
                seq0 = st["sent"]
                ts = time.monotonic_ns()
                if st["batch"]:
                    b = st["batch"]
                    for j in range(n):
                        struct.pack_into("!QQ", b.buf, j * a.size + 12, seq0 + j, ts)
                    k = 0
                    while k < n:
                        r = libc.sendmmsg(st["sock"].fileno(), b.addr + k * MSIZE, n - k, 0)
                        if r < 0:
                            e = ctypes.get_errno()
                            if e == errno.EINTR:
                                continue
                            # the packet at k was not sent: reported as a send error (the
                            # receiver will see its seq missing)
                            st["errors"] += 1
                            st["last_error"] = os.strerror(e)
                            k += 1
                            continue
                        k += r
                else:
                    for j in range(n):
                        try:
                            st["sock"].send(HDR.pack(MAGIC, T_DATA, st["id"], seq0 + j, ts,
                                                     st["dst"], st["port"]) + pad)
                        except OSError as e:
                            st["errors"] += 1
                            st["last_error"] = e.strerror
                st["sent"] += n
                behind -= n
            if st["sent"] < due:
                still_behind = True
            if st["sent"] < total_due:
                done = False
        if done:
            break
        if not still_behind:
            time.sleep(interval)
    t1 = time.monotonic_ns()
    # END markers: total sent, repeated (they cross the same path as the data)
    for c in range(a.end_copies):
        for st in streams:
            try:
                st["sock"].send(HDR.pack(MAGIC, T_END, st["id"], st["sent"], time.monotonic_ns(),
                                         st["dst"], st["port"]) + pad)
            except OSError:
                pass
        if c + 1 < a.end_copies:
            time.sleep(0.02)
    elapsed = (t1 - t0) / 1e9
    lag_ms = max_lag * 1000.0 / a.rate
    out = {"mode": "send", "rate": a.rate, "ramp_s": a.ramp, "duration_s": round(elapsed, 3),
           "mmsg": bool(libc), "batch": a.batch, "size": a.size,
           "max_lag_pkts": max_lag, "max_lag_ms": round(lag_ms, 2),
           "slipped_ms": round(slipped_ns / 1e6, 1),
           "pacing_ok": lag_ms <= a.max_lag_ms and slipped_ns == 0,
           "interrupted": bool(stop[0] and a.duration),
           "streams": {}}
    for st in streams:
        out["streams"][str(st["id"])] = {
            "dst": st["name"], "sent": st["sent"], "send_errors": st["errors"],
            "last_error": st["last_error"],
            "achieved_pps": round(st["sent"] / elapsed, 1) if elapsed > 0 else 0}
    print(write_json(a.stats_file, out), flush=True)
    return 0


# ------------------------------------------------------------------------------- receiver
class Stream:
    __slots__ = ("sid", "dst", "seen", "unique", "dups", "reordered", "highest", "hts",
                 "gaps", "gaps_overflow", "first_arrival", "last_arrival", "max_silence_ns",
                 "max_lat_ns", "sum_lat_ns", "end_total", "misrouted")

    MAX_GAPS = 100_000

    def __init__(self, sid, dst):
        self.sid, self.dst = sid, dst
        self.seen = bytearray(1 << 16)   # one bit per seq, grown on demand
        self.unique = self.dups = self.reordered = self.misrouted = 0
        self.highest = -1
        self.hts = 0                     # send time of `highest`
        self.gaps = []                   # sorted [lo, hi, send ns before lo, send ns after hi]
        self.gaps_overflow = False
        self.first_arrival = self.last_arrival = 0
        self.max_silence_ns = self.max_lat_ns = self.sum_lat_ns = 0
        self.end_total = None

    def add(self, seq, ts, now):
        byte = seq >> 3
        if byte >= len(self.seen):
            self.seen.extend(bytes(max(byte + 1 - len(self.seen), len(self.seen))))
        bit = 1 << (seq & 7)
        if self.seen[byte] & bit:
            self.dups += 1
            return
        self.seen[byte] |= bit
        self.unique += 1
        if self.last_arrival:
            d = now - self.last_arrival
            if d > self.max_silence_ns:
                self.max_silence_ns = d
        else:
            self.first_arrival = now
        self.last_arrival = now
        lat = now - ts
        if lat > self.max_lat_ns:
            self.max_lat_ns = lat
        self.sum_lat_ns += lat
        if seq > self.highest:
            if seq > self.highest + 1:
                self.open_gap(self.highest + 1, seq - 1, self.hts if self.highest >= 0 else None, ts)
            self.highest = seq
            self.hts = ts
        else:
            self.reordered += 1
            self.fill_gap(seq, ts)

    def open_gap(self, lo, hi, ts_before, ts_after):
        if len(self.gaps) >= self.MAX_GAPS:
            self.gaps_overflow = True
            return
        self.gaps.append([lo, hi, ts_before, ts_after])   # always beyond every existing gap

    def fill_gap(self, seq, ts):
        i = bisect.bisect_right(self.gaps, [seq, float("inf")]) - 1
        if i < 0:
            return
        g = self.gaps[i]
        if not g[0] <= seq <= g[1]:
            return
        lo, hi, tb, ta = g
        new = []
        if lo <= seq - 1:
            new.append([lo, seq - 1, tb, ts])
        if seq + 1 <= hi:
            new.append([seq + 1, hi, ts, ta])
        self.gaps[i:i + 1] = new

    def report(self):
        expected = self.end_total if self.end_total is not None else self.highest + 1
        lost = max(expected - self.unique, 0)
        max_gap_pkts = max_gap_ms = 0
        gaps = list(self.gaps)
        if self.end_total is not None and self.highest + 1 < self.end_total:
            gaps.append([self.highest + 1, self.end_total - 1, self.hts if self.highest >= 0 else None, None])
        for lo, hi, tb, ta in gaps:
            n = hi - lo + 1
            if n > max_gap_pkts:
                max_gap_pkts = n
            if tb is not None and ta is not None:
                max_gap_ms = max(max_gap_ms, (ta - tb) / 1e6)
        # the largest gaps, with the send time (CLOCK_MONOTONIC s) of the packet before each,
        # so that a test can tell what it was doing when the packets went missing
        worst = sorted(gaps, key=lambda g: g[1] - g[0], reverse=True)[:10]
        worst_gaps = [{"first_seq": lo, "pkts": hi - lo + 1,
                       "after_s": round(tb / 1e9, 4) if tb is not None else None,
                       "ms": round((ta - tb) / 1e6, 3) if tb is not None and ta is not None else None}
                      for lo, hi, tb, ta in worst]
        return {
            "dst": self.dst, "received": self.unique, "expected": expected,
            "end_seen": self.end_total is not None, "lost": lost, "duplicates": self.dups,
            "reordered": self.reordered, "misrouted": self.misrouted,
            "gaps": len(gaps), "max_gap_pkts": max_gap_pkts, "max_gap_ms": round(max_gap_ms, 3),
            "gaps_overflow": self.gaps_overflow, "worst_gaps": worst_gaps,
            "max_silence_ms": round(self.max_silence_ns / 1e6, 3),
            "max_latency_ms": round(self.max_lat_ns / 1e6, 3),
            "mean_latency_ms": round(self.sum_lat_ns / self.unique / 1e6, 3) if self.unique else None,
            "highest_seq": self.highest,
            "active_s": round((self.last_arrival - self.first_arrival) / 1e9, 3),
        }


class Receiver:
    def __init__(self, a, locals_):
        self.a = a
        self.local = set(socket.inet_aton(x) for x in locals_)
        self.streams = {}
        self.foreign = 0          # not a seqstream packet
        self.misrouted = 0
        self.misrouted_by_dst = {}
        self.packets = 0
        self.started = time.monotonic_ns()
        self.last_packet = 0

    def packet(self, data, hdr_dst, now):
        """data: the UDP payload; hdr_dst: the IP header's destination (4 bytes) or None."""
        if len(data) < HDR_SIZE or data[:4] != MAGIC:
            self.foreign += 1
            return
        _, typ, sid, seq, ts, pdst, pport = HDR.unpack_from(data)
        self.packets += 1
        self.last_packet = now
        st = self.streams.get(sid)
        if st is None:
            st = self.streams[sid] = Stream(sid, "%s:%d" % (socket.inet_ntoa(pdst), pport))
        wrong = (hdr_dst is not None and hdr_dst != pdst) or \
                (self.local and (hdr_dst or pdst) not in self.local)
        if wrong:
            self.misrouted += 1
            st.misrouted += 1
            k = socket.inet_ntoa(hdr_dst or pdst)
            self.misrouted_by_dst[k] = self.misrouted_by_dst.get(k, 0) + 1
        if typ == T_END:
            st.end_total = seq
            return
        if typ != T_DATA:
            self.foreign += 1
            return
        st.add(seq, ts, now)

    def finished(self, now):
        a = self.a
        if a.duration and now - self.started >= a.duration * 1e9:
            return True
        if a.idle and self.last_packet and now - self.last_packet >= a.idle * 1e9:
            return True
        if self.streams and len(self.streams) >= a.expect_streams and \
                all(s.end_total is not None for s in self.streams.values()):
            # the END markers are repeated: linger a moment for stragglers
            return now - self.last_packet >= 0.15e9
        return False

    def report(self, mode, extra=None):
        out = {"mode": mode, "packets": self.packets, "foreign": self.foreign,
               "misrouted": self.misrouted, "misrouted_by_dst": self.misrouted_by_dst,
               "streams": {str(k): v.report() for k, v in sorted(self.streams.items())}}
        tot = {"received": 0, "lost": 0, "duplicates": 0, "reordered": 0}
        for v in out["streams"].values():
            for k in tot:
                tot[k] += v[k]
        out["totals"] = tot
        if extra:
            out.update(extra)
        return out


def install_signals(rx, mode, a, extra):
    stop = [False]

    def on_stop(*_):
        stop[0] = True

    def on_usr1(*_):
        write_json(a.stats_file, rx.report(mode, extra))
    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGUSR1, on_usr1)
    return stop


def run_recv(a):
    host, port = a.listen
    locals_ = a.local or ([host] if host != "0.0.0.0" else [])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, a.rcvbuf)   # SO_RCVBUFFORCE (root)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
    s.setsockopt(SOL_IP, IP_PKTINFO, 1)
    s.bind((host, port))
    s.setblocking(False)
    libc = None if a.no_mmsg else load_libc()
    rx = Receiver(a, locals_)
    extra = {"listen": "%s:%d" % (host, port), "mmsg": bool(libc)}
    stop = install_signals(rx, "recv", a, extra)
    if a.ready_file:
        write_json(a.ready_file, {"ready": True})
    n = 64
    ctl = 64   # one cmsghdr (16) + in_pktinfo (12), aligned
    b = Batch(n, a.max_size, ctl) if libc else None
    fd = s.fileno()
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while not stop[0]:
        now = time.monotonic_ns()
        if rx.finished(now):
            break
        try:
            ev = poller.poll(100)
        except InterruptedError:
            continue
        if not ev:
            continue
        while True:
            if b:
                for i in range(n):
                    b.msgs[i].msg_hdr.msg_controllen = ctl
                r = libc.recvmmsg(fd, b.addr, n, MSG_DONTWAIT, None)
                if r < 0:
                    e = ctypes.get_errno()
                    if e in (errno.EAGAIN, errno.EINTR):
                        break
                    raise OSError(e, os.strerror(e))
                now = time.monotonic_ns()
                view, cview = b.view, memoryview(b.cbuf).cast("B")
                for i in range(r):
                    m = b.msgs[i]
                    off = i * a.max_size
                    data = view[off:off + m.msg_len]
                    hdr_dst = None
                    cl = m.msg_hdr.msg_controllen
                    coff = i * ctl
                    if cl >= 28:
                        clen, lvl, typ = struct.unpack_from("=QiI", cview, coff)
                        if lvl == SOL_IP and typ == IP_PKTINFO:
                            hdr_dst = bytes(cview[coff + 24:coff + 28])
                    rx.packet(data, hdr_dst, now)
                if r < n:
                    break
            else:
                try:
                    data, anc, _, _ = s.recvmsg(a.max_size, 64)
                except (BlockingIOError, InterruptedError):
                    break
                hdr_dst = None
                for lvl, typ, cd in anc:
                    if lvl == SOL_IP and typ == IP_PKTINFO and len(cd) >= 12:
                        hdr_dst = cd[8:12]
                rx.packet(data, hdr_dst, time.monotonic_ns())
    extra["socket_drops"] = socket_drops(port)
    print(write_json(a.stats_file, rx.report("recv", extra)), flush=True)
    return 0


def socket_drops(port):
    """The kernel's drop counter of our UDP socket (receive buffer overflow), from /proc."""
    try:
        with open("/proc/net/udp") as f:
            for line in f.readlines()[1:]:
                p = line.split()
                if int(p[1].split(":")[1], 16) == port:
                    return int(p[-1])
    except (OSError, ValueError, IndexError):
        pass
    return None


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


def attach_udp_port_filter(s, ports):
    """Classic BPF on an AF_PACKET socket: only unfragmented IPv4/UDP to one of `ports` reach
    us (the kernel filters the rest, so python only sees stream packets). False if refused."""
    ports = sorted(ports)
    rej = 8 + len(ports)
    acc = rej + 1
    prog = [(0x28, 0, 0, 12),                        # ldh [12]         ethertype
            (0x15, 0, rej - 2, 0x0800),               # jeq IPv4 else reject
            (0x30, 0, 0, 23),                         # ldb [23]         protocol
            (0x15, 0, rej - 4, 17),                   # jeq UDP else reject
            (0x28, 0, 0, 20),                         # ldh [20]         flags/fragment offset
            (0x45, rej - 6, 0, 0x1fff),               # jset offset -> reject
            (0xb1, 0, 0, 14),                         # ldxb 4*([14]&0xf)  IP header length
            (0x48, 0, 0, 16)]                         # ldh [x+16]       UDP destination port
    for i, p in enumerate(ports):
        prog.append((0x15, acc - (8 + i) - 1, 0, p))  # jeq port -> accept
    prog += [(0x06, 0, 0, 0), (0x06, 0, 0, 0x40000)]  # reject, accept
    arr = (SockFilter * len(prog))(*[SockFilter(*x) for x in prog])
    fprog = struct.pack("HxxxxxxQ", len(prog), ctypes.addressof(arr))
    try:
        s.setsockopt(socket.SOL_SOCKET, 26, fprog)    # SO_ATTACH_FILTER (the kernel copies it)
        return True
    except OSError:
        return False


def run_trap(a):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        pass
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    ports = set(a.port)
    bpf = attach_udp_port_filter(s, ports)
    s.bind((a.iface, 0))
    s.setblocking(False)
    rx = Receiver(a, a.local or [])
    extra = {"iface": a.iface, "ports": sorted(ports), "bpf": bpf}
    stop = install_signals(rx, "trap", a, extra)
    if a.ready_file:
        write_json(a.ready_file, {"ready": True})
    poller = select.poll()
    poller.register(s.fileno(), select.POLLIN)
    seen_frames = 0
    while not stop[0]:
        now = time.monotonic_ns()
        if rx.finished(now):
            break
        try:
            ev = poller.poll(100)
        except InterruptedError:
            continue
        if not ev:
            continue
        for _ in range(256):
            try:
                frame, addr = s.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                break
            if addr[2] == PACKET_OUTGOING:
                continue
            seen_frames += 1
            if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
                continue
            ihl = (frame[14] & 15) * 4
            u = 14 + ihl
            dport = struct.unpack_from("!H", frame, u + 2)[0]
            if dport not in ports:
                continue
            # a stream packet on this wire: it belongs here only if it is addressed to us
            rx.packet(frame[u + 8:], frame[30:34], time.monotonic_ns())
    extra["frames"] = seen_frames
    print(write_json(a.stats_file, rx.report("trap", extra)), flush=True)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    sub = ap.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("send")
    s.add_argument("--to", action="append", required=True, type=parse_hostport,
                   help="IP:PORT, one stream each (repeatable)")
    s.add_argument("--rate", type=float, required=True, help="packets/s per stream")
    s.add_argument("--duration", type=float, required=True,
                   help="seconds (0: until SIGTERM/SIGINT, then END markers as usual)")
    s.add_argument("--size", type=int, default=64, help="UDP payload bytes (>= %d)" % HDR_SIZE)
    s.add_argument("--batch", type=int, default=32, help="packets per sendmmsg at most")
    s.add_argument("--stream-base", type=int, default=1)
    s.add_argument("--bind", help="source address")
    s.add_argument("--end-copies", type=int, default=5)
    s.add_argument("--max-lag-ms", type=float, default=50.0,
                   help="pacing_ok is false if the sender ever fell further behind")
    s.add_argument("--ramp", type=float, default=0.0,
                   help="seconds to ramp up linearly from 0 to --rate (lets the scheduler "
                        "settle); the duration is counted from the start of the ramp")
    s.add_argument("--slip-ms", type=float, default=200.0,
                   help="when the sender is this far behind, its schedule slips (reported)")
    s.add_argument("--no-mmsg", action="store_true", help="plain send(), no ctypes")
    s.add_argument("--stats-file")
    s.add_argument("--ready-file")
    for name in ("recv", "trap"):
        r = sub.add_parser(name)
        if name == "recv":
            r.add_argument("--listen", required=True,
                           type=lambda x: parse_hostport(x, "0.0.0.0"), help="[IP:]PORT")
            r.add_argument("--rcvbuf", type=int, default=16 << 20)
            r.add_argument("--max-size", type=int, default=2048)
            r.add_argument("--no-mmsg", action="store_true")
        else:
            r.add_argument("--iface", required=True)
            r.add_argument("--port", type=int, action="append", required=True)
        r.add_argument("--local", action="append", help="this host's address(es) (repeatable)")
        r.add_argument("--expect-streams", type=int, default=1,
                       help="do not stop on END markers before this many streams were seen")
        r.add_argument("--duration", type=float, default=0, help="stop after S seconds (0: no)")
        r.add_argument("--idle", type=float, default=0,
                       help="stop S seconds after the last packet (0: no)")
        r.add_argument("--stats-file")
        r.add_argument("--ready-file")
    a = ap.parse_args()
    if a.mode == "send":
        if a.size < HDR_SIZE or a.rate <= 0 or a.duration < 0 or a.batch < 1:
            ap.error("need --size >= %d, --rate > 0, --duration >= 0, --batch >= 1" % HDR_SIZE)
        return run_send(a)
    if a.mode == "recv":
        return run_recv(a)
    return run_trap(a)


if __name__ == "__main__":
    sys.exit(main())
