// Capabilities, securebits, no_new_privs and rlimits of compartment processes.
// Everything here runs in a freshly cloned child: no allocation, only system calls.
#pragma once

#include "base/result.hpp"
#include "sandbox/spec.hpp"

namespace bulkhead::sandbox {

// Empties the bounding and ambient sets and locks securebits so that no later execve (of a
// setuid or file-capability binary, or as uid 0) can give capabilities back.
// Needs CAP_SETPCAP, so it runs before the final identity change.
Status drop_bounding_and_lock();
// Empties the inheritable, permitted and effective sets.
Status clear_capabilities();
Status set_no_new_privs();
Status apply_rlimits(Limits const& limits);

} // namespace bulkhead::sandbox
