// Unit tests for control-shim/config_yaml: every validation rule, key hygiene, scale, robustness.
#include "control-shim/config_yaml.hpp"

#include <gtest/gtest.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

using sagd::load_config_string;

// Key material used in the configs below; none of it may ever show up in an error.
const std::string key_out = "00112233445566778899aabbccddeeff01020304";
const std::string key_in1 = "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3";
const std::string key_in2 = "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3";
const std::string key_t2 = "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3";
const std::string key_256 =
    "101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30313233";

// The full example, block style: one field per line so tests can edit single fields.
std::string good() {
    return R"(workers: 2
eal: ["--no-huge", "-m", "512"]
ports:
  - name: lan0
    role: lan
    device: "net_af_packet0,iface=sagd-lan,qpairs=2"
    address: 10.1.0.1/24
    mtu: 1500
  - name: wan0
    role: wan
    device: "net_af_packet1,iface=sagd-wan"
    address: 192.0.2.1/24
    gateway: 192.0.2.254
    mtu: 1400
tunnels:
  - name: ccn-edge-1
    port: wan0
    local: 192.0.2.1
    peer: 198.51.100.1
    encap: esp-udp
    udp_src_port: 4501
    udp_dst_port: 4502
    replay_window: 2048
    esn: true
    outbound_sa:
      spi: 0x1001
      cipher: aes-gcm-128
      key: "0x)" +
           key_out + R"("
    inbound_sas:
      - spi: 0x2001
        cipher: aes-gcm-128
        key: "0x)" +
           key_in1 + R"("
      - spi: 8194
        cipher: aes-gcm-128
        key: ")" +
           key_in2 + R"("
  - name: ccn-edge-2
    port: wan0
    peer: 198.51.100.2
    encap: esp
    outbound_sa:
      spi: 0x1002
      cipher: aes-gcm-256
      key: "0x)" +
           key_256 + R"("
    inbound_sas:
      - spi: 0x3001
        cipher: aes-gcm-128
        key: ")" +
           key_t2 + R"("
routes:
  - prefix: 10.2.0.0/16
    tunnel: ccn-edge-1
  - prefix: 10.4.0.0/16
    tunnel: ccn-edge-2
    distance: 5
  - prefix: 10.3.0.0/16
    gateway: 10.1.0.254
    distance: 1
neighbours:
  - port: wan0
    address: 192.0.2.254
    mac: "02:00:00:00:00:01"
)";
}

// Replaces the first occurrence of `from` (must exist) by `to`.
std::string edit(std::string text, const std::string& from, const std::string& to) {
    auto pos = text.find(from);
    EXPECT_NE(pos, std::string::npos) << "test bug: '" << from << "' not in config";
    if (pos != std::string::npos)
        text.replace(pos, from.size(), to);
    return text;
}

std::string with(const std::string& from, const std::string& to) {
    return edit(good(), from, to);
}

bool mentions_key(const std::string& msg) {
    for (const auto* k : {&key_out, &key_in1, &key_in2, &key_t2, &key_256})
        for (size_t i = 0; i + 8 <= k->size(); i += 2)
            if (msg.find(k->substr(i, 8)) != std::string::npos)
                return true;
    return false;
}

// Loads `yaml`, expects failure, and checks the message holds every fragment (and no key).
std::string refused(const std::string& yaml, std::initializer_list<std::string> fragments) {
    auto r = load_config_string(yaml);
    EXPECT_FALSE(r.ok()) << "accepted but should be refused; expected: " << *fragments.begin();
    if (r.ok())
        return {};
    const std::string& msg = r.err().message;
    for (const auto& f : fragments)
        EXPECT_NE(msg.find(f), std::string::npos) << "message: " << msg << "\nmissing: " << f;
    EXPECT_FALSE(mentions_key(msg)) << "key material in: " << msg;
    return msg;
}

sagd::config accepted(const std::string& yaml) {
    auto r = load_config_string(yaml);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.err().message);
    return r.ok() ? std::move(r).value() : sagd::config{};
}

std::vector<uint8_t> bytes(const std::string& hex) {
    std::vector<uint8_t> out;
    for (size_t i = 0; i + 1 < hex.size(); i += 2)
        out.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
    return out;
}

sagd::ipv4_addr ip(const char* text) {
    return sagd::parse_ipv4(text).value();
}

// ---- the good config ---------------------------------------------------------------------------

TEST(config_good, full_example_parses_to_expected_values) {
    auto r = load_config_string(good());
    ASSERT_TRUE(r.ok()) << r.err().message;
    const sagd::config& c = r.value();
    EXPECT_EQ(c.workers, 2);
    EXPECT_EQ(c.eal_args, (std::vector<std::string>{"--no-huge", "-m", "512"}));

    ASSERT_EQ(c.ports.size(), 2u);
    EXPECT_EQ(c.ports[0].name, "lan0");
    EXPECT_EQ(c.ports[0].role, sagd::port_role::lan);
    EXPECT_EQ(c.ports[0].device, "net_af_packet0,iface=sagd-lan,qpairs=2");
    EXPECT_EQ(c.ports[0].address, 0x0a010001u);
    EXPECT_EQ(c.ports[0].prefix_len, 24);
    EXPECT_EQ(c.ports[0].mtu, 1500);
    EXPECT_FALSE(c.ports[0].gateway);
    EXPECT_EQ(c.ports[1].role, sagd::port_role::wan);
    EXPECT_EQ(c.ports[1].gateway, ip("192.0.2.254"));
    EXPECT_EQ(c.ports[1].mtu, 1400);

    ASSERT_EQ(c.tunnels.size(), 2u);
    const auto& t = c.tunnels[0];
    EXPECT_EQ(t.name, "ccn-edge-1");
    EXPECT_EQ(t.port, "wan0");
    EXPECT_EQ(t.local, ip("192.0.2.1"));
    EXPECT_EQ(t.peer, ip("198.51.100.1"));
    EXPECT_EQ(t.encap, sagd::tunnel_encap::esp_udp);
    EXPECT_EQ(t.udp_src_port, 4501);
    EXPECT_EQ(t.udp_dst_port, 4502);
    EXPECT_EQ(t.replay_window, 2048u);
    EXPECT_TRUE(t.esn);
    EXPECT_EQ(t.outbound_sa.spi, 0x1001u);
    EXPECT_EQ(t.outbound_sa.cipher, sagd::aead_cipher::aes_gcm_128);
    EXPECT_EQ(t.outbound_sa.keymat, bytes(key_out));
    EXPECT_EQ(t.outbound_sa.keymat.capacity(), 20u); // reserved, never reallocated
    ASSERT_EQ(t.inbound_sas.size(), 2u);
    EXPECT_EQ(t.inbound_sas[0].spi, 0x2001u);
    EXPECT_EQ(t.inbound_sas[0].keymat, bytes(key_in1));
    EXPECT_EQ(t.inbound_sas[1].spi, 8194u);
    EXPECT_EQ(t.inbound_sas[1].keymat, bytes(key_in2));

    const auto& t2 = c.tunnels[1];
    EXPECT_FALSE(t2.local); // default: the port's address (left to the data plane)
    EXPECT_EQ(t2.encap, sagd::tunnel_encap::esp);
    EXPECT_EQ(t2.udp_src_port, 4500);
    EXPECT_EQ(t2.udp_dst_port, 4500);
    EXPECT_EQ(t2.replay_window, 1024u);
    EXPECT_FALSE(t2.esn);
    EXPECT_EQ(t2.outbound_sa.cipher, sagd::aead_cipher::aes_gcm_256);
    EXPECT_EQ(t2.outbound_sa.keymat, bytes(key_256));
    EXPECT_EQ(t2.outbound_sa.keymat.size(), 36u);

    ASSERT_EQ(c.routes.size(), 3u);
    EXPECT_EQ(c.routes[0].prefix.addr, ip("10.2.0.0"));
    EXPECT_EQ(c.routes[0].prefix.len, 16);
    EXPECT_EQ(c.routes[0].via, sagd::route_via::tunnel);
    EXPECT_EQ(c.routes[0].tunnel, "ccn-edge-1");
    EXPECT_EQ(c.routes[0].distance, 1);
    EXPECT_EQ(c.routes[1].distance, 5);
    EXPECT_EQ(c.routes[2].via, sagd::route_via::lan_gateway);
    EXPECT_EQ(c.routes[2].gateway, ip("10.1.0.254"));

    ASSERT_EQ(c.neighbours.size(), 1u);
    EXPECT_EQ(c.neighbours[0].port, "wan0");
    EXPECT_EQ(c.neighbours[0].address, ip("192.0.2.254"));
    EXPECT_EQ(c.neighbours[0].mac, (sagd::mac_addr{2, 0, 0, 0, 0, 1}));
}

