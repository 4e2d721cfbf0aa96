#!/usr/bin/python3
"""Unit tests for scripts/sagctl: the CLI's own logic against a fake sagd.

A small HTTP/1.1 server on a unix socket in a temp dir serves canned JSON per (method, path) and
records every request; each test runs sagctl as a subprocess (real argv, stdout, stderr and
exit code) and checks the request it sent and what it printed. The end-to-end test against a
real sagd lives with the integration tests. Standard library only; no root, no network
namespaces (the TCP test binds 127.0.0.1 on an ephemeral port).
"""
import contextlib
import http.server
import importlib.machinery
import importlib.util
import io
import json
import os
import socketserver
import subprocess
import sys
import tempfile
import threading
import unittest
import urllib.parse
from pathlib import Path
from unittest import mock

REPO = Path(__file__).resolve().parents[3]
SAGCTL = REPO / "scripts" / "sagctl"
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

OUT_KEY = "0x2b7e151628aed2a6abf7158809cf4f3ccafebabe"
IN_KEY = "0x603deb1015ca71be2b73aef0857d7781deadbeef"
KEY_FRAGMENTS = ("2b7e1516", "603deb10", "cafebabe", "deadbeef")


def load_module():
    loader = importlib.machinery.SourceFileLoader("sagctl_mod", str(SAGCTL))
    spec = importlib.util.spec_from_loader("sagctl_mod", loader)
    mod = importlib.util.module_from_spec(spec)
    sys.dont_write_bytecode = True   # no __pycache__ in scripts/
    loader.exec_module(mod)
    return mod


# ---------------------------------------------------------------------------------------------
# canned replies (the shapes agreed for the API; some carry keys on purpose: sagctl must strip)

TUNNELS = {"tunnels": [
    {"name": "ccn-edge-1", "port": "wan0", "local": "192.0.2.1", "peer": "192.0.2.254",
     "encap": "esp-udp", "worker": 0,
     "outbound_sa": {"spi": 0x1001, "cipher": "aes-gcm-128", "seq": 4242, "key": OUT_KEY},
     "inbound_sas": [{"spi": 0x2001, "cipher": "aes-gcm-128", "keymat": IN_KEY},
                     {"spi": 0x2002, "cipher": "aes-gcm-256"}],
     "counters": {"tx_packets": 1234567, "tx_bytes": 987654321, "rx_packets": 1200,
                  "rx_bytes": 150000, "decrypt_errors": 1, "icv_fail": 2, "replay": 3}},
    {"name": "ccn-edge-2", "port": "wan0", "peer": "198.51.100.7", "encap": "esp", "worker": 1,
     "outbound_sa": {"spi": "0x1101", "cipher": "aes-gcm-256", "seq": 1},   # sagd sends hex text
     "inbound_sas": [{"spi": "0x2101", "cipher": "aes-gcm-256", "retires_in_ms": 2500}],
     "counters": {"tx_packets": 0, "tx_bytes": 0, "rx_packets": 0, "rx_bytes": 0,
                  "decrypt_errors": 0, "icv_fail": 0, "replay": 0}},
]}
PORTS = {"ports": [
    {"name": "lan0", "role": "lan", "device": "net_af_packet0,iface=sagd-lan", "address": "10.1.0.1/24",
     "gateway": None, "mtu": 1500, "mac": "02:00:00:01:00:01",
     "counters": {"rx_packets": 1234567, "rx_bytes": 2345678901, "tx_packets": 5, "tx_bytes": 640}},
    {"name": "wan0", "role": "wan", "device": "net_af_packet1,iface=sagd-wan", "address": "192.0.2.1/24",
     "gateway": "192.0.2.254", "mtu": 1500, "mac": "02:00:00:02:00:01",
     "counters": {"rx_packets": 7, "rx_bytes": 700, "tx_packets": 8, "tx_bytes": 800}},
]}
ROUTES = {"routes": [
    {"prefix": "10.2.0.0/16", "origin": "static", "distance": 1, "installed": True,
     "via": {"tunnel": "ccn-edge-1"}},
    {"prefix": "10.3.0.0/16", "origin": "learned", "distance": 20, "installed": False,
     "via": {"gateway": "192.0.2.254", "port": "wan0"}},
    {"prefix": "10.1.0.0/24", "origin": "connected", "distance": 0, "installed": True,
     "via": {"connected": "lan0"}},
    {"prefix": "10.1.0.1/32", "origin": "connected", "distance": 0, "installed": True,
     "via": {"local": "lan0"}},
    {"prefix": "10.66.0.0/16", "origin": "static", "distance": 1, "installed": True,
     "via": {"drop": True}},
], "total": 5, "truncated": False}
STATUS = {"version": "sagd 0.3.0", "workers": 2, "uptime_s": 93784,
          "routes": {"ipv4": 12, "learned": 9}, "tunnels": 2,
          "fpm": {"state": "established", "peer": "127.0.0.1:40123", "routes": 9},
          "changes_applied": 17}
GROUPS = {"groups": [{"name": "ccn", "active": "ccn-edge-1", "members": [
    {"tunnel": "ccn-edge-1", "priority": 10, "weight": 1, "state": "up"},
    {"tunnel": "ccn-edge-2", "priority": 20, "weight": 1, "state": "down"}]}]}
NEIGHBOURS = {"neighbours": [
    {"port": "wan0", "address": "192.0.2.254", "mac": "02:00:00:02:00:fe", "state": "static"},
    {"port": "lan0", "address": "10.1.0.2", "mac": "02:00:00:01:00:02", "state": "reachable"}]}
COUNTERS = {"totals": {"rx": 1000, "tx": 990, "drops": 10},
            "drops": {"esp_icv_fail": 7, "esp_replay": 3, "no_route": 0, "bad_ipv4": 0},
            "slow_path": {"arp_in": 4, "icmp_errors_sent": 2},
            "workers": [{"index": 0, "lcore": 1, "rx": 600, "tx": 595, "busy": 0.25},
                        {"index": 1, "lcore": 2, "rx": 400, "tx": 395, "busy": 0.125}]}
