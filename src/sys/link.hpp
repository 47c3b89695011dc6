// Network interfaces of the calling process's network namespace.
#pragma once

#include "base/result.hpp"

#include <string_view>

namespace bulkhead::sys {

// Sets IFF_UP on the interface NAME (e.g. "lo") of the current network namespace.
Status set_link_up(std::string_view name);

} // namespace bulkhead::sys
