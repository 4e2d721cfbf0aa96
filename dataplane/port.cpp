#include "dataplane/port.hpp"

#include "forwarding/packet6.hpp"

#include <algorithm>
#include <regex>

#include <rte_ethdev.h>

namespace sagd::dp {

namespace {

constexpr uint16_t rx_ring_size = 1024;
constexpr uint16_t tx_ring_size = 1024;

std::string port_label(const port_config& p) {
    return "port '" + p.name + "'";
}

result<port_runtime> start_port(const port_config& cfg, unsigned workers, rte_mempool* pool) {
    port_runtime rt;
    rt.name = cfg.name;
    rt.role = cfg.role;
    rt.address = cfg.address;
    rt.prefix_len = cfg.prefix_len;
    rt.mtu = cfg.mtu;

    std::string dev = device_name(cfg.device);
    if (rte_eth_dev_get_port_by_name(dev.c_str(), &rt.port_id) != 0)
        return error{port_label(cfg) + ": device '" + cfg.device +
                     "' not found (is it bound to a DPDK driver / are the vdev args right?)"};

    rte_eth_dev_info info{};
    if (int rc = rte_eth_dev_info_get(rt.port_id, &info); rc != 0)
        return error{port_label(cfg) + ": cannot read device info: " + rte_strerror(-rc)};

    rt.n_rx_queues = static_cast<uint16_t>(std::min<unsigned>(workers, info.max_rx_queues));
    rt.n_tx_queues = static_cast<uint16_t>(std::min<unsigned>(workers, info.max_tx_queues));
    if (rt.n_rx_queues == 0 || rt.n_tx_queues == 0)
        return error{port_label(cfg) + ": device has no rx or tx queue"};
    rt.tx_shared = rt.n_tx_queues < workers;

    rte_eth_conf conf{};
    if (rt.n_rx_queues > 1) {
        conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
        conf.rx_adv_conf.rss_conf.rss_hf =
            (RTE_ETH_RSS_IP | RTE_ETH_RSS_UDP | RTE_ETH_RSS_TCP) & info.flow_type_rss_offloads;
        if (conf.rx_adv_conf.rss_conf.rss_hf == 0)
            conf.rxmode.mq_mode = RTE_ETH_MQ_RX_NONE;
    }
    if (int rc = rte_eth_dev_configure(rt.port_id, rt.n_rx_queues, rt.n_tx_queues, &conf); rc != 0)
        return error{port_label(cfg) + ": configure failed: " + rte_strerror(-rc)};

    uint16_t nb_rxd = rx_ring_size, nb_txd = tx_ring_size;
    rte_eth_dev_adjust_nb_rx_tx_desc(rt.port_id, &nb_rxd, &nb_txd);
    int socket = rte_eth_dev_socket_id(rt.port_id);
    unsigned sock = socket < 0 ? 0u : static_cast<unsigned>(socket);
    for (uint16_t q = 0; q < rt.n_rx_queues; ++q)
        if (int rc = rte_eth_rx_queue_setup(rt.port_id, q, nb_rxd, sock, nullptr, pool); rc != 0)
            return error{port_label(cfg) + ": rx queue " + std::to_string(q) +
                         " setup failed: " + rte_strerror(-rc)};
    for (uint16_t q = 0; q < rt.n_tx_queues; ++q)
        if (int rc = rte_eth_tx_queue_setup(rt.port_id, q, nb_txd, sock, nullptr); rc != 0)
            return error{port_label(cfg) + ": tx queue " + std::to_string(q) +
                         " setup failed: " + rte_strerror(-rc)};

    // MTU: best effort; virtual devices often refuse, and the config MTU still governs the
    // gateway's own egress checks.
    rte_eth_dev_set_mtu(rt.port_id, cfg.mtu);

    if (int rc = rte_eth_dev_start(rt.port_id); rc != 0)
        return error{port_label(cfg) + ": start failed: " + rte_strerror(-rc)};
    // Neighbours address us by our MAC; af_packet/tap deliver everything anyway. Promiscuous
    // mode is not needed: the worker drops frames not addressed to us.
    rte_eth_macaddr_get(rt.port_id, &rt.mac);
    if (cfg.address6) {
        rt.ipv6 = true;
        rt.address6 = *cfg.address6;
        rt.prefix6_len = cfg.prefix6_len;
        fwd::mac_bytes mac;
        std::copy(std::begin(rt.mac.addr_bytes), std::end(rt.mac.addr_bytes), mac.begin());
        rt.link_local = fwd::link_local_from_mac(mac);
        // Neighbor Discovery arrives on solicited-node groups (33:33:ff:..): best effort, as
        // virtual devices deliver every frame anyway.
        (void)rte_eth_allmulticast_enable(rt.port_id);
    }
    return rt;
}

} // namespace

bool is_pci_device(const std::string& device) {
    static const std::regex pci(R"(^([0-9a-fA-F]{4}:)?[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7].*$)");
    return std::regex_match(device, pci);
}

std::string device_name(const std::string& device) {
    auto comma = device.find(',');
    return comma == std::string::npos ? device : device.substr(0, comma);
}

result<std::vector<port_runtime>> start_ports(const std::vector<port_config>& ports,
                                              unsigned workers, rte_mempool* pool) {
    if (ports.size() > max_ports)
        return error{"ports: at most " + std::to_string(max_ports) + " ports"};
    std::vector<port_runtime> out;
    for (const auto& p : ports) {
        auto rt = start_port(p, workers, pool);
        if (!rt) {
            stop_ports(out);
            return rt.err();
        }
        out.push_back(std::move(rt.value()));
    }
    return out;
}

void stop_ports(const std::vector<port_runtime>& ports) {
    for (const auto& p : ports) {
        rte_eth_dev_stop(p.port_id);
        rte_eth_dev_close(p.port_id);
    }
}

} // namespace sagd::dp
