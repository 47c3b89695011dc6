#include "sandbox/caps.hpp"

#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace bulkhead::sandbox {

Status drop_bounding_and_lock()
{
    for (int cap = 0; cap <= 63; ++cap) {
        if (::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0) {
            if (errno == EINVAL)
                break; // past the kernel's last capability
            return Error::from_syscall("prctl(PR_CAPBSET_DROP)", errno);
        }
    }
    TRY(check_syscall(::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "prctl(PR_CAP_AMBIENT_CLEAR_ALL)"));
    // Root keeps no special power over capabilities; ambient capabilities cannot be raised again.
    unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED
        | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    return check_syscall(::prctl(PR_SET_SECUREBITS, bits, 0, 0, 0), "prctl(PR_SET_SECUREBITS)");
}

Status clear_capabilities()
{
    __user_cap_header_struct header {_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] {};
    return check_syscall(::syscall(SYS_capset, &header, data), "capset");
}

Status set_no_new_privs()
{
    return check_syscall(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)");
}

Status apply_rlimits(Limits const& limits)
{
    rlimit nofile {limits.open_files, limits.open_files};
    TRY(check_syscall(::setrlimit(RLIMIT_NOFILE, &nofile), "setrlimit(RLIMIT_NOFILE)"));
    // No core dumps: a crashing program must not leave its memory on disk.
    rlimit core {0, 0};
    TRY(check_syscall(::setrlimit(RLIMIT_CORE, &core), "setrlimit(RLIMIT_CORE)"));
    if (limits.pids != 0) {
        // RLIMIT_NPROC counts per host uid; each compartment has its own uids, so this is per compartment.
        rlimit nproc {limits.pids, limits.pids};
        TRY(check_syscall(::setrlimit(RLIMIT_NPROC, &nproc), "setrlimit(RLIMIT_NPROC)"));
    }
    return {};
}

} // namespace bulkhead::sandbox
