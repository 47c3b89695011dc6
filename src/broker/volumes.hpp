// Central user data on disk: STATE/volumes, owned by no compartment. Every file there belongs to one
// neutral owner (volume_owner_id, uid and gid), which no process runs as; each compartment sees those
// files as its own user through an idmapped mount (sandbox::Bind::idmap). Paths are walked from
// descriptors without following links (a compartment writes beneath them).
#pragma once

#include "base/result.hpp"
#include "sys/fd.hpp"

#include <cstdint>
#include <string>
#include <sys/types.h>

namespace bulkhead::broker {

// Below every compartment's id range (those start at 2^30); used by no process and no host user.
inline constexpr uid_t volume_owner_id = (1U << 30) - 2;

// The folder `relative` ("documents" or "documents/work") beneath the volumes directory
// `volumes_fd`, walked component by component with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS. With
// `create`, missing components are made 0700 and given to volume_owner_id; without it, a missing one
// is an error naming it. Returns an O_PATH descriptor of the folder.
Result<sys::UniqueFd> volume_folder(int volumes_fd, std::string const& relative, bool create);

// Whether `relative` is a clean relative path of volume folders: components of [A-Za-z0-9._ -] and
// more (any byte but '/' and NUL), none empty, "." or "..". Returns the reason it is not.
std::string volume_path_problem(std::string const& relative);

struct Conversion {
    bool done_before = false; // the volumes were already converted
    uint64_t changed = 0;     // entries given to the neutral owner now
    uint64_t too_deep = 0;    // folders below the depth limit, left as they were
};

// Once per state directory (a marker file says it was done): gives every file, folder and link in
// STATE/volumes that another id owns to volume_owner_id, without following links or losing a file.
// Volumes from before idmapped mounts were owned by the compartment that first mounted them.
Result<Conversion> convert_volumes(int volumes_fd);

} // namespace bulkhead::broker
