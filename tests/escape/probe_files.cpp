// Checks about files: the terminal, the executables, host files, /proc and /dev.
#include "probe.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace probe {

namespace {

long open_close(std::string const& path, int flags)
{
    int fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd >= 0)
        ::close(fd);
    return fd;
}

// PASS if `path` cannot be opened for reading (one of `refusals`) or reads as empty.
void expect_unreadable_or_empty(Report& report, std::string const& path, std::initializer_list<int> refusals)
{
    std::string content;
    int err = 0;
    if (read_file(path, content, &err, 4096)) {
        (content.empty() ? report.pass(path + " reads as empty (masked)")
                         : report.fail(path + " is readable: " + std::to_string(content.size()) + "+ bytes"));
        return;
    }
    for (int refusal : refusals) {
        if (err == refusal) {
            report.pass(path + " cannot be read: " + errno_name(err));
            return;
        }
    }
    report.fail(path + ": reading failed with unexpected " + errno_name(err));
}

} // namespace

// ---- terminal injection ----

int check_tty(Args const&)
{
    Report report("tty");
    if (::isatty(0))
        report.pass("stdin is a terminal (the attacks below have a target)");
    else
        report.fail("stdin is not a terminal: the harness must pass a pty, or the check proves nothing");
    char byte = 'X';
    char paste = 3; // TIOCL_PASTESEL: paste the console selection as input
    struct Request {
        char const* name;
        unsigned long value;
        char* arg;
    };
    Request const requests[] = {
        {"TIOCSTI", TIOCSTI, &byte},
        {"TIOCSTI|1<<32", 0x100000000UL | TIOCSTI, &byte},
        {"TIOCSTI|0xffffffff<<32", 0xffffffff00000000UL | TIOCSTI, &byte},
        {"TIOCLINUX", TIOCLINUX, &paste},
        {"TIOCLINUX|1<<32", 0x100000000UL | TIOCLINUX, &paste},
        {"TIOCLINUX|0xffffffff<<32", 0xffffffff00000000UL | TIOCLINUX, &paste},
    };
    for (int fd : {0, 1, 2}) {
        for (auto const& request : requests) {
            if (fd != 0 && request.value != TIOCSTI)
                continue; // stdout and stderr: the plain request is enough
            expect_refused(report, "ioctl(" + std::to_string(fd) + ", " + request.name + ")",
                           now(::syscall(SYS_ioctl, fd, request.value, request.arg)), {EPERM});
        }
    }
    // No controlling terminal at all: the new session has none.
    expect_refused(report, "open(/dev/tty)", now(open_close("/dev/tty", O_RDWR)), {ENXIO});
    return report.exit_code();
}

// ---- the executables behind /proc/self/exe and /proc/1/exe ----

