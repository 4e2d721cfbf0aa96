// sagd's own DPDK telemetry endpoints (read them with dpdk-telemetry.py -f <file-prefix>):
//   /sagd/stats    totals, the balance check, slow-path counters
//   /sagd/drops    packets dropped, per reason
//   /sagd/ports    per port rx/tx packets and bytes (param: port name for one port)
//   /sagd/tunnels  tunnel names; /sagd/tunnel,<name> one tunnel's SA counters
//   /sagd/workers  per worker loops, busy ratio, cycles per packet
//   /sagd/neighbours  the ARP table
#pragma once

#include "dataplane/gateway.hpp"
#include "dataplane/stats.hpp"

namespace sagd::shim {

// Registers the endpoints for `gw` (one gateway per process; call before gw runs).
void register_telemetry(const dp::gateway& gw);
// Detaches the endpoints (they answer -EAGAIN) so the gateway can be destroyed.
void unregister_telemetry();

} // namespace sagd::shim