TEST(config_good, brief_example_in_flow_style_parses) {
    std::string yaml = R"(workers: 1
eal: ["--no-huge", "-m", "512"]
ports:
  - name: lan0
    role: lan
    device: "net_af_packet0,iface=sagd-lan,qpairs=2"
    address: 10.1.0.1/24
    mtu: 1500
  - name: wan0
    role: wan
    device: "net_af_packet1,iface=sagd-wan"
    address: 192.0.2.1/24
    gateway: 192.0.2.254
tunnels:
  - name: ccn-edge-1
    port: wan0
    local: 192.0.2.1
    peer: 198.51.100.1
    encap: esp
    replay_window: 1024
    esn: false
    outbound_sa: { spi: 0x1001, cipher: aes-gcm-128, key: "0x)" +
                       key_out + R"(" }
    inbound_sas:
      - { spi: 0x2001, cipher: aes-gcm-128, key: "0x)" +
                       key_in1 + R"(" }
routes:
  - prefix: 10.2.0.0/16
    tunnel: ccn-edge-1
  - prefix: 10.3.0.0/16
    gateway: 10.1.0.254
    distance: 1
neighbours:
  - { port: wan0, address: 192.0.2.254, mac: "02:00:00:00:00:01" }
)";
    auto c = accepted(yaml);
    ASSERT_EQ(c.tunnels.size(), 1u);
    EXPECT_EQ(c.tunnels[0].inbound_sas[0].keymat, bytes(key_in1));
}

TEST(config_good, minimal_config_takes_defaults) {
    auto c = accepted("ports:\n  - {name: p, role: lan, device: d, address: 10.0.0.1/8}\n");
    EXPECT_EQ(c.workers, 1);
    EXPECT_TRUE(c.eal_args.empty());
    ASSERT_EQ(c.ports.size(), 1u);
    EXPECT_EQ(c.ports[0].mtu, 1500);
    EXPECT_EQ(c.ports[0].prefix_len, 8);
    EXPECT_TRUE(c.tunnels.empty() && c.routes.empty() && c.neighbours.empty());
}

TEST(config_good, empty_optional_sections_are_empty) {
    auto c = accepted("ports:\n  - {name: p, role: lan, device: d, address: 10.0.0.1/8}\n"
                      "eal:\ntunnels: []\nroutes:\nneighbours: ~\n");
    EXPECT_TRUE(c.tunnels.empty());
}

TEST(config_good, key_forms_hex_prefix_colons_and_case) {
    std::string colons;
    for (size_t i = 0; i < key_out.size(); i += 2) {
        if (i)
            colons += ':';
        colons.append(key_out, i, 2);
    }
    auto c = accepted(with("0x" + key_out, colons));
    EXPECT_EQ(c.tunnels[0].outbound_sa.keymat, bytes(key_out));
    std::string upper = key_out;
    for (auto& ch : upper)
        ch = static_cast<char>(toupper(ch));
    c = accepted(with("\"0x" + key_out + "\"", "0X" + upper));
    EXPECT_EQ(c.tunnels[0].outbound_sa.keymat, bytes(key_out));
}

TEST(config_good, spi_decimal_and_hex_bounds) {
    EXPECT_EQ(accepted(with("spi: 0x1001", "spi: 256")).tunnels[0].outbound_sa.spi, 256u);
    EXPECT_EQ(accepted(with("spi: 0x1001", "spi: 0xFFFFFFFF")).tunnels[0].outbound_sa.spi,
              0xffffffffu);
    EXPECT_EQ(accepted(with("spi: 0x1001", "spi: 4294967295")).tunnels[0].outbound_sa.spi,
              0xffffffffu);
}

TEST(config_good, same_outbound_spi_to_different_peers_is_fine) {
    accepted(with("spi: 0x1002", "spi: 0x1001"));
}

TEST(config_good, replay_window_zero_disables) {
    EXPECT_EQ(accepted(with("replay_window: 2048", "replay_window: 0")).tunnels[0].replay_window,
              0u);
}

// ---- top level ----------------------------------------------------------------------------------

TEST(config_top, empty_inputs) {
    refused("", {"empty", "ports"});
    refused("   \n\n", {"empty"});
    refused("# only a comment\n", {"empty"});
    refused("~\n", {"empty"});
}

TEST(config_top, top_level_must_be_a_mapping) {
    refused("- a\n- b\n", {"top level", "mapping"});
    refused("hello\n", {"top level"});
}

TEST(config_top, unknown_top_level_key) {
    refused(good() + "tunnel: []\n", {"tunnel: unknown key"});
}

TEST(config_top, duplicate_key) {
    refused(good() + "workers: 3\n", {"workers: duplicate key"});
}

TEST(config_top, workers_range_and_type) {
    refused(with("workers: 2", "workers: 0"), {"workers 0 out of range 1..64"});
    refused(with("workers: 2", "workers: 65"), {"workers 65 out of range"});
    refused(with("workers: 2", "workers: -1"), {"workers", "out of range"});
    refused(with("workers: 2", "workers: \"2\""), {"workers: expected an integer", "quoted"});
    refused(with("workers: 2", "workers: two"), {"workers", "not an integer"});
    refused(with("workers: 2", "workers: 2.0"), {"workers", "not an integer"});
    refused(with("workers: 2", "workers: 02"), {"workers", "leading zero"});
    refused(with("workers: 2", "workers: 99999999999999999999999"), {"workers", "out of range"});
}

TEST(config_top, eal_must_be_list_of_strings) {
    refused(with("eal: [\"--no-huge\", \"-m\", \"512\"]", "eal: --no-huge"), {"eal", "list"});
    refused(with("eal: [\"--no-huge\", \"-m\", \"512\"]", "eal: [a, {b: c}]"), {"eal[1]"});
    refused(with("eal: [\"--no-huge\", \"-m\", \"512\"]", "eal: [a, \"\"]"), {"eal[1]"});
}

TEST(config_top, ports_required_and_non_empty) {
    refused("workers: 1\n", {"ports: required field missing"});
    refused("ports: []\n", {"ports: at least one port"});
    refused("ports:\n", {"ports", "required"});
    refused("ports: {name: x}\n", {"ports: expected a list"});
}

TEST(config_top, multiple_documents_refused) {
    refused(good() + "---\nworkers: 1\n", {"one YAML document"});
}

// yaml-cpp 0.7 loops forever on these through LoadAll() (jbeder/yaml-cpp#1040).
TEST(config_top, stray_top_level_comma_refused_not_hung) {
    for (const char* text : {",", ", x", "  ,", "\"a\",", "[a],", "{a: 1},"})
        refused(text, {"<string>:1:"});
    refused(good() + ",", {"<string>:61:1: YAML syntax error"});
    refused("[a],\n", {"<string>:1:4: YAML syntax error: unexpected text after the end"});
}

TEST(config_top, syntax_error_gives_line_and_column) {
    auto msg = refused("workers: 1\nports: [\n  {name: a\n", {"<string>:", "YAML syntax error"});
    EXPECT_EQ(msg.rfind("<string>:", 0), 0u) << msg;
    msg = refused("workers: 1\n  ports: 2\n", {"<string>:2:"});
}

TEST(config_top, semantic_error_gives_line_and_column) {
    auto msg = refused(with("mtu: 1400", "mtu: 9001"), {"<string>:14:10: ports[1] 'wan0': mtu"});
}

TEST(config_top, nul_byte_refused) {
    std::string text = good();
    text[30] = '\0';
    refused(text, {"NUL byte"});
}

// ---- ports
// ----------------------------------------------------------------------------------------

