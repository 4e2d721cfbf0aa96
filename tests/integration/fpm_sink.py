#!/usr/bin/env python3
"""Minimal FPM listener: a stand-in for sagd's FPM server, used to develop and self-check the
FRR harness (tests/integration/frr/, frr_harness_selftest.sh). Not a replacement for sagd.

zebra (-M dplane_fpm_nl, "fpm address A port P") connects to us over TCP and streams FPM
messages (FRR doc/developer/fpm.rst): a 4-byte header (version 1, type 1 = netlink, total
length incl. header, network order) followed by netlink route messages (rtnetlink(7)).

One line per event on stdout (flushed), e.g.

    fpm_sink: listening on 127.0.0.1:2620
    session 1 up from 127.0.0.1:40312
    session 1 add 10.50.1.0/24 via 10.1.0.254 oif 6 proto 186 table 254 metric 20 type 1
    session 1 add 10.50.2.0/24 multipath 10.1.0.254@6w1,10.1.0.253@6w1 proto 186 table 254 ...
    session 1 del 10.50.1.0/24 proto 186 table 254 ...
    session 1 other nlmsg_type 104
    session 1 down (eof, 3 messages, 4 routes)

Usage: fpm_sink.py [--listen 127.0.0.1:2620] [--state-file F]
  --state-file F: after every message, F holds the current route set as JSON
                  {"session": N, "routes": {"10.50.1.0/24": "via 10.1.0.254", ...}}
                  (written atomically; cleared - not deleted - when a session starts).
Stdlib only. Any malformed input is reported and closes the session (zebra reconnects).
"""
import argparse
import ipaddress
import json
import os
import signal
import socket
import struct
import sys

FPM_HDR = struct.Struct("!BBH")
NLMSG_HDR = struct.Struct("=IHHII")   # len, type, flags, seq, pid (host order)
RTMSG = struct.Struct("=BBBBBBBBI")   # family dst_len src_len tos table protocol scope type flags
RTATTR = struct.Struct("=HH")
RTNH = struct.Struct("=HBBi")         # len flags hops ifindex

RTM_NEWROUTE, RTM_DELROUTE = 24, 25
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_MULTIPATH, RTA_TABLE = 1, 4, 5, 6, 9, 15
RTA_VIA, RTA_NH_ID = 18, 30
AF_INET, AF_INET6 = 2, 10


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def align4(n):
    return (n + 3) & ~3


def attrs(buf):
    """rtattr TLVs -> list of (type, payload)."""
    res, off = [], 0
    while off + RTATTR.size <= len(buf):
        alen, atype = RTATTR.unpack_from(buf, off)
        if alen < RTATTR.size or off + alen > len(buf):
            raise ValueError("bad rtattr length %d at %d" % (alen, off))
        res.append((atype & 0x3FFF, buf[off + RTATTR.size:off + alen]))
        off += align4(alen)
    return res


def addr(family, raw):
    if family == AF_INET and len(raw) == 4:
        return str(ipaddress.IPv4Address(raw))
    if family == AF_INET6 and len(raw) == 16:
        return str(ipaddress.IPv6Address(raw))
    raise ValueError("bad address length %d for family %d" % (len(raw), family))


