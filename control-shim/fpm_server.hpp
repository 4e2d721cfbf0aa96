// The FPM server: FRR zebra (dplane_fpm_nl) connects over TCP and streams its selected routes;
// they are decoded (fpm.hpp), kept in the learned-route store, and installed in the FIB as
// learned routes (administrative distance 20 unless configured) through the same change path
// as the API, one change per batch of messages. Session loss keeps the learned routes for the
// grace time, then withdraws what zebra did not send again. Control thread only (polled).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control-shim/fpm.hpp"
#include "control-shim/http.hpp"
#include "dataplane/gateway.hpp"

namespace sagd::shim {

struct fpm_server_options {
    ipv4_addr address = 0x7f000001;
    uint16_t port = fpm_default_port; // 0: pick a free port (tests)
    uint64_t grace_ms = 30'000;
    size_t max_messages_per_poll = 20'000; // bounds one poll so the control loop stays live
    // Updates are installed as one change when the stream pauses (a poll reads nothing), when
    // this many prefixes are pending, or when the oldest pending one waited install_delay_ms.
    // While zebra streams a full table this makes big changes (cheap per route) instead of
    // one per socket read, and leaves the CPU to zebra between reads.
    size_t install_batch = 50'000;
    uint64_t install_delay_ms = 20;
    uint8_t distance = 20;
};

struct fpm_server_counters {
    uint64_t sessions = 0;
    uint64_t messages = 0;
    uint64_t decode_errors = 0;     // FPM messages refused (nothing of them applied)
    uint64_t framing_errors = 0;    // streams dropped on a bad header
    uint64_t installed_changes = 0; // changes applied to the FIB
    uint64_t install_failures = 0;  // routes the FIB refused (counted, not installed)
    uint64_t unresolved = 0;        // learned routes with no gateway on a LAN subnet/prefix
    uint64_t swept = 0;             // stale routes withdrawn after the grace time
};

class fpm_server {
  public:
    using apply_fn = std::function<std::optional<dp::change_failure>(const dp::change_set&)>;

    static fwd::result<std::unique_ptr<fpm_server>> create(const fpm_server_options& options,
                                                           const dp::gateway& gw, apply_fn apply);
    ~fpm_server();
    fpm_server(const fpm_server&) = delete;
    fpm_server& operator=(const fpm_server&) = delete;

    // Accepts, reads and installs what is ready; runs the grace timer. True when it did work.
    bool poll(uint64_t now_ms);

    uint16_t port() const noexcept { return port_; }
    bool connected() const noexcept { return conn_fd_ >= 0; }
    const learned_routes& store() const noexcept { return store_; }
    const fpm_server_counters& counters() const noexcept { return counters_; }
    // Learned routes in the FIB (only FPM installs learned routes).
    size_t installed_count() const noexcept {
        return gw_.writer().learned_count() + gw_.writer().learned6_count();
    }
    size_t installed6_count() const noexcept { return gw_.writer().learned6_count(); }
    void write_status(json_writer& j) const;

  private:
    fpm_server(const fpm_server_options& o, const dp::gateway& gw, apply_fn apply)
        : options_(o), gw_(gw), apply_(std::move(apply)) {}
    void close_session(const char* why);
    void install_touched();
    void stage_ipv6(const route_key& k, const dp::tables& t, dp::change_set& cs);

    fpm_server_options options_;
    const dp::gateway& gw_;
    apply_fn apply_;
    int listen_fd_ = -1;
    int conn_fd_ = -1;
    uint16_t port_ = 0;
    std::string peer_;
    fpm_framer framer_;
    learned_routes store_;
    std::vector<fpm_item> decoded_; // one read's decoded messages, applied together
    fpm_server_counters counters_;
    std::vector<route_key> touched_;           // since the last install; may repeat a key
    std::optional<uint64_t> pending_since_ms_; // when touched_ became non-empty
    std::optional<uint64_t> stale_since_ms_;
    uint64_t now_ms_ = 0;
};

} // namespace sagd::shim
