// Parsing API request bodies that are not single config objects (those go through
// config_yaml.hpp's parse_*_body): the declarative apply's diff and the text route batch.
// No DPDK, no gateway: the fuzz target (tests/fuzz/api_fuzz.cpp) links this alone.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/change.hpp"
#include "dataplane/config.hpp"

namespace sagd::shim {

// Builds the change set that turns `running` into `target` (the declarative apply). Fails when
// the difference needs a restart (workers, EAL arguments, ports added, removed or moved to
// another device or role). `summary` gets one line per change.
std::optional<std::string> diff_config(const config& running, const config& target,
                                       dp::change_set& out, std::vector<std::string>& summary);

// Parses the text route batch ("add PREFIX tunnel NAME [distance N]", "add PREFIX via GW
// [distance N]", "del PREFIX", '#' comments) into a change set. Errors name the line.
std::optional<std::string> parse_route_batch(std::string_view text, dp::change_set& out);

} // namespace sagd::shim