TEST(config_ports, address_not_a_prefix_example_message) {
    refused(with("address: 10.1.0.1/24", "address: 10.1.0.300/24"),
            {"ports[0] 'lan0': address '10.1.0.300/24' is not an IPv4 prefix"});
    refused(with("address: 10.1.0.1/24", "address: 10.1.0.1"), {"ports[0] 'lan0': address"});
    refused(with("address: 10.1.0.1/24", "address: 10.1.0.1/33"), {"address", "0..32"});
    refused(with("address: 10.1.0.1/24", "address: 10.1.0.1/32"), {"address", "1..31"});
    refused(with("address: 10.1.0.1/24", "address: 10.1.0.0/24"), {"address", "network address"});
    refused(with("address: 10.1.0.1/24", "address: 10.1.0.255/24"), {"address", "broadcast"});
    refused(with("address: 10.1.0.1/24", "address: 127.0.0.1/8"), {"address", "unicast"});
}

TEST(config_ports, unknown_key_catches_typo) {
    refused(with("    mtu: 1500", "    mtu: 1500\n    adress: 1.2.3.4"),
            {"ports[0] 'lan0': adress: unknown key", "address"});
}

TEST(config_ports, name_rules) {
    refused(with("name: lan0", "name: LAN0"), {"ports[0]: name 'LAN0' is invalid"});
    refused(with("name: lan0", "name: a_very_long_port_name_that_is_too_long"),
            {"ports[0]: name", "invalid"});
    refused(with("name: wan0", "name: lan0"), {"ports[1] 'lan0': name already used by ports[0]"});
    refused(with("  - name: lan0\n", "  - role: lan\n    role2: x\n"), {"ports[0]", "role2"});
}

TEST(config_ports, required_fields) {
    refused(with("    role: lan\n", ""), {"ports[0] 'lan0': role: required field missing"});
    refused(with("    device: \"net_af_packet0,iface=sagd-lan,qpairs=2\"\n", ""),
            {"ports[0] 'lan0': device: required"});
    refused(with("    address: 10.1.0.1/24\n", ""), {"ports[0] 'lan0': address: required"});
    refused(with("  - name: lan0\n", "  - name:\n"), {"ports[0]: name: required, but empty"});
}

TEST(config_ports, role_values) {
    refused(with("role: lan", "role: dmz"), {"ports[0] 'lan0': role 'dmz' is not lan or wan"});
}

TEST(config_ports, device_unique) {
    refused(with("\"net_af_packet1,iface=sagd-wan\"", "\"net_af_packet0,iface=sagd-lan,qpairs=2\""),
            {"ports[1] 'wan0': device", "already used"});
    refused(with("\"net_af_packet1,iface=sagd-wan\"", "\"\""), {"ports[1] 'wan0': device"});
}

TEST(config_ports, addresses_unique_and_subnets_disjoint) {
    refused(with("address: 192.0.2.1/24", "address: 10.1.0.1/16"),
            {"ports[1] 'wan0': address 10.1.0.1 already used by port 'lan0'"});
    refused(with("address: 192.0.2.1/24", "address: 10.1.0.2/16"),
            {"ports[1] 'wan0': address", "overlaps port 'lan0'"});
}

TEST(config_ports, mtu_range) {
    refused(with("mtu: 1500", "mtu: 575"), {"ports[0] 'lan0': mtu 575 out of range 576..9000"});
    refused(with("mtu: 1500", "mtu: 9001"), {"mtu 9001 out of range"});
    accepted(with("mtu: 1500", "mtu: 9000"));
}

TEST(config_ports, gateway_rules) {
    refused(with("gateway: 192.0.2.254", "gateway: 192.0.3.254"),
            {"ports[1] 'wan0': gateway 192.0.3.254 is not inside port 'wan0' subnet 192.0.2.0/24"});
    refused(with("gateway: 192.0.2.254", "gateway: 192.0.2.1"), {"gateway", "own address"});
    refused(with("gateway: 192.0.2.254", "gateway: 192.0.2.255"), {"gateway", "broadcast"});
    refused(with("gateway: 192.0.2.254", "gateway: 192.0.2.x"), {"gateway", "not an IPv4 address"});
    refused(with("    mtu: 1500\n", "    mtu: 1500\n    gateway: 10.1.0.2\n"),
            {"ports[0] 'lan0': gateway is only valid on wan ports"});
}

// ---- tunnels
// --------------------------------------------------------------------------------------

TEST(config_tunnels, inbound_spi_unique_across_tunnels_example_message) {
    refused(with("spi: 0x3001", "spi: 0x2001"),
            {"tunnels[1] 'ccn-edge-2': inbound_sas[0].spi 0x2001 already used by tunnel "
             "'ccn-edge-1'"});
}

TEST(config_tunnels, inbound_spi_unique_within_tunnel) {
    refused(with("spi: 8194", "spi: 0x2001"),
            {"tunnels[0] 'ccn-edge-1': inbound_sas[1].spi 0x2001 already used"});
}

TEST(config_tunnels, outbound_spi_peer_unique) {
    std::string yaml =
        edit(with("spi: 0x1002", "spi: 0x1001"), "peer: 198.51.100.2", "peer: 198.51.100.1");
    refused(yaml, {"tunnels[1] 'ccn-edge-2': outbound_sa.spi 0x1001 to peer 198.51.100.1 already "
                   "used by tunnel 'ccn-edge-1'"});
}

TEST(config_tunnels, spi_range_and_reserved) {
    refused(with("spi: 0x1001", "spi: 255"),
            {"tunnels[0] 'ccn-edge-1': outbound_sa.spi 0xff is reserved", "RFC 4303"});
    refused(with("spi: 0x1001", "spi: 0"), {"outbound_sa.spi 0x0 is reserved"});
    refused(with("spi: 0x2001", "spi: 1"), {"inbound_sas[0].spi 0x1 is reserved"});
    refused(with("spi: 0x1001", "spi: 0x100000000"), {"outbound_sa.spi", "out of range 256.."});
    refused(with("spi: 0x1001", "spi: abc"), {"outbound_sa.spi", "not an integer"});
    refused(with("spi: 0x1001", "spi: \"0x1001\""), {"outbound_sa.spi: expected an integer"});
    refused(with("spi: 0x1001", "spi: 0x"), {"outbound_sa.spi", "not an integer"});
}

TEST(config_tunnels, cipher_names) {
    refused(with("cipher: aes-gcm-128", "cipher: aes-cbc-128"),
            {"tunnels[0] 'ccn-edge-1': outbound_sa.cipher 'aes-cbc-128' is not supported"});
    refused(with("cipher: aes-gcm-256", "cipher: AES-GCM-256"), {"outbound_sa.cipher"});
}

TEST(config_tunnels, key_length_message_without_echo) {
    auto msg = refused(with("0x" + key_out, "0x" + key_out.substr(0, 38)),
                       {"tunnels[0] 'ccn-edge-1': outbound_sa.key: expected 40 hex digits (20 "
                        "bytes: 16-byte key + 4-byte salt), got 38"});
    refused(with("0x" + key_256, "0x" + key_256.substr(0, 70)),
            {"tunnels[1] 'ccn-edge-2': outbound_sa.key: expected 72 hex digits (36 bytes: "
             "32-byte key + 4-byte salt), got 70"});
    // A 128-bit key where a 256-bit cipher is named.
    refused(with("cipher: aes-gcm-256", "cipher: aes-gcm-128"),
            {"outbound_sa.key: expected 40 hex digits", "got 72"});
    refused(with("0x" + key_in1, ""), {"inbound_sas[0].key: expected 40 hex digits", "got 0"});
}

TEST(config_tunnels, key_bad_characters) {
    std::string bad = key_out;
    bad[10] = 'g';
    refused(with(key_out, bad), {"outbound_sa.key: character 13 is not a hex digit"});
    refused(with("0x" + key_out, "0x:" + key_out), {"outbound_sa.key: ':'"});
    refused(with("0x" + key_out, key_out.substr(0, 4) + "::" + key_out.substr(4)),
            {"outbound_sa.key: ':'"});
    refused(with("\"0x" + key_out + "\"", "[1, 2]"), {"outbound_sa.key: expected a hex string"});
    refused(with("\"0x" + key_out + "\"", "\"0x" + key_out + " \""),
            {"outbound_sa.key: character 43"});
}

