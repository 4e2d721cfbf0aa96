// The runtime API's handlers against a real gateway on DPDK ring ports: what a request changes,
// what it refuses (and that a refused request changes nothing), what it shows (never a key).
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>

#include "control-shim/api.hpp"
#include "control-shim/config_yaml.hpp"
#include "control-shim/fpm_server.hpp"
#include "control-shim/metrics.hpp"

namespace sagd::shim {
namespace {

rte_mempool* pool() {
    static rte_mempool* p =
        rte_pktmbuf_pool_create("api_test_pool", 4095, 64, 0, RTE_MBUF_DEFAULT_BUF_SIZE, 0);
    return p;
}

std::string ring_port(const std::string& name) {
    rte_ring* rx = rte_ring_create((name + "_rx").c_str(), 256, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    rte_ring* tx = rte_ring_create((name + "_tx").c_str(), 256, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    int id = rte_eth_from_rings(name.c_str(), &rx, 1, &tx, 1, 0);
    EXPECT_GE(id, 0);
    char ethdev_name[RTE_ETH_NAME_MAX_LEN];
    EXPECT_EQ(rte_eth_dev_get_name_by_port(static_cast<uint16_t>(id), ethdev_name), 0);
    return ethdev_name;
}

const char* key_out = "0x2b7e151628aed2a6abf7158809cf4f3ccafebabe";
const char* key_in = "0x603deb1015ca71be2b73aef0857d7781deadbeef";

std::string tunnel_json(const std::string& name, int n) {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  R"({"name": "%s", "port": "wan0", "peer": "198.51.100.%d", "encap": "esp",)"
                  R"( "outbound_sa": {"spi": %d, "cipher": "aes-gcm-128", "key": "%s"},)"
                  R"( "inbound_sas": [{"spi": %d, "cipher": "aes-gcm-128", "key": "%s"}]})",
                  name.c_str(), n, 0x5000 + n, key_out, 0x6000 + n, key_in);
    return buf;
}

class ApiTest : public ::testing::Test {
  protected:
    void SetUp() override {
        ASSERT_NE(pool(), nullptr);
        static int instance = 0;
        ++instance;
        dir_ = "/tmp/sagd-api-test-" + std::to_string(getpid()) + "-" + std::to_string(instance);
        ::mkdir(dir_.c_str(), 0700);
        std::string lan = ring_port("api_lan" + std::to_string(instance));
        std::string wan = ring_port("api_wan" + std::to_string(instance));
        std::string text = "ports:\n"
                           "  - {name: lan0, role: lan, device: \"" +
                           lan +
                           "\", address: 10.1.0.1/24, address6: \"2001:db8:1::1/64\"}\n"
                           "  - {name: wan0, role: wan, device: \"" +
                           wan +
                           "\", address: 192.0.2.1/24, gateway: 192.0.2.254}\n"
                           "tunnels:\n"
                           "  - name: edge-1\n"
                           "    port: wan0\n"
                           "    peer: 198.51.100.1\n"
                           "    encap: esp\n"
                           "    outbound_sa: {spi: 0x1001, cipher: aes-gcm-128, key: " +
                           std::string(key_out) +
                           "}\n"
                           "    inbound_sas:\n"
                           "      - {spi: 0x2001, cipher: aes-gcm-128, key: " +
                           std::string(key_in) +
                           "}\n"
                           "routes:\n"
                           "  - {prefix: 10.2.0.0/16, tunnel: edge-1}\n"
                           "  - {prefix: 10.9.0.0/16, gateway: 10.1.0.254}\n";
        auto cfg = load_config_string(text, "test");
        ASSERT_TRUE(cfg.ok()) << cfg.err().message;
        auto gw = dp::gateway::create(cfg.value(), pool(), crypto::engine_kind::openssl);
        ASSERT_TRUE(gw.ok()) << gw.err().message;
        gw_ = std::move(gw.value());
        api_options o;
        o.persist_path = dir_ + "/running.yaml";
        api_hooks h;
        h.metrics = [this] { return render_metrics(*gw_, nullptr); };
        api_ = std::make_unique<api>(*gw_, o, h);
        ASSERT_EQ(api_->persist(), "");
    }
    void TearDown() override {
        api_.reset();
        gw_.reset();
        std::remove((dir_ + "/running.yaml").c_str());
        ::rmdir(dir_.c_str());
    }

    http_response call(const std::string& method, const std::string& target,
                       const std::string& body = "", const std::string& content_type = "") {
        http_request r;
        r.method = method;
        size_t q = target.find('?');
        r.path = target.substr(0, q);
        if (q != std::string::npos) {
            std::string qs = target.substr(q + 1);
            std::stringstream ss(qs);
            std::string kv;
            while (std::getline(ss, kv, '&')) {
                size_t eq = kv.find('=');
                r.query.emplace_back(kv.substr(0, eq),
                                     eq == std::string::npos ? "" : kv.substr(eq + 1));
            }
        }
        r.body = body;
        if (!content_type.empty())
            r.headers.emplace_back("content-type", content_type);
        auto resp = api_->handle(r, connection_info{});
        // Keys never leave: neither the hex of a configured key nor its tail.
        EXPECT_EQ(resp.body.find("2b7e151628aed2a6"), std::string::npos) << target;
        EXPECT_EQ(resp.body.find("603deb1015ca71be"), std::string::npos) << target;
        return resp;
    }
    size_t routes() const { return gw_->writer().fib().prefix_count(); }

    std::string dir_;
    std::unique_ptr<dp::gateway> gw_;
    std::unique_ptr<api> api_;
};

TEST_F(ApiTest, ShowsStatusPortsTunnelsWithoutKeys) {
    auto s = call("GET", "/v1/status");
    EXPECT_EQ(s.status, 200);
    EXPECT_NE(s.body.find("\"tunnels\":1"), std::string::npos) << s.body;
    auto p = call("GET", "/v1/ports/wan0");
    EXPECT_EQ(p.status, 200);
    EXPECT_NE(p.body.find("\"gateway\":\"192.0.2.254\""), std::string::npos) << p.body;
    auto t = call("GET", "/v1/tunnels");
    EXPECT_EQ(t.status, 200);
    EXPECT_NE(t.body.find("\"spi\":\"0x1001\""), std::string::npos) << t.body;
    EXPECT_EQ(t.body.find("key"), std::string::npos) << t.body;
    EXPECT_EQ(call("GET", "/v1/tunnels/nope").status, 404);
    EXPECT_EQ(call("GET", "/v2/status").status, 404);
    EXPECT_EQ(call("DELETE", "/v1/status").status, 405);
    EXPECT_EQ(call("POST", "/v1/tunnels", "x", "application/octet-stream").status, 415);
}

TEST_F(ApiTest, CreatesReplacesAndDeletesTunnels) {
    auto r = call("POST", "/v1/tunnels", tunnel_json("edge-2", 2), "application/json");
    ASSERT_EQ(r.status, 201) << r.body;
    EXPECT_NE(gw_->tbl().find_tunnel("edge-2"), nullptr);
    EXPECT_EQ(call("POST", "/v1/tunnels", tunnel_json("edge-2", 2)).status, 409);
    // PUT replaces; the name in the path must match the body.
    EXPECT_EQ(call("PUT", "/v1/tunnels/edge-3", tunnel_json("edge-2", 2)).status, 400);
    auto put = call("PUT", "/v1/tunnels/edge-2", tunnel_json("edge-2", 7));
    ASSERT_EQ(put.status, 200) << put.body;
    EXPECT_NE(put.body.find("198.51.100.7"), std::string::npos);
    // A route through it, then deleting it is refused until the route goes.
    ASSERT_EQ(
        call("POST", "/v1/routes", R"({"prefix": "10.70.0.0/16", "tunnel": "edge-2"})").status,
        200);
    auto busy = call("DELETE", "/v1/tunnels/edge-2");
    EXPECT_EQ(busy.status, 409);
    EXPECT_NE(busy.body.find("in use"), std::string::npos) << busy.body;
    EXPECT_EQ(call("DELETE", "/v1/routes?prefix=10.70.0.0/16").status, 200);
    EXPECT_EQ(call("DELETE", "/v1/tunnels/edge-2").status, 200);
    EXPECT_EQ(gw_->tbl().find_tunnel("edge-2"), nullptr);
    EXPECT_EQ(call("DELETE", "/v1/tunnels/edge-2").status, 404);
}

TEST_F(ApiTest, InvalidTunnelsAreRefusedNamingObjectFieldAndReason) {
    std::string bad = tunnel_json("edge-2", 2);
    bad.replace(bad.find("\"esp\""), 5, "\"gre\"");
    auto r = call("POST", "/v1/tunnels", bad);
    EXPECT_EQ(r.status, 400);
    EXPECT_NE(r.body.find("edge-2"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("encap"), std::string::npos) << r.body;
    // Reusing another tunnel's inbound SPI: a conflict that names the owner.
    std::string dup = tunnel_json("edge-2", 2);
    dup.replace(dup.find(std::to_string(0x6000 + 2)), 5, "8193"); // 0x2001
    r = call("POST", "/v1/tunnels", dup);
    EXPECT_EQ(r.status, 409) << r.body;
    EXPECT_NE(r.body.find("edge-1"), std::string::npos) << r.body;
    // A key of the wrong length is refused without echoing it.
    std::string short_key = tunnel_json("edge-2", 2);
    short_key.replace(short_key.find(key_in), std::strlen(key_in), "0x603deb1015ca71be2b73");
    r = call("POST", "/v1/tunnels", short_key);
    EXPECT_EQ(r.status, 400);
    EXPECT_EQ(r.body.find("603deb10"), std::string::npos) << r.body;
    EXPECT_EQ(call("POST", "/v1/tunnels", "{not json").status, 400);
    EXPECT_EQ(gw_->tbl().find_tunnel("edge-2"), nullptr);
    EXPECT_EQ(gw_->changes_applied(), 0u);
}

TEST_F(ApiTest, RouteBatchesApplyAsOneChangeOrNotAtAll) {
    size_t before = routes();
    std::string batch;
    for (int i = 0; i < 200; ++i)
        batch += "add 10." + std::to_string(100 + i / 100) + "." + std::to_string(i % 100) +
                 ".0/24 tunnel edge-1\n";
    batch += "add 10.99.0.0/16 via 10.1.0.254 distance 5\n";
    auto bad =
        call("POST", "/v1/routes", batch + "add 10.98.0.0/16 tunnel missing\n", "text/plain");
    EXPECT_EQ(bad.status, 400);
    EXPECT_NE(bad.body.find("missing"), std::string::npos) << bad.body;
    EXPECT_EQ(routes(), before);
    auto syntax =
        call("POST", "/v1/routes", batch + "add 10.98.0.0/33 tunnel edge-1\n", "text/plain");
    EXPECT_EQ(syntax.status, 400);
    EXPECT_NE(syntax.body.find("line 202"), std::string::npos) << syntax.body;
    EXPECT_EQ(routes(), before);

    auto ok = call("POST", "/v1/routes", batch, "text/plain");
    ASSERT_EQ(ok.status, 200) << ok.body;
    EXPECT_EQ(routes(), before + 201);
    EXPECT_EQ(gw_->changes_applied(), 1u);
    auto longer = call("GET", "/v1/routes?prefix=10.100.0.0/16&match=longer");
    EXPECT_NE(longer.body.find("\"total\":100"), std::string::npos) << longer.body.substr(0, 200);
    auto best = call("GET", "/v1/routes?prefix=10.99.3.4/32&match=best");
    EXPECT_NE(best.body.find("\"prefix\":\"10.99.0.0/16\""), std::string::npos) << best.body;
    EXPECT_NE(best.body.find("\"gateway\":\"10.1.0.254\""), std::string::npos) << best.body;
    EXPECT_EQ(call("GET", "/v1/routes?prefix=10.99.0.1/16").status, 400); // host bits

    std::string del;
    for (int i = 0; i < 200; ++i)
        del +=
            "del 10." + std::to_string(100 + i / 100) + "." + std::to_string(i % 100) + ".0/24\n";
    ASSERT_EQ(call("POST", "/v1/routes", del, "text/plain").status, 200);
    EXPECT_EQ(routes(), before + 1);
    // JSON add/delete form.
    auto j = call("POST", "/v1/routes",
                  R"({"add": [{"prefix": "10.77.0.0/16", "tunnel": "edge-1"}],)"
                  R"( "delete": ["10.99.0.0/16"]})");
    ASSERT_EQ(j.status, 200) << j.body;
    EXPECT_EQ(routes(), before + 1);
    EXPECT_EQ(call("DELETE", "/v1/routes?prefix=10.99.0.0/16").status, 404);
}

TEST_F(ApiTest, PortsChangeAtRuntimeWithChecks) {
    auto r = call("PATCH", "/v1/ports/wan0", R"({"mtu": 1400})");
    ASSERT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(gw_->tbl().ports[1].mtu, 1400);
    EXPECT_EQ(call("PATCH", "/v1/ports/wan0", R"({"mtu": 100})").status, 400);
    EXPECT_EQ(call("PATCH", "/v1/ports/wan0", R"({"colour": "red"})").status, 400);
    EXPECT_EQ(call("PATCH", "/v1/ports/nope", R"({"mtu": 1400})").status, 404);
    auto g = call("PATCH", "/v1/ports/lan0", R"({"gateway": "10.1.0.9"})");
    EXPECT_EQ(g.status, 400) << g.body; // only WAN ports have a gateway
}

TEST_F(ApiTest, RekeyIsMakeBeforeBreakAndRetiresTheOldInboundSa) {
    std::string body =
        std::string(R"({"outbound_sa": {"spi": 4353, "cipher": "aes-gcm-128", "key": ")") + key_in +
        R"("}, "inbound_sa": {"spi": 8449, "cipher": "aes-gcm-128", "key": ")" + key_out +
        R"("}, "retire_after_ms": 5000})";
    auto r = call("POST", "/v1/tunnels/edge-1/rekey", body);
    ASSERT_EQ(r.status, 200) << r.body;
    const auto* t = gw_->tbl().find_tunnel("edge-1");
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->outbound->spi, 4353u);
    ASSERT_EQ(t->inbound.size(), 2u);
    EXPECT_NE(r.body.find("retires_in_ms"), std::string::npos) << r.body;
    EXPECT_EQ(call("POST", "/v1/tunnels/edge-1/rekey", body).status, 409); // same SPIs again
    // Not yet due: nothing happens; due: the old inbound SA (0x2001) goes.
    api_->poll(1);
    EXPECT_EQ(gw_->tbl().find_tunnel("edge-1")->inbound.size(), 2u);
    api_->poll(UINT64_MAX / 2);
    t = gw_->tbl().find_tunnel("edge-1");
    ASSERT_EQ(t->inbound.size(), 1u);
    EXPECT_EQ(t->inbound[0]->spi, 8449u);
    EXPECT_EQ(call("POST", "/v1/tunnels/edge-1/rekey", R"({"outbound_sa": {}})").status, 400);
    EXPECT_EQ(call("POST", "/v1/tunnels/none/rekey", body).status, 404);
}

