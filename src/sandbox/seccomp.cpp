// The compartment payload's seccomp allowlist, built with libseccomp and kept as compiled BPF.
//
// Shape of the Default profile:
//   - only the native architecture: i386 (int 0x80) and x32 entry points are killed (badarch);
//   - an allowlist of ordinary syscalls; everything else fails with EPERM (the default action);
//   - clone3 answers ENOSYS, so libc falls back to clone, whose flags argument a filter can see;
//     clone with any namespace flag is refused;
//   - ioctl TIOCSTI / TIOCLINUX refused by a compare on the low 32 bits only, because the kernel
//     truncates the request to unsigned int (a set high bit must not slip past: CVE-2019-10063);
//   - socket/socketpair only for AF_UNIX, AF_INET, AF_INET6, AF_NETLINK (no AF_VSOCK: it is not
//     namespaced and reaches the host's vsock services);
//   - personality only with the harmless personas.
// Syscalls the payload must never reach (mount and the new mount API, unshare, setns, ptrace,
// process_vm_*, bpf, perf_event_open, keyctl, userfaultfd, io_uring, open_by_handle_at, kexec,
// module loading, ...) are simply absent from the allowlist; a test checks each one is refused.
#include "sandbox/seccomp.hpp"

#include <cerrno>
#include <memory>
#include <vector>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/seccomp.h>