int check_exe(Args const& args)
{
    Report report("exe");
    std::initializer_list<int> const refused_self = {EACCES, EPERM, EROFS, ETXTBSY};
    char target[4096] = {};
    ssize_t length = ::readlink("/proc/self/exe", target, sizeof(target) - 1);
    std::string self = length > 0 ? std::string(target, static_cast<size_t>(length)) : "";
    struct stat st {};
    ::stat("/proc/self/exe", &st);

    for (std::string const path : {"/proc/self/exe", "/proc/1/exe"}) {
        // PID 1 is hidden (hidepid=ptraceable): its entries answer ENOENT.
        std::vector<int> refused(refused_self);
        if (path == "/proc/1/exe")
            refused.push_back(ENOENT);
        expect_refused(report, "open(" + path + ", O_WRONLY)", now(open_close(path, O_WRONLY)), refused);
        expect_refused(report, "open(" + path + ", O_RDWR)", now(open_close(path, O_RDWR)), refused);
        expect_refused(report, "open(" + path + ", O_WRONLY|O_APPEND)", now(open_close(path, O_WRONLY | O_APPEND)),
                       refused);
        // To the file's own size: a success would be caught without destroying anything. Where the
        // link does not even resolve (PID 1's), truncate would fail the same way stat does.
        struct stat target {};
        Outcome truncated = ::stat(path.c_str(), &target) < 0
            ? now(-1)
            : in_child([&] { return static_cast<long>(::truncate(path.c_str(), target.st_size)); });
        expect_refused(report, "truncate(" + path + ")", truncated, refused);
    }
    // PID 1 runs the host binary that built the compartment: hidden, or at least not readable.
    expect_refused(report, "open(/proc/1/exe, O_RDONLY)", now(open_close("/proc/1/exe", O_RDONLY)),
                   {ENOENT, EACCES, EPERM});
    char link[256];
    expect_refused(report, "readlink(/proc/1/exe)", now(::readlink("/proc/1/exe", link, sizeof(link))),
                   {ENOENT, EACCES, EPERM});

    // Through an O_PATH descriptor re-opened via /proc/self/fd.
    int path_fd = ::open("/proc/self/exe", O_PATH | O_CLOEXEC);
    if (path_fd < 0) {
        report.fail("open(/proc/self/exe, O_PATH) failed: " + errno_name(errno));
    } else {
        std::string via = "/proc/self/fd/" + std::to_string(path_fd);
        expect_refused(report, "reopen O_PATH fd as O_WRONLY", now(open_close(via, O_WRONLY)), refused_self);
        expect_refused(report, "reopen O_PATH fd as O_RDWR", now(open_close(via, O_RDWR)), refused_self);
        expect_refused(report, "truncate(" + via + ")",
                       in_child([&] { return static_cast<long>(::truncate(via.c_str(), st.st_size)); }), refused_self);
        ::close(path_fd);
    }
    // A shared writable mapping of a read-only descriptor.
    int read_fd = ::open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (read_fd >= 0) {
        Outcome mapped = in_child([&] {
            void* p = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, read_fd, 0);
            return p == MAP_FAILED ? -1L : 0L;
        });
        expect_refused(report, "mmap(PROT_WRITE, MAP_SHARED) of the executable", mapped, {EACCES});
        ::close(read_fd);
    }
    // The executable's mapping through /proc/self/map_files.
    std::string maps;
    read_file("/proc/self/maps", maps);
    size_t line = maps.find(self);
    if (!self.empty() && line != std::string::npos) {
        size_t start = maps.rfind('\n', line);
        start = start == std::string::npos ? 0 : start + 1;
        std::string range = maps.substr(start, maps.find(' ', start) - start);
        expect_refused(report, "open(/proc/self/map_files/" + range + ", O_RDWR)",
                       now(open_close("/proc/self/map_files/" + range, O_RDWR)), {EPERM, EACCES});
    }
    // Replacing the file under its name: within its directory (same mount) and from /tmp.
    if (!self.empty()) {
        expect_refused(report, "rename(" + self + " onto itself)",
                       in_child([&] { return static_cast<long>(::rename(self.c_str(), self.c_str())); }),
                       {EROFS, EACCES, EPERM});
        expect_refused(report, "renameat2(RENAME_EXCHANGE) on " + self, in_child([&] {
                           return ::syscall(SYS_renameat2, AT_FDCWD, self.c_str(), AT_FDCWD, self.c_str(),
                                            RENAME_EXCHANGE);
                       }),
                       {EROFS, EACCES, EPERM, EINVAL});
        std::string evil = "/tmp/bulkhead-evil-exe";
        int fd = ::open(evil.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
        if (fd >= 0)
            ::close(fd);
        expect_refused(report, "rename(/tmp/bulkhead-evil-exe, " + self + ")",
                       in_child([&] { return static_cast<long>(::rename(evil.c_str(), self.c_str())); }),
                       {EXDEV, EROFS, EACCES, EPERM});
        expect_refused(report, "rename(/tmp/bulkhead-evil-exe, /proc/self/exe)",
                       in_child([&] { return static_cast<long>(::rename(evil.c_str(), "/proc/self/exe")); }),
                       {EXDEV, EROFS, EACCES, EPERM});
        ::unlink(evil.c_str());
        std::string sibling = self + ".bulkhead-link";
        expect_refused(report, "link(" + self + ", " + sibling + ")", in_child([&] {
                           long rc = ::link(self.c_str(), sibling.c_str());
                           if (rc == 0)
                               ::unlink(sibling.c_str());
                           return rc;
                       }),
                       {EROFS, EACCES, EPERM});
        expect_refused(report, "chmod(" + self + ", same mode)",
                       in_child([&] { return static_cast<long>(::chmod(self.c_str(), st.st_mode & 07777)); }),
                       {EROFS, EPERM, EACCES});
        expect_refused(report, "chown(" + self + ", -1, -1)", in_child([&] {
                           return static_cast<long>(
                               ::chown(self.c_str(), static_cast<uid_t>(-1), static_cast<gid_t>(-1)));
                       }),
                       {EROFS, EPERM, EACCES});
    }
    // Host paths of binaries the harness names: not there at all.
    for (auto const& host_path : args)
        expect_refused(report, "open(host " + host_path + ", O_WRONLY)", now(open_close(host_path, O_WRONLY)),
                       {ENOENT, EACCES, EROFS});
    return report.exit_code();
}

