// Landlock: the compartment's processes may read and execute its tree, and write only where the
// spec says (home, /tmp, rw binds, a few devices). Built at the best ABI the kernel offers.
#pragma once

#include "base/result.hpp"
#include "sandbox/spec.hpp"
#include "sys/fd.hpp"

#include <string>
#include <vector>

namespace bulkhead::sandbox {

// The kernel's Landlock ABI version, 0 when Landlock is unavailable.
int landlock_abi();

enum class LandlockAccess {
    ReadExec,  // read files and directories, execute
    ReadWrite, // everything ReadExec allows, and create, write, remove, rename
    Device,    // read, write and ioctl on device files (terminals, /dev/null)
};

struct LandlockPath {
    std::string path; // inside the compartment, after pivot_root
    LandlockAccess access;
};

// The rules every compartment gets, plus one per rw bind.
std::vector<LandlockPath> landlock_paths_for(Spec const& spec);

// Creates the ruleset and adds one rule per path (paths that do not exist are skipped).
// Returns an invalid fd when the kernel has no Landlock.
Result<sys::UniqueFd> landlock_prepare(std::vector<LandlockPath> const& paths);
// Restricts the calling thread. Requires no_new_privs. Allocates nothing.
Status landlock_enforce(int ruleset_fd);

} // namespace bulkhead::sandbox
