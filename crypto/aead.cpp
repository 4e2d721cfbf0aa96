// AEAD engines: Intel ipsec-mb (direct synchronous calls, as VPP does) and OpenSSL EVP.
#include "crypto/aead.hpp"

#include <intel-ipsec-mb.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <cstdlib>
#include <cstring>
#include <utility>

namespace sagd::crypto {

const char* cipher_name(cipher_kind c) noexcept {
    return c == cipher_kind::aes_gcm_128 ? "aes-gcm-128" : "aes-gcm-256";
}
const char* engine_name(engine_kind e) noexcept {
    return e == engine_kind::ipsec_mb ? "ipsec-mb" : "openssl";
}

namespace {

// ---- per-thread ipsec-mb manager -------------------------------------------------------------

// The plain pointer is what the fast path reads (no TLS guard); the holder frees it at exit.
thread_local IMB_MGR* tls_mgr = nullptr;

struct mgr_holder {
    IMB_MGR* mgr = nullptr;
    ~mgr_holder() {
        if (mgr != nullptr)
            free_mb_mgr(mgr);
    }
};

IMB_MGR* create_thread_mgr() noexcept {
    static thread_local mgr_holder holder;
    if (holder.mgr != nullptr)
        return holder.mgr;
    IMB_MGR* m = alloc_mb_mgr(0);
    if (m == nullptr)
        return nullptr;
    init_mb_mgr_auto(m, nullptr);
    if (imb_get_errno(m) != 0) {
        free_mb_mgr(m);
        return nullptr;
    }
    holder.mgr = m;
    tls_mgr = m;
    return m;
}

inline IMB_MGR* thread_mgr() noexcept {
    IMB_MGR* m = tls_mgr;
    if (m == nullptr) [[unlikely]]
        m = create_thread_mgr();
    return m;
}

inline void make_nonce(const aead_key& k, const uint8_t* iv, uint8_t* nonce) noexcept {
    // RFC 4106 4: nonce = salt || explicit IV
    std::memcpy(nonce, k.salt(), gcm_salt_len);
    std::memcpy(nonce + gcm_salt_len, iv, gcm_iv_len);
}

// Constant-time tag comparison: an early exit would leak how many tag bytes matched.
inline bool tag_equal(const uint8_t* a, const uint8_t* b) noexcept {
    uint8_t diff = 0;
    for (size_t i = 0; i < gcm_icv_len; ++i)
        diff |= static_cast<uint8_t>(a[i] ^ b[i]);
    return diff == 0;
}

template <bool aes256>
bool imb_seal(aead_key& k, const uint8_t* iv, const uint8_t* aad, uint32_t aad_len,
              const uint8_t* in, uint8_t* out, uint32_t len, uint8_t* icv) noexcept {
    IMB_MGR* m = thread_mgr();
    if (m == nullptr) [[unlikely]]
        return false;
    alignas(16) uint8_t nonce[12];
    make_nonce(k, iv, nonce);
    gcm_context_data ctx;
    auto* kd = static_cast<const gcm_key_data*>(k.state());
    if constexpr (aes256)
        IMB_AES256_GCM_ENC(m, kd, &ctx, out, in, len, nonce, aad, aad_len, icv, gcm_icv_len);
    else
        IMB_AES128_GCM_ENC(m, kd, &ctx, out, in, len, nonce, aad, aad_len, icv, gcm_icv_len);
    return true;
}

template <bool aes256>
bool imb_open(aead_key& k, const uint8_t* iv, const uint8_t* aad, uint32_t aad_len,
              const uint8_t* in, uint8_t* out, uint32_t len, const uint8_t* icv) noexcept {
    IMB_MGR* m = thread_mgr();
    if (m == nullptr) [[unlikely]]
        return false;
    alignas(16) uint8_t nonce[12];
    make_nonce(k, iv, nonce);
    gcm_context_data ctx;
    uint8_t computed[gcm_icv_len];
    auto* kd = static_cast<const gcm_key_data*>(k.state());
    if constexpr (aes256)
        IMB_AES256_GCM_DEC(m, kd, &ctx, out, in, len, nonce, aad, aad_len, computed, gcm_icv_len);
    else
        IMB_AES128_GCM_DEC(m, kd, &ctx, out, in, len, nonce, aad, aad_len, computed, gcm_icv_len);
    return tag_equal(computed, icv);
}

void imb_destroy(void* state) noexcept {
    OPENSSL_cleanse(state, sizeof(gcm_key_data));
    std::free(state);
}

constexpr aead_ops imb_gcm128_ops{imb_seal<false>, imb_open<false>, imb_destroy};
constexpr aead_ops imb_gcm256_ops{imb_seal<true>, imb_open<true>, imb_destroy};

// ---- OpenSSL EVP ---------------------------------------------------------------------------

// Two contexts pre-initialised with the key, so a packet only sets the IV.
struct evp_state {
    EVP_CIPHER_CTX* enc = nullptr;
    EVP_CIPHER_CTX* dec = nullptr;
};

bool evp_seal(aead_key& k, const uint8_t* iv, const uint8_t* aad, uint32_t aad_len,
              const uint8_t* in, uint8_t* out, uint32_t len, uint8_t* icv) noexcept {
    auto* s = static_cast<evp_state*>(k.state());
    uint8_t nonce[12];
    make_nonce(k, iv, nonce);
    int outl = 0;
    if (EVP_EncryptInit_ex(s->enc, nullptr, nullptr, nullptr, nonce) != 1)
        return false;
    if (aad_len != 0 &&
        EVP_EncryptUpdate(s->enc, nullptr, &outl, aad, static_cast<int>(aad_len)) != 1)
        return false;
    if (len != 0 && EVP_EncryptUpdate(s->enc, out, &outl, in, static_cast<int>(len)) != 1)
        return false;
    if (EVP_EncryptFinal_ex(s->enc, out + len, &outl) != 1)
        return false;
    return EVP_CIPHER_CTX_ctrl(s->enc, EVP_CTRL_GCM_GET_TAG, gcm_icv_len, icv) == 1;
}

bool evp_open(aead_key& k, const uint8_t* iv, const uint8_t* aad, uint32_t aad_len,
              const uint8_t* in, uint8_t* out, uint32_t len, const uint8_t* icv) noexcept {
    auto* s = static_cast<evp_state*>(k.state());
    uint8_t nonce[12];
    make_nonce(k, iv, nonce);
    int outl = 0;
    if (EVP_DecryptInit_ex(s->dec, nullptr, nullptr, nullptr, nonce) != 1)
        return false;
    if (aad_len != 0 &&
        EVP_DecryptUpdate(s->dec, nullptr, &outl, aad, static_cast<int>(aad_len)) != 1)
        return false;
    if (len != 0 && EVP_DecryptUpdate(s->dec, out, &outl, in, static_cast<int>(len)) != 1)
        return false;
    uint8_t tag[gcm_icv_len];
    std::memcpy(tag, icv, gcm_icv_len);
    if (EVP_CIPHER_CTX_ctrl(s->dec, EVP_CTRL_GCM_SET_TAG, gcm_icv_len, tag) != 1)
        return false;
    return EVP_DecryptFinal_ex(s->dec, out + len, &outl) == 1;
}

void evp_destroy(void* state) noexcept {
    auto* s = static_cast<evp_state*>(state);
    // EVP_CIPHER_CTX_free cleanses the expanded key schedule.
    EVP_CIPHER_CTX_free(s->enc);
    EVP_CIPHER_CTX_free(s->dec);
    delete s;
}

constexpr aead_ops evp_ops{evp_seal, evp_open, evp_destroy};

} // namespace

bool worker_thread_init() noexcept {
    return thread_mgr() != nullptr;
}

aead_key::aead_key(aead_key&& o) noexcept
    : ops_(std::exchange(o.ops_, nullptr)), state_(std::exchange(o.state_, nullptr)),
      cipher_(o.cipher_), engine_(o.engine_) {
    std::memcpy(salt_, o.salt_, sizeof salt_);
    OPENSSL_cleanse(o.salt_, sizeof o.salt_);
}

aead_key& aead_key::operator=(aead_key&& o) noexcept {
    if (this != &o) {
        reset();
        ops_ = std::exchange(o.ops_, nullptr);
        state_ = std::exchange(o.state_, nullptr);
        cipher_ = o.cipher_;
        engine_ = o.engine_;
        std::memcpy(salt_, o.salt_, sizeof salt_);
        OPENSSL_cleanse(o.salt_, sizeof o.salt_);
    }
    return *this;
}

aead_key::~aead_key() {
    reset();
}

void aead_key::reset() noexcept {
    if (ops_ != nullptr && state_ != nullptr)
        ops_->destroy(state_);
    ops_ = nullptr;
    state_ = nullptr;
    OPENSSL_cleanse(salt_, sizeof salt_);
}

aead_key aead_key::create(cipher_kind c, engine_kind e, std::span<const uint8_t> keymat,
                          std::string& error) {
    aead_key k;
    const size_t want = keymat_len(c);
    if (keymat.size() != want) {
        error = std::string("keymat for ") + cipher_name(c) + " must be " + std::to_string(want) +
                " bytes (key || 4-byte salt, RFC 4106 8.1), got " + std::to_string(keymat.size());
        return k;
    }
    const size_t key_len = want - gcm_salt_len;
    const bool aes256 = c == cipher_kind::aes_gcm_256;
    k.cipher_ = c;
    k.engine_ = e;
    std::memcpy(k.salt_, keymat.data() + key_len, gcm_salt_len);

    if (e == engine_kind::ipsec_mb) {
        IMB_MGR* m = thread_mgr();
        if (m == nullptr) {
            error = "cannot initialise the ipsec-mb manager on this thread";
            return aead_key{};
        }
        constexpr size_t sz = (sizeof(gcm_key_data) + 63) / 64 * 64;
        void* p = std::aligned_alloc(64, sz);
        if (p == nullptr) {
            error = "out of memory for the GCM key schedule";
            return aead_key{};
        }
        auto* kd = static_cast<gcm_key_data*>(p);
        // Precompute the AES round keys and GHASH powers once per SA.
        if (aes256)
            IMB_AES256_GCM_PRE(m, keymat.data(), kd);
        else
            IMB_AES128_GCM_PRE(m, keymat.data(), kd);
        k.state_ = kd;
        k.ops_ = aes256 ? &imb_gcm256_ops : &imb_gcm128_ops;
        return k;
    }

    auto* s = new evp_state;
    s->enc = EVP_CIPHER_CTX_new();
    s->dec = EVP_CIPHER_CTX_new();
    const EVP_CIPHER* cipher = aes256 ? EVP_aes_256_gcm() : EVP_aes_128_gcm();
    bool ok = s->enc != nullptr && s->dec != nullptr &&
              EVP_EncryptInit_ex(s->enc, cipher, nullptr, nullptr, nullptr) == 1 &&
              EVP_CIPHER_CTX_ctrl(s->enc, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
              EVP_EncryptInit_ex(s->enc, nullptr, nullptr, keymat.data(), nullptr) == 1 &&
              EVP_DecryptInit_ex(s->dec, cipher, nullptr, nullptr, nullptr) == 1 &&
              EVP_CIPHER_CTX_ctrl(s->dec, EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
              EVP_DecryptInit_ex(s->dec, nullptr, nullptr, keymat.data(), nullptr) == 1;
    if (!ok) {
        evp_destroy(s);
        error = "OpenSSL could not initialise the AES-GCM context";
        return aead_key{};
    }
    k.state_ = s;
    k.ops_ = &evp_ops;
    return k;
}

} // namespace sagd::crypto
