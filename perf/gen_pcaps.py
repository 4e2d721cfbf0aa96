#!/usr/bin/python3
"""Prepared traffic for the packet-generator benchmarks (perf/bench.py, scripts/soak.sh).

Outbound = plain IPv4/UDP frames as a LAN host sends them to sagd's LAN port; inbound = ESP
tunnel-mode frames (AES-GCM, RFC 4106) as the CCN edge sends them to sagd's WAN port, made with
the same SAs and keys the generated sagd/secgw configs use. Written with Debian's /usr/bin/python3
(cryptography for AES-GCM; the pcap writer is built in, no scapy needed for speed).

Frame size = the plaintext Ethernet frame, without FCS, in both directions (an inbound "64 B"
case carries ESP frames that decrypt to 64-byte frames). IMIX = 7:4:1 of 64/570/1420 bytes
(1518 capped to 1420 so the ESP packet fits a 1500-byte WAN MTU).

Every inner UDP payload starts with a 32-bit packet index (used for latency matching).

  gen_pcaps.py --dir out|in --size 64|...|imix --tunnels N [--routes-file F] --count N
               --dst-mac MAC -o FILE [--queue Q --queues NQ]
"""
import argparse
import hashlib
import random
import struct
import sys

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

IMIX = [64] * 7 + [570] * 4 + [1420]
LAN_NET = 0x0A010000        # 10.1.0.0/24 (sagd lan0 10.1.0.1)
LAN_HOSTS = 200             # sources 10.1.0.10 ..
WAN_ADDR = 0xC0000201       # 192.0.2.1 (sagd wan0)
WAN_GW = 0xC00002FE         # 192.0.2.254
PEER_BASE = 0xC6120000      # tunnel i peer = 198.18.0.0 + i + 1 (i = 0: 192.0.2.254)
GEN_MAC = bytes.fromhex("020000010002")
EDGE_MAC = bytes.fromhex("02000002 00fe".replace(" ", ""))

# tunnel 0 uses the integration-test keys (tests/integration/topology.env)
KEY_OUT0 = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3ccafebabe")
KEY_IN0 = bytes.fromhex("603deb1015ca71be2b73aef0857d7781deadbeef")


def tunnel(i):
    """SPIs, keymats and peer of tunnel i (shared with the config writer in bench.py)."""
    if i == 0:
        return dict(name="tun0", spi_out=0x1001, spi_in=0x2001, key_out=KEY_OUT0, key_in=KEY_IN0,
                    peer=WAN_GW)
    h = hashlib.sha256(b"sagd-bench-%d" % i).digest()
    return dict(name=f"tun{i}", spi_out=0x10000 + i, spi_in=0x200000 + i, key_out=h[:20],
                key_in=h[12:32], peer=PEER_BASE + i + 1)


def ip2s(a):
    return ".".join(str((a >> s) & 255) for s in (24, 16, 8, 0))


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack(f"!{len(b) // 2}H", b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload, ident=0, ttl=64):
    h = struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(payload), ident & 0xFFFF, 0, ttl, proto, 0,
                    src, dst)
    h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
    return h + payload


def inner_packet(frame_size, src, dst, index):
    """IPv4/UDP packet for an Ethernet frame of frame_size bytes (no FCS)."""
    plen = frame_size - 14 - 20 - 8
    assert plen >= 4, frame_size
    payload = struct.pack("!I", index) + bytes((index + k) & 255 for k in range(plen - 4))
    udp = struct.pack("!HHHH", 1024 + index % 4096, 5001, 8 + plen, 0)
    return ipv4(src, dst, 17, udp + payload, ident=index)


def esp_encrypt(inner, spi, seq, keymat):
    key, salt = keymat[:-4], keymat[-4:]
    padlen = (-(len(inner) + 2)) % 4
    pt = inner + bytes(range(1, padlen + 1)) + bytes([padlen, 4])
    iv = struct.pack("!Q", seq)
    hdr = struct.pack("!II", spi, seq)
    ct = AESGCM(key).encrypt(salt + iv, pt, hdr)
    return hdr + iv + ct