TEST_F(ApiTest, DeclarativeApplyDiffsAndPersists) {
    auto cur = call("GET", "/v1/config");
    EXPECT_EQ(cur.status, 200);
    EXPECT_NE(cur.body.find("key: redacted"), std::string::npos);
    // The persisted file holds the keys (mode 0600) and loads back to the same config.
    struct stat st {};
    ASSERT_EQ(::stat((dir_ + "/running.yaml").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);
    auto saved = load_config_file(dir_ + "/running.yaml");
    ASSERT_TRUE(saved.ok()) << saved.err().message;
    EXPECT_EQ(dump_config(saved.value(), true), dump_config(gw_->writer().running(), true));

    // Target: one more tunnel and route, one route gone, an MTU change.
    config target = saved.value();
    auto extra = parse_tunnel_body(target, tunnel_json("edge-2", 2));
    ASSERT_TRUE(extra.ok()) << extra.err().message;
    target.tunnels.push_back(extra.value());
    target.routes.erase(target.routes.begin() + 1); // 10.9.0.0/16 via the LAN router
    route_config r;
    r.prefix = {0x0a4d0000, 16}; // 10.77.0.0/16
    r.tunnel = "edge-2";
    target.routes.push_back(r);
    target.ports[0].mtu = 1400;
    std::string text = dump_config(target, true);
    auto dry = call("PUT", "/v1/config?dry_run=1", text, "application/yaml");
    ASSERT_EQ(dry.status, 200) << dry.body;
    EXPECT_NE(dry.body.find("\"changes\":4"), std::string::npos) << dry.body;
    EXPECT_EQ(gw_->tbl().find_tunnel("edge-2"), nullptr);
    auto done = call("PUT", "/v1/config", text, "application/yaml");
    ASSERT_EQ(done.status, 200) << done.body;
    EXPECT_NE(gw_->tbl().find_tunnel("edge-2"), nullptr);
    EXPECT_EQ(gw_->tbl().ports[0].mtu, 1400);
    EXPECT_FALSE(gw_->writer().fib().installed(0x0a090000, 16));
    EXPECT_EQ(gw_->changes_applied(), 1u);
    auto again = load_config_file(dir_ + "/running.yaml");
    ASSERT_TRUE(again.ok());
    EXPECT_EQ(dump_config(again.value(), true), text);
    // Applying the same file again changes nothing; a restart-only change is refused.
    auto same = call("PUT", "/v1/config", text);
    EXPECT_NE(same.body.find("\"changes\":0"), std::string::npos) << same.body;
    target.workers = 2;
    auto restart = call("PUT", "/v1/config", dump_config(target, true));
    EXPECT_EQ(restart.status, 409);
    EXPECT_NE(restart.body.find("restart"), std::string::npos) << restart.body;
}

TEST_F(ApiTest, MetricsAndCountersAreServed) {
    auto m = call("GET", "/metrics");
    EXPECT_EQ(m.status, 200);
    EXPECT_EQ(m.content_type.rfind("text/plain", 0), 0u);
    EXPECT_NE(m.body.find("# TYPE sagd_drops_total counter"), std::string::npos);
    EXPECT_NE(m.body.find("sagd_tunnel_packets_total{tunnel=\"edge-1\",direction=\"tx\"} 0"),
              std::string::npos)
        << m.body;
    auto c = call("GET", "/v1/counters");
    EXPECT_EQ(c.status, 200);
    EXPECT_NE(c.body.find("\"esp_icv_fail\":0"), std::string::npos);
    auto n = call("GET", "/v1/onprem-prefixes");
    EXPECT_NE(n.body.find("\"10.1.0.0/24\""), std::string::npos) << n.body;
    EXPECT_NE(n.body.find("\"10.9.0.0/16\""), std::string::npos) << n.body;
}

TEST_F(ApiTest, GroupsAreCreatedListedUsedAndProtected) {
    ASSERT_EQ(call("POST", "/v1/tunnels", tunnel_json("edge-2", 2)).status, 201);
    auto g = call("POST", "/v1/groups",
                  R"({"name": "ccn", "members": [{"tunnel": "edge-1", "priority": 200},)"
                  R"( {"tunnel": "edge-2", "priority": 100}]})");
    ASSERT_EQ(g.status, 201) << g.body;
    EXPECT_NE(g.body.find("\"active\":[\"edge-1\"]"), std::string::npos) << g.body;
    EXPECT_EQ(
        call("POST", "/v1/groups", R"({"name": "bad", "members": [{"tunnel": "nope"}]})").status,
        400);
    EXPECT_EQ(call("POST", "/v1/groups", R"({"name": "edge-2", "members": [{"tunnel": "edge-1"}]})")
                  .status,
              409); // a tunnel's name
    ASSERT_EQ(call("POST", "/v1/routes", "add 10.80.0.0/16 group ccn\n", "text/plain").status, 200);
    auto rt = call("GET", "/v1/routes?prefix=10.80.0.0/16&match=exact");
    EXPECT_NE(rt.body.find("\"group\":\"ccn\""), std::string::npos) << rt.body;
    EXPECT_EQ(call("DELETE", "/v1/groups/ccn").status, 409);
    EXPECT_EQ(call("DELETE", "/v1/tunnels/edge-2").status, 409); // a member
    auto list = call("GET", "/v1/groups");
    EXPECT_NE(list.body.find("\"state\":\"up\""), std::string::npos) << list.body;
    ASSERT_EQ(call("DELETE", "/v1/routes?prefix=10.80.0.0/16").status, 200);
    EXPECT_EQ(call("DELETE", "/v1/groups/ccn").status, 200);
    EXPECT_EQ(call("GET", "/v1/groups/ccn").status, 404);
}

TEST_F(ApiTest, TunnelHealthAndBfdAreShownAndBfdTakesTheTunnelOutOfService) {
    std::string t = tunnel_json("edge-2", 2);
    t.insert(t.size() - 1, R"(, "bfd": {"local": "169.254.1.1", "remote": "169.254.1.2",)"
                           R"( "transmit_interval_ms": 100, "receive_interval_ms": 100})");
    auto r = call("POST", "/v1/tunnels", t);
    ASSERT_EQ(r.status, 201) << r.body;
    ASSERT_EQ(
        call(
            "POST", "/v1/groups",
            R"({"name": "ccn", "hold_down_ms": 1500, "members": [{"tunnel": "edge-2", "priority": 200},)"
            R"( {"tunnel": "edge-1", "priority": 100}]})")
            .status,
        201);
    auto h = call("GET", "/v1/tunnels/edge-2/health");
    ASSERT_EQ(h.status, 200);
    EXPECT_NE(h.body.find(R"("state":"down","down_reasons":["bfd"])"), std::string::npos) << h.body;
    EXPECT_NE(h.body.find(R"("local":"169.254.1.1","remote":"169.254.1.2")"), std::string::npos)
        << h.body;
    EXPECT_NE(h.body.find(R"("transmit_interval_ms":100)"), std::string::npos) << h.body;
    auto one = call("GET", "/v1/tunnels/edge-1");
    EXPECT_NE(one.body.find(R"("health":{"state":"up","down_reasons":[])"), std::string::npos)
        << one.body;
    EXPECT_EQ(one.body.find(R"("bfd")"), std::string::npos) << one.body; // none configured
    // The master has no BFD session up: the backup carries the traffic.
    auto g = call("GET", "/v1/groups/ccn");
    EXPECT_NE(g.body.find(R"("active":["edge-1"],"hold_down_ms":1500)"), std::string::npos)
        << g.body;
    EXPECT_NE(g.body.find(R"({"tunnel":"edge-2","priority":200,"weight":1,"state":"down"})"),
              std::string::npos)
        << g.body;
    EXPECT_EQ(call("GET", "/v1/tunnels/nope/health").status, 404);
    EXPECT_EQ(call("POST", "/v1/tunnels/edge-1/health").status, 405);
    auto m = call("GET", "/metrics");
    EXPECT_NE(m.body.find(R"(sagd_tunnel_up{tunnel="edge-2"} 0)"), std::string::npos);
    EXPECT_NE(m.body.find(R"(sagd_bfd_state{tunnel="edge-2"})"), std::string::npos);
    // Bad BFD settings are refused and change nothing.
    std::string bad = tunnel_json("edge-3", 3);
    bad.insert(bad.size() - 1, R"(, "bfd": {"local": "169.254.1.1", "remote": "169.254.1.1"}})");
    bad.pop_back();
    auto b = call("POST", "/v1/tunnels", bad);
    EXPECT_EQ(b.status, 400) << b.body;
    EXPECT_NE(b.body.find("bfd.remote 169.254.1.1 is the local address"), std::string::npos)
        << b.body;
    EXPECT_EQ(call("GET", "/v1/tunnels/edge-3").status, 404);
}

TEST(RouteBatch, ParsesAndRefusesLineByLine) {
    dp::change_set cs;
    EXPECT_FALSE(parse_route_batch("# comment\n\nadd 10.0.0.0/8 tunnel a\r\ndel 10.1.0.0/16\n"
                                   "add 10.2.0.0/16 via 10.1.0.254 distance 200",
                                   cs));
    ASSERT_EQ(cs.put_routes.size(), 2u);
    EXPECT_EQ(cs.put_routes[1].distance, 200);
    EXPECT_EQ(cs.delete_routes.size(), 1u);
    for (const char* bad :
         {"add 10.0.0.0/8", "add 10.0.0.1/8 tunnel a", "add 10.0.0.0/8 tunnel a distance 0",
          "add 10.0.0.0/8 via 10.1.0.256", "frob 10.0.0.0/8", "del", "del 10.0.0.0/8 x",
          "add 10.0.0.0/8 tunnel a\ndel 10.0.0.0/8"}) {
        dp::change_set x;
        EXPECT_TRUE(parse_route_batch(bad, x)) << bad;
    }
}

// ---- The FPM server on the same gateway: zebra's stream over a real TCP connection.

// One FPM message (v1, netlink) holding one IPv4 RTM_NEWROUTE/RTM_DELROUTE for table 254.
std::string fpm_route(bool add, uint32_t dst, uint8_t len, uint32_t gateway) {
    std::string nl;
    auto put16 = [](std::string& s, uint16_t v) { s.append(reinterpret_cast<char*>(&v), 2); };
    auto put32 = [](std::string& s, uint32_t v) { s.append(reinterpret_cast<char*>(&v), 4); };
    auto attr = [&](uint16_t type, uint32_t host_order_addr_or_value, bool net_order) {
        put16(nl, 8);
        put16(nl, type);
        uint32_t v = net_order ? htonl(host_order_addr_or_value) : host_order_addr_or_value;
        put32(nl, v);
    };
    // nlmsghdr (16) + rtmsg (12)
    put32(nl, 0);                   // length, patched below
    put16(nl, add ? 24 : 25);       // RTM_NEWROUTE / RTM_DELROUTE
    put16(nl, 0x1 | 0x400 | 0x100); // NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE
    put32(nl, 0);
    put32(nl, 0);
    const uint8_t rtm[12] = {2 /*AF_INET*/, len, 0, 0, 254, 186 /*bgp*/, 0,
                             1 /*unicast*/, 0,   0, 0, 0};
    nl.append(reinterpret_cast<const char*>(rtm), sizeof rtm);
    attr(1 /*RTA_DST*/, dst, true);
    attr(6 /*RTA_PRIORITY*/, 20, false);
    if (add) {
        attr(5 /*RTA_GATEWAY*/, gateway, true);
        attr(4 /*RTA_OIF*/, 2, false);
    }
    uint32_t n = static_cast<uint32_t>(nl.size());
    std::memcpy(nl.data(), &n, 4);
    std::string m;
    m.push_back(1); // version 1
    m.push_back(1); // netlink
    uint16_t total = htons(static_cast<uint16_t>(nl.size() + 4));
    m.append(reinterpret_cast<char*>(&total), 2);
    return m + nl;
}

class FpmServerTest : public ApiTest {
  protected:
    void SetUp() override {
        ApiTest::SetUp();
        fpm_server_options o;
        o.port = 0; // any free port
        o.grace_ms = 1000;
        o.install_batch = 3;
        o.install_delay_ms = 50;
        auto s = fpm_server::create(o, *gw_,
                                    [this](const dp::change_set& cs) { return gw_->apply(cs); });
        ASSERT_TRUE(s.ok()) << s.err().message;
        fpm_ = std::move(s.value());
        connect_zebra();
    }
    void TearDown() override {
        if (fd_ >= 0)
            ::close(fd_);
        fpm_.reset();
        ApiTest::TearDown();
    }
    void connect_zebra() {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(fpm_->port());
        sa.sin_addr.s_addr = htonl(0x7f000001);
        ASSERT_EQ(::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0);
        poll_until([&] { return fpm_->connected(); });
    }
    void send(const std::string& bytes) {
        ASSERT_EQ(::send(fd_, bytes.data(), bytes.size(), 0), static_cast<ssize_t>(bytes.size()));
        ::usleep(20'000); // on the loopback it is readable by now
    }
    template <typename F> void poll_until(F done) {
        for (int i = 0; i < 200 && !done(); ++i) {
            fpm_->poll(now_);
            ::usleep(1000);
        }
    }
    const dp::learned_route4* learned(uint32_t dst, uint8_t len) const {
        return gw_->writer().find_learned({dst, len});
    }

    std::unique_ptr<fpm_server> fpm_;
    int fd_ = -1;
    uint64_t now_ = 1000;
};

constexpr uint32_t lan_router = 0x0a0100fe;  // 10.1.0.254, on lan0
constexpr uint32_t lan_router2 = 0x0a0100fd; // 10.1.0.253

TEST_F(FpmServerTest, InstallsWhenTheStreamPausesOrTheBatchIsFull) {
    const uint64_t changes0 = gw_->changes_applied();
    // Two routes in one read: the stream pauses after them, so the next poll installs both
    // as one change (reading alone installs nothing while zebra may still be sending).
    send(fpm_route(true, 0x0b000000, 24, lan_router) + fpm_route(true, 0x0b000100, 24, lan_router));
    EXPECT_FALSE(fpm_->poll(now_)); // read, not yet installed: the loop may idle meanwhile
    EXPECT_EQ(learned(0x0b000000, 24), nullptr);
    EXPECT_TRUE(fpm_->poll(now_)); // nothing more came: install
    ASSERT_NE(learned(0x0b000000, 24), nullptr);
    ASSERT_NE(learned(0x0b000100, 24), nullptr);
    EXPECT_EQ(gw_->changes_applied(), changes0 + 1);
    EXPECT_EQ(fpm_->installed_count(), 2u);

    // install_batch (3) pending prefixes install at once, without waiting for a pause.
    std::string three;
    for (uint32_t i = 2; i < 5; ++i)
        three += fpm_route(true, 0x0b000000 + (i << 8), 24, lan_router);
    send(three);
    EXPECT_TRUE(fpm_->poll(now_));
    EXPECT_NE(learned(0x0b000400, 24), nullptr);
    EXPECT_EQ(gw_->changes_applied(), changes0 + 2);

    // A delete and a re-add of one prefix in one batch: one decision, the last word wins;
    // re-sending an unchanged route changes nothing.
    send(fpm_route(false, 0x0b000000, 24, 0) + fpm_route(true, 0x0b000000, 24, lan_router2) +
         fpm_route(true, 0x0b000100, 24, lan_router));
    fpm_->poll(now_);
    fpm_->poll(now_);
    ASSERT_NE(learned(0x0b000000, 24), nullptr);
    EXPECT_EQ(learned(0x0b000000, 24)->gateways, std::vector<ipv4_addr>{lan_router2});
    EXPECT_EQ(gw_->changes_applied(), changes0 + 3);
    auto r = call("GET", "/v1/routes?prefix=11.0.0.0/24&match=exact");
    EXPECT_NE(r.body.find("10.1.0.253"), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("learned"), std::string::npos) << r.body;

    // A route whose gateway is on no LAN subnet is counted, not installed.
    send(fpm_route(true, 0x0c000000, 16, 0xc6336401));
    poll_until([&] { return fpm_->counters().unresolved > 0; });
    EXPECT_EQ(learned(0x0c000000, 16), nullptr);
    EXPECT_EQ(fpm_->installed_count(), 5u);
}

TEST_F(FpmServerTest, KeepsRoutesForTheGraceTimeAndSweepsWhatZebraDidNotResend) {
    send(fpm_route(true, 0x0b000000, 24, lan_router) + fpm_route(true, 0x0b000100, 24, lan_router));
    poll_until([&] { return fpm_->installed_count() == 2; });
    ASSERT_EQ(fpm_->installed_count(), 2u);
    ::close(fd_);
    fd_ = -1;
    poll_until([&] { return !fpm_->connected(); });
    ASSERT_FALSE(fpm_->connected());
    EXPECT_EQ(fpm_->installed_count(), 2u); // still forwarding during the grace time
    // zebra comes back and re-sends one of the two.
    connect_zebra();
    send(fpm_route(true, 0x0b000000, 24, lan_router));
    fpm_->poll(now_);
    fpm_->poll(now_);
    EXPECT_EQ(fpm_->installed_count(), 2u);
    now_ += 1000; // the grace time is over
    fpm_->poll(now_);
    EXPECT_NE(learned(0x0b000000, 24), nullptr);
    EXPECT_EQ(learned(0x0b000100, 24), nullptr);
    EXPECT_EQ(fpm_->counters().swept, 1u);
}

TEST_F(FpmServerTest, RoutesReadBeforeABadStreamAreKeptOnlyForTheGraceTime) {
    // Good messages and then a bad FPM header in the same read: the session is dropped; what
    // came before the bad bytes is learned, but as stale as everything else, so a zebra that
    // does not come back within the grace time takes it away.
    send(fpm_route(true, 0x0b000000, 24, lan_router) + std::string("\x07\x01\x00\x08", 4));
    poll_until([&] { return !fpm_->connected(); });
    ASSERT_FALSE(fpm_->connected());
    EXPECT_EQ(fpm_->counters().framing_errors, 1u);
    poll_until([&] { return fpm_->installed_count() == 1; });
    EXPECT_NE(learned(0x0b000000, 24), nullptr); // forwarding during the grace time
    now_ += 1000;
    fpm_->poll(now_);
    fpm_->poll(now_);
    EXPECT_EQ(learned(0x0b000000, 24), nullptr);
    EXPECT_EQ(fpm_->counters().swept, 1u);
}

// The same message for IPv6 (AF_INET6, 16-byte RTA_DST / RTA_GATEWAY).
std::string fpm_route6(bool add, const char* dst, uint8_t len, const char* gateway) {
    std::string nl;
    auto put16 = [](std::string& s, uint16_t v) { s.append(reinterpret_cast<char*>(&v), 2); };
    auto put32 = [](std::string& s, uint32_t v) { s.append(reinterpret_cast<char*>(&v), 4); };
    auto addr = [&](uint16_t type, const char* text) {
        uint8_t a[16];
        EXPECT_EQ(inet_pton(AF_INET6, text, a), 1);
        put16(nl, 20);
        put16(nl, type);
        nl.append(reinterpret_cast<char*>(a), 16);
    };
    put32(nl, 0);
    put16(nl, add ? 24 : 25);
    put16(nl, 0x1 | 0x400 | 0x100);
    put32(nl, 0);
    put32(nl, 0);
    const uint8_t rtm[12] = {10 /*AF_INET6*/, len, 0, 0, 254, 186, 0, 1, 0, 0, 0, 0};
    nl.append(reinterpret_cast<const char*>(rtm), sizeof rtm);
    addr(1 /*RTA_DST*/, dst);
    if (add) {
        addr(5 /*RTA_GATEWAY*/, gateway);
        put16(nl, 8);
        put16(nl, 4 /*RTA_OIF*/);
        put32(nl, 2);
    }
    uint32_t n = static_cast<uint32_t>(nl.size());
    std::memcpy(nl.data(), &n, 4);
    std::string m;
    m.push_back(1);
    m.push_back(1);
    uint16_t total = htons(static_cast<uint16_t>(nl.size() + 4));
    m.append(reinterpret_cast<char*>(&total), 2);
    return m + nl;
}

TEST_F(FpmServerTest, InstallsIpv6RoutesWithTheIpv4Rules) {
    auto learned6 = [&](const char* p, uint8_t len) -> const dp::learned_route6* {
        fwd::prefix6_key k{};
        EXPECT_EQ(inet_pton(AF_INET6, p, k.addr.data()), 1);
        k.len = len;
        auto it = gw_->writer().learned6().find(k);
        return it == gw_->writer().learned6().end() ? nullptr : &it->second;
    };
    // On lan0's 2001:db8:1::/64, link-local (lan0 is the only IPv6 LAN port), and on no LAN.
    send(fpm_route6(true, "fd50:1::", 64, "2001:db8:1::fe") +
         fpm_route6(true, "fd50:2::", 64, "fe80::fe") +
         fpm_route6(true, "fd50:3::", 64, "2001:db8:9::1"));
    poll_until([&] { return learned6("fd50:2::", 64) != nullptr; });
    ASSERT_NE(learned6("fd50:1::", 64), nullptr);
    EXPECT_EQ(learned6("fd50:3::", 64), nullptr);
    EXPECT_EQ(fpm_->counters().unresolved, 1u);
    EXPECT_EQ(fpm_->installed6_count(), 2u);
    auto r = call("GET", "/v1/routes?prefix=fd50::/16&match=longer&origin=learned");
    EXPECT_NE(r.body.find("\"gateway\":\"2001:db8:1::fe\""), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\"gateway\":\"fe80::fe\""), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\"distance\":20"), std::string::npos) << r.body;
    // A static route of the same prefix wins (distance 1 < 20); the learned one stays listed.
    ASSERT_EQ(call("POST", "/v1/routes", "add fd50:1::/64 tunnel edge-1\n", "text/plain").status,
              200);
    auto both = call("GET", "/v1/routes?prefix=fd50:1::/64&match=exact");
    EXPECT_NE(both.body.find("\"origin\":\"static\",\"distance\":1,\"installed\":true"),
              std::string::npos)
        << both.body;
    EXPECT_NE(both.body.find("\"origin\":\"learned\",\"distance\":20,\"installed\":false"),
              std::string::npos)
        << both.body;
    // Withdrawal.
    send(fpm_route6(false, "fd50:2::", 64, nullptr));
    poll_until([&] { return learned6("fd50:2::", 64) == nullptr; });
    EXPECT_EQ(learned6("fd50:2::", 64), nullptr);
    EXPECT_EQ(fpm_->installed6_count(), 1u);
}

