// Checks about the kernel interface: mounts and namespaces, ptrace and foreign memory, the
// syscalls no compartment needs, and host processes.
#include "probe.hpp"

#include <cerrno>
#include <cstdlib>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <linux/mount.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/reboot.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

namespace probe {

namespace {

constexpr std::string_view namespace_names[]
    = {"user", "mnt", "pid", "net", "ipc", "uts", "cgroup", "time", "pid_for_children", "time_for_children"};

struct NamespaceFlag {
    char const* name;
    int flag;
};

constexpr NamespaceFlag namespace_flags[] = {
    {"CLONE_NEWUSER", CLONE_NEWUSER},     {"CLONE_NEWNS", CLONE_NEWNS},     {"CLONE_NEWPID", CLONE_NEWPID},
    {"CLONE_NEWNET", CLONE_NEWNET},       {"CLONE_NEWIPC", CLONE_NEWIPC},   {"CLONE_NEWUTS", CLONE_NEWUTS},
    {"CLONE_NEWCGROUP", CLONE_NEWCGROUP}, {"CLONE_NEWTIME", CLONE_NEWTIME},
};

// clone() with the given flags through the raw syscall; a child that exists exits at once.
long raw_clone(unsigned long flags)
{
    long rc = ::syscall(SYS_clone, flags | SIGCHLD, nullptr, nullptr, nullptr, 0);
    if (rc == 0)
        ::_exit(0);
    if (rc > 0)
        ::waitpid(static_cast<pid_t>(rc), nullptr, 0);
    return rc;
}

// setns into the namespace behind `path`: the open and the setns both count as the attempt.
Outcome try_setns(std::string const& path)
{
    return in_child([&] {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -1L;
        return static_cast<long>(::setns(fd, 0));
    });
}

} // namespace

// ---- mounts and namespaces ----

int check_mounts(Args const& args)
{
    Report report("mounts");
    // --harmless: only what is harmless on a bare host too (every attempt in a child that exits).
    bool harmless = !args.empty() && args[0] == "--harmless";
    for (auto const& ns : namespace_flags) {
        int flag = ns.flag;
        expect_refused(report, std::string("unshare(") + ns.name + ")",
                       in_child([flag] { return static_cast<long>(::unshare(flag)); }), {EPERM});
    }
    expect_refused(report, "clone(CLONE_NEWUSER)", in_child([] { return raw_clone(CLONE_NEWUSER); }), {EPERM});
    expect_refused(report, "clone(CLONE_NEWNS|CLONE_NEWPID)",
                   in_child([] { return raw_clone(CLONE_NEWNS | CLONE_NEWPID); }), {EPERM});
    expect_refused(report, "clone(CLONE_NEWUSER|1<<32)",
                   in_child([] { return raw_clone(0x100000000UL | CLONE_NEWUSER); }), {EPERM});
    expect_refused(report, "clone3(CLONE_NEWUSER)", in_child([] {
                       clone_args cargs {};
                       cargs.flags = CLONE_NEWUSER;
                       cargs.exit_signal = SIGCHLD;
                       long rc = ::syscall(SYS_clone3, &cargs, sizeof(cargs));
                       if (rc == 0)
                           ::_exit(0);
                       return rc;
                   }),
                   {EPERM, ENOSYS});
    for (auto ns : namespace_names) {
        std::string path = "/proc/self/ns/" + std::string(ns);
        // Joining one's own user namespace is EINVAL even where setns is allowed.
        expect_refused(report, "setns(" + path + ")", try_setns(path), {EPERM});
    }
    expect_refused(report, "fsopen(tmpfs)", in_child([] { return ::syscall(SYS_fsopen, "tmpfs", 0); }), {EPERM});
    expect_refused(report, "chroot(/tmp)", in_child([] { return static_cast<long>(::chroot("/tmp")); }), {EPERM});
    if (harmless)
        return report.exit_code();

    for (auto ns : namespace_names) {
        std::string path = "/proc/1/ns/" + std::string(ns);
        // PID 1 is hidden (hidepid=ptraceable, ENOENT) and not dumpable (EACCES); setns is EPERM.
        expect_refused(report, "setns(" + path + ")", try_setns(path), {ENOENT, EACCES, EPERM});
    }
    expect_refused(report, "setns(pidfd of PID 1, all namespaces)", in_child([] {
                       long pidfd = ::syscall(SYS_pidfd_open, 1, 0);
                       int all = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
                           | CLONE_NEWCGROUP;
                       return static_cast<long>(::setns(static_cast<int>(pidfd), all));
                   }),
                   {EPERM, EBADF});
    expect_refused(report, "mount(tmpfs, /tmp)",
                   in_child([] { return static_cast<long>(::mount("none", "/tmp", "tmpfs", 0, nullptr)); }), {EPERM});
    expect_refused(report, "mount(/, MS_REMOUNT|MS_BIND) read-write", in_child([] {
                       return static_cast<long>(::mount(nullptr, "/", nullptr, MS_REMOUNT | MS_BIND, nullptr));
                   }),
                   {EPERM});
    expect_refused(report, "mount(proc)",
                   in_child([] { return static_cast<long>(::mount("proc", "/tmp", "proc", 0, nullptr)); }), {EPERM});
    expect_refused(report, "umount2(/, MNT_DETACH)",
                   in_child([] { return static_cast<long>(::umount2("/", MNT_DETACH)); }), {EPERM});
    expect_refused(report, "umount2(/proc, MNT_DETACH)",
                   in_child([] { return static_cast<long>(::umount2("/proc", MNT_DETACH)); }), {EPERM});
    expect_refused(report, "umount2(/proc/kcore) (unmask)",
                   in_child([] { return static_cast<long>(::umount2("/proc/kcore", MNT_DETACH)); }), {EPERM});
    expect_refused(report, "pivot_root(/tmp, /tmp)", in_child([] { return ::syscall(SYS_pivot_root, "/tmp", "/tmp"); }),
                   {EPERM});
    expect_refused(report, "open_tree(/, OPEN_TREE_CLONE)", in_child([] {
                       return ::syscall(SYS_open_tree, AT_FDCWD, "/",
                                        OPEN_TREE_CLONE | AT_RECURSIVE | OPEN_TREE_CLOEXEC);
                   }),
                   {EPERM});
    expect_refused(report, "fsmount", in_child([] { return ::syscall(SYS_fsmount, 0, 0, 0); }), {EPERM});
    expect_refused(report, "fsconfig",
                   in_child([] { return ::syscall(SYS_fsconfig, 0, FSCONFIG_CMD_CREATE, nullptr, nullptr, 0); }),
                   {EPERM});
    expect_refused(report, "fspick(/)", in_child([] { return ::syscall(SYS_fspick, AT_FDCWD, "/", 0); }), {EPERM});
    expect_refused(report, "move_mount(/proc -> /tmp)",
                   in_child([] { return ::syscall(SYS_move_mount, AT_FDCWD, "/proc", AT_FDCWD, "/tmp", 0); }), {EPERM});
    expect_refused(report, "mount_setattr(/, clear MOUNT_ATTR_RDONLY)", in_child([] {
                       mount_attr attr {};
                       attr.attr_clr = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID;
                       return ::syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof(attr));
                   }),
                   {EPERM});
    // The id maps are written once by the host; rewriting them to reach host root must fail.
    expect_refused(report, "write /proc/self/uid_map", in_child([] {
                       int fd = ::open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
                       if (fd < 0)
                           return -1L;
                       return static_cast<long>(::write(fd, "0 0 1\n", 6));
                   }),
                   {EPERM, EACCES});
    return report.exit_code();
}

