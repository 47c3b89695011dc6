// A running compartment built by the sandbox engine, and the handle to wait on, signal and tear it
// down. Destroying the handle kills everything inside and removes every mount, cgroup and scratch
// directory made for it.
#pragma once

#include "base/result.hpp"
#include "sandbox/cgroup.hpp"
#include "sandbox/spec.hpp"
#include "sys/fd.hpp"

#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

namespace bulkhead::sandbox {

class SeccompProgram;

// The host-side context the engine needs: where to make cgroups, which compiled seccomp
// program to install. Passed in explicitly; the engine keeps no global state.
struct Engine {
    CgroupRoot* cgroups = nullptr;          // required
    SeccompProgram const* seccomp = nullptr; // required
};

struct ExitStatus {
    int code = 0;       // exit code, or 128 + signal
    bool signaled = false;
    int signal = 0;
};

class Compartment {
public:
    static Result<Compartment> create(Engine const& engine, Spec const& spec);
    // Takes over a compartment that outlived the process that created it (a broker restart):
    // `pid` must still be the PID 1 inside the cgroup of `name`.
    static Result<Compartment> adopt(Engine const& engine, std::string const& name, pid_t pid, std::string const& runtime_dir);

    Compartment(Compartment&&) noexcept;
    Compartment& operator=(Compartment&&) noexcept;
    ~Compartment();

    pid_t pid() const { return m_pid; }  // host pid of the compartment's PID 1
    int pidfd() const { return m_pidfd.get(); }
    Cgroup const& cgroup() const { return *m_cgroup; }
    // The cgroup directories (empty once destroyed).
    std::vector<std::string> cgroup_directories() const { return m_cgroup ? m_cgroup->directories() : std::vector<std::string>(); }
    // Takes the cgroup out of the compartment: destroy() then leaves its removal to the caller
    // (the broker retries it from its event loop instead of waiting). cgroup() is not to be used after.
    std::unique_ptr<Cgroup> release_cgroup() { return std::move(m_cgroup); }
    std::string const& runtime_dir() const { return m_runtime_dir; }

    // Blocks until PID 1 exits; the status is the command's (PID 1 passes it on).
    Result<ExitStatus> wait();
    Status signal(int sig);
    // SIGKILL everything, reap, remove cgroups and the runtime directory. Idempotent.
    Status destroy();
    // Lets go of the compartment and leaves it running (a broker that exits; the next one adopts it).
    void detach();

private:
    Compartment() = default;
    sys::UniqueFd m_pidfd;
    pid_t m_pid = -1;
    bool m_reaped = false;
    ExitStatus m_status;
    std::unique_ptr<Cgroup> m_cgroup;
    std::string m_runtime_dir;
    sys::UniqueFd m_sync; // PID 1 reports the command's exact wait status here
};

} // namespace bulkhead::sandbox
