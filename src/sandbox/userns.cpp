#include "sandbox/userns.hpp"

#include "sandbox/spec.hpp"
#include "sys/syscalls.hpp"

#include <string>

namespace bulkhead::sandbox {

Status write_id_maps(pid_t pid, uid_t host_id_base)
{
    std::string const proc = "/proc/" + std::to_string(pid);
    std::string const map = "0 " + std::to_string(host_id_base) + " " + std::to_string(id_range_size) + "\n";
    // setgroups must be denied so that a process inside cannot drop a supplementary group that a
    // file's permissions deny it (the CVE-2014-8989 class).
    TRY_CTX(sys::write_file(proc + "/setgroups", "deny"), "denying setgroups");
    TRY_CTX(sys::write_file(proc + "/uid_map", map), "writing uid_map");
    TRY_CTX(sys::write_file(proc + "/gid_map", map), "writing gid_map");
    return {};
}

} // namespace bulkhead::sandbox
