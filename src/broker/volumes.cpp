#include "broker/volumes.hpp"

#include "base/parse.hpp"
#include "sys/syscalls.hpp"

#include <cerrno>
#include <dirent.h>
#include <fcntl.h>
#include <string_view>
#include <sys/stat.h>
#include <unistd.h>

namespace bulkhead::broker {

using sys::UniqueFd;

namespace {

constexpr char marker_name[] = ".neutral-owner";
// Deeper folders are left as they are (and counted): each level holds a descriptor.
constexpr int max_depth = 256;

void give_to_owner(int dir_fd, char const* name, struct stat const& st, Conversion& result)
{
    if (st.st_uid == volume_owner_id && st.st_gid == volume_owner_id)
        return;
    if (::fchownat(dir_fd, name, volume_owner_id, volume_owner_id, AT_SYMLINK_NOFOLLOW) == 0)
        ++result.changed;
}

// Every entry of the folder `dir_fd` (owned by the caller), depth first; never follows a link: a
// folder is entered through openat(O_NOFOLLOW|O_DIRECTORY) relative to its parent's descriptor.
Status convert_folder(UniqueFd dir_fd, int depth, Conversion& result)
{
    DIR* dir = ::fdopendir(dir_fd.get());
    if (dir == nullptr)
        return Error::from_syscall("fdopendir", errno);
    (void)dir_fd.release();
    struct Closer {
        DIR* dir;
        ~Closer() { ::closedir(dir); }
    } closer {dir};
    int const fd = ::dirfd(dir);
    while (dirent const* entry = ::readdir(dir)) {
        std::string_view name = entry->d_name;
        if (name == "." || name == ".." || (depth == 0 && name == marker_name))
            continue;
        struct stat st {};
        if (::fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
            continue; // gone meanwhile
        give_to_owner(fd, entry->d_name, st, result);
        if (!S_ISDIR(st.st_mode))
            continue;
        if (depth + 1 >= max_depth) {
            ++result.too_deep;
            continue;
        }
        int child = ::openat(fd, entry->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (child < 0)
            continue; // replaced by a link or removed meanwhile
        TRY(convert_folder(UniqueFd(child), depth + 1, result));
    }
    return {};
}

} // namespace

std::string volume_path_problem(std::string const& relative)
{
    if (relative.empty())
        return "is empty";
    if (relative.front() == '/')
        return "must be relative to the volume";
    if (relative.size() > 1024)
        return "is longer than 1024 bytes";
    for (auto const part : split(relative, '/')) {
        if (part.empty())
            return "has an empty component";
        if (part == "." || part == "..")
            return "must not contain '.' or '..'";
        for (unsigned char c : part)
            if (c < 0x20 || c == 0x7f)
                return "has a control character";
    }
    return {};
}

Result<UniqueFd> volume_folder(int volumes_fd, std::string const& relative, bool create)
{
    if (auto problem = volume_path_problem(relative); !problem.empty())
        return Error::from_message("volume path '" + relative + "' " + problem);
    return sys::walk_dirs_beneath(volumes_fd, relative, {.create = create, .mode = 0700, .owner = volume_owner_id});
}

Result<Conversion> convert_volumes(int volumes_fd)
{
    Conversion result;
    struct stat st {};
    if (::fstatat(volumes_fd, marker_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        result.done_before = true;
        return result;
    }
    int dir = ::openat(volumes_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        return Error::from_syscall("open", "volumes", errno);
    TRY_CTX(convert_folder(UniqueFd(dir), 0, result), "giving the volumes to their neutral owner");
    UniqueFd marker = TRY(sys::open_beneath(volumes_fd, marker_name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    std::string const text = "files here belong to uid and gid " + std::to_string(volume_owner_id) + "\n";
    if (::write(marker.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
        return Error::from_syscall("write", marker_name, errno);
    TRY(check_syscall(::fsync(marker.get()), "fsync volumes marker"));
    return result;
}

} // namespace bulkhead::broker
