#include "sys/syscalls.hpp"

#include <ctime>

#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <linux/sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace bulkhead::sys {

namespace {

constexpr uint64_t resolve_strict = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

std::string_view strip_slashes(std::string_view path)
{
    while (!path.empty() && path.front() == '/')
        path.remove_prefix(1);
    while (!path.empty() && path.back() == '/')
        path.remove_suffix(1);
    return path;
}

} // namespace

Result<UniqueFd> open_beneath(int dirfd, std::string_view path, int flags, mode_t mode)
{
    std::string relative(strip_slashes(path));
    if (relative.empty())
        relative = ".";
    open_how how {};
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = resolve_strict;
    long fd = ::syscall(SYS_openat2, dirfd, relative.c_str(), &how, sizeof(how));
    if (fd < 0)
        return Error::from_syscall("openat2", relative, errno);
    return UniqueFd(static_cast<int>(fd));
}

std::string read_all(int fd)
{
    std::string out;
    char buffer[4096];
    for (;;) {
        ssize_t got = ::read(fd, buffer, sizeof(buffer));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0 || out.size() > (1 << 20))
            return out;
        out.append(buffer, static_cast<size_t>(got));
    }
}

Result<UniqueFd> open_path(std::string_view path, int flags, mode_t mode)
{
    std::string p(path);
    int fd = ::open(p.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0)
        return Error::from_syscall("open", p, errno);
    return UniqueFd(fd);
}

Result<UniqueFd> walk_dirs_beneath(int dirfd, std::string_view path, DirWalk const& how)
{
    UniqueFd current = TRY(open_beneath(dirfd, ".", O_PATH | O_DIRECTORY));
    std::string_view rest = strip_slashes(path);
    std::string walked;
    while (!rest.empty()) {
        size_t slash = rest.find('/');
        std::string component(rest.substr(0, slash));
        rest = slash == std::string_view::npos ? std::string_view {} : strip_slashes(rest.substr(slash));
        if (component == "." || component.empty())
            continue;
        if (component == "..")
            return Error::from_message("path '" + std::string(path) + "' contains '..'");
        walked += (walked.empty() ? "" : "/") + component;
        bool made = false;
        if (how.create) {
            made = ::mkdirat(current.get(), component.c_str(), how.mode) == 0;
            if (!made && errno != EEXIST)
                return Error::from_syscall("mkdirat", walked, errno);
        }
        auto next = open_beneath(current.get(), component, O_PATH | O_DIRECTORY);
        if (next.is_error()) {
            struct stat st {};
            if (::fstatat(current.get(), component.c_str(), &st, AT_SYMLINK_NOFOLLOW) < 0)
                return Error::from_message(walked + (errno == ENOENT ? " does not exist" : ": " + std::string(std::strerror(errno))));
            if (S_ISLNK(st.st_mode))
                return Error::from_message(walked + " is a symbolic link (never followed)");
            if (!S_ISDIR(st.st_mode))
                return Error::from_message(walked + " is not a folder");
            return next.release_error().with_context(walked);
        }
        current = next.release_value();
        // Through the descriptor of what was opened: whatever is at that name by now, never elsewhere.
        if (made && how.owner && ::fchownat(current.get(), "", *how.owner, *how.owner, AT_EMPTY_PATH) < 0)
            return Error::from_syscall("chown", walked, errno);
    }
    return current;
}

Result<UniqueFd> make_dirs_beneath(int dirfd, std::string_view path, mode_t mode)
{
    return walk_dirs_beneath(dirfd, path, {.create = true, .mode = mode, .owner = std::nullopt});
}

