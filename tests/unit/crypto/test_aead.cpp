// AEAD engines against published vectors, and ipsec-mb against OpenSSL.
#include <gtest/gtest.h>

#include <random>

#include "crypto/aead.hpp"
#include "test_util.hpp"

namespace sagd::crypto::test {
namespace {

struct gcm_vector {
    const char* name;
    cipher_kind cipher;
    const char* key;   // AES key (without salt)
    const char* nonce; // 12 bytes: salt || IV
    const char* aad;
    const char* pt;
    const char* ct;
    const char* tag;
};

// "The Galois/Counter Mode of Operation (GCM)", McGrew & Viega, test cases 1-4 and 13-16.
const char* const tc3_pt = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                           "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255";
const char* const tc4_pt = "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
                           "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
const char* const tc4_aad = "feedfacedeadbeeffeedfacedeadbeefabaddad2";

const gcm_vector nist_vectors[] = {
    {"gcm_tc1", cipher_kind::aes_gcm_128, "00000000000000000000000000000000",
     "000000000000000000000000", "", "", "", "58e2fccefa7e3061367f1d57a4e7455a"},
    {"gcm_tc2", cipher_kind::aes_gcm_128, "00000000000000000000000000000000",
     "000000000000000000000000", "", "00000000000000000000000000000000",
     "0388dace60b6a392f328c2b971b2fe78", "ab6e47d42cec13bdf53a67b21257bddf"},
    {"gcm_tc3", cipher_kind::aes_gcm_128, "feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888", "", tc3_pt,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091473f5985",
     "4d5c2af327cd64a62cf35abd2ba6fab4"},
    {"gcm_tc4", cipher_kind::aes_gcm_128, "feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888", tc4_aad, tc4_pt,
     "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
     "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
     "5bc94fbc3221a5db94fae95ae7121a47"},
    {"gcm_tc13", cipher_kind::aes_gcm_256,
     "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "", "", "", "530f8afbc74536b9a963b4f1c4cb738b"},
    {"gcm_tc14", cipher_kind::aes_gcm_256,
     "0000000000000000000000000000000000000000000000000000000000000000", "000000000000000000000000",
     "", "00000000000000000000000000000000", "cea7403d4d606b6e074ec5d3baf39d18",
     "d0d1c8a799996bf0265b98b5d48ab919"},
    {"gcm_tc15", cipher_kind::aes_gcm_256,
     "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     "", tc3_pt,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad",
     "b094dac5d93471bdec1a502270e3cc6c"},
    {"gcm_tc16", cipher_kind::aes_gcm_256,
     "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", "cafebabefacedbaddecaf888",
     tc4_aad, tc4_pt,
     "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
     "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
     "76fc6ece0f4e1768cddf8853bb2d551b"},
};

// draft-mcgrew-gcm-test-01 section 4 (AES-128/256 cases; the AES-192 one is not supported).
// AAD = SPI || seq (8 bytes) or SPI || 64-bit ESN (12 bytes); plaintext includes the ESP
// trailer (padding, pad length, next header).
const gcm_vector draft_vectors[] = {
    {"draft_tc1", cipher_kind::aes_gcm_128, "4c80cdefbb5d10da906ac73c3613a634",
     "2e443b684956ed7e3b244cfe", "000043218765432100000000",
     "45000048699a000080114db7c0a80102c0a801010a9bf15638d301000001000000000000045f736970"
     "045f756470037369700963796265726369747902646b000021000101020201",
     "fecf537e729d5b07dc30df528dd22b768d1b98736696a6fd348509fa13ceac34cfa2436f14a3f3cf65"
     "925bf1f4a13c5d15b21e1884f5ff6247aeabb786b93bce61bc17d768fd9732",
     "459018148f6cbe722fd04796562dfdb4"},
    {"draft_tc2", cipher_kind::aes_gcm_128, "feffe9928665731c6d6a8f9467308308",
     "cafebabefacedbaddecaf888", "0000a5f80000000a",
     "4500003e698f000080114dccc0a80102c0a801010a980035002a2343b2d00100000100000000000003"
     "7369700963796265726369747902646b00000100010001",
     "deb22cd9b07c72c16e3a65beeb8df304a5a5897d33ae530f1ba76d5d114d2a5c3de81827c10e9a4f51"
     "330d0eec416642cfbb85a5b47e48a4ec3b9ba95d918bd1",
     "83b70d3aa8bc6ee4c309e9d85a41ad4a"},
    {"draft_tc3", cipher_kind::aes_gcm_256,
     "abbccddef00112233445566778899aababbccddef00112233445566778899aab", "112233440102030405060708",
     "4a2cbfe300000002",
     "4500003069a6400080062690c0a801029389155e0a9e008b2dc57ee0000000007002400020bf000002"
     "0405b40101040201020201",
     "ff425c9b724599df7a3bcd510194e00d6a78107f1b0b1cbf06efae9d65a5d763748a637985771d347f"
     "0545659f14e99def842d8e",
     "b335f4eecfdbf831824b4c4915956c96"},
    {"draft_tc4", cipher_kind::aes_gcm_128, "00000000000000000000000000000000",
     "000000000000000000000000", "0000000000000001",
     "4500003c99c500008001cb7a40679318010101010800075c020044006162636465666768696a6b6c6d"
     "6e6f707172737475767761626364656667686901020201",
     "4688daf2f973a392732909c331d56d60f694abaa414b5e7ff5fdcdfff5e9a284456476492719ffb64d"
     "e7d9dca1e1d894bc3bd57873ed4d181d19d4d5c8c18af3",
     "f821d496eeb096e98ad2b69e4799c71d"},
    {"draft_tc5_esn", cipher_kind::aes_gcm_128, "3de09874b388e6491988d0c3607eae1f",
     "57690e434e280000a2fca1a3", "42f67e3f1010101010101010",
     "4500003c99c300008001cb7c40679318010101010800085c020043006162636465666768696a6b6c6d"
     "6e6f707172737475767761626364656667686901020201",
     "fba2caa4853cf9f0f22cb10d86dd83b0fec75691cf1a04b00d1138ec9c35791765acbd8701ad79845b"
     "f9fe3fba487bc91755e6662b4c8d0d1f5e22739530320a",
     "e0d731cc978ecafaeae88f00e80d6e48"},
    {"draft_tc6_esn", cipher_kind::aes_gcm_128, "3de09874b388e6491988d0c3607eae1f",
     "57690e434e280000a2fca1a3", "42f67e3f1010101010101010",
     "4500001c42a200008001441f406793b6e00000020a00f5ff01020201",
     "fba2ca845e5df9f0f22c3e6e86dd831e1fc65792cd1af9130e1379ed",
     "369f071f35e034be95f112e4e7d05d35"},
    {"draft_tc8_esn", cipher_kind::aes_gcm_128, "abbccddef00112233445566778899aab",
     "decaf888cafedebaceface74", "000001000000000000000001",
     "4500004933ba00007f119106c3fb1d10c2b1d326c02831ce0035dd7b800302d500004e20001e8c18d7"
     "5b81dc91baa0476b91b924b280389d92c963bac046ec959b6266c04722b14923010101",
     "18a6fd42f72cbf4ab2a2ea901f73d814e3e7f243d95412e1c349c1d2fbec168f9190feebaf2cb01984"
     "e65863965d7472b79da345e0e780191f0d2f0e0f496c226f2127b27db35724e7845d68",
     "651f57e65f354f75ff17015769623436"},
    {"draft_tc9_esn", cipher_kind::aes_gcm_256,
     "abbccddef00112233445566778899aababbccddef00112233445566778899aab", "73616c74616e640169766563",
     "17405e67156f3126dd0db99b",
     "45080028732c00004006e9f90a0106120a01038f06b88023dd6bafbecb71260250101f646d540001",
     "f2d69ecdbd5a0d5b8d5ef38bad4da58d1f278fde98ef67549d524a3018d9a57ff4d3a31ce673119e",
     "451626c2415771e3b7eebca614c89b35"},
    {"draft_tc12", cipher_kind::aes_gcm_128, "7d773d00c144c525ac619d18c84a3f47",
     "d966426743457e9182443bc6", "335467aeffffffff", "01020201", "437f866b",
     "cb3f699fe9b0822bac961c4504bef270"},
    {"draft_tc14_esn", cipher_kind::aes_gcm_256,
     "6c6567616c697a656d6172696a75616e61616e64646f69746265666f72656961", "7475726e333021696765746d",
     "796b6963ffffffffffffffff",
     "45000030da3a00008001df3bc0a80005c0a800010800c6cd020007006162636465666768696a6b6c6d"
     "6e6f707172737401020201",
     "f97ab2aa356d8edce17644ac8c78e25dd24dedbb29ebf1b64a274b39b49c3a864cd3d78ca4ae68a32b"
     "42458fb57dbe821dcc63b9",
     "d0937ba2945f669368661a329fb4c053"},
};

aead_key make_key(cipher_kind c, engine_kind e, const bytes& key, const bytes& salt) {
    std::string err;
    aead_key k = aead_key::create(c, e, concat(key, salt), err);
    EXPECT_TRUE(k.valid()) << err;
    return k;
}

void run_vector(const gcm_vector& v, engine_kind e) {
    SCOPED_TRACE(std::string(v.name) + " on " + engine_name(e));
    const bytes nonce = hex(v.nonce);
    ASSERT_EQ(nonce.size(), 12u);
    const bytes salt(nonce.begin(), nonce.begin() + 4);
    const bytes iv(nonce.begin() + 4, nonce.end());
    const bytes aad = hex(v.aad), pt = hex(v.pt), ct = hex(v.ct), tag = hex(v.tag);
    ASSERT_EQ(pt.size(), ct.size());
    aead_key k = make_key(v.cipher, e, hex(v.key), salt);
    ASSERT_TRUE(k.valid());

    bytes out(pt.size() + 1);
    uint8_t icv[16];
    ASSERT_TRUE(k.seal(iv.data(), aad.data(), static_cast<uint32_t>(aad.size()), pt.data(),
                       out.data(), static_cast<uint32_t>(pt.size()), icv));
    EXPECT_EQ(bytes(out.begin(), out.begin() + static_cast<long>(pt.size())), ct);
    EXPECT_EQ(bytes(icv, icv + 16), tag);

    bytes back(ct.size() + 1);
    ASSERT_TRUE(k.open(iv.data(), aad.data(), static_cast<uint32_t>(aad.size()), ct.data(),
                       back.data(), static_cast<uint32_t>(ct.size()), tag.data()));
    EXPECT_EQ(bytes(back.begin(), back.begin() + static_cast<long>(ct.size())), pt);

    bytes bad_tag = tag;
    bad_tag[15] ^= 1;
    EXPECT_FALSE(k.open(iv.data(), aad.data(), static_cast<uint32_t>(aad.size()), ct.data(),
                        back.data(), static_cast<uint32_t>(ct.size()), bad_tag.data()));
}

class aead_engine : public ::testing::TestWithParam<engine_kind> {};

TEST_P(aead_engine, gcm_spec_vectors) {
    for (const auto& v : nist_vectors)
        run_vector(v, GetParam());
}

TEST_P(aead_engine, draft_mcgrew_esp_vectors) {
    for (const auto& v : draft_vectors)
        run_vector(v, GetParam());
}

TEST_P(aead_engine, in_place) {
    const auto& v = nist_vectors[3];
    const bytes nonce = hex(v.nonce);
    aead_key k =
        make_key(v.cipher, GetParam(), hex(v.key), bytes(nonce.begin(), nonce.begin() + 4));
    bytes buf = hex(v.pt);
    const bytes aad = hex(v.aad);
    uint8_t icv[16];
    ASSERT_TRUE(k.seal(nonce.data() + 4, aad.data(), 20, buf.data(), buf.data(),
                       static_cast<uint32_t>(buf.size()), icv));
    EXPECT_EQ(buf, hex(v.ct));
    ASSERT_TRUE(k.open(nonce.data() + 4, aad.data(), 20, buf.data(), buf.data(),
                       static_cast<uint32_t>(buf.size()), icv));
    EXPECT_EQ(buf, hex(v.pt));
}

INSTANTIATE_TEST_SUITE_P(engines, aead_engine,
                         ::testing::Values(engine_kind::ipsec_mb, engine_kind::openssl),
                         [](const auto& info) {
                             return std::string(engine_name(info.param)) == "ipsec-mb"
                                        ? std::string("ipsec_mb")
                                        : std::string("openssl");
                         });

TEST(aead, rejects_wrong_keymat_length) {
    std::string err;
    bytes km(16, 1);
    aead_key k = aead_key::create(cipher_kind::aes_gcm_128, engine_kind::ipsec_mb, km, err);
    EXPECT_FALSE(k.valid());
    EXPECT_NE(err.find("must be 20 bytes"), std::string::npos) << err;
    km.resize(20);
    k = aead_key::create(cipher_kind::aes_gcm_256, engine_kind::openssl, km, err);
    EXPECT_FALSE(k.valid());
    EXPECT_NE(err.find("must be 36 bytes"), std::string::npos) << err;
}

// Random sizes, keys, AAD lengths and buffer offsets: both engines must agree bit for bit,
// open each other's output, and reject any single flipped bit.
TEST(aead, ipsec_mb_matches_openssl) {
    std::mt19937 rng(4106);
    for (int iter = 0; iter < 300; ++iter) {
        const cipher_kind c = iter % 2 ? cipher_kind::aes_gcm_256 : cipher_kind::aes_gcm_128;
        bytes km(keymat_len(c));
        for (auto& b : km)
            b = static_cast<uint8_t>(rng());
        std::string err;
        aead_key mb = aead_key::create(c, engine_kind::ipsec_mb, km, err);
        aead_key ossl = aead_key::create(c, engine_kind::openssl, km, err);
        ASSERT_TRUE(mb.valid() && ossl.valid()) << err;

        const uint32_t len = iter < 20 ? static_cast<uint32_t>(iter) : rng() % 9001;
        const uint32_t aad_len = rng() % 2 ? 12 : 8;
        const size_t off = rng() % 64;
        bytes pt(len + off), aad(aad_len), iv(8);
        for (auto& b : pt)
            b = static_cast<uint8_t>(rng());
        for (auto& b : aad)
            b = static_cast<uint8_t>(rng());
        for (auto& b : iv)
            b = static_cast<uint8_t>(rng());
        bytes ct1(len + 64), ct2(len + 64);
        uint8_t t1[16], t2[16];
        const size_t off2 = rng() % 64;
        ASSERT_TRUE(
            mb.seal(iv.data(), aad.data(), aad_len, pt.data() + off, ct1.data() + off2, len, t1));
        ASSERT_TRUE(
            ossl.seal(iv.data(), aad.data(), aad_len, pt.data() + off, ct2.data(), len, t2));
        ASSERT_EQ(0, std::memcmp(ct1.data() + off2, ct2.data(), len)) << "len " << len;
        ASSERT_EQ(0, std::memcmp(t1, t2, 16)) << "len " << len;

        bytes back(len + 1);
        ASSERT_TRUE(
            ossl.open(iv.data(), aad.data(), aad_len, ct1.data() + off2, back.data(), len, t1));
        ASSERT_EQ(0, std::memcmp(back.data(), pt.data() + off, len));
        ASSERT_TRUE(mb.open(iv.data(), aad.data(), aad_len, ct2.data(), back.data(), len, t2));
        ASSERT_EQ(0, std::memcmp(back.data(), pt.data() + off, len));

        // Flip one bit in ciphertext, tag, AAD or IV.
        const uint32_t where = rng() % 4;
        bytes ct = bytes(ct2.begin(), ct2.begin() + len);
        bytes tag(t2, t2 + 16), aad2 = aad, iv2 = iv;
        if (where == 0 && len > 0)
            ct[rng() % len] ^= static_cast<uint8_t>(1u << (rng() % 8));
        else if (where == 1)
            aad2[rng() % aad_len] ^= static_cast<uint8_t>(1u << (rng() % 8));
        else if (where == 2)
            iv2[rng() % 8] ^= static_cast<uint8_t>(1u << (rng() % 8));
        else
            tag[rng() % 16] ^= static_cast<uint8_t>(1u << (rng() % 8));
        EXPECT_FALSE(
            mb.open(iv2.data(), aad2.data(), aad_len, ct.data(), back.data(), len, tag.data()));
        EXPECT_FALSE(
            ossl.open(iv2.data(), aad2.data(), aad_len, ct.data(), back.data(), len, tag.data()));
    }
}

} // namespace
} // namespace sagd::crypto::test
