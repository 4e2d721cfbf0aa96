// Test hook: encapsulate with a given explicit IV instead of the sequence number, so the
// encap path can be checked byte for byte against published vectors whose IV != seq.
// Not for production use: an IV must never repeat under one key.
#pragma once

#include "crypto/esp.hpp"

namespace sagd::crypto::testing {

esp_status esp_encap_with_iv(outbound_sa& sa, rte_mbuf* m, const uint8_t* iv) noexcept;

} // namespace sagd::crypto::testing