// ---- ptrace and foreign memory ----

int check_ptrace(Args const& args)
{
    Report report("ptrace");
    std::vector<pid_t> targets = {1};
    for (auto const& arg : args)
        targets.push_back(static_cast<pid_t>(std::atoi(arg.c_str())));
    for (pid_t pid : targets) {
        std::string who = pid == 1 ? "PID 1" : "host pid " + std::to_string(pid);
        expect_refused(report, "ptrace(PTRACE_ATTACH, " + who + ")",
                       in_child([pid] { return ::ptrace(PTRACE_ATTACH, pid, nullptr, nullptr); }), {EPERM});
        expect_refused(report, "ptrace(PTRACE_SEIZE, " + who + ")",
                       in_child([pid] { return ::ptrace(PTRACE_SEIZE, pid, nullptr, nullptr); }), {EPERM});
        char local[16] = {};
        expect_refused(report, "process_vm_readv(" + who + ")", in_child([&] {
                           iovec mine {local, sizeof(local)};
                           iovec theirs {reinterpret_cast<void*>(0x400000), sizeof(local)};
                           return static_cast<long>(::process_vm_readv(pid, &mine, 1, &theirs, 1, 0));
                       }),
                       {EPERM});
        expect_refused(report, "process_vm_writev(" + who + ")", in_child([&] {
                           iovec mine {local, sizeof(local)};
                           iovec theirs {nullptr, sizeof(local)};
                           return static_cast<long>(::process_vm_writev(pid, &mine, 1, &theirs, 1, 0));
                       }),
                       {EPERM});
    }
    expect_refused(report, "ptrace(PTRACE_TRACEME)",
                   in_child([] { return ::ptrace(PTRACE_TRACEME, 0, nullptr, nullptr); }), {EPERM});
    for (char const* path :
         {"/proc/1/mem", "/proc/1/environ", "/proc/1/maps", "/proc/1/auxv", "/proc/1/stack", "/proc/1/syscall"}) {
        int flags = std::string_view(path) == "/proc/1/mem" ? O_RDWR : O_RDONLY;
        expect_refused(report, std::string("open(") + path + (flags == O_RDWR ? ", O_RDWR)" : ")"), now([&] {
                           int fd = ::open(path, flags | O_CLOEXEC);
                           if (fd >= 0)
                               ::close(fd);
                           return static_cast<long>(fd);
                       }()),
                       {ENOENT, EACCES, EPERM});
    }
    for (char const* path : {"/proc/1/fd", "/proc/1/root/", "/proc/1/cwd/", "/proc/1/map_files"}) {
        std::vector<std::string> names;
        int err = 0;
        Outcome listed = list_dir(path, names, &err) ? Outcome {0, 0} : Outcome {-1, err};
        expect_refused(report, std::string("list ") + path, listed, {ENOENT, EACCES, EPERM});
    }
    // A descriptor of PID 1's, taken through its pidfd.
    expect_refused(report, "pidfd_getfd(PID 1, fd 3)", in_child([] {
                       long pidfd = ::syscall(SYS_pidfd_open, 1, 0);
                       return ::syscall(SYS_pidfd_getfd, pidfd, 3, 0);
                   }),
                   {EPERM});
    expect_refused(report, "kcmp(self, PID 1, KCMP_FILES)",
                   in_child([] { return ::syscall(SYS_kcmp, ::getpid(), 1, KCMP_FILES, 0, 0); }), {EPERM});
    // PID 1 may not even be asked whether it can be signalled (Landlock's signal scope).
    expect_refused(report, "kill(PID 1, 0)", now(::kill(1, 0)), {EPERM});
    return report.exit_code();
}