// ---- host files ----

int check_host_files(Args const& args)
{
    Report report("host-files");
    std::initializer_list<int> const absent = {ENOENT, EACCES};
    for (char const* secret : {"/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/sudoers", "/etc/machine-id",
                               "/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key", "/etc/ssl/private",
                               "/root/.ssh", "/root/.bash_history"})
        expect_refused(report, std::string("open(") + secret + ")", now(open_close(secret, O_RDONLY)), absent);

    std::vector<std::string> names;
    int err = 0;
    if (list_dir("/root", names, &err)) {
        std::string found;
        for (auto const& name : names)
            found += " " + name;
        (names.empty() ? report.pass("/root is empty") : report.fail("/root lists:" + found));
    } else {
        (err == EACCES ? report.pass("/root cannot be listed: EACCES")
                       : report.fail("/root: unexpected " + errno_name(err)));
    }
    if (list_dir("/home", names, &err)) {
        std::string others;
        for (auto const& name : names) {
            if (name != "user")
                others += " " + name;
        }
        (others.empty() ? report.pass("/home holds only user") : report.fail("/home also lists:" + others));
    }

    // Every way back to a host path the harness names: plain, climbing, through /proc links.
    std::vector<std::string> bases = {"",
                                      "/../../../../../..",
                                      "/proc/self/root",
                                      "/proc/1/root",
                                      "/proc/1/cwd/../../../..",
                                      "/proc/self/cwd/../../../../..",
                                      "/tmp/../../.."};
    for (pid_t pid : visible_pids()) {
        bases.push_back("/proc/" + std::to_string(pid) + "/root");
        bases.push_back("/proc/" + std::to_string(pid) + "/cwd/../../../../..");
    }
    for (int fd = 0; fd < 3; ++fd)
        bases.push_back("/proc/self/fd/" + std::to_string(fd) + "/../../../..");
    for (auto const& host_path : args) {
        if (host_path.empty() || host_path[0] != '/') {
            report.fail("argument '" + host_path + "' is not an absolute host path");
            continue;
        }
        int hits = 0;
        std::string refusals;
        for (auto const& base : bases) {
            std::string path = base + host_path;
            long fd = open_close(path, O_RDONLY);
            if (fd >= 0) {
                ++hits;
                report.fail("host file reachable as " + path);
            } else if (errno != ENOENT && errno != EACCES && errno != ENOTDIR) {
                ++hits;
                report.fail(path + ": unexpected " + errno_name(errno));
            } else if (refusals.find(errno_name(errno)) == std::string::npos) {
                refusals += (refusals.empty() ? "" : "/") + errno_name(errno);
            }
        }
        if (hits == 0)
            report.pass(host_path + " unreachable by " + std::to_string(bases.size()) + " routes (" + refusals + ")");
        // A link made inside resolves inside.
        std::string link = "/tmp/bulkhead-host-link";
        ::unlink(link.c_str());
        if (::symlink(host_path.c_str(), link.c_str()) == 0) {
            expect_refused(report, "open(symlink to " + host_path + ")", now(open_close(link, O_RDONLY)), {ENOENT});
            ::unlink(link.c_str());
        }
        std::string mountinfo;
        read_file("/proc/self/mountinfo", mountinfo);
        (mountinfo.find(host_path) == std::string::npos ? report.pass("no mount shows " + host_path)
                                                        : report.fail("a mount shows " + host_path));
    }
    return report.exit_code();
}

