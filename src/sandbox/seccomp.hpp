// The seccomp-bpf allowlist every compartment process runs under. Built with libseccomp once per
// profile, kept as a compiled BPF program, and installed in each new compartment with one
// seccomp() call: no libseccomp work on the start path.
#pragma once

#include "base/result.hpp"

#include <linux/filter.h>
#include <vector>

namespace bulkhead::sandbox {

enum class SeccompProfile {
    Default, // the compartment payload: default deny (EPERM), allowlist of ordinary syscalls
    Broker,  // the broker and its helpers: default allow, EPERM for what a broker never needs
};

class SeccompProgram {
public:
    // Builds the profile with libseccomp (library bulkhead_seccomp_compiler). Used at build time
    // to generate the prebuilt programs, and by tests.
    static Result<SeccompProgram> compile(SeccompProfile profile);

    // The program compile() produced when bulkhead was built, embedded in the binary: starting a
    // compartment costs no libseccomp work, and the bulkhead binary does not load libseccomp.
    // tests/unit/seccomp_test.cpp checks it equals compile() instruction for instruction.
    static SeccompProgram prebuilt(SeccompProfile profile);

    // Installs the program on the calling thread. Requires no_new_privs (or CAP_SYS_ADMIN).
    // Async-signal-safe: makes one system call and allocates nothing.
    Status install() const;

    size_t instruction_count() const { return m_program.size(); }
    std::vector<sock_filter> const& instructions() const { return m_program; }

private:
    std::vector<sock_filter> m_program;
};

} // namespace bulkhead::sandbox
