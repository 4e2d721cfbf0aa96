// GET /metrics: the gateway's counters in Prometheus text format (ports, tunnels, drop reasons,
// workers' busy ratio and cycles per packet, table sizes, FPM session state).
#pragma once

#include <string>

#include "dataplane/gateway.hpp"

namespace sagd::shim {

class fpm_server;

// Control thread (it reads the published tables and the writer's state).
std::string render_metrics(const dp::gateway& gw, const fpm_server* fpm);

} // namespace sagd::shim