// ---- syscalls no compartment needs: all refused by the filter with EPERM ----
// The arguments make each call harmless where it is allowed (the control test runs this on the
// host as root): a zero or invalid argument the kernel rejects after its permission check.

int check_syscalls(Args const&)
{
    Report report("syscalls");
    struct Call {
        char const* name;
        std::function<long()> attempt;
        std::vector<int> expected;
    };
    std::vector<Call> const calls = {
        {"bpf(BPF_MAP_CREATE, NULL, 0)", [] { return ::syscall(SYS_bpf, 0, nullptr, 0); }, {EPERM}},
        {"perf_event_open(NULL)", [] { return ::syscall(SYS_perf_event_open, nullptr, 0, -1, -1, 0); }, {EPERM}},
        {"keyctl(0)", [] { return ::syscall(SYS_keyctl, 0, 0, 0, 0, 0); }, {EPERM}},
        {"add_key(NULL)", [] { return ::syscall(SYS_add_key, nullptr, nullptr, nullptr, 0, 0); }, {EPERM}},
        {"request_key(NULL)", [] { return ::syscall(SYS_request_key, nullptr, nullptr, nullptr, 0); }, {EPERM}},
        {"userfaultfd(0)", [] { return ::syscall(SYS_userfaultfd, 0); }, {EPERM}},
        {"io_uring_setup(0, NULL)", [] { return ::syscall(SYS_io_uring_setup, 0, nullptr); }, {EPERM}},
        {"io_uring_enter(-1)", [] { return ::syscall(SYS_io_uring_enter, -1, 0, 0, 0, nullptr, 0); }, {EPERM}},
        {"io_uring_register(-1)", [] { return ::syscall(SYS_io_uring_register, -1, 0, nullptr, 0); }, {EPERM}},
        {"open_by_handle_at(0, NULL)", [] { return ::syscall(SYS_open_by_handle_at, 0, nullptr, 0); }, {EPERM}},
        {"name_to_handle_at(NULL)",
         [] { return ::syscall(SYS_name_to_handle_at, 0, nullptr, nullptr, nullptr, 0); },
         {EPERM}},
        // 17 segments is one more than the kernel accepts: never an unload (0 segments) nor a load.
        {"kexec_load(17 segments)", [] { return ::syscall(SYS_kexec_load, 0, 17, nullptr, 0); }, {EPERM}},
        {"kexec_file_load(-1)", [] { return ::syscall(SYS_kexec_file_load, -1, -1, 0, nullptr, 0); }, {EPERM}},
        {"init_module(NULL, 0)", [] { return ::syscall(SYS_init_module, nullptr, 0, ""); }, {EPERM}},
        {"finit_module(-1)", [] { return ::syscall(SYS_finit_module, -1, "", 0); }, {EPERM}},
        {"delete_module(NULL)", [] { return ::syscall(SYS_delete_module, nullptr, 0); }, {EPERM}},
        {"iopl(0)", [] { return ::syscall(SYS_iopl, 0); }, {EPERM}},
        {"ioperm(0, 0, 0)", [] { return ::syscall(SYS_ioperm, 0, 0, 0); }, {EPERM}},
        {"swapon(NULL)", [] { return ::syscall(SYS_swapon, nullptr, 0); }, {EPERM}},
        {"swapoff(NULL)", [] { return ::syscall(SYS_swapoff, nullptr); }, {EPERM}},
        {"reboot(0, 0, 0)", [] { return ::syscall(SYS_reboot, 0, 0, 0, nullptr); }, {EPERM}},
        {"acct(/nonexistent)", [] { return ::syscall(SYS_acct, "/nonexistent/bulkhead-acct"); }, {EPERM}},
        {"syslog(SIZE_BUFFER)", [] { return ::syscall(SYS_syslog, 10, nullptr, 0); }, {EPERM}},
        {"settimeofday(NULL, NULL)", [] { return ::syscall(SYS_settimeofday, nullptr, nullptr); }, {EPERM}},
        {"clock_settime(REALTIME, NULL)",
         [] { return ::syscall(SYS_clock_settime, CLOCK_REALTIME, nullptr); },
         {EPERM}},
        {"adjtimex(read)",
         [] {
             timex tx {};
             return ::syscall(SYS_adjtimex, &tx);
         },
         {EPERM}},
        {"sethostname(65 bytes)", [] { return ::syscall(SYS_sethostname, nullptr, 65); }, {EPERM}},
        {"setdomainname(65 bytes)", [] { return ::syscall(SYS_setdomainname, nullptr, 65); }, {EPERM}},
        {"modify_ldt(read)",
         [] {
             char ldt[16];
             return ::syscall(SYS_modify_ldt, 0, ldt, sizeof(ldt));
         },
         {EPERM}},
        {"kcmp(self, self)", [] { return ::syscall(SYS_kcmp, ::getpid(), ::getpid(), KCMP_VM, 0, 0); }, {EPERM}},
        {"fanotify_init(0)", [] { return ::syscall(SYS_fanotify_init, 0, 0); }, {EPERM}},
        {"quotactl(0)", [] { return ::syscall(SYS_quotactl, 0, nullptr, 0, nullptr); }, {EPERM}},
        {"migrate_pages(self)", [] { return ::syscall(SYS_migrate_pages, 0, 0, nullptr, nullptr); }, {EPERM}},
        {"move_pages(self, 0 pages)",
         [] { return ::syscall(SYS_move_pages, 0, 0, nullptr, nullptr, nullptr, 0); },
         {EPERM}},
        {"memfd_secret(0)", [] { return ::syscall(SYS_memfd_secret, 0); }, {EPERM}},
        {"lookup_dcookie(0)", [] { return ::syscall(SYS_lookup_dcookie, 0, nullptr, 0); }, {EPERM}},
        {"personality(ADDR_NO_RANDOMIZE)", [] { return ::syscall(SYS_personality, 0x0040000); }, {EPERM}},
        {"ioprio_set(self, realtime)", [] { return ::syscall(SYS_ioprio_set, 1, 0, (1 << 13) | 0); }, {EPERM}},
        // Allowed calls whose privileged uses the kernel itself must refuse (no capabilities, no rlimit).
        {"sched_setscheduler(SCHED_FIFO)",
         [] {
             sched_param param {};
             param.sched_priority = 1;
             return static_cast<long>(::sched_setscheduler(0, SCHED_FIFO, &param));
         },
         {EPERM}},
        {"setpriority(self, -20)",
         [] { return static_cast<long>(::setpriority(PRIO_PROCESS, 0, -20)); },
         {EACCES, EPERM}},
        {"setrlimit(RLIMIT_MEMLOCK, raise the hard limit)",
         [] {
             rlimit current {};
             ::getrlimit(RLIMIT_MEMLOCK, &current);
             if (current.rlim_max == RLIM_INFINITY) {
                 errno = ERANGE; // already unlimited: nothing to raise, and a surprising errno says so
                 return -1L;
             }
             rlimit raised {current.rlim_max + 4096, current.rlim_max + 4096};
             return static_cast<long>(::setrlimit(RLIMIT_MEMLOCK, &raised));
         },
         {EPERM}},
    };
    for (auto const& call : calls)
        expect_refused(report, call.name, in_child(call.attempt), call.expected);
    return report.exit_code();
}

