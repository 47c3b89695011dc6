#include "broker/confine.hpp"

#include "sandbox/seccomp.hpp"

#include <algorithm>
#include <cerrno>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace bulkhead::broker {

namespace {

bool kept(int capability)
{
    return std::find(kept_capabilities.begin(), kept_capabilities.end(), capability) != kept_capabilities.end();
}

} // namespace

Status confine_broker()
{
    TRY(check_syscall(::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)"));
    TRY(check_syscall(::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "prctl(PR_CAP_AMBIENT_CLEAR_ALL)"));
    for (int capability = 0; capability <= 63; ++capability) {
        if (kept(capability))
            continue;
        if (::prctl(PR_CAPBSET_DROP, capability, 0, 0, 0) < 0) {
            if (errno == EINVAL)
                break; // past the kernel's last capability
            return Error::from_syscall("prctl(PR_CAPBSET_DROP)", errno);
        }
    }
    __user_cap_header_struct header {_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] {};
    TRY(check_syscall(::syscall(SYS_capget, &header, data), "capget"));
    for (int capability = 0; capability < 32 * _LINUX_CAPABILITY_U32S_3; ++capability) {
        if (kept(capability))
            continue;
        uint32_t bit = 1U << (capability % 32);
        data[capability / 32].effective &= ~bit;
        data[capability / 32].permitted &= ~bit;
        data[capability / 32].inheritable &= ~bit;
    }
    TRY(check_syscall(::syscall(SYS_capset, &header, data), "capset"));
    return sandbox::SeccompProgram::prebuilt(sandbox::SeccompProfile::Broker).install();
}

} // namespace bulkhead::broker
