// Control-path results: a value or an error a user can act on. Never used per packet.
// One type for the whole project; it lives in forwarding/ (the lowest layer that needs it).
#pragma once

#include "forwarding/result.hpp"

namespace sagd {

using fwd::errc;
using fwd::error;
using fwd::ok;
using fwd::ok_t;
using fwd::result;
using fwd::status;

} // namespace sagd