// ---- host processes ----

int check_host_procs(Args const& args)
{
    Report report("host-procs");
    if (args.size() != 2) {
        report.fail("usage: host-procs PID MARKER");
        return report.exit_code();
    }
    pid_t pid = static_cast<pid_t>(std::atoi(args[0].c_str()));
    std::string const& marker = args[1];
    if (pid <= 64)
        report.fail("host pid " + args[0] + " is too small to tell a host process from one inside");
    std::string who = "host pid " + std::to_string(pid);
    expect_refused(report, "kill(" + who + ", 0)", now(::kill(pid, 0)), {ESRCH});
    expect_refused(report, "kill(" + who + ", SIGKILL)", now(::kill(pid, SIGKILL)), {ESRCH});
    expect_refused(report, "kill(-" + who + " (its group), 0)", now(::kill(-pid, 0)), {ESRCH});
    expect_refused(report, "pidfd_open(" + who + ")", now(::syscall(SYS_pidfd_open, pid, 0)), {ESRCH});
    expect_refused(report, "getpgid(" + who + ")", now(::getpgid(pid)), {ESRCH});
    expect_refused(report, "getsid(" + who + ")", now(::getsid(pid)), {ESRCH});
    expect_refused(report, "setpriority(" + who + ", 19)",
                   in_child([pid] { return static_cast<long>(::setpriority(PRIO_PROCESS, pid, 19)); }), {ESRCH});
    cpu_set_t set;
    expect_refused(report, "sched_getaffinity(" + who + ")", now(::sched_getaffinity(pid, sizeof(set), &set)), {ESRCH});
    struct stat st {};
    expect_refused(report, "stat(/proc/" + std::to_string(pid) + ")",
                   now(::stat(("/proc/" + std::to_string(pid)).c_str(), &st)), {ENOENT});
    std::vector<pid_t> pids = visible_pids();
    std::string seen;
    for (pid_t visible : pids) {
        if (visible == ::getpid())
            continue; // the probe's own argv carries the marker
        for (auto const& arg : cmdline_of(visible)) {
            if (arg.find(marker) != std::string::npos)
                seen += " " + std::to_string(visible);
        }
    }
    (seen.empty() ? report.pass("no process of the " + std::to_string(pids.size()) + " visible carries the marker")
                  : report.fail("processes carrying the host marker are visible:" + seen));
    return report.exit_code();
}

// ---- host data in the memory of processes inside: PID 1 is a fork of the host process that built
// the compartment, so its argv and environment are that process's ----

int check_host_argv(Args const& args)
{
    Report report("host-argv");
    if (args.empty())
        report.fail("usage: host-argv STRING... (host strings that must not be visible)");
    for (auto const& needle : args) {
        std::string seen;
        for (pid_t pid : visible_pids()) {
            if (pid == ::getpid())
                continue; // the probe's own argv carries the strings
            for (char const* file : {"cmdline", "environ"}) {
                std::string content;
                std::string path = "/proc/" + std::to_string(pid) + "/" + file;
                if (read_file(path, content) && content.find(needle) != std::string::npos)
                    seen += " " + path;
            }
        }
        (seen.empty() ? report.pass("'" + needle + "' appears in no process's cmdline or environ")
                      : report.fail("host string '" + needle + "' is visible in" + seen));
    }
    return report.exit_code();
}

} // namespace probe
