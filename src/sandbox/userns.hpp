// The user namespace of a compartment: its own block of 65536 host ids, root inside mapped to an
// unprivileged host uid, setgroups denied. Written by the parent (host side) for the child.
#pragma once

#include "base/result.hpp"
#include "sandbox/spec.hpp"
#include "sys/fd.hpp"

#include <sys/types.h>

namespace bulkhead::sandbox {

// Writes setgroups=deny, uid_map and gid_map of the child `pid` (still waiting in its new user
// namespace): inside ids 0..65535 map to host ids base..base+65535.
Status write_id_maps(pid_t pid, uid_t host_id_base);

// A user namespace mapping only `map.on_disk` (uid and gid) to `map.host`, for an idmapped mount
// (Bind::idmap); held by the returned descriptor. Made by a short-lived child; needs host root.
Result<sys::UniqueFd> idmap_userns(IdMap const& map);

} // namespace bulkhead::sandbox
