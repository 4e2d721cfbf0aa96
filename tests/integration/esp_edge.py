#!/usr/bin/python3
"""esp_edge.py: an independent, scapy-based ESP tunnel endpoint ("CCN edge") for sagd tests.

Run it with Debian's /usr/bin/python3 (python3-scapy); the pyenv python3 first on PATH lacks scapy.

It owns two interfaces through AF_PACKET sockets (the kernel has no addresses on them):
  --wan IF    toward sagd's WAN port: answers ARP / ICMP echo for --local, decrypts ESP
              (IP proto 50) and ESP-in-UDP (RFC 3948, UDP --udp-port) to --local, checks the
              anti-replay window, forwards the inner packet out of --inner.
  --inner IF  toward the protected hosts: answers ARP / ICMP echo for --inner-ip, encrypts every
              other IPv4 packet it receives (tunnel mode, outer --local -> --peer) toward sagd.

Roles (defaults from tests/integration/topology.env, every value can be overridden):
  --role edge  (default) in the edge namespace: wan=edge-wan inner=edge-cloud local=192.0.2.254
               peer=192.0.2.1 inner-ip=10.2.0.1, decrypts SPI 0x1001, encrypts with SPI 0x2001.
  --role sagd  a stand-in for sagd in the gw namespace (to test a peer before sagd exists):
               wan=sagd-wan inner=sagd-lan local=192.0.2.1 peer=192.0.2.254 inner-ip=10.1.0.1,
               decrypts SPI 0x2001, encrypts with SPI 0x1001.

Both inbound encapsulations are always accepted; --encap picks the outbound one.
Known scapy 2.5 bug worked around here: SecurityAssociation(..., nat_t_header=UDP()).encrypt()
emits UDP length 8 (it computes the length before the ESP payload is attached); we rewrite it.

Counters are printed as one JSON line on SIGUSR1 and at exit (and written to --stats-file);
"in_by_spi" / "out_by_spi" count the packets decrypted / encrypted per SPI.
Prints "esp_edge: ready" on stdout once the sockets are bound.

Rekey at run time (--control PATH, a unix stream socket, mode 0600): one command per line, one
JSON reply line per command. Keys travel over the socket, never on a command line.
  add-sa-in SPI KEYMAT       accept a further inbound SA (own anti-replay window)
  del-sa-in SPI              stop accepting an inbound SA
  set-sa-out SPI KEYMAT [SEQ]  encrypt with a new outbound SA from now on (sequence SEQ, def. 1)
  stats                      the counters (as on SIGUSR1)
A client: `esp_edge.py --control-client PATH` sends the lines of its stdin and prints the
replies (exit 1 if one says "ok": false).
"""
import argparse
import ipaddress
import json
import os
import re
import select
import signal
import socket
import struct
import sys
import time

ARP = ICMP = IP = UDP = Ether = raw = ESP = IPSecIntegrityError = SecurityAssociation = None


def import_scapy():
    """scapy takes seconds to import: the control client (--control-client) does without."""
    global ARP, ICMP, IP, UDP, Ether, raw, ESP, IPSecIntegrityError, SecurityAssociation
    from scapy.all import ARP, ICMP, IP, UDP, Ether, raw  # noqa: F811
    from scapy.layers.ipsec import ESP, IPSecIntegrityError, SecurityAssociation  # noqa: F811

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
HERE = os.path.dirname(os.path.abspath(__file__))


def load_topology(path=os.path.join(HERE, "topology.env")):
    """KEY=VALUE lines of topology.env (the shell file is the single source of truth)."""
    env = {}
    try:
        with open(path) as f:
            for line in f:
                m = re.match(r'^([A-Z_][A-Z0-9_]*)=([^\s#]+)', line)
                if m:
                    env[m.group(1)] = m.group(2).strip('"')
    except OSError:
        pass
    prefix = os.environ.get("SAGD_NS_PREFIX", "sagd-")
    for k, v in list(env.items()):
        env[k] = v.replace("${SAGD_NS_PREFIX}", prefix)
    for k in list(env):
        if k in os.environ:
            env[k] = os.environ[k]
    return env