// ---- /proc ----

int check_proc(Args const&)
{
    Report report("proc");
    // Opening for writing never writes: a success is reported without touching the file.
    for (char const* path : {"/proc/sys/kernel/core_pattern", "/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches",
                             "/proc/sys/kernel/ns_last_pid", "/proc/sys/net/ipv4/ip_forward",
                             "/proc/sys/fs/protected_symlinks", "/proc/sys/kernel/randomize_va_space"})
        expect_refused(report, std::string("open(") + path + ", O_WRONLY)", now(open_close(path, O_WRONLY)),
                       {EROFS, EACCES, EPERM});
    // Files that exist only with CONFIG_MAGIC_SYSRQ, CONFIG_MODULES, binfmt_misc: ENOENT means this kernel has none.
    for (char const* path : {"/proc/sysrq-trigger", "/proc/sys/kernel/sysrq", "/proc/sys/kernel/modprobe",
                             "/proc/sys/fs/binfmt_misc/register"})
        expect_refused(report, std::string("open(") + path + ", O_WRONLY)", now(open_close(path, O_WRONLY)),
                       {EROFS, EACCES, EPERM, ENOENT});

    for (char const* path :
         {"/proc/kcore", "/proc/timer_list", "/proc/keys", "/proc/key-users", "/proc/sched_debug", "/proc/kmsg",
          "/proc/iomem", "/proc/ioports", "/proc/modules", "/proc/vmallocinfo", "/proc/slabinfo", "/proc/kpageflags",
          "/proc/kpagecount", "/proc/kpagecgroup", "/proc/config.gz", "/proc/latency_stats"})
        expect_unreadable_or_empty(report, path, {ENOENT, EACCES, EPERM});

    std::string kallsyms;
    int err = 0;
    if (!read_file("/proc/kallsyms", kallsyms, &err, 64 << 20)) {
        (err == ENOENT || err == EACCES ? report.pass("/proc/kallsyms unreadable: " + errno_name(err))
                                        : report.fail("/proc/kallsyms: unexpected " + errno_name(err)));
    } else {
        size_t lines = 0, addresses = 0;
        for (size_t start = 0; start < kallsyms.size();) {
            size_t end = kallsyms.find('\n', start);
            if (end == std::string::npos)
                end = kallsyms.size();
            ++lines;
            if (std::strtoull(kallsyms.substr(start, 16).c_str(), nullptr, 16) != 0)
                ++addresses;
            start = end + 1;
        }
        (addresses == 0 ? report.pass("/proc/kallsyms shows no addresses (" + std::to_string(lines) + " lines)")
                        : report.fail("/proc/kallsyms shows " + std::to_string(addresses) + " kernel addresses"));
    }

    // No cgroup filesystem (and so no release_agent) anywhere, and none can be mounted.
    struct stat st {};
    expect_refused(report, "stat(/sys/fs/cgroup)", now(::stat("/sys/fs/cgroup", &st)), {ENOENT});
    std::string mountinfo;
    read_file("/proc/self/mountinfo", mountinfo);
    bool cgroupfs = mountinfo.find(" - cgroup ") != std::string::npos
        || mountinfo.find(" - cgroup2 ") != std::string::npos || mountinfo.find(" - sysfs ") != std::string::npos;
    (cgroupfs ? report.fail("a cgroup or sysfs mount is visible") : report.pass("no cgroup or sysfs mount is visible"));
    ::mkdir("/tmp/bulkhead-cgroup", 0755);
    expect_refused(report, "mount(cgroup, memory)", in_child([] {
                       return static_cast<long>(::mount("cgroup", "/tmp/bulkhead-cgroup", "cgroup", 0, "memory"));
                   }),
                   {EPERM});
    expect_refused(report, "mount(cgroup2)", in_child([] {
                       return static_cast<long>(::mount("cgroup2", "/tmp/bulkhead-cgroup", "cgroup2", 0, nullptr));
                   }),
                   {EPERM});
    expect_refused(report, "fsopen(cgroup2)", in_child([] { return ::syscall(SYS_fsopen, "cgroup2", 0); }), {EPERM});
    ::rmdir("/tmp/bulkhead-cgroup");
    return report.exit_code();
}