TEST(config_tunnels, sa_fields_required_and_known) {
    refused(with("      cipher: aes-gcm-256\n", ""),
            {"tunnels[1] 'ccn-edge-2': outbound_sa.cipher: required field missing"});
    refused(with("      spi: 0x1001\n", ""), {"outbound_sa.spi: required"});
    refused(with("      key: \"0x" + key_out + "\"\n", ""), {"outbound_sa.key: required"});
    refused(with("      spi: 0x1001\n", "      spi: 0x1001\n      salt: 1\n"),
            {"outbound_sa.salt: unknown key", "spi, cipher, key"});
    refused(with("    outbound_sa:\n", "    old_outbound:\n"),
            {"tunnels[0] 'ccn-edge-1': old_outbound: unknown key"});
}

TEST(config_tunnels, inbound_sas_count) {
    std::string three =
        with("      - spi: 8194\n", "      - spi: 0x5555\n        cipher: aes-gcm-128\n"
                                    "        key: \"" +
                                        key_in2 + "\"\n      - spi: 8194\n");
    refused(three, {"tunnels[0] 'ccn-edge-1': inbound_sas: expected 1 or 2 SAs", "got 3"});
    std::string none = edit(good(),
                            "    inbound_sas:\n      - spi: 0x3001\n        cipher: "
                            "aes-gcm-128\n        key: \"" +
                                key_t2 + "\"\n",
                            "    inbound_sas: []\n");
    refused(none, {"tunnels[1] 'ccn-edge-2': inbound_sas: expected 1 or 2 SAs", "got 0"});
    std::string missing = edit(good(),
                               "    inbound_sas:\n      - spi: 0x3001\n        cipher: "
                               "aes-gcm-128\n        key: \"" +
                                   key_t2 + "\"\n",
                               "");
    refused(missing, {"tunnels[1] 'ccn-edge-2': inbound_sas: required field missing"});
}

TEST(config_tunnels, name_rules) {
    refused(with("name: ccn-edge-2", "name: ccn-edge-1"),
            {"tunnels[1] 'ccn-edge-1': name already used by tunnels[0]"});
    refused(with("name: ccn-edge-2", "name: \"ccn edge\""), {"tunnels[1]: name 'ccn edge'"});
    refused(with("  - name: ccn-edge-2\n", "  - nam: ccn-edge-2\n"),
            {"tunnels[1]: nam: unknown key"});
}

TEST(config_tunnels, port_must_be_an_existing_wan_port) {
    refused(with("port: wan0", "port: lan0"),
            {"tunnels[0] 'ccn-edge-1': port 'lan0' is not a wan port"});
    refused(with("port: wan0", "port: wan9"),
            {"tunnels[0] 'ccn-edge-1': port 'wan9' is not a port"});
    refused(with("    port: wan0\n", ""),
            {"tunnels[0] 'ccn-edge-1': port: required field missing"});
}

TEST(config_tunnels, peer_and_local) {
    refused(with("    peer: 198.51.100.1\n", ""), {"tunnels[0] 'ccn-edge-1': peer: required"});
    refused(with("peer: 198.51.100.1", "peer: 198.51.100"),
            {"tunnels[0] 'ccn-edge-1': peer '198.51.100' is not an IPv4 address"});
    refused(with("peer: 198.51.100.1", "peer: 224.0.0.1"), {"peer 224.0.0.1 is not a unicast"});
    refused(with("peer: 198.51.100.1", "peer: 192.0.2.1"), {"peer 192.0.2.1 is port 'wan0'"});
    refused(with("local: 192.0.2.1", "local: 203.0.113.1"),
            {"tunnels[0] 'ccn-edge-1': local 203.0.113.1 is not inside port 'wan0' subnet"});
    // Without a WAN gateway the peer must be on-link.
    refused(
        with("    gateway: 192.0.2.254\n", ""),
        {"tunnels[0] 'ccn-edge-1': peer 198.51.100.1 is not on port 'wan0' subnet", "no gateway"});
}

TEST(config_tunnels, encap_and_udp_ports) {
    refused(with("encap: esp-udp", "encap: gre"), {"tunnels[0] 'ccn-edge-1': encap 'gre'"});
    refused(with("    encap: esp\n", ""), {"tunnels[1] 'ccn-edge-2': encap: required"});
    refused(with("encap: esp\n", "encap: esp\n    udp_dst_port: 4500\n"),
            {"tunnels[1] 'ccn-edge-2': udp_dst_port is only valid with encap esp-udp"});
    refused(with("udp_src_port: 4501", "udp_src_port: 0"),
            {"udp_src_port 0 out of range 1..65535"});
    refused(with("udp_dst_port: 4502", "udp_dst_port: 65536"), {"udp_dst_port 65536 out of range"});
}

TEST(config_tunnels, replay_window_range) {
    refused(with("replay_window: 2048", "replay_window: 32"),
            {"tunnels[0] 'ccn-edge-1': replay_window 32 out of range 0 (off) or 64..4096"});
    refused(with("replay_window: 2048", "replay_window: 4097"),
            {"replay_window 4097 out of range"});
    accepted(with("replay_window: 2048", "replay_window: 64"));
    accepted(with("replay_window: 2048", "replay_window: 4096"));
}

TEST(config_tunnels, esn_is_boolean) {
    refused(with("esn: true", "esn: yes"),
            {"tunnels[0] 'ccn-edge-1': esn: expected true or false"});
    refused(with("esn: true", "esn: 1"), {"esn: expected true or false"});
    refused(with("esn: true", "esn: \"true\""), {"esn: expected true or false"});
}

TEST(config_tunnels, two_thousand_tunnels_load_fast) {
    std::string yaml = "ports:\n"
                       "  - {name: lan0, role: lan, device: l, address: 10.1.0.1/24}\n"
                       "  - {name: wan0, role: wan, device: w, address: 192.0.2.1/24, "
                       "gateway: 192.0.2.254}\n"
                       "tunnels:\n";
    std::string routes = "routes:\n";
    char line[512];
    const int n = 2000;
    for (int i = 0; i < n; ++i) {
        std::snprintf(line, sizeof line,
                      "  - name: t%d\n    port: wan0\n    peer: 100.%d.%d.1\n    encap: esp\n"
                      "    outbound_sa: {spi: %d, cipher: aes-gcm-128, key: \"%s\"}\n"
                      "    inbound_sas: [{spi: %d, cipher: aes-gcm-128, key: \"%s\"}, "
                      "{spi: %d, cipher: aes-gcm-128, key: \"%s\"}]\n",
                      i, i / 256, i % 256, 0x1000 + i, key_out.c_str(), 0x100000 + 2 * i,
                      key_in1.c_str(), 0x100001 + 2 * i, key_in2.c_str());
        yaml += line;
        std::snprintf(line, sizeof line, "  - {prefix: 10.%d.%d.0/24, tunnel: t%d}\n",
                      100 + i / 256, i % 256, i);
        routes += line;
    }
    yaml += routes;
    // CPU time, not wall time: the test machine may be busy with other builds.
    std::clock_t start = std::clock();
    auto r = load_config_string(yaml);
    double cpu_ms = 1000.0 * double(std::clock() - start) / CLOCKS_PER_SEC;
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_EQ(r->tunnels.size(), size_t(n));
    EXPECT_EQ(r->routes.size(), size_t(n));
    EXPECT_EQ(r->tunnels[1999].inbound_sas[1].spi, 0x100001u + 2 * 1999);
    EXPECT_LT(cpu_ms, 1000.0);
    std::printf("2000 tunnels + 2000 routes (%zu bytes): %.0f ms CPU\n", yaml.size(), cpu_ms);

    // The duplicate check still finds a clash at the far end.
    std::string clash = yaml;
    std::snprintf(line, sizeof line, "{spi: %d,", 0x100001 + 2 * 1999);
    std::string last(line);
    std::snprintf(line, sizeof line, "{spi: %d,", 0x100000);
    clash.replace(clash.rfind(last), last.size(), line);
    refused(clash,
            {"tunnels[1999] 't1999': inbound_sas[1].spi 0x100000 already used by tunnel 't0'"});
}

// ---- routes
// ---------------------------------------------------------------------------------------