namespace bulkhead::sandbox {

namespace {

// Ordinary process, file, memory, time, signal, socket and IPC calls. Names the running
// libseccomp does not know (newer syscalls) are skipped, which leaves them denied.
constexpr char const* allowed_syscalls[] = {
    // files and directories
    "read", "write", "open", "openat", "close", "close_range", "creat", "stat", "fstat", "lstat", "newfstatat",
    "statx", "lseek", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev", "preadv2", "pwritev2",
    "access", "faccessat", "faccessat2", "dup", "dup2", "dup3", "pipe", "pipe2", "fcntl", "flock", "fsync",
    "fdatasync", "syncfs", "sync", "sync_file_range", "truncate", "ftruncate", "fallocate", "fadvise64",
    "readahead", "getdents", "getdents64", "getcwd", "chdir", "fchdir", "rename", "renameat", "renameat2", "mkdir",
    "mkdirat", "rmdir", "link", "linkat", "unlink", "unlinkat", "symlink", "symlinkat", "readlink", "readlinkat",
    "chmod", "fchmod", "fchmodat", "fchmodat2", "chown", "fchown", "lchown", "fchownat", "umask", "mknod",
    "mknodat", "utime", "utimes", "utimensat", "futimesat", "statfs", "fstatfs", "sendfile", "splice", "tee",
    "vmsplice", "copy_file_range", "setxattr", "lsetxattr", "fsetxattr", "getxattr", "lgetxattr", "fgetxattr",
    "listxattr", "llistxattr", "flistxattr", "removexattr", "lremovexattr", "fremovexattr", "inotify_init",
    "inotify_init1", "inotify_add_watch", "inotify_rm_watch", "memfd_create", "cachestat",
    // polling and events
    "poll", "ppoll", "select", "pselect6", "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait",
    "epoll_pwait", "epoll_pwait2", "eventfd", "eventfd2", "signalfd", "signalfd4", "timerfd_create",
    "timerfd_settime", "timerfd_gettime", "io_setup", "io_destroy", "io_getevents", "io_pgetevents", "io_submit",
    "io_cancel",
    // memory
    "brk", "mmap", "munmap", "mremap", "mprotect", "msync", "mincore", "madvise", "mlock", "mlock2", "munlock",
    "mlockall", "munlockall", "mbind", "set_mempolicy", "get_mempolicy", "membarrier", "pkey_mprotect",
    "pkey_alloc", "pkey_free", "map_shadow_stack",
    // processes, threads, identity inside the compartment
    "fork", "vfork", "execve", "execveat", "exit", "exit_group", "wait4", "waitid", "getpid", "getppid", "gettid",
    "getpgrp", "getpgid", "setpgid", "getsid", "setsid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
    "getresgid", "getgroups", "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid",
    "setfsgid", "setgroups", "capget", "capset", "prctl", "arch_prctl", "set_tid_address", "set_robust_list",
    "get_robust_list", "rseq", "futex", "futex_waitv", "futex_wake", "futex_wait", "futex_requeue",
    "sched_yield", "sched_setparam", "sched_getparam", "sched_setscheduler", "sched_getscheduler",
    "sched_get_priority_max", "sched_get_priority_min", "sched_rr_get_interval", "sched_setaffinity",
    "sched_getaffinity", "sched_setattr", "sched_getattr", "getpriority", "setpriority", "getrlimit", "setrlimit",
    "prlimit64", "getrusage", "times", "uname", "sysinfo", "getcpu", "getrandom", "restart_syscall", "seccomp",
    "landlock_create_ruleset", "landlock_add_rule", "landlock_restrict_self", "pidfd_open", "pidfd_send_signal",
    "get_thread_area", "set_thread_area",
    // signals
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigpending", "rt_sigtimedwait", "rt_sigqueueinfo",
    "rt_tgsigqueueinfo", "rt_sigsuspend", "sigaltstack", "kill", "tkill", "tgkill", "pause", "alarm",
    // time
    "nanosleep", "clock_nanosleep", "clock_gettime", "clock_getres", "gettimeofday", "time", "getitimer",
    "setitimer", "timer_create", "timer_settime", "timer_gettime", "timer_getoverrun", "timer_delete",
    // sockets (the compartment's own network namespace)
    "connect", "accept", "accept4", "bind", "listen", "shutdown", "getsockname",
    "getpeername", "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg",
    "recvmmsg",
    // SysV and POSIX IPC (the compartment's own IPC namespace)
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl", "msgget", "msgsnd", "msgrcv",
    "msgctl", "mq_open", "mq_unlink", "mq_timedsend", "mq_timedreceive", "mq_notify", "mq_getsetattr",
};

// Every namespace flag that clone() can carry in its 32-bit flags word. (CLONE_NEWTIME shares
// its bit with the exit signal in clone() and exists only for clone3/unshare, both refused.)
constexpr uint64_t clone_namespace_flags
    = CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP;

// AF_UNIX, AF_INET, AF_INET6, AF_NETLINK (interface and route queries of the compartment's own
// network namespace).
constexpr uint64_t allowed_socket_families[] = {AF_UNIX, AF_INET, AF_INET6, AF_NETLINK};

// The personas a program may ask for: the default, the 32-bit uname, and the query value.
constexpr uint64_t allowed_personas[] = {0x0, 0x8, 0x20008, 0xffffffff};

struct ContextDeleter {
    void operator()(void* ctx) const { seccomp_release(ctx); }
};
using Context = std::unique_ptr<void, ContextDeleter>;

Status check_rc(int rc, std::string_view what)
{
    if (rc < 0)
        return Error::from_syscall(what, -rc);
    return {};
}

Status allow(void* ctx, int nr)
{
    return check_rc(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0), "seccomp_rule_add");
}

// Allows `nr` when the low 32 bits of argument `arg` are none of `refused`. The kernel reads some
// arguments (the ioctl request) as unsigned int, so the high 32 bits must not matter: a refused
// value with a high bit set is still refused. The complement of the refused set is covered by
// masked-equality rules along a binary trie of the refused values: at each bit where a refused
// value's prefix continues, the other branch (which holds no refused value) is allowed whole.
Status allow_unless_low32(void* ctx, int nr, unsigned arg, std::vector<uint32_t> const& refused)
{
    struct Walk {
        void* ctx;
        int nr;
        unsigned arg;
        Status operator()(int bit, uint32_t mask, uint32_t prefix, std::vector<uint32_t> const& values) const
        {
            if (values.empty()) {
                scmp_arg_cmp cmp {arg, SCMP_CMP_MASKED_EQ, mask, prefix};
                return check_rc(seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, &cmp), "seccomp_rule_add");
            }
            if (bit < 0)
                return {}; // exactly a refused value
            std::vector<uint32_t> zeros, ones;
            for (uint32_t v : values)
                (v >> bit & 1 ? ones : zeros).push_back(v);
            uint32_t next_mask = mask | (1u << bit);
            TRY((*this)(bit - 1, next_mask, prefix, zeros));
            return (*this)(bit - 1, next_mask, prefix | (1u << bit), ones);
        }
    };
    if (refused.empty())
        return allow(ctx, nr);
    return Walk {ctx, nr, arg}(31, 0, 0, refused);
}