Status write_file_beneath(int dirfd, std::string_view path, std::string_view content, mode_t mode)
{
    UniqueFd fd = TRY(open_beneath(dirfd, path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, mode));
    while (!content.empty()) {
        ssize_t n = ::write(fd.get(), content.data(), content.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return Error::from_syscall("write", path, n < 0 ? errno : EIO);
        content.remove_prefix(static_cast<size_t>(n));
    }
    if (::fchmod(fd.get(), mode) < 0)
        return Error::from_syscall("fchmod", path, errno);
    return {};
}

Status write_file(std::string_view path, std::string_view content)
{
    UniqueFd fd = TRY(open_path(path, O_WRONLY));
    ssize_t n;
    do {
        n = ::write(fd.get(), content.data(), content.size());
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return Error::from_syscall("write", path, errno);
    if (static_cast<size_t>(n) != content.size())
        return Error::from_syscall("write", path, EIO);
    return {};
}

Result<std::string> read_file(std::string_view path, size_t limit)
{
    UniqueFd fd = TRY(open_path(path, O_RDONLY));
    std::string out;
    char buffer[4096];
    while (out.size() < limit) {
        ssize_t n = ::read(fd.get(), buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return Error::from_syscall("read", path, errno);
        if (n == 0)
            break;
        out.append(buffer, static_cast<size_t>(n));
    }
    if (out.size() > limit)
        out.resize(limit);
    return out;
}

namespace {

Status remove_tree_at(int dirfd, char const* name)
{
    int fd = ::openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOTDIR || errno == ELOOP) {
            if (::unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
                return Error::from_syscall("unlinkat", name, errno);
            return {};
        }
        if (errno == ENOENT)
            return {};
        return Error::from_syscall("openat", name, errno);
    }
    DIR* dir = ::fdopendir(fd);
    if (dir == nullptr) {
        int err = errno;
        ::close(fd);
        return Error::from_syscall("fdopendir", name, err);
    }
    Status status;
    while (dirent* entry = ::readdir(dir)) {
        if (std::strcmp(entry->d_name, ".") == 0 || std::strcmp(entry->d_name, "..") == 0)
            continue;
        if (entry->d_type == DT_DIR) {
            status = remove_tree_at(::dirfd(dir), entry->d_name);
        } else if (::unlinkat(::dirfd(dir), entry->d_name, 0) < 0 && errno != ENOENT) {
            status = Error::from_syscall("unlinkat", entry->d_name, errno);
        }
        if (status.is_error())
            break;
    }
    ::closedir(dir);
    if (status.is_error())
        return status;
    if (::unlinkat(dirfd, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return Error::from_syscall("rmdir", name, errno);
    return {};
}

} // namespace

Status remove_tree(std::string_view path)
{
    std::string p(path);
    return remove_tree_at(AT_FDCWD, p.c_str());
}

Result<pid_t> clone3(Clone3Args const& args)
{
    int pidfd = -1;
    clone_args cl {};
    cl.flags = args.flags;
    cl.exit_signal = SIGCHLD;
    if (args.flags & CLONE_PIDFD)
        cl.pidfd = reinterpret_cast<uint64_t>(&pidfd);
    if (args.flags & CLONE_INTO_CGROUP)
        cl.cgroup = static_cast<uint64_t>(args.cgroup_fd);
    long pid = ::syscall(SYS_clone3, &cl, sizeof(cl));
    if (pid < 0)
        return Error::from_syscall("clone3", errno);
    if (pid > 0 && args.pidfd_out != nullptr)
        args.pidfd_out->reset(pidfd);
    return static_cast<pid_t>(pid);
}

Result<UniqueFd> pidfd_open(pid_t pid)
{
    long fd = ::syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return Error::from_syscall("pidfd_open", errno);
    return UniqueFd(static_cast<int>(fd));
}

Status pidfd_send_signal(int pidfd, int signal)
{
    return check_syscall(::syscall(SYS_pidfd_send_signal, pidfd, signal, nullptr, 0), "pidfd_send_signal");
}

Status close_fds_except(int from, std::span<int const> keep)
{
    unsigned int next = static_cast<unsigned int>(from);
    for (int fd : keep) {
        if (fd < from)
            continue;
        if (static_cast<unsigned int>(fd) > next)
            TRY(check_syscall(::syscall(SYS_close_range, next, static_cast<unsigned int>(fd) - 1, 0), "close_range"));
        next = static_cast<unsigned int>(fd) + 1;
    }
    return check_syscall(::syscall(SYS_close_range, next, ~0U, 0), "close_range");
}

Result<UniqueFd> fsopen(char const* fs_name)
{
    long fd = ::syscall(SYS_fsopen, fs_name, FSOPEN_CLOEXEC);
    if (fd < 0)
        return Error::from_syscall("fsopen", fs_name, errno);
    return UniqueFd(static_cast<int>(fd));
}

Status fsconfig_string(int fsfd, char const* key, char const* value)
{
    if (::syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_STRING, key, value, 0) < 0)
        return Error::from_syscall("fsconfig", key, errno);
    return {};
}

Status fsconfig_flag(int fsfd, char const* key)
{
    if (::syscall(SYS_fsconfig, fsfd, FSCONFIG_SET_FLAG, key, nullptr, 0) < 0)
        return Error::from_syscall("fsconfig", key, errno);
    return {};
}

Status fsconfig_create(int fsfd)
{
    return check_syscall(::syscall(SYS_fsconfig, fsfd, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0), "fsconfig create");
}

Result<UniqueFd> fsmount(int fsfd, uint64_t attr_flags)
{
    long fd = ::syscall(SYS_fsmount, fsfd, FSMOUNT_CLOEXEC, attr_flags);
    if (fd < 0)
        return Error::from_syscall("fsmount", errno);
    return UniqueFd(static_cast<int>(fd));
}

Result<UniqueFd> clone_tree(int dirfd, std::string_view path)
{
    std::string p(path);
    unsigned flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | (p.empty() ? AT_EMPTY_PATH : 0);
    long fd = ::syscall(SYS_open_tree, dirfd, p.c_str(), flags);
    if (fd < 0)
        return Error::from_syscall("open_tree", p, errno);
    return UniqueFd(static_cast<int>(fd));
}

Status move_mount_fd(int from, int to)
{
    return check_syscall(::syscall(SYS_move_mount, from, "", to, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH),
        "move_mount");
}

Status move_mount_to_path(int from, std::string_view path)
{
    std::string p(path);
    if (::syscall(SYS_move_mount, from, "", AT_FDCWD, p.c_str(), MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return Error::from_syscall("move_mount", p, errno);
    return {};
}

Status mount_setattr_fd(int fd, uint64_t set, uint64_t clear, Recursive recursive)
{
    mount_attr attr {};
    attr.attr_set = set;
    attr.attr_clr = clear;
    unsigned flags = AT_EMPTY_PATH | (recursive == Recursive::Yes ? AT_RECURSIVE : 0);
    return check_syscall(::syscall(SYS_mount_setattr, fd, "", flags, &attr, sizeof(attr)), "mount_setattr");
}

Status mount_setattr_idmap(int fd, int userns_fd, Recursive recursive)
{
    mount_attr attr {};
    attr.attr_set = MOUNT_ATTR_IDMAP;
    attr.userns_fd = static_cast<uint64_t>(userns_fd);
    unsigned flags = AT_EMPTY_PATH | (recursive == Recursive::Yes ? AT_RECURSIVE : 0);
    return check_syscall(::syscall(SYS_mount_setattr, fd, "", flags, &attr, sizeof(attr)), "mount_setattr(MOUNT_ATTR_IDMAP)");
}

Status pivot_root_here()
{
    TRY(check_syscall(::syscall(SYS_pivot_root, ".", "."), "pivot_root"));
    // The old root now sits on top of the new one at "."; detach it so nothing of the host stays reachable.
    TRY(check_syscall(::umount2(".", MNT_DETACH), "umount2 old root"));
    return check_syscall(::chdir("/"), "chdir /");
}

int64_t monotonic_ms()
{
    timespec now {};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<int64_t>(now.tv_sec) * 1000 + now.tv_nsec / 1000000;
}

Result<std::vector<std::string>> list_directory(std::string const& dir)
{
    DIR* handle = ::opendir(dir.c_str());
    if (handle == nullptr)
        return Error::from_syscall("opendir", dir, errno);
    std::vector<std::string> names;
    while (dirent* entry = ::readdir(handle)) {
        std::string name = entry->d_name;
        if (name != "." && name != "..")
            names.push_back(name);
    }
    ::closedir(handle);
    return names;
}

Result<UniqueFd> sealed_memfd(char const* name, std::string_view content)
{
    UniqueFd fd(::memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING));
    if (!fd)
        return Error::from_syscall("memfd_create", errno);
    while (!content.empty()) {
        ssize_t n = ::write(fd.get(), content.data(), content.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return Error::from_syscall("write", "memfd", n < 0 ? errno : EIO);
        content.remove_prefix(static_cast<size_t>(n));
    }
    if (::lseek(fd.get(), 0, SEEK_SET) < 0)
        return Error::from_syscall("lseek", errno);
    if (::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
        return Error::from_syscall("fcntl(F_ADD_SEALS)", errno);
    return fd;
}

} // namespace bulkhead::sys
