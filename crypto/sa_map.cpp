#include "crypto/sa_map.hpp"

#include <rte_prefetch.h>

#include <algorithm>
#include <bit>
#include <cstdio>

namespace sagd::crypto {

inbound_sa_map::inbound_sa_map(size_t max_sas) : max_sas_(max_sas) {
    const size_t cap = std::bit_ceil(std::max<size_t>(16, max_sas * 2));
    slots_ = std::make_unique<slot[]>(cap); // value-initialised: all empty
    mask_ = cap - 1;
    shift_ = 64 - static_cast<unsigned>(std::countr_zero(cap));
}

std::string inbound_sa_map::insert(inbound_sa* sa) {
    char spi[16];
    if (sa == nullptr)
        return "inbound SA map: null SA";
    std::snprintf(spi, sizeof spi, "0x%x", sa->spi);
    if (sa->spi == 0)
        return "inbound SA map: SPI 0 is reserved (RFC 4303 2.1)";
    if (size_ >= max_sas_)
        return std::string("inbound SA map: cannot add SPI ") + spi + ", table is full (" +
               std::to_string(max_sas_) + " SAs)";
    size_t i = slot_of(sa->spi);
    for (; slots_[i].spi != 0; i = (i + 1) & mask_) {
        if (slots_[i].spi == sa->spi)
            return std::string("inbound SA map: SPI ") + spi + " is already used";
    }
    slots_[i] = slot{sa->spi, sa};
    ++size_;
    return {};
}

void inbound_sa_map::find_bulk(const uint32_t* spis, size_t n, inbound_sa** out) const noexcept {
    for (size_t i = 0; i < n; ++i)
        rte_prefetch0(&slots_[slot_of(spis[i])]);
    for (size_t i = 0; i < n; ++i)
        out[i] = find(spis[i]);
}

} // namespace sagd::crypto