Status add_default_rules(void* ctx)
{
    for (char const* name : allowed_syscalls) {
        int nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR || nr < 0)
            continue;
        TRY_CTX(allow(ctx, nr), name);
    }

    TRY_CTX(check_rc(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "seccomp_rule_add"), "clone3");
    TRY_CTX(check_rc(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                                      SCMP_A0(SCMP_CMP_MASKED_EQ, clone_namespace_flags, 0)),
                     "seccomp_rule_add"),
            "clone");

    // ioctl is allowed except for the two terminal-injection requests, which fall through to the
    // default EPERM. libseccomp lets an unconditional rule override conditional ones, so the
    // allowance is spelled as the complement of the refused set (see allow_unless_low32).
    TRY_CTX(allow_unless_low32(ctx, SCMP_SYS(ioctl), 1, {uint32_t(TIOCSTI), uint32_t(TIOCLINUX)}), "ioctl");

    // Sockets only of the families a compartment's own network namespace confines. AF_VSOCK is
    // not namespaced (it reaches the host's and the hypervisor's vsock services), and the others
    // (AF_ALG, AF_PACKET, AF_KEY, bluetooth, ...) are kernel attack surface no payload needs. The
    // kernel reads the family as int: compare the low 32 bits only.
    for (int nr : {SCMP_SYS(socket), SCMP_SYS(socketpair)}) {
        for (uint64_t family : allowed_socket_families) {
            TRY_CTX(check_rc(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffULL, family)),
                             "seccomp_rule_add"),
                    "socket");
        }
    }

    for (uint64_t persona : allowed_personas) {
        TRY_CTX(check_rc(seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(personality), 1,
                                          SCMP_A0(SCMP_CMP_EQ, persona)),
                         "seccomp_rule_add"),
                "personality");
    }
    return {};
}

// What the broker (and every helper it starts, and every compartment it makes, under their own
// filters) never needs: debugging other processes, the kernel's code and clock, keys, BPF,
// performance counters, page-fault handling in user space, handles to files by number, io_uring,
// swap and accounting. Names the running libseccomp does not know are skipped.
constexpr char const* broker_denied_syscalls[] = {
    "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "create_module",
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key",
    "reboot", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime",
    "iopl", "ioperm", "lookup_dcookie", "open_by_handle_at", "name_to_handle_at", "quotactl", "quotactl_fd",
    "acct", "swapon", "swapoff", "vhangup", "syslog", "uselib", "nfsservctl", "_sysctl",
    "io_uring_setup", "io_uring_enter", "io_uring_register", "fanotify_init",
#if !defined(__SANITIZE_ADDRESS__)
    // A sanitizer build keeps ptrace: LeakSanitizer stops the world with it at the broker's exit.
    "ptrace",
#endif
};

Status add_broker_rules(void* ctx)
{
    for (char const* name : broker_denied_syscalls) {
        int nr = seccomp_syscall_resolve_name(name);
        if (nr == __NR_SCMP_ERROR)
            continue;
        TRY_CTX(check_rc(seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0), "seccomp_rule_add"), name);
    }
    // personality is left to the compartments' own filter (only the harmless personas): "any persona
    // but these four" needs two comparisons of one argument in a rule, which libseccomp refuses, and
    // the broker never calls it.
    return {};
}

// Exports the compiled filter through a memfd and reads it back as sock_filter instructions.
Result<std::vector<sock_filter>> export_program(void* ctx)
{
    int fd = ::memfd_create("bulkhead-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return Error::from_syscall("memfd_create", errno);
    std::unique_ptr<int, void (*)(int*)> guard(&fd, [](int* f) { ::close(*f); });
    TRY(check_rc(seccomp_export_bpf(ctx, fd), "seccomp_export_bpf"));
    off_t size = ::lseek(fd, 0, SEEK_END);
    if (size <= 0 || size % sizeof(sock_filter) != 0 || size / sizeof(sock_filter) > BPF_MAXINSNS)
        return Error::from_message("seccomp_export_bpf: unexpected program size " + std::to_string(size));
    std::vector<sock_filter> program(size / sizeof(sock_filter));
    if (::pread(fd, program.data(), size, 0) != size)
        return Error::from_syscall("pread", "seccomp program", errno ? errno : EIO);
    return program;
}

} // namespace

Result<SeccompProgram> SeccompProgram::compile(SeccompProfile profile)
{
    // Last word of the policy: for compartments, anything not allowed below is refused; for the
    // broker, anything not refused below is allowed.
    Context ctx(seccomp_init(profile == SeccompProfile::Broker ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(EPERM)));
    if (!ctx)
        return Error::from_message("seccomp_init failed");
    // The native architecture only; a syscall through another ABI ends the process.
    TRY(check_rc(seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "seccomp_attr_set"));
    // no_new_privs is set by the engine itself, before the filter is installed.
    TRY(check_rc(seccomp_attr_set(ctx.get(), SCMP_FLTATR_CTL_NNP, 0), "seccomp_attr_set"));
    switch (profile) {
    case SeccompProfile::Default:
        TRY(add_default_rules(ctx.get()));
        break;
    case SeccompProfile::Broker:
        TRY(add_broker_rules(ctx.get()));
        break;
    }
    SeccompProgram program;
    program.m_program = TRY(export_program(ctx.get()));
    return program;
}

} // namespace bulkhead::sandbox