TEST(config_routes, host_bits_must_be_zero) {
    refused(with("prefix: 10.3.0.0/16", "prefix: 10.3.1.0/16"),
            {"routes[2]: prefix '10.3.1.0/16' has host bits set; the prefix is 10.3.0.0/16"});
    refused(with("prefix: 10.3.0.0/16", "prefix: 10.3.0.0"), {"routes[2]: prefix", "not an IPv4"});
    refused(with("    gateway: 10.1.0.254\n", "    gateway: 10.1.0.254\n  - tunnel: ccn-edge-1\n"),
            {"routes[3]: prefix: required field missing"});
}

TEST(config_routes, exactly_one_of_tunnel_gateway_or_group) {
    refused(with("    gateway: 10.1.0.254\n", ""),
            {"routes[2] '10.3.0.0/16': exactly one of 'tunnel', 'gateway' or 'group'", "none"});
    refused(with("    gateway: 10.1.0.254\n", "    gateway: 10.1.0.254\n    tunnel: ccn-edge-1\n"),
            {"routes[2] '10.3.0.0/16': exactly one", "several"});
}

TEST(config_groups, members_name_tunnels_and_routes_name_groups) {
    const std::string groups = "groups:\n"
                               "  - name: ccn\n"
                               "    members:\n"
                               "      - {tunnel: ccn-edge-1, priority: 200}\n"
                               "      - {tunnel: ccn-edge-2, weight: 3}\n"
                               "routes:\n";
    auto c = accepted(with("routes:\n", groups));
    ASSERT_EQ(c.groups.size(), 1u);
    EXPECT_EQ(c.groups[0].members[0].priority, 200);
    EXPECT_EQ(c.groups[0].members[1].priority, 100);
    EXPECT_EQ(c.groups[0].members[1].weight, 3);
    auto g = accepted(with("routes:\n", groups + "  - {prefix: 10.9.0.0/16, group: ccn}\n"));
    ASSERT_EQ(g.routes.size(), 4u);
    EXPECT_EQ(g.routes[0].via, sagd::route_via::group);
    EXPECT_EQ(g.routes[0].group, "ccn");
    refused(with("routes:\n", groups + "  - {prefix: 10.9.0.0/16, group: nope}\n"),
            {"routes[0] '10.9.0.0/16': group 'nope' is not a group"});
    refused(with("routes:\n", "groups:\n  - name: g\n    members: [{tunnel: nope}]\nroutes:\n"),
            {"groups[0] 'g': members[0].tunnel 'nope' is not a tunnel"});
    refused(with("routes:\n", "groups:\n  - name: ccn-edge-1\n    members: [{tunnel: ccn-edge-1}]\n"
                              "routes:\n"),
            {"groups[0] 'ccn-edge-1': name already used by a tunnel"});
    refused(with("routes:\n",
                 "groups:\n  - name: g\n    members: [{tunnel: ccn-edge-1}, {tunnel: ccn-edge-1}]\n"
                 "routes:\n"),
            {"members[1].tunnel 'ccn-edge-1' listed twice"});
    refused(with("routes:\n", "groups:\n  - name: g\n    members: []\nroutes:\n"),
            {"members: expected 1..16 tunnels, got 0"});
    refused(with("routes:\n",
                 "groups:\n  - name: g\n    members: [{tunnel: ccn-edge-1, weight: 0}]\nroutes:\n"),
            {"weight 0 out of range 1..1000"});
}

TEST(config_groups, hold_down_ms) {
    const std::string groups = "groups:\n  - name: ccn\n    hold_down_ms: 500\n"
                               "    members: [{tunnel: ccn-edge-1}]\nroutes:\n";
    auto c = accepted(with("routes:\n", groups));
    ASSERT_EQ(c.groups.size(), 1u);
    EXPECT_EQ(c.groups[0].hold_down_ms, 500u);
    EXPECT_EQ(accepted(sagd::dump_config(c, true)).groups[0].hold_down_ms, 500u);
    auto d = accepted(with("routes:\n", "groups:\n  - name: g\n    members: [{tunnel: ccn-edge-1}]\nroutes:\n"));
    EXPECT_EQ(d.groups[0].hold_down_ms, 3000u);
    refused(with("routes:\n", "groups:\n  - name: g\n    hold_down_ms: 3600001\n"
                              "    members: [{tunnel: ccn-edge-1}]\nroutes:\n"),
            {"groups[0] 'g': hold_down_ms 3600001 out of range 0..3600000"});
}

