// What a compartment is made of. A Spec is plain data: validate() checks all of it before any
// kernel state is touched, and Compartment::create() builds exactly what it describes.
#pragma once

#include "base/result.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace bulkhead::sandbox {

// Each compartment owns a distinct block of this many host uids and gids.
inline constexpr uint32_t id_range_size = 65536;
// Inside every compartment: root is 0, the ordinary user is 1000.
inline constexpr uid_t inside_user_id = 1000;

enum class TemplateKind {
    Host,   // the host's /usr (and merged-/usr links), read-only
    Rootfs, // a directory holding a whole root filesystem, read-only
};

struct Template {
    TemplateKind kind = TemplateKind::Host;
    std::string root = "/"; // for Host always "/"
};

enum class AccessMode { ReadOnly, ReadWrite };

// An idmapped bind (mount_setattr MOUNT_ATTR_IDMAP): files owned on disk by `on_disk` (uid and gid)
// appear as the host id `host` (a compartment's user), and what `host` creates there belongs to
// `on_disk`. No other id is mapped: files of other owners appear as the overflow id, and a process
// of any other id (root inside included) cannot create files or change owners there.
struct IdMap {
    uid_t on_disk = 0;
    uid_t host = 0;
};

struct Bind {
    std::string source; // absolute host path; must exist
    std::string target; // absolute path inside the compartment
    AccessMode mode = AccessMode::ReadOnly;
    // For a source beneath a place a compartment can write: a directory of `source`'s own, whose path
    // no compartment controls (e.g. STATE). The part of `source` below it is then walked from it
    // without following any link or leaving it (openat2 RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS), in the
    // compartment's own mount namespace, and the bind is made from what that walk found.
    std::string beneath;
    std::optional<IdMap> idmap; // the bind is idmapped (made by the host side, before the clone)
};

// The least memory limit a compartment starts with; 0 means no limit.
constexpr uint64_t min_memory_bytes = 4ULL << 20;

struct Limits {
    uint64_t memory_bytes = 0; // 0 = no limit
    uint64_t pids = 0;         // 0 = no limit
    uint32_t cpu_millis = 0;   // 1000 = one CPU; 0 = no limit
    uint64_t tmp_bytes = 64ULL << 20;   // size of /tmp, /run, /dev/shm tmpfs each
    uint64_t open_files = 8192;         // RLIMIT_NOFILE (the agent holds a descriptor per running command)
};

enum class RunAs { User, Root };

// Injection points for tests: Compartment::create fails at this step as if the step had failed,
// so tests can show that nothing is left behind from any point of setup.
enum class SetupStep {
    None,
    RuntimeDir,
    Cgroup,
    Clone,
    IdMap,
    Mounts,
    PivotRoot,
    Landlock,
    Seccomp,
    Exec,
};

struct Spec {
    std::string name;          // used for cgroup and runtime directory names; [a-z0-9-], 1..64
    Template templ;
    std::string hostname;      // defaults to name
    uid_t host_id_base = 0;    // first host uid/gid of this compartment's 65536-id block
    std::vector<Bind> binds;   // extra binds (volumes, tools); applied after the root is built
    std::optional<std::string> home_source; // host dir bound rw at /home/user; else a scratch tmpfs
    std::string home_beneath;      // as Bind::beneath, for home_source
    Limits limits;
    RunAs run_as = RunAs::User;
    std::vector<std::string> argv; // the command, run by a PID 1 of the engine's (no agent)
    // Borrowed: an executable (the agent) that PID 1 becomes instead of running `argv`. It starts
    // as root inside with the capabilities of the compartment's user namespace, no_new_privs and
    // the seccomp filter in force, fd 3 the setup socket (it sends "ok" there) and fd 4 the
    // Landlock ruleset to enforce on itself (absent without Landlock).
    int agent_fd = -1;
    std::vector<std::string> env;  // the whole environment, "KEY=VALUE"
    std::string cwd;               // defaults to /home/user (User) or / (Root)
    int stdin_fd = -1;             // borrowed; -1 = /dev/null
    int stdout_fd = -1;
    int stderr_fd = -1;
    std::string runtime_dir;       // host dir under which a per-compartment scratch dir is made
    bool die_with_parent = true;   // SIGKILL the compartment if the creating process dies
    SetupStep fail_at = SetupStep::None;
};

// Checks every field; the error names the field ("binds[1].source: /x does not exist").
// Touches the filesystem only to stat() the paths the spec names.
Status validate(Spec const& spec);

// Default environment for a command inside: HOME, USER, PATH, LANG, BULKHEAD_COMPARTMENT.
std::vector<std::string> default_environment(Spec const& spec);

} // namespace bulkhead::sandbox
