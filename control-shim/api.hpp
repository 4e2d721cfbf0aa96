// The runtime API (control-shim/API.md): HTTP requests -> validated change sets applied to the
// gateway as one change each, and JSON views of the running state. Runs on the gateway's
// control thread (the same thread as the slow path), so it needs no locks against it.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "control-shim/api_parse.hpp"
#include "control-shim/http.hpp"
#include "dataplane/gateway.hpp"

namespace sagd::shim {

struct api_options {
    std::string version = "sagd";
    // Where the running config is persisted after every change (write + fsync + rename);
    // empty: not persisted. Holds keys: written with mode 0600.
    std::string persist_path;
    uint64_t rekey_retire_ms = 30'000; // default grace before a rekey retires the old inbound SA
    size_t max_routes_listed = 10'000; // GET /v1/routes without a narrower filter
};

// Hooks for parts that live elsewhere (FPM session, metrics). All optional.
struct api_hooks {
    std::function<void(json_writer&)> fpm_status; // writes one JSON object value
    std::function<std::string()> metrics;         // Prometheus text
};

class api {
  public:
    api(dp::gateway& gw, api_options options, api_hooks hooks = {});

    http_response handle(const http_request& request, const connection_info& info);
    // Timers (rekey retirement). Returns true when it did something.
    bool poll(uint64_t now_ms);
    // Applies a change and persists the result; the single entry point every writer uses
    // (API handlers, FPM). Returns the failure message, empty on success.
    std::optional<dp::change_failure> apply(const dp::change_set& cs);

    // Persists the running config now (start-up). Returns an error message or "".
    std::string persist();
    // Writes a pending (debounced) persist now: at shutdown.
    void flush();

  private:
    struct pending_retire {
        std::string tunnel;
        uint32_t spi;
        uint64_t due_ms;
    };

    http_response get_status();
    http_response get_ports(const std::string& name);
    http_response patch_port(const std::string& name, const std::string& body);
    http_response get_tunnels(const std::string& name);
    http_response get_tunnel_health(const std::string& name);
    http_response put_tunnel(const std::string& name, const std::string& body, bool create);
    http_response delete_tunnel(const std::string& name);
    http_response rekey(const std::string& name, const std::string& body);
    http_response get_groups(const std::string& name);
    http_response put_group(const std::string& name, const std::string& body, bool create);
    http_response delete_group(const std::string& name);
    http_response get_routes(const http_request& r);
    http_response post_routes(const http_request& r);
    http_response delete_route(const http_request& r);
    http_response get_onprem();
    http_response get_neighbours();
    http_response post_neighbours(const std::string& body);
    http_response get_counters();
    http_response get_config();
    http_response put_config(const http_request& r);

    dp::gateway& gw_;
    api_options options_;
    api_hooks hooks_;
    uint64_t started_ms_ = 0;
    uint64_t now_ms_ = 0;
    std::vector<pending_retire> retire_;
    bool persist_dirty_ = false;
    uint64_t persisted_ms_ = 0;
};

} // namespace sagd::shim
