// The prebuilt seccomp programs and their installation: no libseccomp at run time.
#include "sandbox/seccomp.hpp"

#include <cerrno>
#include <iterator>
#include <linux/seccomp.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace bulkhead::sandbox {

namespace {

// Generated at build time by bulkhead_seccomp_gen from SeccompProgram::compile(Default).
constexpr sock_filter default_program[] = {
#include "seccomp_default.inc"
};

constexpr sock_filter broker_program[] = {
#include "seccomp_broker.inc"
};

} // namespace

SeccompProgram SeccompProgram::prebuilt(SeccompProfile profile)
{
    SeccompProgram program;
    switch (profile) {
    case SeccompProfile::Default:
        program.m_program.assign(std::begin(default_program), std::end(default_program));
        break;
    case SeccompProfile::Broker:
        program.m_program.assign(std::begin(broker_program), std::end(broker_program));
        break;
    }
    return program;
}

Status SeccompProgram::install() const
{
    sock_fprog prog {};
    prog.len = static_cast<unsigned short>(m_program.size());
    prog.filter = const_cast<sock_filter*>(m_program.data());
    if (::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
        return Error::from_syscall("seccomp", errno);
    return {};
}

} // namespace bulkhead::sandbox
