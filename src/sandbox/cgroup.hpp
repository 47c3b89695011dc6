// cgroup limits for compartments, on pure cgroup v2 hosts and on hybrid hosts whose memory, pids
// and cpu controllers are v1 hierarchies (/sys/fs/cgroup/<controller>). Compartment cgroups are
// always made below the cgroup the calling process runs in, never at a hierarchy's root.
#pragma once

#include "base/result.hpp"
#include "sandbox/spec.hpp"
#include "sys/fd.hpp"

#include <memory>
#include <string>
#include <sys/types.h>
#include <vector>

namespace bulkhead::sandbox {

enum class CgroupMode {
    V2,     // one unified hierarchy carries memory, pids, cpu
    Hybrid, // memory, pids, cpu are v1 hierarchies
};

// One limit file to write, in the hierarchy that carries `controller`. `optional` files are
// written only where the kernel offers them (swap accounting may be off).
struct CgroupSetting {
    std::string controller;
    std::string file;
    std::string value;
    bool optional = false;
};

// The files and values that express `limits` in the given layout, in the order they are written.
// Pure, so both layouts are checked on any host.
std::vector<CgroupSetting> limit_settings(CgroupMode mode, Limits const& limits);

class Cgroup {
public:
    virtual ~Cgroup() = default;
    // Writes the limits. Called before any process is in the cgroup.
    virtual Status apply(Limits const& limits) = 0;
    // Moves `pid` into the cgroup (every hierarchy on hybrid hosts).
    virtual Status add_process(pid_t pid) = 0;
    // v2: an O_DIRECTORY fd usable with CLONE_INTO_CGROUP; -1 where that does not apply.
    virtual int clone_into_fd() const = 0;
    // SIGKILLs every process in the cgroup.
    virtual Status kill_all() = 0;
    // Waits (bounded) for the cgroup to empty, then removes its directories. Idempotent.
    virtual Status remove() = 0;
    // One attempt, never waiting: kills what is still inside and removes the directories it can.
    // An error (EBUSY) while anything is left; call again later. Idempotent.
    virtual Status try_remove() = 0;
    // Current memory use in bytes.
    virtual Result<uint64_t> memory_current() const = 0;
    // How often a limit has bitten so far: processes killed for memory (memory.events / v1
    // memory.oom_control "oom_kill"), forks refused at the task limit (pids.events "max").
    struct LimitEvents {
        uint64_t oom_kills = 0;
        uint64_t pids_refused = 0;
    };
    virtual LimitEvents limit_events() const = 0;
    // Lets go of the cgroup without removing it (its compartment outlives this process).
    virtual void forget() = 0;
    // Whether `pid` is a member (checked in the first hierarchy).
    virtual Result<bool> contains(pid_t pid) const = 0;
    // Every directory this cgroup made (one per hierarchy): for tests and diagnostics.
    virtual std::vector<std::string> directories() const = 0;
};

class CgroupRoot {
public:
    // Detects the host's layout and makes `<own cgroup>/bulkhead.<instance>` in each hierarchy.
    // `instance` separates brokers running side by side: [A-Za-z0-9._-], 1..64 characters.
    static Result<std::unique_ptr<CgroupRoot>> open(std::string const& instance);
    // For tests: use a given v2 mount (e.g. /sys/fs/cgroup/unified on a hybrid host), and only the
    // controllers that it has.
    static Result<std::unique_ptr<CgroupRoot>> open_v2_at(std::string const& v2_mount, std::string const& instance);

    virtual ~CgroupRoot() = default;
    virtual CgroupMode mode() const = 0;
    // Makes the cgroup of one compartment. `name`: [A-Za-z0-9._-], 1..64 characters.
    virtual Result<std::unique_ptr<Cgroup>> create(std::string const& name) = 0;
    // Takes over the existing cgroup of a compartment that outlived its broker; an error if any of
    // its directories is missing.
    virtual Result<std::unique_ptr<Cgroup>> adopt(std::string const& name) = 0;
    // The bulkhead.<instance> directories (one per hierarchy).
    virtual std::vector<std::string> directories() const = 0;
    // Removes the bulkhead.<instance> directories if they are empty.
    virtual Status remove_if_empty() = 0;
};

} // namespace bulkhead::sandbox
