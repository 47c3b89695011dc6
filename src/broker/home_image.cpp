// Persistent homes as ext4 images (issue 13, item 5: `disk`): STATE/compartments/NAME/home.img, a
// sparse file of the compartment's `disk` size, formatted with its user as the root's owner, on a
// loop device that detaches itself, mounted (nosuid, nodev) at RUN/homes/NAME while it runs and
// bound from there as its home. A full home is ENOSPC inside and nothing outside: the host's
// filesystem only ever holds what was written, up to `disk`. A home from before images (a plain
// directory) is copied in once and kept beside, renamed.
#include "broker/broker.hpp"

#include "base/parse.hpp"
#include "sys/loop.hpp"
#include "sys/syscalls.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bulkhead::broker {

namespace {

// Runs a program of e2fsprogs or coreutils to its end; its output goes to the broker's log.
Status run_tool(std::vector<std::string> const& argv)
{
    pid_t pid = ::fork();
    if (pid < 0)
        return Error::from_syscall("fork", errno);
    if (pid == 0) {
        int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (null >= 0)
            ::dup2(null, 0);
        ::dup2(2, 1);
        std::vector<char*> args;
        for (auto const& arg : argv)
            args.push_back(const_cast<char*>(arg.c_str()));
        args.push_back(nullptr);
        char const* envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C", nullptr};
        ::execve(argv[0].c_str(), args.data(), const_cast<char* const*>(envp));
        ::_exit(127);
    }
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return Error::from_message(argv[0] + " failed (" + (WIFEXITED(status) ? "exit " + std::to_string(WEXITSTATUS(status))
                                                                                 : "signal " + std::to_string(WTERMSIG(status)))
                                   + ")");
    return {};
}

std::string first_of(std::initializer_list<char const*> paths)
{
    for (char const* path : paths)
        if (::access(path, X_OK) == 0)
            return path;
    return *paths.begin();
}

bool is_mount_point(std::string const& path)
{
    struct stat here {}, parent {};
    return ::stat(path.c_str(), &here) == 0 && ::stat((path + "/..").c_str(), &parent) == 0 && here.st_dev != parent.st_dev;
}

} // namespace

std::string Broker::home_mount_point(std::string const& name) const
{
    return m_paths.run + "/homes/" + name;
}

Result<std::string> Broker::mount_home_image(config::Compartment const& settings, uid_t user)
{
    std::string const& name = settings.name;
    uint64_t size = settings.disk_bytes != 0 ? settings.disk_bytes : config::default_disk_bytes;
    std::string dir = m_paths.state + "/compartments/" + name;
    std::string image = dir + "/home.img";
    std::string mount_point = home_mount_point(name);
    TRY(sys::make_dirs_beneath(m_state_dir.get(), "compartments/" + name, 0700));
    if (::mkdir((m_paths.run + "/homes").c_str(), 0700) < 0 && errno != EEXIST)
        return Error::from_syscall("mkdir", m_paths.run + "/homes", errno);
    if (::mkdir(mount_point.c_str(), 0700) < 0 && errno != EEXIST)
        return Error::from_syscall("mkdir", mount_point, errno);
    if (is_mount_point(mount_point))
        (void)::umount2(mount_point.c_str(), MNT_DETACH); // a stale mount from a broker that died mid-stop

    bool made = false;
    sys::UniqueFd file(::open(image.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW));
    if (!file && errno == ENOENT) {
        file = sys::UniqueFd(::open(image.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
        if (!file)
            return Error::from_syscall("creating", image, errno);
        if (::ftruncate(file.get(), static_cast<off_t>(size)) < 0) {
            int error = errno;
            ::unlink(image.c_str());
            return Error::from_syscall("ftruncate", image, error);
        }
        std::string owner = std::to_string(user) + ":" + std::to_string(user);
        auto formatted = run_tool({first_of({"/usr/sbin/mkfs.ext4", "/sbin/mkfs.ext4"}), "-q", "-F", "-m", "0", "-E",
                                   "root_owner=" + owner + ",lazy_itable_init=1,lazy_journal_init=1", image});
        if (formatted.is_error()) {
            ::unlink(image.c_str());
            return formatted.release_error().with_context("formatting the home image of " + name);
        }
        made = true;
    } else if (!file) {
        return Error::from_syscall("open", image, errno);
    } else {
        // A larger `disk` grows the image (and its filesystem); a smaller one is not applied.
        struct stat info {};
        if (::fstat(file.get(), &info) == 0 && static_cast<uint64_t>(info.st_size) < size) {
            TRY(check_syscall(::ftruncate(file.get(), static_cast<off_t>(size)), "ftruncate " + image));
            TRY_CTX(run_tool({first_of({"/usr/sbin/e2fsck", "/sbin/e2fsck"}), "-f", "-p", image}), "checking " + image);
            TRY_CTX(run_tool({first_of({"/usr/sbin/resize2fs", "/sbin/resize2fs"}), image}), "growing " + image);
            log(name + ": home image grown to " + format_size(size));
        } else if (static_cast<uint64_t>(info.st_size) > size) {
            log(name + ": disk " + format_size(size) + " is smaller than its home image (" + format_size(info.st_size)
                + "); shrinking is not done, the image keeps its size");
        }
    }

    auto loop = TRY_CTX(sys::attach_loop(file.get()), "the home image of " + name);
    auto fs = TRY(sys::fsopen("ext4"));
    TRY(sys::fsconfig_string(fs.get(), "source", loop.path.c_str()));
    if (auto created = sys::fsconfig_create(fs.get()); created.is_error())
        return created.release_error().with_context("mounting " + image + " (if it is damaged: e2fsck -p " + image + ")");
    auto mounted = TRY(sys::fsmount(fs.get(), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV));
    TRY(sys::move_mount_to_path(mounted.get(), mount_point));

    // A home from before images: copied in once, the directory kept beside it under another name.
    std::string old_home = dir + "/home";
    struct stat old {};
    if (made && ::lstat(old_home.c_str(), &old) == 0 && S_ISDIR(old.st_mode)) {
        auto copied = run_tool({first_of({"/usr/bin/cp", "/bin/cp"}), "-a", "--", old_home + "/.", mount_point + "/"});
        if (copied.is_error()) {
            (void)::umount2(mount_point.c_str(), MNT_DETACH);
            ::unlink(image.c_str());
            return copied.release_error().with_context("copying the home of " + name + " into its new image");
        }
        // `cp -a` of "dir/." gave the image's root the old directory's owner: the home is the user's.
        TRY(check_syscall(::chown(mount_point.c_str(), user, user), "chown " + mount_point));
        std::string kept = dir + "/home.before-image";
        TRY(check_syscall(::rename(old_home.c_str(), kept.c_str()), "rename " + old_home));
        log(name + ": its home is now an image of " + format_size(size) + "; the old directory is kept as " + kept);
    }
    return mount_point;
}

void Broker::unmount_home_image(std::string const& name)
{
    std::string mount_point = home_mount_point(name);
    if (!is_mount_point(mount_point))
        return;
    if (::umount2(mount_point.c_str(), MNT_DETACH) < 0)
        log(name + ": unmounting its home: " + std::strerror(errno));
    (void)::rmdir(mount_point.c_str());
}

} // namespace bulkhead::broker
