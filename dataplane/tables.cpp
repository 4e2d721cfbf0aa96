#include "dataplane/tables.hpp"

#include <rte_ethdev.h>

#include "crypto/esp.hpp"

namespace sagd::dp {

namespace {

std::string tunnel_label(const tunnel_config& t) {
    return "tunnel '" + t.name + "'";
}

bool in_subnet(ipv4_addr a, ipv4_addr net, uint8_t len) {
    return (a & prefix_mask(len)) == (net & prefix_mask(len));
}

crypto::cipher_kind to_cipher(aead_cipher c) {
    return c == aead_cipher::aes_gcm_128 ? crypto::cipher_kind::aes_gcm_128
                                         : crypto::cipher_kind::aes_gcm_256;
}

} // namespace

result<std::unique_ptr<tables>> build_tables(const config& cfg, std::vector<port_runtime> ports,
                                             crypto::engine_kind engine) {
    auto t = std::make_unique<tables>();
    t->workers = cfg.workers;
    t->ports = std::move(ports);
    t->port_index_by_id.fill(0);
    for (size_t i = 0; i < t->ports.size(); ++i)
        t->port_index_by_id[t->ports[i].port_id] = static_cast<uint8_t>(i);
    auto port_index = [&](const std::string& name) -> int {
        for (size_t i = 0; i < t->ports.size(); ++i)
            if (t->ports[i].name == name)
                return static_cast<int>(i);
        return -1;
    };
    for (const auto& p : t->ports)
        if (p.role == port_role::lan) {
            t->icmp_source = p.address;
            break;
        }

    fwd::fib4_config fc;
    fc.max_routes = std::max<uint32_t>(1024, static_cast<uint32_t>(cfg.routes.size() * 2 + 64));
    fc.tbl8_groups = std::max<uint32_t>(256, static_cast<uint32_t>(cfg.routes.size() + 64));
    auto fib = fwd::fib4::create(fc);
    if (!fib)
        return error{"fib: " + fib.err().message};
    t->fib = std::move(fib.value());

    // Tunnels and their SAs.
    t->sa_map =
        std::make_unique<crypto::inbound_sa_map>(std::max<size_t>(64, cfg.tunnels.size() * 2 + 16));
    for (size_t i = 0; i < cfg.tunnels.size(); ++i) {
        const auto& tc = cfg.tunnels[i];
        int pi = port_index(tc.port);
        if (pi < 0 || t->ports[pi].role != port_role::wan)
            return error{tunnel_label(tc) + ": port '" + tc.port + "' is not a WAN port"};
        const port_runtime& wan = t->ports[pi];
        tunnel_runtime tr;
        tr.name = tc.name;
        tr.port_index = static_cast<uint16_t>(pi);
        tr.local = tc.local.value_or(wan.address);
        tr.peer = tc.peer;
        tr.udp = tc.encap == tunnel_encap::esp_udp;
        tr.owner = static_cast<unsigned>(i % cfg.workers);
        tr.overhead = crypto::esp_encap_overhead_max - (tr.udp ? 0 : 8);
        if (in_subnet(tc.peer, wan.address, wan.prefix_len))
            tr.next_hop = tc.peer;
        else if (cfg.ports[pi].gateway)
            tr.next_hop = *cfg.ports[pi].gateway;
        else
            return error{tunnel_label(tc) + ": peer is not on port '" + wan.name +
                         "''s subnet and the port has no gateway"};

        crypto::sa_params sp;
        sp.engine = engine;
        sp.esn = tc.esn;
        sp.replay_window = tc.replay_window;
        sp.local_addr = tr.local;
        sp.peer_addr = tc.peer;
        if (tr.udp) {
            sp.local_udp_port = tc.udp_src_port;
            sp.peer_udp_port = tc.udp_dst_port;
            t->natt_ports.set(tc.udp_src_port);
        }
        sp.spi = tc.outbound_sa.spi;
        sp.cipher = to_cipher(tc.outbound_sa.cipher);
        sp.keymat = tc.outbound_sa.keymat;
        auto out = crypto::create_outbound_sa(sp);
        if (!out)
            return error{tunnel_label(tc) + ": outbound_sa: " + out.error};
        tr.outbound = std::move(out.sa);
        for (size_t k = 0; k < tc.inbound_sas.size(); ++k) {
            const auto& ic = tc.inbound_sas[k];
            sp.spi = ic.spi;
            sp.cipher = to_cipher(ic.cipher);
            sp.keymat = ic.keymat;
            auto in = crypto::create_inbound_sa(sp);
            if (!in)
                return error{tunnel_label(tc) + ": inbound_sas[" + std::to_string(k) +
                             "]: " + in.error};
            in.sa->user = static_cast<uint32_t>(i);
            tr.inbound.push_back(std::move(in.sa));
        }
        t->tunnels.push_back(std::move(tr));
    }
    for (auto& tr : t->tunnels)
        for (auto& sa : tr.inbound)
            if (auto e = t->sa_map->insert(sa.get()); !e.empty())
                return error{"tunnel '" + tr.name + "': " + e};

    // Routes: connected subnets of every port, the gateway's own addresses, static routes.
    auto add_route = [&](uint32_t prefix, uint8_t len, fwd::route_origin origin,
                         const fwd::next_hop& nh, uint8_t distance) -> status {
        auto id = t->next_hops.acquire(nh);
        if (!id)
            return error{id.err().message};
        auto st = t->fib->add(prefix, len, origin, id.value(), distance);
        if (!st)
            return error{st.err().message};
        return ok();
    };
    for (size_t i = 0; i < t->ports.size(); ++i) {
        const auto& p = t->ports[i];
        fwd::next_hop conn{fwd::next_hop_kind::connected, static_cast<uint16_t>(i), 0, 0};
        if (auto st = add_route(p.address & prefix_mask(p.prefix_len), p.prefix_len,
                                fwd::route_origin::connected, conn, 0);
            !st)
            return error{"port '" + p.name + "': connected route: " + st.err().message};
        fwd::next_hop local{fwd::next_hop_kind::local, static_cast<uint16_t>(i), 0, 0};
        if (auto st = add_route(p.address, 32, fwd::route_origin::connected, local, 0); !st)
            return error{"port '" + p.name + "': local route: " + st.err().message};
    }
    for (size_t i = 0; i < cfg.routes.size(); ++i) {
        const auto& r = cfg.routes[i];
        fwd::next_hop nh;
        if (r.via == route_via::tunnel) {
            size_t ti = 0;
            while (ti < cfg.tunnels.size() && cfg.tunnels[ti].name != r.tunnel)
                ++ti;
            if (ti == cfg.tunnels.size())
                return error{"routes[" + std::to_string(i) + "]: tunnel '" + r.tunnel +
                             "' does not exist"};
            nh = {fwd::next_hop_kind::tunnel, 0, 0, static_cast<uint32_t>(ti)};
        } else {
            int pi = -1;
            for (size_t k = 0; k < t->ports.size(); ++k)
                if (t->ports[k].role == port_role::lan &&
                    in_subnet(r.gateway, t->ports[k].address, t->ports[k].prefix_len))
                    pi = static_cast<int>(k);
            if (pi < 0)
                return error{"routes[" + std::to_string(i) +
                             "]: gateway is not on a LAN port's connected subnet"};
            nh = {fwd::next_hop_kind::gateway, static_cast<uint16_t>(pi), r.gateway, 0};
        }
        if (auto st = add_route(r.prefix.addr, r.prefix.len, fwd::route_origin::static_route, nh,
                                r.distance);
            !st)
            return error{"routes[" + std::to_string(i) + "]: " + st.err().message};
    }
    return t;
}

} // namespace sagd::dp