def parse_keymat(s):
    s = s[2:] if s.lower().startswith("0x") else s
    b = bytes.fromhex(s.replace(":", ""))
    if len(b) not in (20, 36):
        raise argparse.ArgumentTypeError("keymat must be 20 or 36 bytes (AES key + 4-byte salt)")
    return b


def parse_int(s):
    return int(s, 0)


def open_l2(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:  # Linux >= 4.20: never see our own transmitted frames
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        pass
    for opt, fallback in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):  # *BUFFORCE (root)
        try:
            s.setsockopt(socket.SOL_SOCKET, opt, 4 << 20)
        except OSError:
            s.setsockopt(socket.SOL_SOCKET, fallback, 4 << 20)
    s.bind((ifname, 0))
    s.setblocking(False)
    return s, s.getsockname()[4]


def mac_str(b):
    return ":".join("%02x" % x for x in b)


def mac_bytes(s):
    return bytes.fromhex(s.replace(":", ""))


class ReplayWindow:
    """RFC 4303 sliding window (no ESN). size 0 disables the check."""

    def __init__(self, size):
        self.size = size
        self.top = 0
        self.bits = 0  # bit i set <=> seq (top - i) seen

    def check(self, seq):
        if seq == 0:
            return "seq_zero"
        if self.size == 0 or seq > self.top:
            return None
        off = self.top - seq
        if off >= self.size:
            return "replay_old"
        if (self.bits >> off) & 1:
            return "replay_dup"
        return None

    def update(self, seq):
        if self.size == 0:
            return
        if seq > self.top:
            shift = seq - self.top
            self.bits = ((self.bits << shift) | 1) & ((1 << self.size) - 1)
            self.top = seq
        else:
            self.bits |= 1 << (self.top - seq)