// ---- /dev ----

int check_dev(Args const&)
{
    Report report("dev");
    std::vector<std::string> names;
    int err = 0;
    if (!list_dir("/dev", names, &err)) {
        report.fail("cannot list /dev: " + errno_name(err));
        return report.exit_code();
    }
    std::string const allowed = " null zero full random urandom tty pts ptmx shm mqueue fd stdin stdout stderr ";
    std::string extra;
    for (auto const& name : names) {
        if (allowed.find(" " + name + " ") == std::string::npos)
            extra += " " + name;
    }
    (extra.empty() ? report.pass("/dev holds only the minimal nodes") : report.fail("/dev also holds:" + extra));
    if (list_dir("/dev/pts", names, &err)) {
        std::string terminals;
        for (auto const& name : names) {
            if (name != "ptmx")
                terminals += " " + name;
        }
        (terminals.empty() ? report.pass("/dev/pts is a private instance with no terminals")
                           : report.fail("/dev/pts shows terminals:" + terminals));
    }
    // The compartment's own IPC namespace: nothing in its queues or shared memory at start.
    for (char const* dir : {"/dev/mqueue", "/dev/shm"}) {
        if (!list_dir(dir, names, &err)) {
            (err == ENOENT ? report.pass(std::string(dir) + " is absent")
                           : report.fail(std::string(dir) + ": " + errno_name(err)));
            continue;
        }
        std::string found;
        for (auto const& name : names)
            found += " " + name;
        (found.empty() ? report.pass(std::string(dir) + " is empty")
                       : report.fail(std::string(dir) + " holds:" + found));
    }
    for (char const* path :
         {"/dev/mem",     "/dev/kmem",    "/dev/port",         "/dev/kmsg",        "/dev/vda",
          "/dev/sda",     "/dev/nvme0n1", "/dev/kvm",          "/dev/vsock",       "/dev/vhost-vsock",
          "/dev/fuse",    "/dev/net/tun", "/dev/loop-control", "/dev/userfaultfd", "/dev/uinput",
          "/dev/console", "/dev/tty0",    "/dev/ttyS0",        "/dev/hwrng",       "/dev/cpu/0/msr"})
        expect_refused(report, std::string("open(") + path + ")", now(open_close(path, O_RDONLY)), {ENOENT});
    struct Node {
        char const* name;
        mode_t type;
        dev_t device;
    };
    Node const nodes[] = {
        {"mem", S_IFCHR, makedev(1, 1)},
        {"kmsg", S_IFCHR, makedev(1, 11)},
        {"vda", S_IFBLK, makedev(254, 0)},
        {"sda", S_IFBLK, makedev(8, 0)},
    };
    for (char const* dir : {"/tmp", "/home/user", "/dev/shm"}) {
        for (auto const& node : nodes) {
            std::string path = std::string(dir) + "/bulkhead-" + node.name;
            expect_refused(report, "mknod(" + path + ")", in_child([&] {
                               long rc = ::mknod(path.c_str(), node.type | 0666, node.device);
                               if (rc == 0)
                                   ::unlink(path.c_str());
                               return rc;
                           }),
                           {EPERM, EACCES});
        }
    }
    expect_refused(report, "create /dev/bulkhead", in_child([] {
                       long rc = open_close("/dev/bulkhead", O_WRONLY | O_CREAT);
                       ::unlink("/dev/bulkhead");
                       return rc;
                   }),
                   {EROFS, EACCES});
    return report.exit_code();
}

} // namespace probe
