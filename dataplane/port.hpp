// Bringing DPDK ports up from port_config: find the device, configure queues (RSS when the port
// has several rx queues), start it. Control path only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <rte_ether.h>
#include <rte_mempool.h>

#include "dataplane/config.hpp"
#include "dataplane/counters.hpp"
#include "dataplane/result.hpp"

namespace sagd::dp {

struct port_runtime {
    std::string name;
    uint16_t port_id = 0; // DPDK ethdev id
    port_role role = port_role::lan;
    rte_ether_addr mac{};
    ipv4_addr address = 0; // host order
    uint8_t prefix_len = 24;
    uint16_t mtu = 1500;
    uint16_t n_rx_queues = 1;
    uint16_t n_tx_queues = 1;
    bool tx_shared = false; // fewer tx queues than workers: workers take a per-queue lock
    // IPv6: enabled on LAN ports with an address6. link_local is the EUI-64 fe80:: address.
    bool ipv6 = false;
    ipv6_addr address6{};
    uint8_t prefix6_len = 64;
    ipv6_addr link_local{};
};

// Is this device string a PCI address ("0000:00:04.0" or "00:04.0") rather than vdev args?
bool is_pci_device(const std::string& device);

// The EAL device name a device string creates ("net_af_packet0,iface=x" -> "net_af_packet0").
std::string device_name(const std::string& device);

// Configures and starts every port: rx queues = min(workers, device max), tx queues likewise.
result<std::vector<port_runtime>> start_ports(const std::vector<port_config>& ports,
                                              unsigned workers, rte_mempool* pool);

void stop_ports(const std::vector<port_runtime>& ports);

} // namespace sagd::dp