TEST_F(ApiTest, Ipv6RoutesAreAddedListedAndDeletedLikeIpv4) {
    // text/plain batch mixing families: all or nothing.
    auto bad = call("POST", "/v1/routes",
                    "add 10.60.0.0/16 tunnel edge-1\nadd 2001:db8:2::/48 tunnel edge-1\n"
                    "add 2001:db8:3::/48 via 2001:db8:7::1\n",
                    "text/plain");
    EXPECT_EQ(bad.status, 400);
    EXPECT_NE(bad.body.find("2001:db8:3::/48"), std::string::npos) << bad.body;
    EXPECT_EQ(gw_->writer().fib6().prefix_count(), 2u); // connected /64 and local /128 only
    EXPECT_FALSE(gw_->writer().fib().installed(ipv4_addr{0x0a3c0000}, 16));
    auto ok = call("POST", "/v1/routes",
                   "add 10.60.0.0/16 tunnel edge-1\nadd 2001:db8:2::/48 tunnel edge-1\n"
                   "add 2001:db8:3::/48 via 2001:db8:1::fe distance 9\n",
                   "text/plain");
    ASSERT_EQ(ok.status, 200) << ok.body;
    EXPECT_NE(ok.body.find("\"added\":3"), std::string::npos) << ok.body;
    // JSON object and list forms; the IPv6 prefix of the file format.
    auto j = call("POST", "/v1/routes", R"({"prefix": "2001:db8:4::/48", "tunnel": "edge-1"})");
    ASSERT_EQ(j.status, 200) << j.body;
    auto host_bits =
        call("POST", "/v1/routes", R"({"prefix": "2001:db8:4::1/48", "tunnel": "edge-1"})");
    EXPECT_EQ(host_bits.status, 400);
    EXPECT_NE(host_bits.body.find("host bits set"), std::string::npos) << host_bits.body;
    auto longer = call("GET", "/v1/routes?prefix=2001:db8::/32&match=longer");
    ASSERT_EQ(longer.status, 200);
    EXPECT_NE(longer.body.find("\"total\":5"), std::string::npos)
        << longer.body; // 1::/64, 1::1/128 too
    EXPECT_NE(longer.body.find("\"prefix\":\"2001:db8:3::/48\""), std::string::npos);
    EXPECT_NE(longer.body.find("\"gateway\":\"2001:db8:1::fe\""), std::string::npos);
    auto best = call("GET", "/v1/routes?prefix=2001:db8:4:5::1/128&match=best");
    EXPECT_NE(best.body.find("\"prefix\":\"2001:db8:4::/48\""), std::string::npos) << best.body;
    auto all = call("GET", "/v1/routes");
    EXPECT_NE(all.body.find("10.60.0.0/16"), std::string::npos);
    EXPECT_NE(all.body.find("2001:db8:4::/48"), std::string::npos);
    auto onprem = call("GET", "/v1/onprem-prefixes");
    EXPECT_NE(onprem.body.find("\"prefix\":\"2001:db8:1::/64\""), std::string::npos) << onprem.body;
    EXPECT_NE(onprem.body.find("\"prefix\":\"2001:db8:3::/48\""), std::string::npos) << onprem.body;
    // Persisted with the running config, and read back by the loader.
    auto cfg = call("GET", "/v1/config");
    EXPECT_NE(cfg.body.find("address6: 2001:db8:1::1/64"), std::string::npos) << cfg.body;
    EXPECT_NE(cfg.body.find("2001:db8:3::/48"), std::string::npos) << cfg.body;
    // Deletes: query, JSON form, batch.
    EXPECT_EQ(call("DELETE", "/v1/routes?prefix=2001:db8:4::/48").status, 200);
    EXPECT_EQ(call("DELETE", "/v1/routes?prefix=2001:db8:4::/48").status, 404);
    EXPECT_EQ(call("DELETE", "/v1/routes?prefix=2001:db8:4::/129").status, 400);
    ASSERT_EQ(call("POST", "/v1/routes", R"({"delete": ["2001:db8:3::/48"]})").status, 200);
    ASSERT_EQ(call("POST", "/v1/routes", "del 2001:db8:2::/48\n", "text/plain").status, 200);
    EXPECT_EQ(gw_->writer().static_route6_count(), 0u);
    auto status = call("GET", "/v1/status");
    EXPECT_NE(status.body.find("\"ipv6\":2"), std::string::npos) << status.body;
    auto port = call("GET", "/v1/ports/lan0");
    EXPECT_NE(port.body.find("\"address6\":\"2001:db8:1::1/64\""), std::string::npos) << port.body;
    EXPECT_NE(port.body.find("\"link_local\":\"fe80::"), std::string::npos) << port.body;
    auto metrics = call("GET", "/metrics");
    EXPECT_NE(metrics.body.find("sagd_fib6_routes{kind=\"installed\"} 2"), std::string::npos);
}

TEST(RouteBatch, Ipv6LinesParseAndRefuse) {
    dp::change_set cs;
    EXPECT_FALSE(parse_route_batch("add 2001:db8::/32 tunnel a\ndel 2001:db9::/32\n"
                                   "add ::/0 via fe80::1 distance 30\nadd 10.0.0.0/8 tunnel a",
                                   cs));
    ASSERT_EQ(cs.put_routes6.size(), 2u);
    EXPECT_EQ(cs.put_routes6[1].distance, 30);
    EXPECT_EQ(cs.delete_routes6.size(), 1u);
    EXPECT_EQ(cs.put_routes.size(), 1u);
    for (const char* bad : {"add 2001:db8::1/32 tunnel a", "add 2001:db8::/129 tunnel a",
                            "add 2001:db8::/32 via 2001:zz::1", "add 2001:db8::/32",
                            "add 2001:db8::/32 tunnel a\ndel 2001:db8::/32"}) {
        dp::change_set x;
        EXPECT_TRUE(parse_route_batch(bad, x)) << bad;
    }
}

} // namespace
} // namespace sagd::shim