ONPREM = {"prefixes": [{"prefix": "10.1.0.0/24", "origin": "connected"},
                       {"prefix": "10.8.0.0/16", "origin": "learned"}]}
CONFIG_YAML = ("workers: 1\nports:\n  - { name: lan0, role: lan, address: 10.1.0.1/24 }\ntunnels:\n"
               "  - name: ccn-edge-1\n    outbound_sa: { spi: 0x1001, cipher: aes-gcm-128, key: redacted }\n"
               "    inbound_sas:\n      - { spi: 0x2001, cipher: aes-gcm-128, key: \"" + IN_KEY + "\" }\n")
CONFIG = {"workers": 1, "ports": [{"name": "lan0", "role": "lan", "device": "net_af_packet0,iface=sagd-lan",
                                   "address": "10.1.0.1/24"}],
          "tunnels": [{"name": "ccn-edge-1", "port": "wan0", "peer": "192.0.2.254", "encap": "esp",
                       "esn": False, "outbound_sa": {"spi": 4097, "cipher": "aes-gcm-128", "key": OUT_KEY},
                       "inbound_sas": [{"spi": 8193, "cipher": "aes-gcm-128", "key": "redacted"}]}],
          "routes": [{"prefix": "10.2.0.0/16", "tunnel": "ccn-edge-1"}]}
METRICS = "# HELP sagd_rx_packets_total Packets received\n# TYPE sagd_rx_packets_total counter\nsagd_rx_packets_total 1000\n"


def canned_default():
    j = "application/json"
    return {
        ("GET", "/v1/status"): (200, STATUS, j),
        ("GET", "/v1/ports"): (200, PORTS, j),
        ("GET", "/v1/ports/wan0"): (200, PORTS["ports"][1], j),
        ("GET", "/v1/tunnels"): (200, TUNNELS, j),
        ("GET", "/v1/tunnels/ccn-edge-1"): (200, TUNNELS["tunnels"][0], j),
        ("GET", "/v1/groups"): (200, GROUPS, j),
        ("GET", "/v1/routes"): (200, ROUTES, j),
        ("GET", "/v1/onprem-prefixes"): (200, ONPREM, j),
        ("GET", "/v1/neighbours"): (200, NEIGHBOURS, j),
        ("GET", "/v1/counters"): (200, COUNTERS, j),
        ("GET", "/v1/config"): (200, CONFIG, j),
        ("GET", "/metrics"): (200, METRICS, "text/plain; version=0.0.4"),
        ("POST", "/v1/routes"): (200, {"changes": ["route 10.9.0.0/16 added"]}, j),
        ("DELETE", "/v1/routes"): (200, {}, j),
        ("POST", "/v1/tunnels"): (201, {"name": "ccn-edge-3"}, j),
        ("DELETE", "/v1/tunnels/ccn-edge-2"): (204, None, j),
        ("POST", "/v1/tunnels/ccn-edge-1/rekey"): (200, {"name": "ccn-edge-1"}, j),
        ("PATCH", "/v1/ports/wan0"): (200, PORTS["ports"][1], j),
        ("DELETE", "/v1/neighbours"): (200, {"flushed": 3}, j),
        ("PUT", "/v1/config"): (200, {"applied": False, "changes": 3, "summary": [
            "tunnel ccn-edge-3: add", "route 10.5.0.0/16: delete", "port wan0: mtu 1400"]}, j),
    }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):   # quiet (and client_address is '' on a unix socket)
        pass

    def serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        u = urllib.parse.urlsplit(self.path)
        self.server.requests.append({
            "method": self.command, "path": u.path, "raw_path": self.path,
            "query": dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True)),
            "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
        status, reply, ctype = self.server.canned.get(
            (self.command, u.path), (404, {"error": f"{u.path}: not found"}, "application/json"))
        if status == "close":   # hang up without a reply
            self.close_connection = True
            return
        if reply is None:
            data = b""
        elif isinstance(reply, (bytes, str)):
            data = reply.encode() if isinstance(reply, str) else reply
        else:
            data = json.dumps(reply).encode()
        self.send_response(status)
        if data:
            self.send_header("Content-Type", ctype)
        if status != 204:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if data and status != 204:
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = serve


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class TcpServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


class SagctlTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="sagctl-test-")
        cls.sock = os.path.join(cls.tmp.name, "sagd.sock")
        cls.server = UnixServer(cls.sock, Handler)
        cls.server.requests, cls.server.canned = [], canned_default()
        cls.thread = threading.Thread(target=cls.server.serve_forever, daemon=True)
        cls.thread.start()
        cls.mod = load_module()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        cls.tmp.cleanup()

    def setUp(self):
        self.server.requests.clear()
        self.server.canned = canned_default()

    def file(self, name, text, mode=0o600):
        path = os.path.join(self.tmp.name, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        self.addCleanup(lambda: os.path.exists(path) and os.unlink(path))
        return path

    def run_cli(self, *args, stdin=None, socket=True, env=None, process=False):
        """(exit code, stdout, stderr) of sagctl ARGS: in this process by default (fast: a
        python start costs ~0.3 s on a busy machine), as a real process with process=True."""
        e = {k: v for k, v in os.environ.items() if not k.startswith("SAGD_")}
        e.update(env or {})
        argv = (["--socket", self.sock] if socket else []) + list(args)
        if process:
            p = subprocess.run([PYTHON, "-B", str(SAGCTL)] + argv, input=stdin, capture_output=True,
                               text=True, timeout=30, env=e)
            return p.returncode, p.stdout, p.stderr
        out, err = io.StringIO(), io.StringIO()
        fake_stdin = io.TextIOWrapper(io.BytesIO((stdin or "").encode()))
        with mock.patch.dict(os.environ, e, clear=True), mock.patch.object(sys, "stdin", fake_stdin), \
                contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = self.mod.main(argv)
        return rc, out.getvalue(), err.getvalue()

    def ok(self, *args, **kw):
        rc, out, err = self.run_cli(*args, **kw)
        self.assertEqual(rc, 0, f"sagctl {' '.join(args)} -> {rc}\nstdout: {out}\nstderr: {err}")
        return out, err

    def only_request(self):
        self.assertEqual(len(self.server.requests), 1, self.server.requests)
        return self.server.requests[0]

    def assert_no_keys(self, text):
        for frag in KEY_FRAGMENTS:
            self.assertNotIn(frag, text.lower())

    def row(self, out, *cells):
        """A line of `out` whose whitespace-split words include `cells` in order."""
        for line in out.splitlines():
            words = line.split()
            i = 0
            for w in words:
                if i < len(cells) and w == cells[i]:
                    i += 1
            if i == len(cells):
                return line
        self.fail(f"no row with {cells} in:\n{out}")

    # --- show ---------------------------------------------------------------------------------

    def test_show_status(self):
        out, _ = self.ok("show", "status")
        r = self.only_request()
        self.assertEqual((r["method"], r["path"], r["query"]), ("GET", "/v1/status", {}))
        self.assertEqual(r["body"], b"")
        self.row(out, "version", "sagd", "0.3.0")
        self.row(out, "uptime", "1d", "02:03:04")
        self.row(out, "routes", "ipv4", "12,", "learned", "9")
        self.row(out, "fpm", "established,", "peer", "127.0.0.1:40123,", "9", "routes")
        self.row(out, "changes", "applied", "17")

    def test_show_ports_table_exact_and_human(self):
        out, _ = self.ok("show", "ports")
        self.assertEqual(self.only_request()["path"], "/v1/ports")
        header = out.splitlines()[0].split()
        self.assertEqual(header[:2], ["NAME", "ROLE"])
        self.assertIn("RX-BYTES", header)
        line = self.row(out, "lan0", "lan", "10.1.0.1/24", "-", "1500", "02:00:00:01:00:01",
                        "1234567", "2345678901", "5", "640")
        self.assertNotIn("1.2M", line)
        self.row(out, "wan0", "wan", "192.0.2.1/24", "192.0.2.254")
        out, _ = self.ok("-h", "show", "ports")
        self.row(out, "lan0", "1.2M", "2.3G", "5", "640")

    def test_columns_are_aligned(self):
        out, _ = self.ok("show", "ports")
        lines = out.splitlines()
        col = lines[0].index("ADDRESS")
        for line in lines[1:]:
            self.assertEqual(line[col - 2:col], "  ")
            self.assertNotEqual(line[col], " ")

    def test_show_port_detail(self):
        out, _ = self.ok("show", "port", "wan0")
        self.assertEqual(self.only_request()["path"], "/v1/ports/wan0")
        self.assertIn("port wan0", out)
        self.row(out, "gateway", "192.0.2.254")
        self.row(out, "rx_packets", "7")

    def test_show_tunnels_table_no_keys(self):
        out, err = self.ok("show", "tunnels")
        self.assertEqual(self.only_request()["path"], "/v1/tunnels")
        self.row(out, "ccn-edge-1", "wan0", "192.0.2.254", "esp-udp", "0", "0x1001/aes-gcm-128",
                 "0x2001/aes-gcm-128", "0x2002/aes-gcm-256", "1234567", "987654321", "1200", "150000", "2", "3")
        self.row(out, "ccn-edge-2", "0x1101/aes-gcm-256", "0x2101/aes-gcm-256", "0", "0", "0", "0", "0", "0")
        self.assert_no_keys(out + err)

    def test_show_tunnel_detail(self):
        out, err = self.ok("sh", "tun", "ccn-edge-1")
        self.assertEqual(self.only_request()["path"], "/v1/tunnels/ccn-edge-1")
        self.row(out, "outbound", "SA", "spi", "0x1001", "aes-gcm-128", "seq", "4242")
        self.row(out, "inbound", "SAs", "spi", "0x2001", "aes-gcm-128")
        self.row(out, "spi", "0x2002", "aes-gcm-256")
        self.row(out, "icv_fail", "2")
        self.assert_no_keys(out + err)
        self.assertNotIn("keymat", out)

    def test_json_passes_data_through_without_keys(self):
        out, _ = self.ok("--json", "show", "tunnels")
        data = json.loads(out)
        expect = json.loads(json.dumps(TUNNELS))
        del expect["tunnels"][0]["outbound_sa"]["key"]
        del expect["tunnels"][0]["inbound_sas"][0]["keymat"]
        self.assertEqual(data, expect)
        self.assertIn("\n  ", out)   # pretty
        self.assert_no_keys(out)
        for cmd, reply in ((("show", "routes"), ROUTES), (("show", "status"), STATUS),
                           (("show", "counters"), COUNTERS), (("show", "groups"), GROUPS)):
            out, _ = self.ok(*cmd, "--json")
            self.assertEqual(json.loads(out), reply)

    def test_key_looking_strings_are_redacted(self):
        self.server.canned[("GET", "/v1/tunnels")] = (200, {"tunnels": [
            {"name": "t", "outbound_sa": {"spi": 300, "cipher": "aes-gcm-128", "secret": OUT_KEY,
                                          "out_key": IN_KEY}}]}, "application/json")
        for args in (("show", "tunnels"), ("--json", "show", "tunnels")):
            out, err = self.ok(*args)
            self.assert_no_keys(out + err)

    def test_show_groups(self):
        out, _ = self.ok("show", "groups")
        self.assertEqual(self.only_request()["path"], "/v1/groups")
        self.row(out, "ccn", "*", "ccn-edge-1", "10", "1", "up")
        line = self.row(out, "ccn-edge-2", "20", "1", "down")
        self.assertNotIn("*", line)
        self.assertNotIn("ccn ", line.split("ccn-edge-2")[0])
        self.server.requests.clear()
        self.server.canned[("GET", "/v1/groups/ccn")] = (200, GROUPS["groups"][0], "application/json")
        out, _ = self.ok("show", "group", "ccn")
        self.assertEqual(self.only_request()["path"], "/v1/groups/ccn")
        self.row(out, "ccn", "*", "ccn-edge-1", "10", "1", "up")

    def test_show_bfd_and_sla(self):
        health = {"state": "down", "down_reasons": ["bfd"], "last_change_cause": "bfd down",
                  "bfd": {"local": "169.254.1.1", "remote": "169.254.1.2", "state": "down",
                          "remote_state": "up", "diag": "control_detection_expired",
                          "local_discriminator": 7, "remote_discriminator": 9,
                          "transmit_interval_ms": 100, "receive_interval_ms": 100,
                          "detect_multiplier": 3, "rx": 50, "tx": 60, "rx_dropped": 2,
                          "up_transitions": 1, "down_transitions": 1},
                  "health_check": {"target": "169.254.1.2", "source": "169.254.1.1", "state": "ok",
                                   "sent": 40, "replies": 28, "timeouts": 12,
                                   "sla": {"loss_percent": 30.0, "latency_us": 1500, "jitter_us": 400,
                                           "class_met": False}}}
        self.server.canned[("GET", "/v1/tunnels")] = (200, {"tunnels": [
            {"name": "edge-a", "health": health}, {"name": "edge-b", "health": {"state": "up"}}]},
            "application/json")
        out, _ = self.ok("show", "bfd")
        self.assertEqual(self.only_request()["path"], "/v1/tunnels")
        self.row(out, "edge-a", "down", "up", "169.254.1.1", "169.254.1.2", "7", "9",
                 "control_detection_expired", "100/100x3", "50", "60", "2", "1", "1", "bfd", "down")
        self.assertNotIn("edge-b", out)   # no BFD there
        self.server.requests.clear()
        out, _ = self.ok("show", "sla")
        self.row(out, "edge-a", "ok", "169.254.1.1", "->", "169.254.1.2", "40", "28", "12", "30.0", "1500", "400", "no")
        self.server.requests.clear()
        out, _ = self.ok("show", "tunnels")
        self.row(out, "edge-a", "down", "(bfd)")
        self.row(out, "edge-b", "up")

    def test_show_routes_table(self):
        out, err = self.ok("show", "routes")
        r = self.only_request()
        self.assertEqual((r["path"], r["query"]), ("/v1/routes", {}))
        self.row(out, "10.2.0.0/16", "tunnel", "ccn-edge-1", "static", "1", "yes")
        self.row(out, "10.3.0.0/16", "via", "192.0.2.254", "port", "wan0", "learned", "20", "no")
        self.row(out, "10.1.0.0/24", "connected", "lan0", "connected", "0", "yes")
        self.row(out, "10.1.0.1/32", "local", "lan0")
        self.row(out, "10.66.0.0/16", "drop", "static")
        self.assertEqual(err, "")

    def test_show_routes_queries(self):
        cases = [
            (("show", "routes", "10.2.0.0/16"), {"prefix": "10.2.0.0/16", "match": "exact"}),
            (("show", "routes", "10.2.0.0/16", "longer", "origin", "static"),
             {"prefix": "10.2.0.0/16", "match": "longer", "origin": "static"}),
            (("sh", "ro", "10.0.0.0/8", "l", "o", "le"),
             {"prefix": "10.0.0.0/8", "match": "longer", "origin": "learned"}),
            (("show", "routes", "10.2.3.4"), {"prefix": "10.2.3.4/32", "match": "best"}),
            (("show", "routes", "origin", "connected"), {"origin": "connected"}),
            (("show", "route", "10.2.0.0/16", "best"), {"prefix": "10.2.0.0/16", "match": "best"}),
            (("show", "routes", "2001:db8::/32", "longer"), {"prefix": "2001:db8::/32", "match": "longer"}),
            (("show", "routes", "2001:db8:0::5"), {"prefix": "2001:db8::5/128", "match": "best"}),
        ]
        for args, query in cases:
            self.server.requests.clear()
            self.ok(*args)
            r = self.only_request()
            self.assertEqual((r["method"], r["path"], r["query"]), ("GET", "/v1/routes", query), args)

    def test_show_routes_truncated_note(self):
        self.server.canned[("GET", "/v1/routes")] = (200, dict(ROUTES, total=123456, truncated=True),
                                                     "application/json")
        out, err = self.ok("show", "routes")
        self.assertIn("5 of 123456 routes shown", err)
        self.assertNotIn("123456", out)

    def test_show_routes_usage_errors(self):
        for args in (("show", "routes", "10.2.0.1/16"), ("show", "routes", "bogus"),
                     ("show", "routes", "10.2.0.0/16", "widest"), ("show", "routes", "origin")):
            rc, out, err = self.run_cli(*args)
            self.assertEqual(rc, 64, args)
            self.assertTrue(err.startswith("sagctl: "), err)
        rc, _, err = self.run_cli("show", "routes", "10.2.0.1/16")
        self.assertIn("did you mean 10.2.0.0/16", err)
        rc, _, err = self.run_cli("show", "routes", "2001:db8::1/32", "longer")
        self.assertEqual(rc, 64)
        self.assertIn("did you mean 2001:db8::/32", err)
        self.assertEqual(self.server.requests, [])

    def test_show_onprem_neighbours(self):
        out, _ = self.ok("show", "onprem")
        self.assertEqual(self.only_request()["path"], "/v1/onprem-prefixes")
        self.row(out, "10.8.0.0/16", "learned")
        self.server.requests.clear()
        out, _ = self.ok("show", "neighbors")
        self.assertEqual(self.only_request()["path"], "/v1/neighbours")
        self.assertEqual(out.splitlines()[0].split(), ["PORT", "ADDRESS", "MAC", "STATE"])
        self.row(out, "wan0", "192.0.2.254", "02:00:00:02:00:fe", "static")

    def test_show_counters_nonzero_and_all(self):
        out, _ = self.ok("show", "counters")
        self.assertEqual(self.only_request()["path"], "/v1/counters")
        self.row(out, "rx", "1000")
        icv = out.index("esp_icv_fail")
        self.assertLess(icv, out.index("esp_replay"))   # largest first
        self.row(out, "esp_icv_fail", "7")
        self.assertNotIn("no_route", out)
        self.row(out, "INDEX", "LCORE", "RX", "TX", "BUSY")
        self.row(out, "1", "2", "400", "395", "0.125")
        self.assertIn("slow path\n", out)
        self.row(out, "arp_in", "4")
        out, _ = self.ok("show", "counters", "--all")
        self.row(out, "no_route", "0")
        self.row(out, "bad_ipv4", "0")

    def test_show_config_yaml_without_keys(self):
        out, err = self.ok("show", "config")
        self.assertEqual(self.only_request()["path"], "/v1/config")
        self.assert_no_keys(out + err)
        self.assertNotIn("key", out)
        self.assertIn("tunnels:\n  - name: ccn-edge-1\n", out)
        self.assertIn("outbound_sa:\n      spi: 0x1001\n      cipher: aes-gcm-128\n", out)
        self.assertIn('device: "net_af_packet0,iface=sagd-lan"', out)
        self.assertIn("esn: false", out)
        # the server may send the file text instead of an object
        self.server.canned[("GET", "/v1/config")] = (200, {"config": "workers: 1\ntunnels:\n  - outbound_sa: "
                                                           "{ spi: 0x1001, key: " + OUT_KEY + " }\n"},
                                                     "application/json")
        out, err = self.ok("show", "config")
        self.assert_no_keys(out + err)
        self.assertIn("workers: 1", out)
        self.assertIn("key: redacted", out)
        # what sagd does today: the file text as application/yaml, also for --json
        self.server.canned[("GET", "/v1/config")] = (200, CONFIG_YAML, "application/yaml")
        for args in (("show", "config"), ("show", "config", "--json")):
            out, err = self.ok(*args)
            self.assert_no_keys(out + err)
            self.assertIn("outbound_sa: { spi: 0x1001, cipher: aes-gcm-128, key: redacted }", out)
            self.assertIn("- { spi: 0x2001, cipher: aes-gcm-128, key: redacted }", out)

    def test_metrics_raw(self):
        out, _ = self.ok("metrics")
        self.assertEqual(self.only_request()["path"], "/metrics")
        self.assertEqual(out, METRICS)

    # --- changes ------------------------------------------------------------------------------

    def test_route_add(self):
        cases = [
            (("route", "add", "10.9.0.0/16", "tunnel", "ccn-edge-1"),
             {"prefix": "10.9.0.0/16", "tunnel": "ccn-edge-1"}),
            (("route", "add", "10.9.0.0/16", "via", "192.0.2.254", "distance", "200"),
             {"prefix": "10.9.0.0/16", "gateway": "192.0.2.254", "distance": 200}),
            (("ro", "a", "0.0.0.0/0", "t", "ccn-edge-2", "dist", "5"),
             {"prefix": "0.0.0.0/0", "tunnel": "ccn-edge-2", "distance": 5}),
        ]
        for args, body in cases:
            self.server.requests.clear()
            out, _ = self.ok(*args)
            r = self.only_request()
            self.assertEqual((r["method"], r["path"]), ("POST", "/v1/routes"))
            self.assertEqual(r["headers"]["content-type"], "application/json")
            self.assertEqual(json.loads(r["body"]), body)
            self.assertIn("added", out)

    def test_route_add_usage(self):
        for args in (("route", "add", "10.9.0.0/16"), ("route", "add", "10.9.0.1/16", "tunnel", "x"),
                     ("route", "add", "10.9.0.0/16", "tunnel", "x", "distance", "0"),
                     ("route", "add", "10.9.0.0/16", "via", "nowhere"),
                     ("route", "add", "10.9.0.0/16", "tunnel", "x", "metric", "3")):
            rc, _, err = self.run_cli(*args)
            self.assertEqual(rc, 64, (args, err))
        self.assertEqual(self.server.requests, [])

    def test_route_del(self):
        out, _ = self.ok("route", "del", "10.9.0.0/16")
        r = self.only_request()
        self.assertEqual((r["method"], r["path"], r["query"]), ("DELETE", "/v1/routes", {"prefix": "10.9.0.0/16"}))
        self.assertIn("prefix=10.9.0.0%2F16", r["raw_path"])
        self.assertIn("deleted", out)

    BATCH = ("# nightly update\n"
             "add 10.20.0.0/16 tunnel ccn-edge-1\n"
             "\n"
             "add 10.21.0.0/16 via 192.0.2.254 distance 10   # backup path\n"
             "del 10.5.0.0/16\n"
             "  delete 10.6.0.0/16\n"
             "add 10.5.0.0/16 tunnel ccn-edge-2\n")

    def test_route_batch_one_request(self):
        path = self.file("batch.txt", self.BATCH)
        self.server.canned[("POST", "/v1/routes")] = (200, {"added": 3, "deleted": 2}, "application/json")
        out, _ = self.ok("route", "batch", path)
        r = self.only_request()
        self.assertEqual((r["method"], r["path"]), ("POST", "/v1/routes"))
        self.assertEqual(json.loads(r["body"]), {
            "add": [{"prefix": "10.20.0.0/16", "tunnel": "ccn-edge-1"},
                    {"prefix": "10.21.0.0/16", "gateway": "192.0.2.254", "distance": 10},
                    {"prefix": "10.5.0.0/16", "tunnel": "ccn-edge-2"}],
            "delete": ["10.5.0.0/16", "10.6.0.0/16"]})
        self.assertIn("3 added, 2 deleted", out)

    def test_route_batch_stdin_and_chunks(self):
        lines = "".join(f"add 10.{i}.0.0/16 tunnel ccn-edge-1\n" for i in range(100, 105))
        out, _ = self.ok("route", "batch", "-", "--chunk", "2", stdin=lines)
        bodies = [json.loads(r["body"]) for r in self.server.requests]
        self.assertEqual([len(b["add"]) for b in bodies], [2, 2, 1])
        self.assertEqual([b["delete"] for b in bodies], [[], [], []])
        self.assertEqual(bodies[2]["add"][0]["prefix"], "10.104.0.0/16")
        self.assertIn("5 added, 0 deleted in 3 changes", out)

    def test_route_batch_chunk_failure_says_what_was_applied(self):
        lines = "".join(f"add 10.{i}.0.0/16 tunnel ccn-edge-1\n" for i in range(100, 104))
        # every POST fails: the first chunk already reports that nothing was applied
        self.server.canned[("POST", "/v1/routes")] = (404, {"error": "route 10.100.0.0/16: tunnel 'ccn-edge-1' unknown"},
                                                      "application/json")
        rc, _, err = self.run_cli("route", "batch", "-", "--chunk", "2", stdin=lines)
        self.assertEqual(rc, 1)
        self.assertIn("chunk 1/2 (lines 1-2)", err)
        self.assertIn("nothing was applied", err)
        self.assertIn("tunnel 'ccn-edge-1' unknown", err)
        self.assertEqual(len(self.server.requests), 1)

    def test_route_batch_bad_lines(self):
        cases = [("add 10.1.0.0/16 tunnel a\nadd 10.2.0.1/16 tunnel b\n", ":2:"),
                 ("frobnicate 10.1.0.0/16\n", ":1:"),
                 ("add 10.1.0.0/16 tunnel a\nadd 10.1.0.0/16 via 192.0.2.1\n", "already added on line 1"),
                 ("add 10.1.0.0/16 tunnel a\ndel 10.1.0.0/16\n", "added on line 1 and deleted here"),
                 ("del 10.1.0.0/16 extra\n", ":1:"),
                 ("add 10.1.0.0/16\n", ":1:")]
        for text, expect in cases:
            path = self.file("bad.txt", text)
            rc, _, err = self.run_cli("route", "batch", path)
            self.assertEqual(rc, 64, (text, err))
            self.assertIn(expect, err)
            self.assertIn("bad.txt", err)
        self.assertEqual(self.server.requests, [])

    def test_route_batch_empty_and_missing(self):
        path = self.file("empty.txt", "# nothing\n\n")
        out, _ = self.ok("route", "batch", path)
        self.assertIn("nothing to do", out)
        self.assertEqual(self.server.requests, [])
        rc, _, err = self.run_cli("route", "batch", os.path.join(self.tmp.name, "nope.txt"))
        self.assertEqual(rc, 66)
        self.assertIn("No such file or directory", err)

    def test_tunnel_add_sends_file_as_is(self):
        yaml_text = ("name: ccn-edge-3\nport: wan0\npeer: 198.51.100.9\nencap: esp\n"
                     f"outbound_sa: {{ spi: 0x1201, cipher: aes-gcm-128, key: \"{OUT_KEY}\" }}\n"
                     f"inbound_sas:\n  - {{ spi: 0x2201, cipher: aes-gcm-128, key: \"{IN_KEY}\" }}\n")
        path = self.file("t3.yaml", yaml_text)
        out, err = self.ok("tunnel", "add", "-f", path)
        r = self.only_request()
        self.assertEqual((r["method"], r["path"]), ("POST", "/v1/tunnels"))
        self.assertEqual(r["body"], yaml_text.encode())
        self.assertEqual(r["headers"]["content-type"], "application/yaml")
        self.assertIn("tunnel ccn-edge-3 added", out)
        self.assert_no_keys(out + err)
        self.server.requests.clear()
        json_text = json.dumps({"name": "ccn-edge-3", "port": "wan0"})
        self.ok("tunnel", "add", "--file", "-", stdin=json_text)
        r = self.only_request()
        self.assertEqual(r["body"], json_text.encode())
        self.assertEqual(r["headers"]["content-type"], "application/json")
        self.assertEqual(self.run_cli("tunnel", "add")[0], 64)

    def test_tunnel_del(self):
        out, _ = self.ok("tunnel", "del", "ccn-edge-2")
        r = self.only_request()
        self.assertEqual((r["method"], r["path"]), ("DELETE", "/v1/tunnels/ccn-edge-2"))
        self.assertIn("tunnel ccn-edge-2 deleted", out)

    def test_tunnel_rekey_keys_file(self):
        keys = self.file("keys", f"# rekey 2024-06\nout_key={OUT_KEY}\nin_key = {IN_KEY[2:].upper()}\n")
        out, err = self.ok("tunnel", "rekey", "ccn-edge-1", "--out-spi", "0x1002", "--in-spi", "8194",
                           "--keys-file", keys, "--retire-after", "5000")
        r = self.only_request()
        self.assertEqual((r["method"], r["path"]), ("POST", "/v1/tunnels/ccn-edge-1/rekey"))
        self.assertEqual(json.loads(r["body"]), {
            "outbound_sa": {"spi": 0x1002, "cipher": "aes-gcm-128", "key": OUT_KEY},
            "inbound_sa": {"spi": 0x2002, "cipher": "aes-gcm-128", "key": IN_KEY},
            "retire_after_ms": 5000})
        self.assert_no_keys(out + err)
        self.assertEqual(err, "")
        self.assertIn("0x1002", out)

    def test_tunnel_rekey_command_line_keys_warn(self):
        k256 = "0x" + "ab" * 36
        out, err = self.ok("tunnel", "rekey", "ccn-edge-1", "--out-spi", "300", "--in-spi", "301",
                           "--out-key", k256, "--in-key", k256, "--cipher", "aes-gcm-256")
        body = json.loads(self.only_request()["body"])
        self.assertEqual(body["outbound_sa"]["cipher"], "aes-gcm-256")
        self.assertNotIn("retire_after_ms", body)
        self.assertIn("prefer --keys-file", err)
        self.assertNotIn("abab", out + err)

    def test_tunnel_rekey_usage(self):
        keys = self.file("keys2", f"out_key={OUT_KEY}\nin_key={IN_KEY}\n")
        bad_keys = self.file("keys3", "out_key=2b7e1516zz\nin_key=1234\n")
        open_keys = self.file("keys4", f"out_key={OUT_KEY}\nin_key={IN_KEY}\n", mode=0o644)
        cases = [
            (("--out-spi", "0x1002", "--keys-file", keys), "--in-spi"),
            (("--out-spi", "0x1002", "--in-spi", "0x2002"), "out_key"),
            (("--out-spi", "12", "--in-spi", "0x2002", "--keys-file", keys), "out of range"),
            (("--out-spi", "0x1002", "--in-spi", "0x2002", "--keys-file", bad_keys), "out_key: not a hex"),
            (("--out-spi", "0x1002", "--in-spi", "0x2002", "--keys-file", keys, "--cipher", "aes-gcm-256"),
             "aes-gcm-256 needs 72"),
            (("--out-spi", "0x1002", "--in-spi", "0x2002", "--keys-file", keys, "--chunk", "3"), "does not apply"),
        ]
        for extra, expect in cases:
            rc, out, err = self.run_cli("tunnel", "rekey", "ccn-edge-1", *extra)
            self.assertEqual(rc, 64, (extra, err))
            self.assertIn(expect, err)
            self.assert_no_keys(out + err)
        self.assertEqual(self.server.requests, [])
        rc, _, err = self.run_cli("tunnel", "rekey", "ccn-edge-1", "--out-spi", "0x1002", "--in-spi", "0x2002",
                                  "--keys-file", os.path.join(self.tmp.name, "missing"))
        self.assertEqual(rc, 66)
        out, err = self.ok("tunnel", "rekey", "ccn-edge-1", "--out-spi", "0x1002", "--in-spi", "0x2002",
                           "--keys-file", open_keys)
        self.assertIn("readable by others", err)
        self.assert_no_keys(out + err)

    def test_port_set(self):
        out, _ = self.ok("port", "set", "wan0", "address", "192.0.2.10/24", "gateway", "none", "mtu", "1400")
        r = self.only_request()
        self.assertEqual((r["method"], r["path"]), ("PATCH", "/v1/ports/wan0"))
        self.assertEqual(json.loads(r["body"]), {"address": "192.0.2.10/24", "gateway": None, "mtu": 1400})
        self.assertIn("port wan0 updated", out)
        self.server.requests.clear()
        self.ok("port", "set", "wan0", "gateway", "192.0.2.1")
        self.assertEqual(json.loads(self.only_request()["body"]), {"gateway": "192.0.2.1"})
        for args in (("port", "set", "wan0"), ("port", "set", "wan0", "mtu", "big"),
                     ("port", "set", "wan0", "address", "192.0.2.10"), ("port", "set", "wan0", "speed", "10")):
            self.assertEqual(self.run_cli(*args)[0], 64, args)

    def test_neighbours_flush(self):
        out, _ = self.ok("neighbours", "flush")
        r = self.only_request()
        self.assertEqual((r["method"], r["path"]), ("DELETE", "/v1/neighbours"))
        self.assertIn("3 dynamic entries", out)

    def test_apply(self):
        cfg = self.file("sagd.yaml", "workers: 1\nports: []\n")
        out, _ = self.ok("apply", "-f", cfg, "--dry-run")
        r = self.only_request()
        self.assertEqual((r["method"], r["path"], r["query"]), ("PUT", "/v1/config", {"dry_run": "1"}))
        self.assertEqual(r["body"], b"workers: 1\nports: []\n")
        self.assertEqual(r["headers"]["content-type"], "application/yaml")
        self.assertIn("tunnel ccn-edge-3: add\nroute 10.5.0.0/16: delete\nport wan0: mtu 1400\n", out)
        self.assertIn("dry run", out)
        self.server.requests.clear()
        self.server.canned[("PUT", "/v1/config")] = (200, {"changes": [
            {"op": "add", "kind": "route", "name": "10.7.0.0/16"}]}, "application/json")
        out, _ = self.ok("apply", "-f", cfg)
        self.assertEqual(self.only_request()["query"], {})
        self.assertIn("+ route 10.7.0.0/16", out)
        nothing = {"applied": True, "changes": 0, "summary": []}
        self.server.canned[("PUT", "/v1/config")] = (200, nothing, "application/json")
        out, _ = self.ok("apply", "-f", cfg)
        self.assertIn("no changes", out)
        out, _ = self.ok("apply", "-f", cfg, "--json")
        self.assertEqual(json.loads(out), nothing)

    # --- errors -------------------------------------------------------------------------------

    def test_server_error_message_and_exit_1(self):
        self.server.canned[("DELETE", "/v1/tunnels/ccn-edge-1")] = (
            409, {"error": "tunnel 'ccn-edge-1': in use by route 10.2.0.0/16"}, "application/json")
        rc, out, err = self.run_cli("tunnel", "del", "ccn-edge-1")
        self.assertEqual(rc, 1)
        self.assertEqual(out, "")
        self.assertEqual(err, "sagctl: tunnel 'ccn-edge-1': in use by route 10.2.0.0/16\n")
        rc, _, err = self.run_cli("show", "tunnel", "nope")
        self.assertEqual((rc, err), (1, "sagctl: /v1/tunnels/nope: not found\n"))

    def test_error_without_json_and_with_key_material(self):
        self.server.canned[("GET", "/v1/status")] = (500, "internal trouble\n", "text/plain")
        rc, _, err = self.run_cli("show", "status")
        self.assertEqual(rc, 1)
        self.assertIn("HTTP 500", err)
        self.assertIn("internal trouble", err)
        self.server.canned[("POST", "/v1/routes")] = (400, {"error": f"oops {OUT_KEY} leaked"}, "application/json")
        rc, _, err = self.run_cli("route", "add", "10.9.0.0/16", "tunnel", "x")
        self.assertEqual(rc, 1)
        self.assert_no_keys(err)
        self.assertIn("oops", err)

    def test_invalid_json_reply(self):
        self.server.canned[("GET", "/v1/status")] = (200, "{not json", "application/json")
        rc, _, err = self.run_cli("show", "status")
        self.assertEqual(rc, 1)
        self.assertIn("invalid JSON", err)

    def test_connection_errors_exit_2(self):
        missing = os.path.join(self.tmp.name, "no-such.sock")
        rc, out, err = self.run_cli("--socket", missing, "show", "status", socket=False)
        self.assertEqual(rc, 2)
        self.assertEqual(err, f"sagctl: cannot connect to {missing}: No such file or directory\n")
        rc, _, err = self.run_cli("show", "status", socket=False, env={"SAGD_SOCKET": missing})
        self.assertEqual(rc, 2)
        self.assertIn(missing, err)
        rc, _, err = self.run_cli("--url", "http://127.0.0.1:1", "show", "status", socket=False)
        self.assertEqual(rc, 2)
        self.assertIn("http://127.0.0.1:1", err)
        self.assertIn("Connection refused", err)
        self.server.canned[("GET", "/v1/status")] = ("close", None, "")
        rc, _, err = self.run_cli("show", "status")
        self.assertEqual(rc, 2)
        self.assertIn(self.sock, err)

    def test_usage_errors_exit_64(self):
        cases = [((), "missing command"), (("frobnicate",), "unknown command"),
                 (("show",), "missing show subcommand"), (("show", "co"), "ambiguous"),
                 (("show", "status", "extra"), "unexpected"), (("show", "status", "--bogus"), "unknown option"),
                 (("show", "status", "--url", "http://127.0.0.1:9"), "exclude"),
                 (("show", "status", "--all"), "does not apply"),
                 (("show", "status", "--timeout", "soon"), "--timeout")]
        for args, expect in cases:
            rc, out, err = self.run_cli(*args)
            self.assertEqual(rc, 64, (args, err))
            self.assertIn(expect, err, args)
            self.assertEqual(out, "")
        rc, _, err = self.run_cli("show", "co")
        self.assertIn("config", err)
        self.assertIn("counters", err)
        self.assertEqual(self.server.requests, [])

    def test_help(self):
        for args in (("--help",), ("help",), ("-h",), ("route", "--help")):
            out, _ = self.ok(*args)
            self.assertIn("route batch FILE", out)
            self.assertIn("Exit codes", out)
        self.assertEqual(self.server.requests, [])

    def test_tcp_with_token(self):
        server = TcpServer(("127.0.0.1", 0), Handler)
        server.requests, server.canned = [], canned_default()
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        url = f"http://127.0.0.1:{server.server_address[1]}"
        token = self.file("token", "s3cr3t-token\n")
        out, _ = self.ok("--url", url, "--token-file", token, "show", "tunnels", socket=False)
        self.assertIn("ccn-edge-1", out)
        self.assertEqual(server.requests[0]["headers"]["authorization"], "Bearer s3cr3t-token")
        server.requests.clear()
        self.ok("metrics", socket=False, env={"SAGD_URL": url, "SAGD_TOKEN_FILE": token})
        self.assertEqual(server.requests[0]["headers"]["authorization"], "Bearer s3cr3t-token")
        self.assertEqual(self.server.requests, [])
        rc, _, err = self.run_cli("--url", url, "--token-file", os.path.join(self.tmp.name, "nope"),
                                  "show", "status", socket=False)
        self.assertEqual(rc, 66)
        self.assertEqual(self.run_cli("--url", "https://127.0.0.1:1", "show", "status", socket=False)[0], 64)
        self.assertEqual(self.run_cli("--token-file", token, "show", "status")[0], 64)

    def test_as_a_real_process(self):
        """Exit codes, stdin and streams as the shell sees them (the rest runs main() in-process)."""
        rc, out, err = self.run_cli("show", "tunnels", process=True)
        self.assertEqual((rc, err), (0, ""))
        self.row(out, "ccn-edge-1", "0x1001/aes-gcm-128")
        self.assert_no_keys(out)
        rc, out, _ = self.run_cli("route", "batch", "-", stdin="add 10.9.0.0/16 tunnel t\n", process=True)
        self.assertEqual(rc, 0)
        self.assertEqual(json.loads(self.server.requests[-1]["body"]),
                         {"add": [{"prefix": "10.9.0.0/16", "tunnel": "t"}], "delete": []})
        self.server.canned[("DELETE", "/v1/tunnels/x")] = (409, {"error": "tunnel 'x': in use"}, "application/json")
        self.assertEqual(self.run_cli("tunnel", "del", "x", process=True)[:3:2], (1, "sagctl: tunnel 'x': in use\n"))
        missing = os.path.join(self.tmp.name, "gone.sock")
        rc, _, err = self.run_cli("show", "status", socket=False, env={"SAGD_SOCKET": missing}, process=True)
        self.assertEqual((rc, err), (2, f"sagctl: cannot connect to {missing}: No such file or directory\n"))
        self.assertEqual(self.run_cli("show", "bogus", process=True)[0], 64)
        rc, out, _ = self.run_cli("--help", process=True)
        self.assertEqual(rc, 0)
        self.assertIn("usage: sagctl", out)

    # --- pure functions -----------------------------------------------------------------------

    def test_human_units(self):
        h = self.mod.human
        self.assertEqual([h(0), h(999), h(1000), h(1234567), h(99_949), h(123_456_789), h(999_600), h(2.5e12)],
                         ["0", "999", "1.0K", "1.2M", "99.9K", "123M", "1.0M", "2.5T"])

    def test_strip_keys(self):
        s = self.mod.strip_keys({"a": [{"key": "x", "Keymat": "y", "in_key": "z", "spi": 1, "name": OUT_KEY[2:]}],
                                 "keys": 1, "monkey": "ok"})
        self.assertEqual(s, {"a": [{"spi": 1, "name": "<redacted>"}], "monkey": "ok"})


if __name__ == "__main__":
    unittest.main(verbosity=1)