TEST(config_tunnels, bfd_inside_the_tunnel) {
    const std::string bfd = "    bfd: {local: 169.254.1.1, remote: 169.254.1.2, transmit_interval_ms: 50,"
                            " receive_interval_ms: 100, detect_multiplier: 5}\nroutes:\n";
    auto c = accepted(with("routes:\n", bfd));
    ASSERT_TRUE(c.tunnels[1].bfd);
    EXPECT_FALSE(c.tunnels[0].bfd);
    EXPECT_EQ(c.tunnels[1].bfd->local, ip("169.254.1.1"));
    EXPECT_EQ(c.tunnels[1].bfd->remote, ip("169.254.1.2"));
    EXPECT_EQ(c.tunnels[1].bfd->desired_min_tx_us, 50'000u);
    EXPECT_EQ(c.tunnels[1].bfd->required_min_rx_us, 100'000u);
    EXPECT_EQ(c.tunnels[1].bfd->detect_mult, 5);
    // The running config as written back (api.persist) loads to the same settings.
    auto again = accepted(sagd::dump_config(c, true));
    ASSERT_TRUE(again.tunnels[1].bfd);
    EXPECT_EQ(*again.tunnels[1].bfd, *c.tunnels[1].bfd);
    auto d = accepted(with("routes:\n", "    bfd: {local: 10.9.9.1, remote: 10.9.9.2}\nroutes:\n"));
    EXPECT_EQ(d.tunnels[1].bfd->desired_min_tx_us, 300'000u);
    EXPECT_EQ(d.tunnels[1].bfd->detect_mult, 3);
    refused(with("routes:\n", "    bfd: {local: 10.9.9.1, remote: 10.9.9.2, transmit_interval_ms: 49}\nroutes:\n"),
            {"tunnels[1] 'ccn-edge-2': bfd.transmit_interval_ms 49 out of range 50..60000"});
    refused(with("routes:\n", "    bfd: {local: 10.9.9.1, remote: 10.9.9.2, detect_multiplier: 0}\nroutes:\n"),
            {"bfd.detect_multiplier 0 out of range 1..255"});
    refused(with("routes:\n", "    bfd: {local: 10.9.9.1, remote: 10.9.9.1}\nroutes:\n"),
            {"bfd.remote 10.9.9.1 is the local address"});
    refused(with("routes:\n", "    bfd: {local: 10.9.9.1}\nroutes:\n"), {"bfd.remote", "required"});
    refused(with("routes:\n", "    bfd: {local: 10.9.9.1, remote: 10.9.9.2, echo: true}\nroutes:\n"),
            {"echo"});
}

TEST(config_tunnels, icmp_health_check_and_sla_class) {
    const std::string hc = "    health_check: {target: 10.2.0.9, source: 10.1.0.1, interval_ms: 200,"
                           " timeout_ms: 500, failures: 4, rtt_threshold_ms: 150, window: 20,"
                           " sla: {max_loss_percent: 5, max_latency_ms: 80}}\nroutes:\n";
    auto c = accepted(with("routes:\n", hc));
    ASSERT_TRUE(c.tunnels[1].health_check);
    const auto& h = *c.tunnels[1].health_check;
    EXPECT_EQ(h.target, ip("10.2.0.9"));
    EXPECT_EQ(h.source, ip("10.1.0.1"));
    EXPECT_EQ(h.interval_ms, 200u);
    EXPECT_EQ(h.timeout_ms, 500u);
    EXPECT_EQ(h.failures, 4u);
    EXPECT_EQ(h.rtt_threshold_ms, 150u);
    EXPECT_EQ(h.window, 20u);
    ASSERT_TRUE(h.sla);
    EXPECT_EQ(h.sla->max_loss_percent, 5u);
    EXPECT_EQ(h.sla->max_latency_ms, 80u);
    EXPECT_EQ(h.sla->max_jitter_ms, 0u);
    auto again = accepted(sagd::dump_config(c, true));
    ASSERT_TRUE(again.tunnels[1].health_check);
    EXPECT_EQ(*again.tunnels[1].health_check, h);
    auto d = accepted(with("routes:\n", "    health_check: {target: 10.2.0.9, source: 10.1.0.1}\nroutes:\n"));
    EXPECT_EQ(d.tunnels[1].health_check->interval_ms, 1000u);
    EXPECT_FALSE(d.tunnels[1].health_check->sla);
    refused(with("routes:\n", "    health_check: {target: 10.2.0.9, source: 10.2.0.9}\nroutes:\n"),
            {"health_check.source 10.2.0.9 is the target"});
    refused(with("routes:\n", "    health_check: {target: 10.2.0.9, source: 10.1.0.1, interval_ms: 99}\nroutes:\n"),
            {"health_check.interval_ms 99 out of range 100..60000"});
    refused(with("routes:\n", "    health_check: {target: 10.2.0.9, source: 10.1.0.1, window: 300}\nroutes:\n"),
            {"health_check.window 300 out of range 10..256"});
    refused(with("routes:\n", "    health_check: {target: 10.2.0.9, source: 10.1.0.1, sla: {}}\nroutes:\n"),
            {"sla: give at least one limit"});
    refused(with("routes:\n", "    health_check: {target: 10.2.0.9}\nroutes:\n"),
            {"health_check.source", "required"});
}

TEST(config_routes, tunnel_must_exist) {
    refused(with("    tunnel: ccn-edge-2\n", "    tunnel: ccn-edge-9\n"),
            {"routes[1] '10.4.0.0/16': tunnel 'ccn-edge-9' is not a tunnel"});
}

TEST(config_routes, gateway_must_be_on_a_lan_subnet) {
    refused(with("gateway: 10.1.0.254", "gateway: 10.9.0.254"),
            {"routes[2] '10.3.0.0/16': gateway 10.9.0.254 is not inside any lan port's subnet",
             "lan0 10.1.0.0/24"});
    refused(with("gateway: 10.1.0.254", "gateway: 192.0.2.254"),
            {"routes[2] '10.3.0.0/16': gateway 192.0.2.254 is not inside any lan port"});
    refused(with("gateway: 10.1.0.254", "gateway: 10.1.0.1"), {"gateway 10.1.0.1", "own address"});
}

TEST(config_routes, distance_range_and_duplicates) {
    refused(with("distance: 5", "distance: 0"),
            {"routes[1] '10.4.0.0/16': distance 0 out of range 1..255"});
    refused(with("distance: 5", "distance: 256"), {"distance 256 out of range"});
    refused(with("  - prefix: 10.4.0.0/16", "  - prefix: 10.2.0.0/16"),
            {"routes[1] '10.2.0.0/16': prefix 10.2.0.0/16 already defined by routes[0] (one "
             "static route per prefix: a backup path belongs in a group)"});
}

// ---- neighbours
// -----------------------------------------------------------------------------------

TEST(config_neighbours, rules) {
    refused(with("  - port: wan0\n    address: 192.0.2.254",
                 "  - port: wan7\n    address: 192.0.2.254"),
            {"neighbours[0] '192.0.2.254': port 'wan7' is not a port"});
    refused(with("address: 192.0.2.254\n    mac", "address: 192.0.9.254\n    mac"),
            {"neighbours[0] '192.0.9.254': address 192.0.9.254 is not inside port 'wan0' subnet"});
    refused(with("\"02:00:00:00:00:01\"", "\"02:00:00:00:00\""),
            {"neighbours[0] '192.0.2.254': mac '02:00:00:00:00' is not a MAC address"});
    refused(with("\"02:00:00:00:00:01\"", "\"03:00:00:00:00:01\""),
            {"mac 03:00:00:00:00:01 is a multicast"});
    refused(with("\"02:00:00:00:00:01\"", "\"00:00:00:00:00:00\""), {"mac 00:00:00:00:00:00"});
    refused(good() + "  - {port: wan0, address: 192.0.2.254, mac: \"02:00:00:00:00:02\"}\n",
            {"neighbours[1] '192.0.2.254': address 192.0.2.254 on port 'wan0' already defined by "
             "neighbours[0]"});
    refused(good() + "  - {port: wan0, address: 192.0.2.9}\n",
            {"neighbours[1] '192.0.2.9': mac: required"});
    refused(good() + "  - {port: wan0, address: 192.0.2.9, mac: \"02:00:00:00:00:02\", vlan: 3}\n",
            {"neighbours[1] '192.0.2.9': vlan: unknown key"});
}

// ---- wrong types everywhere
// -------------------------------------------------------------------------

TEST(config_types, every_scalar_field_refuses_lists_and_maps) {
    const std::string base = good();
    size_t checked = 0;
    size_t pos = 0;
    while (pos < base.size()) {
        size_t end = base.find('\n', pos);
        std::string line = base.substr(pos, end - pos);
        size_t colon = line.find(": ");
        size_t first = line.find_first_not_of(" -");
        if (colon != std::string::npos && first != std::string::npos && line[colon + 2] != '[') {
            std::string name = line.substr(first, colon - first);
            for (const char* bad : {"[1, 2]", "{a: 1}"}) {
                std::string yaml =
                    base.substr(0, pos) + line.substr(0, colon + 2) + bad + base.substr(end);
                auto r = load_config_string(yaml);
                ASSERT_FALSE(r.ok()) << "accepted " << name << ": " << bad;
                EXPECT_NE(r.err().message.find(name), std::string::npos)
                    << "field " << name << " not named in: " << r.err().message;
                EXPECT_FALSE(mentions_key(r.err().message)) << r.err().message;
                ++checked;
            }
        }
        pos = end + 1;
    }
    EXPECT_GT(checked, 60u);
}

TEST(config_types, integer_fields_refuse_quoted_strings_and_text) {
    for (const char* line : {"workers: 2", "mtu: 1500", "udp_src_port: 4501", "replay_window: 2048",
                             "spi: 0x1001", "distance: 5"}) {
        std::string name = std::string(line).substr(0, std::string(line).find(':'));
        refused(with(line, name + ": \"12\""), {name + ": expected an integer"});
        refused(with(line, name + ": twelve"), {name, "not an integer"});
        refused(with(line, name + ": true"), {name, "not an integer"});
    }
}

const std::string two_ports =
    "ports:\n"
    "  - {name: lan0, role: lan, device: l, address: 10.1.0.1/24}\n"
    "  - {name: wan0, role: wan, device: w, address: 192.0.2.1/24, gateway: 192.0.2.254}\n";

TEST(config_types, sections_of_the_wrong_shape) {
    refused(two_ports + "tunnels: 5\n", {"tunnels: expected a list, got a scalar"});
    refused(two_ports + "tunnels: {a: 1}\n", {"tunnels: expected a list, got a mapping"});
    refused(two_ports + "routes: {a: 1}\n", {"routes: expected a list"});
    refused(two_ports + "neighbours: x\n", {"neighbours: expected a list"});
    refused(two_ports + "tunnels:\n  - {name: t, port: wan0, peer: 192.0.2.9, encap: esp, "
                        "outbound_sa: [1], inbound_sas: []}\n",
            {"tunnels[0] 't': outbound_sa: expected a mapping, got a list"});
    refused(two_ports +
                "tunnels:\n  - {name: t, port: wan0, peer: 192.0.2.9, encap: esp, "
                "outbound_sa: {spi: 300, cipher: aes-gcm-128, key: \"" +
                key_out + "\"}, inbound_sas: {spi: 301}}\n",
            {"tunnels[0] 't': inbound_sas: expected a list, got a mapping"});
    refused(two_ports +
                "tunnels:\n  - {name: t, port: wan0, peer: 192.0.2.9, encap: esp, "
                "outbound_sa: {spi: 300, cipher: aes-gcm-128, key: \"" +
                key_out + "\"}, inbound_sas: [5]}\n",
            {"tunnels[0] 't': inbound_sas[0]: expected a mapping, got a scalar"});
    refused("ports: [5]\n", {"ports[0]: port: expected a mapping"});
    refused(with("  - name: ccn-edge-2\n", "  - 7\n  - name: ccn-edge-2\n"),
            {"tunnels[1]: tunnel: expected a mapping"});
    refused(good() + "  - [1]\n", {"neighbours[1]: neighbour: expected a mapping"});
    refused("ports:\n  - {[1]: 2}\n", {"ports[0]: keys must be plain names"});
}

// ---- keys never leak
// --------------------------------------------------------------------------------

TEST(config_secrets, keys_never_appear_in_errors) {
    const std::string k = "0x" + key_out;
    std::vector<std::string> bad = {
        with(k, "0x" + key_out.substr(0, 39)),                          // odd length
        with(k, "0x" + key_out + "ff"),                                 // too long
        with(k, key_out + "zz"),                                        // junk
        with("spi: 0x1001", "spi: " + k),                               // key pasted as SPI
        with("spi: 0x1001", "spi: \"" + k + "\""),                      // quoted, in SPI
        with("cipher: aes-gcm-128", "cipher: " + k),                    // key pasted as cipher
        with("      key: \"" + k + "\"", "      key \"" + k + "\": 1"), // malformed key line
        with("      key: \"" + k + "\"", "      kye: \"" + k + "\""),   // typo in field name
        with("      key: \"" + k + "\"", "      key: \"" + k + "\"\n      key: \"" + k + "\""),
        with("esn: true", "esn: " + k),
        edit(with("spi: 0x3001", "spi: 0x2001"), "", ""),             // duplicate SPI
        with("      key: \"" + k + "\"", "      " + key_out + ": 1"), // key as a mapping key
        with("      key: \"" + k + "\"", "      key: [\"" + k + "\"]"),
    };
    for (const auto& yaml : bad) {
        auto r = load_config_string(yaml);
        ASSERT_FALSE(r.ok());
        EXPECT_FALSE(mentions_key(r.err().message)) << r.err().message;
    }
}

TEST(config_secrets, syntax_errors_inside_keys_do_not_echo) {
    auto r = load_config_string(with("\"0x" + key_out + "\"", "\"0x" + key_out));
    ASSERT_FALSE(r.ok());
    EXPECT_FALSE(mentions_key(r.err().message)) << r.err().message;
}

// ---- robustness
// -------------------------------------------------------------------------------------

TEST(config_fuzz, random_bytes_never_crash) {
    std::mt19937 rng(12345);
    for (int i = 0; i < 3000; ++i) {
        std::string s(rng() % 512, '\0');
        for (auto& c : s)
            c = static_cast<char>(rng());
        (void)load_config_string(s);
    }
}

TEST(config_fuzz, random_yaml_tokens_never_crash) {
    const char* tokens[] = {"ports", "tunnels", ":",           " ",   "\n",  "  ",   "- ",
                            "[",     "]",       "{",           "}",   ",",   "\"",   "'",
                            "&a ",   "*a ",     "!!int ",      "? ",  "|",   ">",    "#",
                            "name",  "0x1001",  "10.1.0.1/24", "lan", "wan", "key",  "spi",
                            "---",   "...",     "%YAML 1.2",   "\t",  "~",   "null", "inbound_sas",
                            "!x ",   "<<: "};
    std::mt19937 rng(777);
    for (int i = 0; i < 3000; ++i) {
        std::string s;
        int n = static_cast<int>(rng() % 80);
        for (int j = 0; j < n; ++j)
            s += tokens[rng() % (sizeof tokens / sizeof tokens[0])];
        (void)load_config_string(s);
    }
}

TEST(config_fuzz, mutated_good_config_never_crashes_or_leaks_keys) {
    const std::string base = good();
    std::mt19937 rng(4242);
    int refusals = 0;
    for (int i = 0; i < 3000; ++i) {
        std::string s = base;
        int edits = 1 + static_cast<int>(rng() % 4);
        for (int j = 0; j < edits; ++j) {
            size_t at = rng() % s.size();
            switch (rng() % 4) {
            case 0:
                s[at] = static_cast<char>(rng() % 96 + 32);
                break;
            case 1:
                s.erase(at, rng() % 8 + 1);
                break;
            case 2:
                s.insert(at, 1, "\n :-[]{}\"',#&*"[rng() % 15]);
                break;
            case 3:
                s.resize(at);
                break;
            }
            if (s.empty())
                break;
        }
        auto r = load_config_string(s);
        if (!r.ok()) {
            ++refusals;
            EXPECT_FALSE(mentions_key(r.err().message)) << r.err().message;
        }
    }
    EXPECT_GT(refusals, 1000);
}

TEST(config_fuzz, deep_nesting_and_alias_tricks) {
    (void)load_config_string(std::string(100000, '['));
    (void)load_config_string(std::string(50000, '{') + std::string(50000, '}'));
    std::string deep = "ports:\n";
    for (int i = 0; i < 3000; ++i)
        deep += std::string(static_cast<size_t>(i % 200), ' ') + "- \n";
    (void)load_config_string(deep);
    // An alias reusing a port mapping is caught as a duplicate, not a crash.
    refused("ports:\n  - &p {name: a, role: lan, device: d, address: 10.0.0.1/8}\n  - *p\n",
            {"ports[1] 'a': name already used"});
    // Anchors on keys and a "billion laughs" shape stay bounded.
    std::string laughs = "a: &a [x, x, x, x, x, x, x, x]\n";
    for (char c = 'b'; c <= 'k'; ++c)
        laughs += std::string(1, c) + ": &" + c + " [*" + char(c - 1) + ", *" + char(c - 1) +
                  ", *" + char(c - 1) + ", *" + char(c - 1) + "]\n";
    refused(laughs + "eal: *k\n", {"a: unknown key"});
}

// ---- files
// --------------------------------------------------------------------------------------------

std::string write_temp(const std::string& name, const std::string& text) {
    std::string path = ::testing::TempDir() + "sagd-config-test-" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
}

TEST(config_file, loads_a_good_file) {
    std::string path = write_temp("good.yaml", good());
    auto r = sagd::load_config_file(path);
    ASSERT_TRUE(r.ok()) << r.err().message;
    EXPECT_EQ(r->tunnels.size(), 2u);
    std::remove(path.c_str());
}

TEST(config_file, errors_name_file_line_and_column) {
    std::string path = write_temp("bad.yaml", "workers: 1\nports: [\n");
    auto r = sagd::load_config_file(path);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().message.rfind(path + ":", 0), 0u) << r.err().message;
    EXPECT_NE(r.err().message.find("syntax error"), std::string::npos) << r.err().message;
    std::remove(path.c_str());

    path = write_temp("bad2.yaml", with("mtu: 1400", "mtu: 90"));
    r = sagd::load_config_file(path);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.err().message, path + ":14:10: ports[1] 'wan0': mtu 90 out of range 576..9000");
    std::remove(path.c_str());
}

TEST(config_file, empty_missing_and_not_regular) {
    std::string path = write_temp("empty.yaml", "");
    auto r = sagd::load_config_file(path);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.err().message.find("empty"), std::string::npos) << r.err().message;
    std::remove(path.c_str());

    r = sagd::load_config_file("/nonexistent/sagd.yaml");
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.err().message.find("/nonexistent/sagd.yaml: cannot open"), std::string::npos);

    r = sagd::load_config_file(::testing::TempDir());
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.err().message.find("not a regular file"), std::string::npos) << r.err().message;
}

