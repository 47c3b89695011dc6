#include "sandbox/landlock.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace bulkhead::sandbox {

namespace {

// Debian 12's headers stop at ABI 2; the kernel ABI is stable, so the values are spelled out here.
constexpr uint64_t fs_execute = 1ULL << 0;
constexpr uint64_t fs_write_file = 1ULL << 1;
constexpr uint64_t fs_read_file = 1ULL << 2;
constexpr uint64_t fs_read_dir = 1ULL << 3;
constexpr uint64_t fs_remove_dir = 1ULL << 4;
constexpr uint64_t fs_remove_file = 1ULL << 5;
constexpr uint64_t fs_make_char = 1ULL << 6;
constexpr uint64_t fs_make_dir = 1ULL << 7;
constexpr uint64_t fs_make_reg = 1ULL << 8;
constexpr uint64_t fs_make_sock = 1ULL << 9;
constexpr uint64_t fs_make_fifo = 1ULL << 10;
constexpr uint64_t fs_make_block = 1ULL << 11;
constexpr uint64_t fs_make_sym = 1ULL << 12;
constexpr uint64_t fs_refer = 1ULL << 13;    // ABI 2
constexpr uint64_t fs_truncate = 1ULL << 14; // ABI 3
constexpr uint64_t fs_ioctl_dev = 1ULL << 15; // ABI 5
constexpr uint64_t scope_abstract_unix = 1ULL << 0; // ABI 6
constexpr uint64_t scope_signal = 1ULL << 1;        // ABI 6

constexpr uint64_t file_rights = fs_execute | fs_write_file | fs_read_file | fs_truncate | fs_ioctl_dev;

struct RulesetAttr {
    uint64_t handled_access_fs;
    uint64_t handled_access_net;
    uint64_t scoped;
};

struct PathBeneathAttr {
    uint64_t allowed_access;
    int32_t parent_fd;
} __attribute__((packed));

constexpr int rule_path_beneath = 1;
constexpr unsigned create_ruleset_version = 1U << 0;

uint64_t handled_for_abi(int abi)
{
    uint64_t handled = fs_execute | fs_write_file | fs_read_file | fs_read_dir | fs_remove_dir | fs_remove_file
        | fs_make_char | fs_make_dir | fs_make_reg | fs_make_sock | fs_make_fifo | fs_make_block | fs_make_sym;
    if (abi >= 2)
        handled |= fs_refer;
    if (abi >= 3)
        handled |= fs_truncate;
    if (abi >= 5)
        handled |= fs_ioctl_dev;
    return handled;
}

uint64_t rights_for(LandlockAccess access)
{
    uint64_t read_exec = fs_execute | fs_read_file | fs_read_dir;
    switch (access) {
    case LandlockAccess::ReadExec:
        return read_exec;
    case LandlockAccess::ReadWrite:
        // Device nodes cannot be made without capabilities anyway; never grant it.
        return read_exec | fs_write_file | fs_remove_dir | fs_remove_file | fs_make_dir | fs_make_reg | fs_make_sock
            | fs_make_fifo | fs_make_sym | fs_refer | fs_truncate;
    case LandlockAccess::Device:
        return fs_read_file | fs_read_dir | fs_write_file | fs_ioctl_dev | fs_truncate;
    }
    return 0;
}

} // namespace

int landlock_abi()
{
    long abi = ::syscall(SYS_landlock_create_ruleset, nullptr, 0, create_ruleset_version);
    return abi < 0 ? 0 : static_cast<int>(abi);
}

std::vector<LandlockPath> landlock_paths_for(Spec const& spec)
{
    std::vector<LandlockPath> paths = {
        {"/", LandlockAccess::ReadExec},
        {"/home/user", LandlockAccess::ReadWrite},
        {"/root", LandlockAccess::ReadWrite},
        {"/tmp", LandlockAccess::ReadWrite},
        {"/run", LandlockAccess::ReadWrite},
        {"/dev/shm", LandlockAccess::ReadWrite},
        {"/dev/mqueue", LandlockAccess::ReadWrite},
        {"/dev/pts", LandlockAccess::Device},
        {"/dev/null", LandlockAccess::Device},
        {"/dev/zero", LandlockAccess::Device},
        {"/dev/full", LandlockAccess::Device},
        {"/dev/random", LandlockAccess::Device},
        {"/dev/urandom", LandlockAccess::Device},
        {"/dev/tty", LandlockAccess::Device},
        // Programs write /proc/self/{oom_score_adj,comm,...}; the dangerous files are masked or read-only mounts.
        {"/proc", LandlockAccess::Device},
    };
    for (auto const& bind : spec.binds) {
        if (bind.mode == AccessMode::ReadWrite)
            paths.push_back({bind.target, LandlockAccess::ReadWrite});
    }
    return paths;
}

Result<sys::UniqueFd> landlock_prepare(std::vector<LandlockPath> const& paths)
{
    int abi = landlock_abi();
    if (abi <= 0)
        return sys::UniqueFd();
    uint64_t handled = handled_for_abi(abi);
    RulesetAttr attr {};
    attr.handled_access_fs = handled;
    if (abi >= 6)
        attr.scoped = scope_abstract_unix | scope_signal;
    size_t attr_size = abi >= 6 ? sizeof(RulesetAttr) : abi >= 4 ? 2 * sizeof(uint64_t) : sizeof(uint64_t);
    long fd = ::syscall(SYS_landlock_create_ruleset, &attr, attr_size, 0);
    if (fd < 0)
        return Error::from_syscall("landlock_create_ruleset", errno);
    sys::UniqueFd ruleset(static_cast<int>(fd));

    for (auto const& entry : paths) {
        int path_fd = ::open(entry.path.c_str(), O_PATH | O_CLOEXEC);
        if (path_fd < 0) {
            if (errno == ENOENT)
                continue;
            return Error::from_syscall("open", entry.path, errno);
        }
        sys::UniqueFd guard(path_fd);
        struct stat st {};
        if (::fstat(path_fd, &st) < 0)
            return Error::from_syscall("fstat", entry.path, errno);
        uint64_t allowed = rights_for(entry.access) & handled;
        if (!S_ISDIR(st.st_mode))
            allowed &= file_rights;
        PathBeneathAttr rule {allowed, path_fd};
        if (::syscall(SYS_landlock_add_rule, ruleset.get(), rule_path_beneath, &rule, 0) < 0)
            return Error::from_syscall("landlock_add_rule", entry.path, errno);
    }
    return ruleset;
}

Status landlock_enforce(int ruleset_fd)
{
    if (ruleset_fd < 0)
        return {};
    return check_syscall(::syscall(SYS_landlock_restrict_self, ruleset_fd, 0), "landlock_restrict_self");
}

} // namespace bulkhead::sandbox