class Edge:
    def __init__(self, a):
        self.a = a
        self.local = a.local
        self.peer = a.peer
        self.inner_ip = a.inner_ip
        self.inner_net = ipaddress.ip_network(a.inner_prefix, strict=False)
        self.wan, self.wan_mac = open_l2(a.wan)
        self.inn, self.inner_mac = open_l2(a.inner)
        self.stats = {k: 0 for k in (
            "wan_rx", "inner_rx", "wan_tx", "inner_tx", "arp_replies", "icmp_echo_replies",
            "encrypted", "decrypted", "rx_esp", "rx_esp_udp", "rx_nat_keepalive", "rx_ike",
            "drop_unknown_spi", "drop_auth", "drop_replay_dup", "drop_replay_old",
            "drop_seq_zero", "drop_malformed", "drop_udp_len", "drop_no_neigh",
            "drop_not_for_us", "ignored")}
        self.last_in_seq = {}
        # neighbour caches: ip(str) -> mac(bytes); pending: ip -> [frame builders]
        self.wan_neigh = {}
        self.inner_neigh = {}
        if a.peer_mac:
            self.wan_neigh[self.peer] = mac_bytes(a.peer_mac)
        for e in a.inner_neigh or []:
            ip, mac = e.split("=", 1)
            self.inner_neigh[ip] = mac_bytes(mac)
        self.pending = {}  # (side, ip) -> (deadline, [payload bytes])
        self.arp_last = {}
        self.set_sa_out(a.spi_out, a.key_out, a.seq_start)
        self.sa_in = {}
        self.windows = {}
        self.in_by_spi = {}
        self.out_by_spi = {}
        for spi, key in [(a.spi_in, a.key_in)] + [
                (parse_int(x.split(":", 1)[0]), parse_keymat(x.split(":", 1)[1]))
                for x in (a.extra_sa_in or [])]:
            self.add_sa_in(spi, key)
        self.control = None
        self.clients = {}  # fd -> [socket, input bytes]
        if a.control:
            try:
                os.unlink(a.control)
            except FileNotFoundError:
                pass
            self.control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            old = os.umask(0o077)
            try:
                self.control.bind(a.control)
            finally:
                os.umask(old)
            self.control.listen(8)
            self.control.setblocking(False)
        self.running = True

    # ---------------------------------------------------------------- SAs (also at run time)
    def set_sa_out(self, spi, key, seq=1):
        self.sa_out = SecurityAssociation(
            ESP, spi=spi, seq_num=seq, crypt_algo="AES-GCM", crypt_key=key,
            tunnel_header=IP(src=self.local, dst=self.peer), esn_en=self.a.esn, esn=0)
        self.spi_out = spi

    def add_sa_in(self, spi, key):
        self.sa_in[spi] = SecurityAssociation(
            ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=key,
            tunnel_header=IP(src=self.peer, dst=self.local), esn_en=self.a.esn, esn=0)
        self.windows[spi] = ReplayWindow(self.a.replay_window)

    def command(self, line):
        """One control command; returns the reply object. Never echoes key material."""
        w = line.split()
        try:
            if not w:
                return {"ok": False, "error": "empty command"}
            if w[0] == "add-sa-in" and len(w) == 3:
                spi = parse_int(w[1])
                if spi in self.sa_in:
                    return {"ok": False, "error": "inbound SPI 0x%x exists" % spi}
                self.add_sa_in(spi, parse_keymat(w[2]))
            elif w[0] == "del-sa-in" and len(w) == 2:
                spi = parse_int(w[1])
                if spi not in self.sa_in:
                    return {"ok": False, "error": "no inbound SPI 0x%x" % spi}
                del self.sa_in[spi]
                del self.windows[spi]
            elif w[0] == "set-sa-out" and len(w) in (3, 4):
                self.set_sa_out(parse_int(w[1]), parse_keymat(w[2]),
                                parse_int(w[3]) if len(w) == 4 else 1)
            elif w[0] == "stats" and len(w) == 1:
                return {"ok": True, "stats": self.stats_dict()}
            else:
                return {"ok": False, "error": "unknown command or wrong arguments: %s (add-sa-in "
                        "SPI KEY | del-sa-in SPI | set-sa-out SPI KEY [SEQ] | stats)" % w[0][:32]}
        except (ValueError, argparse.ArgumentTypeError) as e:
            return {"ok": False, "error": "%s: %s" % (w[0][:32], e)}
        self.log("control: %s %s" % (w[0], w[1] if len(w) > 1 else ""))
        return {"ok": True, "spi_out": hex(self.spi_out),
                "spi_in": [hex(x) for x in self.sa_in]}

    def control_ready(self, fd):
        if fd == self.control.fileno():
            try:
                c, _ = self.control.accept()
            except (BlockingIOError, InterruptedError):
                return
            c.setblocking(False)
            self.clients[c.fileno()] = [c, b""]
            return
        c, buf = self.clients[fd]
        try:
            data = c.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        buf += data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            reply = json.dumps(self.command(line.decode("ascii", "replace"))) + "\n"
            try:
                c.setblocking(True)
                c.settimeout(1.0)
                c.sendall(reply.encode())
                c.setblocking(False)
            except OSError:
                data = b""
                break
        self.clients[fd][1] = buf
        if not data:
            del self.clients[fd]
            c.close()

    # ---------------------------------------------------------------- helpers
    def log(self, msg):
        if self.a.verbose:
            print("esp_edge: " + msg, flush=True)

    def stats_dict(self):
        d = dict(self.stats)
        d["out_seq_next"] = (self.sa_out.esn << 32 | self.sa_out.seq_num) if self.a.esn \
            else self.sa_out.seq_num
        d["in_seq_top"] = {hex(s): w.top for s, w in self.windows.items()}
        d["in_by_spi"] = {hex(s): n for s, n in self.in_by_spi.items()}
        d["out_by_spi"] = {hex(s): n for s, n in self.out_by_spi.items()}
        d["spi_out"] = hex(self.spi_out)
        d["spi_in"] = [hex(s) for s in self.sa_in]
        return d

    def dump_stats(self, *_):
        line = json.dumps(self.stats_dict(), sort_keys=True)
        print("esp_edge: stats " + line, flush=True)
        if self.a.stats_file:
            tmp = self.a.stats_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(line + "\n")
            os.replace(tmp, self.a.stats_file)

    def send(self, side, frame):
        sock = self.wan if side == "wan" else self.inn
        try:
            sock.send(frame)
            self.stats[side + "_tx"] += 1
        except OSError as e:
            self.log("send on %s failed: %s" % (side, e))

    def arp_request(self, side, ip):
        now = time.monotonic()
        if now - self.arp_last.get((side, ip), 0) < 0.2:
            return
        self.arp_last[(side, ip)] = now
        mymac = self.wan_mac if side == "wan" else self.inner_mac
        myip = self.local if side == "wan" else self.inner_ip
        f = Ether(dst="ff:ff:ff:ff:ff:ff", src=mac_str(mymac)) / ARP(
            op=1, hwsrc=mac_str(mymac), psrc=myip, pdst=ip)
        self.send(side, raw(f))

    def send_ip(self, side, nexthop, ip_bytes):
        cache = self.wan_neigh if side == "wan" else self.inner_neigh
        mymac = self.wan_mac if side == "wan" else self.inner_mac
        mac = cache.get(nexthop)
        if mac is None:
            dl, q = self.pending.setdefault((side, nexthop), [time.monotonic() + 1.0, []])
            if len(q) < 64:
                q.append(ip_bytes)
            else:
                self.stats["drop_no_neigh"] += 1
            self.arp_request(side, nexthop)
            return
        self.send(side, mac + mymac + b"\x08\x00" + ip_bytes)

    def flush_pending(self, side, ip):
        ent = self.pending.pop((side, ip), None)
        if ent:
            for b in ent[1]:
                self.send_ip(side, ip, b)

    def expire_pending(self):
        now = time.monotonic()
        for k in [k for k, v in self.pending.items() if v[0] < now]:
            self.stats["drop_no_neigh"] += len(self.pending.pop(k)[1])

    # ---------------------------------------------------------------- ARP / ICMP
    def handle_arp(self, side, frame):
        try:
            arp = Ether(frame)[ARP]
        except (IndexError, Exception):
            self.stats["drop_malformed"] += 1
            return
        cache = self.wan_neigh if side == "wan" else self.inner_neigh
        mymac = self.wan_mac if side == "wan" else self.inner_mac
        myip = self.local if side == "wan" else self.inner_ip
        if arp.psrc and arp.psrc != "0.0.0.0" and (arp.pdst == myip or arp.op == 2):
            if not (side == "wan" and self.a.peer_mac and arp.psrc == self.peer):
                cache[arp.psrc] = mac_bytes(arp.hwsrc)
            self.flush_pending(side, arp.psrc)
        if arp.op == 1 and arp.pdst == myip:
            rep = Ether(dst=arp.hwsrc, src=mac_str(mymac)) / ARP(
                op=2, hwsrc=mac_str(mymac), psrc=myip, hwdst=arp.hwsrc, pdst=arp.psrc)
            self.send(side, raw(rep))
            self.stats["arp_replies"] += 1

    def icmp_echo(self, side, ip_bytes, src_mac):
        p = IP(ip_bytes)
        if ICMP not in p or p[ICMP].type != 8:
            self.stats["ignored"] += 1
            return
        r = IP(src=p.dst, dst=p.src, ttl=64) / ICMP(type=0, id=p[ICMP].id, seq=p[ICMP].seq) / \
            raw(p[ICMP].payload)
        mymac = self.wan_mac if side == "wan" else self.inner_mac
        self.send(side, src_mac + mymac + b"\x08\x00" + raw(r))
        self.stats["icmp_echo_replies"] += 1

    # ---------------------------------------------------------------- WAN side
    def handle_wan(self, frame):
        self.stats["wan_rx"] += 1
        if len(frame) < 14:
            self.stats["drop_malformed"] += 1
            return
        et = struct.unpack_from("!H", frame, 12)[0]
        if et == 0x0806:
            return self.handle_arp("wan", frame)
        if et != 0x0800:
            self.stats["ignored"] += 1
            return
        ip = frame[14:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or (ip[0] & 15) < 5:
            self.stats["drop_malformed"] += 1
            return
        ihl = (ip[0] & 15) * 4
        tot = struct.unpack_from("!H", ip, 2)[0]
        if tot < ihl or tot > len(ip):
            self.stats["drop_malformed"] += 1
            return
        ip = ip[:tot]
        proto = ip[9]
        src = socket.inet_ntoa(ip[12:16])
        dst = socket.inet_ntoa(ip[16:20])
        if dst != self.local:
            self.stats["drop_not_for_us"] += 1
            return
        if proto == 1:
            return self.icmp_echo("wan", ip, frame[6:12])
        if proto == 50:
            self.stats["rx_esp"] += 1
            return self.decap(src, ip[ihl:])
        if proto == 17 and tot >= ihl + 8:
            sport, dport, ulen = struct.unpack_from("!HHH", ip, ihl)
            if dport != self.a.udp_port:
                self.stats["ignored"] += 1
                return
            if ulen != tot - ihl:
                self.stats["drop_udp_len"] += 1
                return
            pl = ip[ihl + 8:]
            if pl == b"\xff":
                self.stats["rx_nat_keepalive"] += 1
                return
            if pl[:4] == b"\x00\x00\x00\x00":
                self.stats["rx_ike"] += 1
                return
            self.stats["rx_esp_udp"] += 1
            return self.decap(src, pl)
        self.stats["ignored"] += 1

    def decap(self, src, esp):
        if len(esp) < 8 + 8 + 16 + 2:  # header + IV + ICV + trailer
            self.stats["drop_malformed"] += 1
            return
        spi, seq = struct.unpack_from("!II", esp, 0)
        sa = self.sa_in.get(spi)
        if sa is None:
            self.stats["drop_unknown_spi"] += 1
            self.log("unknown SPI 0x%x" % spi)
            return
        w = self.windows[spi]
        why = w.check(seq)
        if why:
            self.stats["drop_" + why] += 1
            self.log("%s spi 0x%x seq %d" % (why, spi, seq))
            return
        try:
            inner = sa.decrypt(IP(src=src, dst=self.local, proto=50) / ESP(esp))
        except IPSecIntegrityError:
            self.stats["drop_auth"] += 1
            self.log("ICV failure spi 0x%x seq %d" % (spi, seq))
            return
        except Exception as e:  # bad padding etc.
            self.stats["drop_malformed"] += 1
            self.log("decrypt error %r" % e)
            return
        w.update(seq)
        self.last_in_seq[spi] = seq
        self.stats["decrypted"] += 1
        self.in_by_spi[spi] = self.in_by_spi.get(spi, 0) + 1
        b = raw(inner)
        if len(b) < 20 or b[0] >> 4 != 4:
            self.stats["ignored"] += 1  # IPv6 or not IP: not forwarded by this peer
            return
        idst = socket.inet_ntoa(b[16:20])
        if idst == self.inner_ip:
            return self.icmp_reply_inner_tunnel(b)
        if ipaddress.ip_address(idst) not in self.inner_net:
            self.stats["drop_no_neigh"] += 1
            return
        self.log("decrypted spi 0x%x seq %d -> %s" % (spi, seq, inner.summary()))
        self.send_ip("inner", idst, b)

    def icmp_reply_inner_tunnel(self, b):
        # ping to our inner address through the tunnel: answer back through the tunnel
        p = IP(b)
        if ICMP in p and p[ICMP].type == 8:
            r = IP(src=p.dst, dst=p.src, ttl=64) / ICMP(type=0, id=p[ICMP].id, seq=p[ICMP].seq) / \
                raw(p[ICMP].payload)
            self.stats["icmp_echo_replies"] += 1
            self.encap(raw(r))
        else:
            self.stats["ignored"] += 1

    # ---------------------------------------------------------------- inner side
    def handle_inner(self, frame):
        self.stats["inner_rx"] += 1
        if len(frame) < 14:
            return
        et = struct.unpack_from("!H", frame, 12)[0]
        if et == 0x0806:
            return self.handle_arp("inner", frame)
        if et != 0x0800:
            self.stats["ignored"] += 1
            return
        ip = frame[14:]
        if len(ip) < 20 or ip[0] >> 4 != 4:
            self.stats["drop_malformed"] += 1
            return
        tot = struct.unpack_from("!H", ip, 2)[0]
        ip = ip[:tot]
        dst = socket.inet_ntoa(ip[16:20])
        if dst == self.inner_ip:
            return self.icmp_echo("inner", ip, frame[6:12])
        d = ipaddress.ip_address(dst)
        if d.is_multicast or dst == "255.255.255.255" or d in self.inner_net:
            self.stats["ignored"] += 1
            return
        self.encap(ip)

    def encap(self, ip_bytes):
        if self.a.esn and self.sa_out.seq_num > 0xFFFFFFFF:
            # RFC 4303 2.2.1: the low 32 bits wrap and the high-order half goes up by one;
            # scapy carries the two halves separately (seq_num, esn).
            self.sa_out.esn += self.sa_out.seq_num >> 32
            self.sa_out.seq_num &= 0xFFFFFFFF
        e = self.sa_out.encrypt(IP(ip_bytes))
        if self.a.encap == "esp-udp":
            esp = raw(e)[(e.ihl or 5) * 4:]
            out = IP(src=self.local, dst=self.peer, ttl=64, flags="DF" if self.a.df else 0) / \
                UDP(sport=self.a.udp_sport, dport=self.a.udp_port, chksum=0,
                    len=8 + len(esp)) / esp
        else:
            out = e
            if self.a.df:
                out.flags = "DF"
                del out.chksum
        self.stats["encrypted"] += 1
        self.out_by_spi[self.spi_out] = self.out_by_spi.get(self.spi_out, 0) + 1
        self.send_ip("wan", self.peer, raw(out))

    # ---------------------------------------------------------------- main loop
    def run(self):
        print("esp_edge: ready wan=%s(%s) inner=%s(%s) local=%s peer=%s encap=%s spi_out=0x%x "
              "spi_in=%s" % (self.a.wan, mac_str(self.wan_mac), self.a.inner,
                             mac_str(self.inner_mac), self.local, self.peer, self.a.encap,
                             self.a.spi_out, ",".join(hex(s) for s in self.sa_in)), flush=True)
        deadline = time.monotonic() + self.a.duration if self.a.duration else None
        socks = {self.wan.fileno(): ("wan", self.wan), self.inn.fileno(): ("inner", self.inn)}
        while self.running:
            if deadline and time.monotonic() > deadline:
                break
            fds = list(socks)
            if self.control:
                fds += [self.control.fileno()] + list(self.clients)
            try:
                r, _, _ = select.select(fds, [], [], 0.2)
            except InterruptedError:
                continue
            for fd in r:
                if fd not in socks:
                    self.control_ready(fd)
                    continue
                side, s = socks[fd]
                for _ in range(64):
                    try:
                        data, addr = s.recvfrom(65535)
                    except (BlockingIOError, InterruptedError):
                        break
                    if addr[2] == PACKET_OUTGOING:
                        continue
                    try:
                        if side == "wan":
                            self.handle_wan(data)
                        else:
                            self.handle_inner(data)
                    except Exception as e:  # never die on a hostile packet
                        self.stats["drop_malformed"] += 1
                        self.log("error handling %s frame: %r" % (side, e))
            self.expire_pending()
        if self.control:
            try:
                os.unlink(self.a.control)
            except OSError:
                pass
        self.dump_stats()


def control_client(path):
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(5)
    c.connect(path)
    f = c.makefile("rwb")
    rc = 0
    for line in sys.stdin:
        if not line.strip():
            continue
        f.write(line.strip().encode() + b"\n")
        f.flush()
        reply = f.readline().decode()
        if not reply:
            print('{"ok": false, "error": "no reply (edge gone?)"}', flush=True)
            return 1
        print(reply.strip(), flush=True)
        if not json.loads(reply).get("ok"):
            rc = 1
    return rc


def main():
    t = load_topology()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--role", choices=("edge", "sagd"), default="edge")
    ap.add_argument("--wan")
    ap.add_argument("--inner")
    ap.add_argument("--local")
    ap.add_argument("--peer")
    ap.add_argument("--inner-ip")
    ap.add_argument("--inner-prefix", help="connected inner subnet (default inner-ip/24)")
    ap.add_argument("--peer-mac", help="static MAC of --peer (else resolved by ARP)")
    ap.add_argument("--inner-neigh", action="append", metavar="IP=MAC",
                    help="static inner neighbour (repeatable)")
    ap.add_argument("--encap", choices=("esp", "esp-udp"), default="esp")
    ap.add_argument("--udp-port", type=int, default=4500, help="local/peer NAT-T port")
    ap.add_argument("--udp-sport", type=int, default=4500, help="source port of our ESP-in-UDP")
    ap.add_argument("--spi-out", type=parse_int)
    ap.add_argument("--key-out", type=parse_keymat)
    ap.add_argument("--spi-in", type=parse_int)
    ap.add_argument("--key-in", type=parse_keymat)
    ap.add_argument("--extra-sa-in", action="append", metavar="SPI:KEYMAT",
                    help="additional inbound SA (rekey), repeatable")
    ap.add_argument("--seq-start", type=parse_int, default=1,
                    help="first outbound ESP sequence number")
    ap.add_argument("--replay-window", type=int, default=1024, help="0 disables")
    ap.add_argument("--esn", action="store_true",
                    help="64-bit ESN in the GCM AAD (high half fixed at 0: < 2^32 packets)")
    ap.add_argument("--df", action="store_true", help="set DF on outer headers")
    ap.add_argument("--duration", type=float, default=0, help="exit after N seconds (0: never)")
    ap.add_argument("--stats-file")
    ap.add_argument("--control", metavar="PATH",
                    help="unix socket for run-time SA commands (add-sa-in, del-sa-in, "
                         "set-sa-out, stats)")
    ap.add_argument("--control-client", metavar="PATH",
                    help="client mode: send stdin's lines to a running edge's --control socket, "
                         "print the replies")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    if a.control_client:
        return control_client(a.control_client)
    import_scapy()

    g = lambda k, d: t.get(k, d)  # noqa: E731
    if a.role == "edge":
        dflt = dict(wan=g("IF_EDGE_WAN", "edge-wan"), inner=g("IF_EDGE_CLOUD", "edge-cloud"),
                    local=g("IP_EDGE_WAN", "192.0.2.254"), peer=g("IP_GW_WAN", "192.0.2.1"),
                    inner_ip=g("IP_EDGE_CLOUD", "10.2.0.1"),
                    spi_out=parse_int(g("SPI_IN", "0x2001")),
                    key_out=parse_keymat(g("KEY_IN", "")),
                    spi_in=parse_int(g("SPI_OUT", "0x1001")),
                    key_in=parse_keymat(g("KEY_OUT", "")))
    else:
        dflt = dict(wan=g("IF_GW_WAN", "sagd-wan"), inner=g("IF_GW_LAN", "sagd-lan"),
                    local=g("IP_GW_WAN", "192.0.2.1"), peer=g("IP_EDGE_WAN", "192.0.2.254"),
                    inner_ip=g("IP_GW_LAN", "10.1.0.1"),
                    spi_out=parse_int(g("SPI_OUT", "0x1001")),
                    key_out=parse_keymat(g("KEY_OUT", "")),
                    spi_in=parse_int(g("SPI_IN", "0x2001")),
                    key_in=parse_keymat(g("KEY_IN", "")))
    for k, v in dflt.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.inner_prefix is None:
        a.inner_prefix = a.inner_ip + "/24"

    e = Edge(a)

    def stop(*_):
        e.running = False
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGUSR1, e.dump_stats)
    e.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
