#include "crypto/sa.hpp"

#include <cstdio>

namespace sagd::crypto {

namespace {

std::string spi_text(uint32_t spi) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "0x%x", spi);
    return std::string("SA SPI ") + buf + ": ";
}

// Shared checks; returns an empty string when the parameters are acceptable.
std::string validate(const sa_params& p, bool inbound) {
    if (p.spi < 256)
        return spi_text(p.spi) + "SPI values 0-255 are reserved (RFC 4303 2.1)";
    if (p.keymat.size() != keymat_len(p.cipher))
        return spi_text(p.spi) + "keymat for " + cipher_name(p.cipher) + " must be " +
               std::to_string(keymat_len(p.cipher)) +
               " bytes (key || 4-byte salt, RFC 4106 8.1), got " + std::to_string(p.keymat.size());
    if (inbound && p.replay_window != 0 &&
        (p.replay_window < replay_window::min_size || p.replay_window > replay_window::max_size))
        return spi_text(p.spi) + "replay window " + std::to_string(p.replay_window) +
               " is out of range: use 0 (disabled) or " + std::to_string(replay_window::min_size) +
               ".." + std::to_string(replay_window::max_size);
    if (!inbound && (p.local_addr == 0 || p.peer_addr == 0))
        return spi_text(p.spi) + "outbound SA needs both outer addresses (local and peer)";
    if (!inbound && p.local_udp_port != 0 && p.peer_udp_port == 0)
        return spi_text(p.spi) + "UDP encapsulation needs a peer UDP port";
    return {};
}

std::unique_ptr<const sa_info> make_info(const sa_params& p) {
    return std::make_unique<const sa_info>(sa_info{p.spi, p.cipher, p.engine, p.esn,
                                                   p.replay_window, p.local_addr, p.peer_addr,
                                                   p.local_udp_port, p.peer_udp_port});
}

// What both directions share: validate the parameters, then build the engine's key.
aead_key checked_key(const sa_params& p, bool inbound, std::string& error) {
    error = validate(p, inbound);
    if (!error.empty())
        return {};
    std::string err;
    aead_key key = aead_key::create(p.cipher, p.engine, p.keymat, err);
    if (!key.valid())
        error = spi_text(p.spi) + err;
    return key;
}

} // namespace

sa_result<outbound_sa> create_outbound_sa(const sa_params& p) {
    sa_result<outbound_sa> r;
    aead_key key = checked_key(p, false, r.error);
    if (!r.error.empty())
        return r;
    auto sa = std::make_unique<outbound_sa>();
    sa->key = std::move(key);
    sa->seq = 0;
    // RFC 4303 3.3.3: the sequence number must not cycle; stop at the last value.
    sa->seq_max = p.esn ? UINT64_MAX : UINT32_MAX;
    sa->spi = p.spi;
    sa->outer_src = rte_cpu_to_be_32(p.local_addr);
    sa->outer_dst = rte_cpu_to_be_32(p.peer_addr);
    sa->udp = p.local_udp_port != 0;
    sa->udp_src = rte_cpu_to_be_16(p.local_udp_port);
    sa->udp_dst = rte_cpu_to_be_16(p.peer_udp_port);
    sa->esn = p.esn;
    constexpr uint32_t ttl_proto_esp = 64u << 8 | 50u, ttl_proto_udp = 64u << 8 | 17u;
    sa->ip_csum_base = (sa->udp ? ttl_proto_udp : ttl_proto_esp) + (p.local_addr >> 16) +
                       (p.local_addr & 0xffff) + (p.peer_addr >> 16) + (p.peer_addr & 0xffff);
    sa->info = make_info(p);
    r.sa = std::move(sa);
    return r;
}

sa_result<inbound_sa> create_inbound_sa(const sa_params& p) {
    sa_result<inbound_sa> r;
    aead_key key = checked_key(p, true, r.error);
    if (!r.error.empty())
        return r;
    auto sa = std::make_unique<inbound_sa>();
    sa->key = std::move(key);
    sa->spi = p.spi;
    sa->expect_src = rte_cpu_to_be_32(p.peer_addr);
    sa->expect_dst = rte_cpu_to_be_32(p.local_addr);
    sa->udp = p.local_udp_port != 0;
    sa->udp_port = p.local_udp_port;
    sa->esn = p.esn;
    sa->replay = replay_window(p.replay_window, p.esn);
    sa->info = make_info(p);
    r.sa = std::move(sa);
    return r;
}

} // namespace sagd::crypto