// ---- address helpers
// -----------------------------------------------------------------------------------

TEST(config_helpers, parse_ipv4_is_strict) {
    EXPECT_EQ(sagd::parse_ipv4("0.0.0.0").value(), 0u);
    EXPECT_EQ(sagd::parse_ipv4("255.255.255.255").value(), 0xffffffffu);
    EXPECT_EQ(sagd::parse_ipv4("192.0.2.1").value(), 0xc0000201u);
    for (const char* bad : {"", "1", "1.2.3", "1.2.3.4.", "1.2.3.4.5", "01.2.3.4", "1.2.3.04",
                            "256.1.1.1", "1.2.3.4 ", " 1.2.3.4", "1..3.4", "-1.2.3.4", "+1.2.3.4",
                            "1.2.3.4/24", "0x1.2.3.4", "1.2.3.a", "1111.2.3.4", "1.2.3.4\n"}) {
        auto r = sagd::parse_ipv4(bad);
        EXPECT_FALSE(r.ok()) << bad;
        if (!r.ok()) {
            EXPECT_NE(r.err().message.find("is not an IPv4 address"), std::string::npos);
        }
    }
}

TEST(config_helpers, parse_ipv4_prefix_is_strict) {
    auto p = sagd::parse_ipv4_prefix("10.2.0.0/16");
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->addr, 0x0a020000u);
    EXPECT_EQ(p->len, 16);
    EXPECT_TRUE(sagd::parse_ipv4_prefix("0.0.0.0/0").ok());
    EXPECT_TRUE(sagd::parse_ipv4_prefix("1.2.3.4/32").ok());
    for (const char* bad : {"10.2.0.0", "10.2.0.0/", "10.2.0.0/33", "10.2.0.0/016", "10.2.0.0/1x",
                            "10.2.0.0/16/1", "10.2.0.0 /16", "10.2.0.0/-1"})
        EXPECT_FALSE(sagd::parse_ipv4_prefix(bad).ok()) << bad;
    auto hb = sagd::parse_ipv4_prefix("10.2.3.4/16");
    ASSERT_FALSE(hb.ok());
    EXPECT_NE(hb.err().message.find("host bits set; the prefix is 10.2.0.0/16"), std::string::npos);
    auto c = sagd::parse_ipv4_cidr("10.2.3.4/16");
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->addr, 0x0a020304u);
}

