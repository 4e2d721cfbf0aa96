#!/usr/bin/python3
"""wan_attack.py: hostile traffic toward sagd's WAN port, a known count per drop reason.

Run with Debian's /usr/bin/python3 in the edge namespace (it sends on edge-wan with the edge's
addresses, as a compromised path / attacker between sagd and the CCN edge would). Every packet is
addressed to sagd's WAN address and MAC, so a test can compare sagd's per-reason drop counters
with the "sent" counts printed as one JSON object on stdout:

  category             packets                                              sagd should count
  tampered_ciphertext  valid ESP (fresh seq), one ciphertext byte flipped   auth/ICV failure
  tampered_icv         valid ESP (fresh seq), last ICV byte flipped         auth/ICV failure
  garbage_esp          valid SPI + fresh seq, random body                   auth/ICV failure
  replay               ONE valid packet (accepted, counted in "accepted"),  replay (duplicate)
                       then the identical frame re-sent N times
  replay_old           valid, never-seen seqs left of the window            replay (too old)
  unknown_spi          well-formed ESP with SPIs sagd does not know         unknown SPI / no SA
  truncated            valid ESP cut to header+IV+10 bytes (IP len fixed)   malformed / too short
  bad_udp_len          (esp-udp only) valid ESP-in-UDP, UDP length wrong    malformed UDP
                       (odd i: longer than the datagram, even i: shorter)
  garbage_ip           Ethernet/IPv4 frames whose IP header is garbage      malformed IP
                       (version neither 4 nor 6)
  nat_keepalive        (only if asked) RFC 3948 one-byte 0xff keepalives    not an error

Sequence numbers start at --seq-base (default 1,000,000) so the tampered packets pass the replay
check and fail on the ICV. The one accepted replay packet moves sagd's window to --seq-base: a
legitimate peer must continue above "next_seq" (esp_edge.py --seq-start) afterwards.
The accepted packet carries UDP to --inner-dst port 9 (discard) - it reaches the branch host.
"""
import argparse
import json
import os
import random
import struct
import sys
import time

from scapy.all import IP, UDP, raw  # noqa: E402
from scapy.layers.ipsec import ESP, SecurityAssociation  # noqa: E402

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from esp_edge import load_topology, mac_bytes, open_l2, parse_int, parse_keymat  # noqa: E402

ALL = ["tampered_ciphertext", "tampered_icv", "garbage_esp", "replay", "replay_old",
       "unknown_spi", "truncated", "bad_udp_len", "garbage_ip"]
EXPECT = {
    "tampered_ciphertext": "auth", "tampered_icv": "auth", "garbage_esp": "auth",
    "replay": "replay", "replay_old": "replay", "unknown_spi": "unknown_spi",
    "truncated": "malformed", "bad_udp_len": "malformed", "garbage_ip": "malformed",
    "nat_keepalive": "none"}