def eth(dst_mac, src_mac, payload):
    return dst_mac + src_mac + b"\x08\x00" + payload


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", i // 1000000, i % 1000000, len(fr), len(fr)))
            f.write(fr)


def load_routes(path):
    """routes file from bench.py: one 'prefix len kind idx' per line (kind t=tunnel, l=lan)."""
    out, lan = [], []
    with open(path) as f:
        for line in f:
            a, ln, kind, idx = line.split()
            (out if kind == "t" else lan).append((int(a), int(ln), int(idx)))
    return out, lan


def sizes_for(size, count):
    if size == "imix":
        r = random.Random(7)
        seq = IMIX * (count // len(IMIX) + 1)
        r.shuffle(seq)
        return seq[:count]
    return [int(size)] * count


def generate(direction, size, tunnels, count, dst_mac, routes_file=None, queue=0, queues=1,
             seed=1):
    """Frames for one pcap. With queues > 1, queue q carries only tunnels owned by worker q
    (sagd pins tunnel i to worker i % workers), as a NIC's flow steering would deliver them."""
    r = random.Random(seed * 1000 + queue)
    dst_mac = bytes.fromhex(dst_mac.replace(":", ""))
    tun_ids = [i for i in range(tunnels) if i % queues == queue] or [0]
    tuns = {i: tunnel(i) for i in tun_ids}
    if routes_file:
        out_routes, lan_routes = load_routes(routes_file)
        out_routes = [x for x in out_routes if x[2] % tunnels in tuns]
    frames, seqs = [], {i: 0 for i in tun_ids}
    for k, fs in enumerate(sizes_for(size, count)):
        src = LAN_NET + 10 + k % LAN_HOSTS
        if routes_file:
            if direction == "out":
                a, ln, ti = out_routes[r.randrange(len(out_routes))]
                ti %= tunnels
            else:
                a, ln, _ = lan_routes[r.randrange(len(lan_routes))]
                ti = tun_ids[k % len(tun_ids)]
            dst = a + r.randrange(1, (1 << (32 - ln)) - 1)
        else:
            ti = tun_ids[k % len(tun_ids)]
            if direction == "out":
                # tunnel i's route is 10.2.0.0/16 (1 tunnel) or 10.128.i.0/24 (several)
                dst = (0x0A020000 if tunnels == 1 else 0x0A800000 + (ti << 8)) + 1 + k % 250
            else:
                dst = LAN_NET + 2   # the LAN host 10.1.0.2 (static neighbour)
        if direction == "out":
            frames.append(eth(dst_mac, GEN_MAC, inner_packet(fs, src, dst, k)))
        else:
            t = tuns[ti]
            seqs[ti] += 1
            inner = inner_packet(fs, 0x0A020000 + 2 + k % 250, dst, k)
            esp = esp_encrypt(inner, t["spi_in"], seqs[ti], t["key_in"])
            frames.append(eth(dst_mac, EDGE_MAC, ipv4(t["peer"], WAN_ADDR, 50, esp, ident=k)))
    return frames


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", choices=["out", "in"], required=True)
    ap.add_argument("--size", required=True, help="frame size in bytes or 'imix'")
    ap.add_argument("--tunnels", type=int, default=1)
    ap.add_argument("--routes-file")
    ap.add_argument("--count", type=int, default=2048)
    ap.add_argument("--dst-mac", required=True, help="MAC of the receiving DPDK port")
    ap.add_argument("--queue", type=int, default=0)
    ap.add_argument("--queues", type=int, default=1)
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    frames = generate(a.dir, a.size, a.tunnels, a.count, a.dst_mac, a.routes_file, a.queue, a.queues)
    write_pcap(a.output, frames)
    print(f"{a.output}: {len(frames)} frames", file=sys.stderr)


if __name__ == "__main__":
    main()
