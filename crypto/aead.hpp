// AEAD engines for ESP (RFC 4106 AES-GCM). The engine is chosen once when a key is created and
// stored as a pointer to a small function table, so the per-packet call is an indirect call
// through a table that stays in cache, never a virtual call or a switch per packet.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace sagd::crypto {

enum class cipher_kind : uint8_t { aes_gcm_128, aes_gcm_256 };
enum class engine_kind : uint8_t { ipsec_mb, openssl };

inline constexpr size_t gcm_salt_len = 4; // RFC 4106 4: salt is the last 4 bytes of keymat
inline constexpr size_t gcm_iv_len = 8;   // RFC 4106 3.1: explicit IV carried in each packet
inline constexpr size_t gcm_icv_len = 16; // only the 16-byte ICV is supported

// Keymat length for a cipher: AES key || 4-byte salt (RFC 4106 8.1): 20 or 36 bytes.
constexpr size_t keymat_len(cipher_kind c) noexcept {
    return (c == cipher_kind::aes_gcm_128 ? 16 : 32) + gcm_salt_len;
}

const char* cipher_name(cipher_kind c) noexcept;
const char* engine_name(engine_kind e) noexcept;

class aead_key;

// One engine: seal/open take the 8-byte explicit IV; the 12-byte nonce is salt || IV.
// `in` and `out` may be equal (in place). open() returns false when the ICV does not match
// (and then the content of `out` is unspecified).
struct aead_ops {
    bool (*seal)(aead_key&, const uint8_t* iv, const uint8_t* aad, uint32_t aad_len,
                 const uint8_t* in, uint8_t* out, uint32_t len, uint8_t* icv) noexcept;
    bool (*open)(aead_key&, const uint8_t* iv, const uint8_t* aad, uint32_t aad_len,
                 const uint8_t* in, uint8_t* out, uint32_t len, const uint8_t* icv) noexcept;
    void (*destroy)(void* state) noexcept; // wipes key material, then frees
};

// A per-SA key: engine table + engine state (precomputed key schedule or EVP contexts).
// Move-only; key material is wiped when it is destroyed. Not thread-safe: one writer per SA.
class aead_key {
  public:
    aead_key() noexcept = default;
    aead_key(aead_key&& o) noexcept;
    aead_key& operator=(aead_key&& o) noexcept;
    aead_key(const aead_key&) = delete;
    aead_key& operator=(const aead_key&) = delete;
    ~aead_key();

    // Control path. Returns an empty key and sets `error` on bad input (never echoes the key).
    static aead_key create(cipher_kind c, engine_kind e, std::span<const uint8_t> keymat,
                           std::string& error);

    bool valid() const noexcept { return ops_ != nullptr; }
    cipher_kind cipher() const noexcept { return cipher_; }
    engine_kind engine() const noexcept { return engine_; }
    const uint8_t* salt() const noexcept { return salt_; }
    void* state() const noexcept { return state_; }

    bool seal(const uint8_t* iv, const uint8_t* aad, uint32_t aad_len, const uint8_t* in,
              uint8_t* out, uint32_t len, uint8_t* icv) noexcept {
        return ops_->seal(*this, iv, aad, aad_len, in, out, len, icv);
    }
    bool open(const uint8_t* iv, const uint8_t* aad, uint32_t aad_len, const uint8_t* in,
              uint8_t* out, uint32_t len, const uint8_t* icv) noexcept {
        return ops_->open(*this, iv, aad, aad_len, in, out, len, icv);
    }

  private:
    void reset() noexcept;
    const aead_ops* ops_ = nullptr;
    void* state_ = nullptr;
    uint8_t salt_[gcm_salt_len] = {};
    cipher_kind cipher_ = cipher_kind::aes_gcm_128;
    engine_kind engine_ = engine_kind::ipsec_mb;
};
static_assert(sizeof(aead_key) <= 24, "aead_key is embedded in the hot SA line");

// ipsec-mb needs one IMB_MGR per thread. Workers call this once at start-up so the first
// packet does not pay for the allocation; the engine calls it lazily otherwise.
// Returns false if the manager cannot be created (the engine then fails every packet).
bool worker_thread_init() noexcept;

} // namespace sagd::crypto