TEST(config_helpers, format_round_trips) {
    EXPECT_EQ(sagd::format_ipv4(0xc0000201u), "192.0.2.1");
    EXPECT_EQ(sagd::format_ipv4(0), "0.0.0.0");
    EXPECT_EQ(sagd::format_ipv4(0xffffffffu), "255.255.255.255");
    EXPECT_EQ(sagd::format_ipv4_prefix({0x0a020000u, 16}), "10.2.0.0/16");
    std::mt19937 rng(1);
    for (int i = 0; i < 1000; ++i) {
        uint32_t a = rng();
        EXPECT_EQ(sagd::parse_ipv4(sagd::format_ipv4(a)).value(), a);
    }
    auto m = sagd::parse_mac("02:0A:ff:00:10:01");
    ASSERT_TRUE(m.ok());
    EXPECT_EQ(sagd::format_mac(m.value()), "02:0a:ff:00:10:01");
    EXPECT_FALSE(sagd::parse_mac("02-0a-ff-00-10-01").ok());
    EXPECT_FALSE(sagd::parse_mac("02:0a:ff:00:10:0").ok());
    EXPECT_EQ(sagd::ipv4_mask(0), 0u);
    EXPECT_EQ(sagd::ipv4_mask(24), 0xffffff00u);
    EXPECT_EQ(sagd::ipv4_mask(32), 0xffffffffu);
}

} // namespace

// ---- IPv6 -------------------------------------------------------------------------------------

namespace {
std::string with6(const std::string& port_extra, const std::string& routes_extra) {
    std::string y = edit(good(), "    mtu: 1500\n", "    mtu: 1500\n" + port_extra);
    return edit(y, "routes:\n", "routes:\n" + routes_extra);
}
} // namespace

TEST(config_ipv6, address6_routes_and_limit_parse_and_dump_round_trip) {
    auto cfg = accepted(edit(
        with6("    address6: 2001:db8:1::1/64\n",
              "  - prefix: 2001:db8:2::/48\n    tunnel: ccn-edge-1\n"
              "  - {prefix: \"2001:db8:9::/48\", gateway: \"2001:db8:1::fe\", distance: 7}\n"
              "  - prefix: ::/0\n    gateway: fe80::1\n"),
        "routes:", "limits: {ipv6_routes: 4096}\nroutes:"));
    ASSERT_TRUE(cfg.ports[0].address6);
    EXPECT_EQ(sagd::format_ipv6(*cfg.ports[0].address6), "2001:db8:1::1");
    EXPECT_EQ(cfg.ports[0].prefix6_len, 64);
    EXPECT_EQ(cfg.limits.ipv6_routes, 4096u);
    ASSERT_EQ(cfg.routes6.size(), 3u);
    EXPECT_EQ(cfg.routes.size(), 3u); // the IPv4 routes are unaffected
    EXPECT_EQ(sagd::format_ipv6_prefix(cfg.routes6[0].prefix), "2001:db8:2::/48");
    EXPECT_EQ(cfg.routes6[0].tunnel, "ccn-edge-1");
    EXPECT_EQ(cfg.routes6[1].via, sagd::route_via::lan_gateway);
    EXPECT_EQ(sagd::format_ipv6(cfg.routes6[1].gateway), "2001:db8:1::fe");
    EXPECT_EQ(cfg.routes6[1].distance, 7);
    EXPECT_EQ(cfg.routes6[2].prefix.len, 0);
    // dump_config writes what load_config_string reads back.
    auto again = accepted(sagd::dump_config(cfg, true));
    ASSERT_EQ(again.routes6.size(), 3u);
    EXPECT_EQ(again.routes6[1].gateway, cfg.routes6[1].gateway);
    EXPECT_EQ(*again.ports[0].address6, *cfg.ports[0].address6);
    EXPECT_EQ(again.limits.ipv6_routes, 4096u);
}

TEST(config_ipv6, address6_rules_with_line_and_column) {
    refused(with6("    address6: 2001:db8:1::1\n", ""),
            {"<string>:", "ports[0] 'lan0': address6 '2001:db8:1::1' is not an IPv6 prefix"});
    refused(with6("    address6: 2001:db8:1::/64\n", ""), {"subnet-router anycast"});
    refused(with6("    address6: fe80::1/64\n", ""), {"is link-local"});
    refused(with6("    address6: ff02::1/64\n", ""), {"is a multicast address"});
    refused(with6("    address6: 2001:db8:1::1/128\n", ""), {"prefix length must be 8..127"});
    refused(with6("    address6: 2001:db8:1::1%eth0/64\n", ""), {"unexpected character '%'"});
    refused(with6("    address6: 2001:db8:::1/64\n", ""), {"not a valid IPv6 address"});
    refused(edit(good(), "    mtu: 1400\n", "    mtu: 1400\n    address6: 2001:db8:5::1/64\n"),
            {"ports[1] 'wan0': address6 is only valid on lan ports"});
    auto msg = refused(with6("    address6: 2001:db8:1::1/64\n    address6: 2001:db8:1::2/64\n", ""),
                       {"duplicate"});
    EXPECT_NE(msg.find(":"), std::string::npos);
}

TEST(config_ipv6, route6_rules) {
    const std::string a6 = "    address6: 2001:db8:1::1/64\n";
    refused(with6(a6, "  - prefix: 2001:db8:2::1/48\n    tunnel: ccn-edge-1\n"),
            {"routes[0]", "has host bits set; the prefix is 2001:db8:2::/48"});
    refused(with6(a6, "  - prefix: 2001:db8:2::/129\n    tunnel: ccn-edge-1\n"),
            {"prefix length must be a number 0..128"});
    refused(with6(a6, "  - prefix: 2001:db8:2::/48\n    tunnel: nope\n"),
            {"tunnel 'nope' is not a tunnel"});
    refused(with6(a6, "  - prefix: 2001:db8:2::/48\n    gateway: 2001:db8:7::1\n"),
            {"is not inside any lan port's IPv6 prefix (lan0 2001:db8:1::/64)"});
    refused(with6("", "  - prefix: 2001:db8:2::/48\n    gateway: 2001:db8:1::fe\n"),
            {"no lan port has address6"});
    refused(with6("", "  - prefix: 2001:db8:2::/48\n    gateway: fe80::1\n"),
            {"is link-local: it needs exactly one lan port with address6, there are 0"});
    refused(with6(a6, "  - prefix: 2001:db8:2::/48\n    gateway: 2001:db8:1::1\n"),
            {"own address"});
    refused(with6(a6, "  - prefix: 2001:db8:2::/48\n    tunnel: ccn-edge-1\n"
                      "  - prefix: 2001:db8:2::/48\n    tunnel: ccn-edge-2\n"),
            {"routes[1]", "prefix 2001:db8:2::/48 already defined by routes[0]"});
    refused(with6(a6, "  - prefix: 2001:db8:2::/48\n"), {"exactly one of 'tunnel', 'gateway'"});
    refused(edit(good(), "routes:", "limits: {ipv6_routes: 10}\nroutes:"), {"ipv6_routes"});
}
