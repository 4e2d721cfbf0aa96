// libFuzzer target for the FPM path (control-shim/fpm.*): the bytes are what a peer on the
// FPM TCP port could send. Each input runs (1) straight through decode_fpm_message and (2) as a
// TCP stream through fpm_framer in small chunks into a learned_routes store, then a session
// loss and sweep. Anything decoded must obey the decoder's promises (checked below); the
// sanitizers catch out-of-bounds reads. Built without libFuzzer (gcc), the same file has a
// main() that replays corpus files or directories: see tests/fuzz/README.md.
#include "control-shim/fpm.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

namespace {

using namespace sagd::shim;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "fpm_fuzz: invariant broken: %s\n", what);
        std::abort();
    }
}

void check_update(const fpm_route_update& u) {
    check(u.prefix_len <= max_prefix_len(u.family), "prefix length within family");
    for (size_t bit = u.prefix_len; bit < 128; ++bit)
        check(!(u.prefix[bit / 8] & (0x80u >> (bit % 8))), "host bits clear");
    for (size_t i = address_size(u.family); i < u.prefix.size(); ++i)
        check(u.prefix[i] == 0, "IPv4 prefix uses 4 bytes");
    for (const auto& h : u.next_hops)
        check(h.weight >= 1 && h.weight <= 256, "weight = rtnh_hops + 1");
    if (u.add && u.blackhole)
        check(u.next_hops.empty(), "blackhole without next hops");
    (void)format_update(u);
}

void run_one(const uint8_t* data, size_t size) {
    const std::span<const uint8_t> in(data, size);
    if (auto items = decode_fpm_message(in); items.ok())
        for (const auto& item : items.value())
            if (item.kind != fpm_item_kind::unsupported)
                check_update(item.route);

    // The same bytes as a stream, in chunks whose size depends on the input.
    fpm_framer framer(size % 2 ? fpm_max_message_size : 512);
    learned_routes store;
    const size_t chunk = 1 + size % 17;
    for (size_t off = 0; off < size && !framer.poisoned(); off += chunk) {
        if (!framer.feed(in.subspan(off, std::min(chunk, size - off))).ok())
            break;
        for (;;) {
            auto m = framer.next();
            if (!m.ok() || !m.value())
                break;
            check(m.value()->size() >= fpm_header_size + 16, "framed message holds a header");
            (void)store.apply_message(*m.value());
        }
    }
    size_t n = 0;
    store.for_each([&](const route_key& k, const learned_route& r) {
        check(k == key_of(r.route) && r.route.add, "store keyed by route, adds only");
        ++n;
    });
    check(n == store.size(), "for_each visits every route");
    store.session_lost();
    check(store.stale_count() == store.size(), "session loss stales everything");
    (void)store.sweep_stale();
    check(store.size() == 0, "sweep removes every stale route");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    run_one(data, size);
    return 0;
}

#ifdef SAGD_FPM_REPLAY_MAIN
#define SAGD_FUZZ_NAME "fpm_fuzz"
#include "replay_main.hpp"
#endif
