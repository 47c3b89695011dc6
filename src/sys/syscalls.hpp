// Thin wrappers around the system calls bulkhead needs that glibc (2.36) does not wrap, or wraps
// without Result. Each returns Result and names the failing call. No policy lives here.
#pragma once

#include "base/result.hpp"
#include "sys/fd.hpp"

#include <cstdint>
#include <sys/mount.h>
#include <signal.h>
#include <span>
#include <string>
#include <string_view>
#include <vector>
#include <optional>
#include <sys/types.h>

namespace bulkhead::sys {

// ---- files ----
// openat2 with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS: `path` is resolved
// strictly inside `dirfd`, never through a link. `flags` always gains O_CLOEXEC.
Result<UniqueFd> open_beneath(int dirfd, std::string_view path, int flags, mode_t mode = 0);
Result<UniqueFd> open_path(std::string_view path, int flags, mode_t mode = 0);
// Reads a descriptor (a pipe from a helper) to its end, at most about 1 MiB; errors end it too.
std::string read_all(int fd);
// Walks `path` below dirfd one folder at a time, never following a link or leaving dirfd; returns
// an O_PATH fd of the last. With `create`, missing folders are made with `mode` and, with `owner`,
// given to it (uid and gid) through their own descriptor. Errors name the component: "a/b does not
// exist", "a/b is a symbolic link (never followed)", "a/b is not a folder".
struct DirWalk {
    bool create = true;
    mode_t mode = 0755;
    std::optional<uid_t> owner;
};
Result<UniqueFd> walk_dirs_beneath(int dirfd, std::string_view path, DirWalk const& how);
// mkdir every component of `path` below dirfd (no links followed); returns an O_PATH fd of the last.
Result<UniqueFd> make_dirs_beneath(int dirfd, std::string_view path, mode_t mode);
// Creates (or truncates an existing regular) file below dirfd and writes `content`.
Status write_file_beneath(int dirfd, std::string_view path, std::string_view content, mode_t mode);
// Writes `content` to an existing file (e.g. under /proc or /sys) in one write().
Status write_file(std::string_view path, std::string_view content);
Result<std::string> read_file(std::string_view path, size_t limit = 1 << 20);
// The names in `dir`, without "." and "..", in no particular order.
Result<std::vector<std::string>> list_directory(std::string const& dir);
// A memfd holding `content`, sealed against any change (write, grow, shrink, further seals).
Result<UniqueFd> sealed_memfd(char const* name, std::string_view content);
// Removes a directory tree without following links (used for scratch directories we created).
Status remove_tree(std::string_view path);

// ---- time ----
// CLOCK_MONOTONIC in milliseconds: for deadlines and rates, never for dates.
int64_t monotonic_ms();

// ---- processes ----
struct Clone3Args {
    uint64_t flags = 0;
    UniqueFd* pidfd_out = nullptr; // filled if CLONE_PIDFD is in flags
    int cgroup_fd = -1;            // used with CLONE_INTO_CGROUP
};
// Returns 0 in the child, the child's pid in the parent.
Result<pid_t> clone3(Clone3Args const& args);
Result<UniqueFd> pidfd_open(pid_t pid);
Status pidfd_send_signal(int pidfd, int signal);
// Closes every fd >= `from` except those listed (which must be sorted ascending).
Status close_fds_except(int from, std::span<int const> keep);

// ---- the fd-based mount API ----
Result<UniqueFd> fsopen(char const* fs_name);
Status fsconfig_string(int fsfd, char const* key, char const* value);
Status fsconfig_flag(int fsfd, char const* key);
Status fsconfig_create(int fsfd);
Result<UniqueFd> fsmount(int fsfd, uint64_t attr_flags);
// open_tree(OPEN_TREE_CLONE | AT_RECURSIVE): a detached copy of the mount tree at `path`
// (relative to dirfd; an empty path means dirfd itself).
Result<UniqueFd> clone_tree(int dirfd, std::string_view path);
// Attaches the detached mount `from` onto the object `to` (an O_PATH fd), both given as fds.
Status move_mount_fd(int from, int to);
Status move_mount_to_path(int from, std::string_view path);
// Sets and clears MOUNT_ATTR_* on the mount at `fd` (recursively when `recursive`).
enum class Recursive { No, Yes };
Status mount_setattr_fd(int fd, uint64_t set, uint64_t clear, Recursive recursive);
// mount_setattr(MOUNT_ATTR_IDMAP) of a detached mount with the mapping of the user namespace `userns_fd`.
Status mount_setattr_idmap(int fd, int userns_fd, Recursive recursive);
Status pivot_root_here();

} // namespace bulkhead::sys