def route(nltype, body):
    """rtmsg + attributes -> (verb, prefix, description)"""
    if len(body) < RTMSG.size:
        raise ValueError("short rtmsg")
    fam, dlen, _slen, _tos, table, proto, _scope, rtype, _flags = RTMSG.unpack_from(body)
    if fam not in (AF_INET, AF_INET6):
        return None
    dst = b"\0" * (4 if fam == AF_INET else 16)
    gw = oif = metric = nhid = None
    mp = []
    for atype, val in attrs(body[RTMSG.size:]):
        if atype == RTA_DST:
            dst = val
        elif atype == RTA_GATEWAY:
            gw = addr(fam, val)
        elif atype == RTA_OIF and len(val) >= 4:
            oif = struct.unpack_from("=i", val)[0]
        elif atype == RTA_PRIORITY and len(val) >= 4:
            metric = struct.unpack_from("=I", val)[0]
        elif atype == RTA_TABLE and len(val) >= 4:
            table = struct.unpack_from("=I", val)[0]
        elif atype == RTA_NH_ID and len(val) >= 4:
            nhid = struct.unpack_from("=I", val)[0]
        elif atype == RTA_MULTIPATH:
            off = 0
            while off + RTNH.size <= len(val):
                nlen, _nfl, hops, ifi = RTNH.unpack_from(val, off)
                if nlen < RTNH.size or off + nlen > len(val):
                    raise ValueError("bad rtnexthop length")
                ngw = None
                for t2, v2 in attrs(val[off + RTNH.size:off + nlen]):
                    if t2 == RTA_GATEWAY:
                        ngw = addr(fam, v2)
                    elif t2 == RTA_VIA and len(v2) >= 2:   # RFC 5549: IPv4 route, IPv6 next hop
                        vfam = struct.unpack_from("=H", v2)[0]
                        ngw = addr(vfam, v2[2:])
                mp.append("%s@%dw%d" % (ngw or "-", ifi, hops + 1))
                off += align4(nlen)
        elif atype == RTA_VIA and len(val) >= 2:
            gw = addr(struct.unpack_from("=H", val)[0], val[2:])
    net = ipaddress.ip_network((addr(fam, dst), dlen), strict=False)
    words = []
    if gw:
        words.append("via " + gw)
    if mp:
        words.append("multipath " + ",".join(mp))
    if oif is not None:
        words.append("oif %d" % oif)
    if nhid is not None:
        words.append("nhid %d" % nhid)
    words.append("proto %d table %d" % (proto, table))
    if metric is not None:
        words.append("metric %d" % metric)
    words.append("type %d" % rtype)
    nh = ("via " + gw) if gw else ("multipath " + ",".join(mp)) if mp else ("nhid %d" % nhid if nhid else "-")
    return ("add" if nltype == RTM_NEWROUTE else "del"), str(net), " ".join(words), nh


class Sink:
    def __init__(self, state_file):
        self.state_file = state_file
        self.session = 0
        self.routes = {}

    def save(self):
        if not self.state_file:
            return
        tmp = self.state_file + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"session": self.session, "routes": self.routes}, f, sort_keys=True)
        os.replace(tmp, self.state_file)

    def message(self, msg):
        off = 0
        while off + NLMSG_HDR.size <= len(msg):
            nlen, ntype, _fl, _seq, _pid = NLMSG_HDR.unpack_from(msg, off)
            if nlen < NLMSG_HDR.size or off + nlen > len(msg):
                raise ValueError("bad nlmsg length %d" % nlen)
            body = msg[off + NLMSG_HDR.size:off + nlen]
            r = route(ntype, body) if ntype in (RTM_NEWROUTE, RTM_DELROUTE) else None
            if r:
                verb, prefix, desc, nh = r
                out("session %d %s %s %s" % (self.session, verb, prefix, desc))
                if verb == "add":
                    self.routes[prefix] = nh
                else:
                    self.routes.pop(prefix, None)
                self.nroutes += 1
            else:
                out("session %d other nlmsg_type %d" % (self.session, ntype))
            off += align4(nlen)
        self.save()

    def serve(self, conn, peer):
        self.session += 1
        self.routes = {}
        self.nroutes = 0
        self.save()
        out("session %d up from %s:%d" % (self.session, peer[0], peer[1]))
        buf, nmsg, why = b"", 0, "eof"
        try:
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while len(buf) >= FPM_HDR.size:
                    ver, typ, length = FPM_HDR.unpack_from(buf)
                    if ver != 1 or typ != 1 or length < FPM_HDR.size + NLMSG_HDR.size:
                        raise ValueError("bad FPM header version %d type %d length %d" % (ver, typ, length))
                    if len(buf) < length:
                        break
                    self.message(buf[FPM_HDR.size:length])
                    buf = buf[length:]
                    nmsg += 1
        except (ValueError, struct.error) as e:
            why = "error: %s" % e
        except OSError as e:
            why = "socket error: %s" % e
        conn.close()
        out("session %d down (%s, %d messages, %d routes)" % (self.session, why, nmsg, self.nroutes))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:2620", help="HOST:PORT (default 127.0.0.1:2620)")
    ap.add_argument("--state-file", default="")
    a = ap.parse_args()
    host, _, port = a.listen.rpartition(":")
    host = host.strip("[]")
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    ls = socket.socket(fam, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, int(port)))
    ls.listen(4)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sink = Sink(a.state_file)
    sink.save()
    out("fpm_sink: listening on %s:%s" % (host, port))
    try:
        while True:
            conn, peer = ls.accept()
            sink.serve(conn, peer[:2])
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
