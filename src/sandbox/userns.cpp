#include "sandbox/userns.hpp"

#include "sandbox/spec.hpp"
#include "sys/syscalls.hpp"

#include <cerrno>
#include <csignal>
#include <fcntl.h>
#include <sched.h>
#include <string>
#include <sys/wait.h>
#include <unistd.h>

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

Result<sys::UniqueFd> idmap_userns(IdMap const& map)
{
    sys::Clone3Args args;
    args.flags = CLONE_NEWUSER;
    pid_t pid = TRY(sys::clone3(args));
    if (pid == 0) {
        // Only holds the namespace until the parent has its descriptor and kills it.
        for (;;)
            ::pause();
    }
    struct Reap {
        pid_t pid;
        ~Reap()
        {
            ::kill(pid, SIGKILL);
            while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
            }
        }
    } reap {pid};
    std::string const proc = "/proc/" + std::to_string(pid);
    std::string const line = std::to_string(map.on_disk) + " " + std::to_string(map.host) + " 1\n";
    TRY_CTX(sys::write_file(proc + "/uid_map", line), "writing the idmap's uid_map");
    TRY_CTX(sys::write_file(proc + "/gid_map", line), "writing the idmap's gid_map");
    return sys::open_path(proc + "/ns/user", O_RDONLY | O_CLOEXEC);
}

} // namespace bulkhead::sandbox
