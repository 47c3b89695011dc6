// The broker confines itself once it is set up (issue 13, item 8): no_new_privs, a capability
// bounding set (and permitted, effective, inheritable and ambient sets) of only what it uses, and
// the Broker seccomp profile. Every process it starts inherits all three: the helpers (bulkhead-net)
// and the compartments (which add their own, narrower filter and drop every capability in turn).
#pragma once

#include "base/result.hpp"

#include <array>
#include <linux/capability.h>

namespace bulkhead::broker {

// What the broker and its helpers use, and why (docs/broker.md lists the same):
inline constexpr std::array kept_capabilities = {
    CAP_CHOWN,           // a new home or volume folder to its compartment's user
    CAP_DAC_OVERRIDE,    // compartments' folders and sockets, owned by their users
    CAP_DAC_READ_SEARCH, //   "
    CAP_FOWNER,          // their modes and times
    CAP_KILL,            // signals to compartments' processes (other users)
    CAP_SETUID,          // id maps of compartments' user namespaces
    CAP_SETGID,          //   "
    CAP_SETFCAP,         // a map of a namespace's root (since Linux 5.12)
    CAP_SETPCAP,         // dropping the bounding set (here; compartments do it in their own namespace)
    CAP_SYS_ADMIN,       // mounts, namespaces, pivot_root, the firewall namespaces' bind mounts
    CAP_SYS_CHROOT,      // entering a compartment's root
    CAP_SYS_PTRACE,      // /proc/PID/ns/* of compartments' (non-dumpable) PID 1; ptrace() itself is refused
    CAP_SYS_RESOURCE,    // rlimits and oom_score_adj of compartments' PID 1
    CAP_NET_ADMIN,       // links, addresses, routes, nftables (bulkhead-net)
};

// Sets no_new_privs, drops every capability not kept from every set, then installs the Broker
// seccomp profile. Idempotent in effect; fails without changing the filter if a step fails.
Status confine_broker();

} // namespace bulkhead::broker