def main():
    t = load_topology()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iface", default=t.get("IF_EDGE_WAN", "edge-wan"))
    ap.add_argument("--src", default=t.get("IP_EDGE_WAN", "192.0.2.254"))
    ap.add_argument("--dst", default=t.get("IP_GW_WAN", "192.0.2.1"))
    ap.add_argument("--dst-mac", default=t.get("MAC_GW_WAN", "02:00:00:02:00:01"))
    ap.add_argument("--encap", choices=("esp", "esp-udp"), default="esp")
    ap.add_argument("--udp-port", type=int, default=4500)
    ap.add_argument("--spi", type=parse_int, default=parse_int(t.get("SPI_IN", "0x2001")),
                    help="sagd's inbound SPI")
    ap.add_argument("--key", type=parse_keymat, default=parse_keymat(t.get("KEY_IN", "")))
    ap.add_argument("--inner-src", default=t.get("IP_CLOUD", "10.2.0.2"))
    ap.add_argument("--inner-dst", default=t.get("IP_BRANCH", "10.1.0.2"))
    ap.add_argument("--count", type=int, default=10, help="packets per category")
    ap.add_argument("--categories", default=",".join(ALL),
                    help="comma list (default: all applicable) from: " +
                    ",".join(ALL + ["nat_keepalive"]))
    ap.add_argument("--seq-base", type=parse_int, default=1000000)
    ap.add_argument("--window", type=int, default=1024, help="sagd's replay window")
    ap.add_argument("--gap", type=float, default=0.0005, help="seconds between packets")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    cats = [c for c in a.categories.split(",") if c]
    if a.encap == "esp":
        cats = [c for c in cats if c not in ("bad_udp_len", "nat_keepalive")]
    for c in cats:
        if c not in EXPECT:
            ap.error("unknown category " + c)
    if "replay_old" in cats and a.seq_base <= a.window + a.count + 1:
        ap.error("--seq-base too small for replay_old")

    sock, my_mac = open_l2(a.iface)
    eth = mac_bytes(a.dst_mac) + my_mac + b"\x08\x00"
    sa = SecurityAssociation(ESP, spi=a.spi, crypt_algo="AES-GCM", crypt_key=a.key,
                             tunnel_header=IP(src=a.src, dst=a.dst))
    seq = [a.seq_base + 1]  # fresh seqs for the "must fail on ICV" packets, above the base

    def inner(i):
        return IP(src=a.inner_src, dst=a.inner_dst, ttl=64) / UDP(sport=40000 + i % 1000,
                                                                  dport=9) / (b"wan_attack" * 4)

    def esp_bytes(s, i):  # ESP header .. ICV of a valid packet with sequence s
        e = sa.encrypt(inner(i), seq_num=s)
        b = raw(e)
        return b[(b[0] & 15) * 4:]

    def fresh():
        s = seq[0]
        seq[0] += 1
        return s

    def frame(esp, udp_len=None, proto_override=None):
        if a.encap == "esp-udp":
            ulen = 8 + len(esp) if udp_len is None else udp_len
            l4 = struct.pack("!HHHH", a.udp_port, a.udp_port, ulen, 0) + esp
            proto = 17
        else:
            l4 = esp
            proto = 50
        ip = IP(src=a.src, dst=a.dst, ttl=64, proto=proto_override or proto, id=rnd.randrange(65536))
        return eth + raw(ip / l4)

    def flip(b, pos):
        b = bytearray(b)
        b[pos] ^= 1 << rnd.randrange(8)
        return bytes(b)

    sent = {}
    accepted = 0
    frames = []
    for c in cats:
        n = a.count
        if c == "tampered_ciphertext":
            for i in range(n):
                e = esp_bytes(fresh(), i)
                frames.append((c, frame(flip(e, 16 + rnd.randrange(len(e) - 32)))))
        elif c == "tampered_icv":
            for i in range(n):
                e = esp_bytes(fresh(), i)
                frames.append((c, frame(flip(e, len(e) - 1))))
        elif c == "garbage_esp":
            for i in range(n):
                body = bytes(rnd.randrange(256) for _ in range(8 + rnd.randrange(40, 200)))
                frames.append((c, frame(struct.pack("!II", a.spi, fresh()) + body)))
        elif c == "replay":
            f = frame(esp_bytes(a.seq_base, 0))
            frames.append(("replay_first_accepted", f))
            for i in range(n):
                frames.append((c, f))
        elif c == "replay_old":
            if "replay" not in cats:  # the window must sit at seq_base first
                frames.append(("replay_first_accepted", frame(esp_bytes(a.seq_base, 0))))
            for i in range(n):
                frames.append((c, frame(esp_bytes(a.seq_base - a.window - 1 - i, i))))
        elif c == "unknown_spi":
            for i in range(n):
                spi = 0xdead0000 + i
                if spi == a.spi:
                    spi += 0x100
                other = SecurityAssociation(ESP, spi=spi, crypt_algo="AES-GCM", crypt_key=a.key,
                                            tunnel_header=IP(src=a.src, dst=a.dst))
                b = raw(other.encrypt(inner(i), seq_num=i + 1))
                frames.append((c, frame(b[(b[0] & 15) * 4:])))
        elif c == "truncated":
            for i in range(n):
                frames.append((c, frame(esp_bytes(fresh(), i)[:8 + 8 + 10])))
        elif c == "bad_udp_len":
            for i in range(n):
                e = esp_bytes(fresh(), i)
                frames.append((c, frame(e, udp_len=8 + len(e) + 16 if i % 2 else 8 + len(e) - 16)))
        elif c == "garbage_ip":
            for i in range(n):
                first = rnd.choice([v << 4 | rnd.randrange(16) for v in (0, 1, 2, 3, 5, 7, 8, 15)])
                body = bytes([first]) + bytes(rnd.randrange(256) for _ in range(rnd.randrange(19, 120)))
                frames.append((c, eth + body))
        elif c == "nat_keepalive":
            for i in range(n):
                frames.append((c, frame(b"\xff")))
    # the accepted replay original must come before the replays / old ones; the ICV-failure
    # packets (fresh seqs > seq_base) may come in any order since they never move the window.
    for c, f in frames:
        sock.send(f)
        if c == "replay_first_accepted":
            accepted += 1
            time.sleep(0.05)  # let sagd accept it before the duplicates arrive
        else:
            sent[c] = sent.get(c, 0) + 1
        if a.gap:
            time.sleep(a.gap)
    out = {"sent": sent, "accepted": accepted, "expect": {c: EXPECT[c] for c in sent},
           "next_seq": seq[0], "spi": hex(a.spi), "encap": a.encap}
    print(json.dumps(out, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
