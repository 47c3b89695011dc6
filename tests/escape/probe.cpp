// bulkhead_escape_probe: `probe CHECK [ARGS...]`. See probe.hpp for the output format; the checks
// themselves live in probe_*.cpp by subject. This file: the shared helpers, and the checks about
// the probe's own identity (whoami, status, fds, setuid, abi, core).
#include "probe.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

namespace probe {

// ---- reporting ----

void Report::line(char const* verdict, std::string const& detail)
{
    ++m_lines;
    std::string text = std::string(verdict) + " " + m_check + ": " + detail;
    for (char& c : text) {
        if (c == '\n')
            c = ' ';
    }
    text += '\n';
    (void)!::write(1, text.data(), text.size());
}

void Report::pass(std::string const& detail)
{
    line("PASS", detail);
}

void Report::fail(std::string const& detail)
{
    ++m_failures;
    line("FAIL", detail);
}

std::string errno_name(int err)
{
    char const* name = ::strerrorname_np(err);
    return name != nullptr ? name : "errno " + std::to_string(err);
}

std::string signal_name(int sig)
{
    char const* name = ::sigabbrev_np(sig);
    return name != nullptr ? std::string("SIG") + name : "signal " + std::to_string(sig);
}

Outcome now(long rc)
{
    Outcome outcome;
    outcome.rc = rc;
    outcome.err = rc < 0 ? errno : 0;
    return outcome;
}

Outcome in_child(std::function<long()> const& attempt)
{
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0)
        return {-1, errno, 0, false};
    pid_t pid = ::fork();
    if (pid < 0) {
        int err = errno;
        ::close(pipe_fds[0]);
        ::close(pipe_fds[1]);
        return {-1, err, 0, false};
    }
    if (pid == 0) {
        ::close(pipe_fds[0]);
        errno = 0;
        long message[2] = {attempt(), 0};
        message[1] = errno;
        (void)!::write(pipe_fds[1], message, sizeof(message));
        ::_exit(0);
    }
    ::close(pipe_fds[1]);
    long message[2] = {0, 0};
    ssize_t n;
    do
        n = ::read(pipe_fds[0], message, sizeof(message));
    while (n < 0 && errno == EINTR);
    ::close(pipe_fds[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    Outcome outcome;
    if (n == static_cast<ssize_t>(sizeof(message))) {
        outcome.rc = message[0];
        outcome.err = outcome.rc < 0 ? static_cast<int>(message[1]) : 0;
        return outcome;
    }
    if (WIFSIGNALED(status)) {
        outcome.signal = WTERMSIG(status);
        return outcome;
    }
    return {-1, EPROTO, 0, false};
}

void expect_refused(Report& report, std::string const& what, Outcome const& outcome, std::vector<int> const& expected)
{
    if (!outcome.ran) {
        report.fail(what + ": could not make the attempt: " + errno_name(outcome.err));
        return;
    }
    if (outcome.signal != 0) {
        report.fail(what + ": the attempt was killed by " + signal_name(outcome.signal));
        return;
    }
    if (outcome.rc >= 0) {
        report.fail(what + ": succeeded (returned " + std::to_string(outcome.rc) + ")");
        return;
    }
    std::string names;
    for (int err : expected) {
        if (err == outcome.err) {
            report.pass(what + ": refused with " + errno_name(err));
            return;
        }
        names += (names.empty() ? "" : "/") + errno_name(err);
    }
    report.fail(what + ": failed with unexpected " + errno_name(outcome.err) + " (expected " + names + ")");
}

// ---- small helpers ----

bool read_file(std::string const& path, std::string& out, int* err, size_t limit)
{
    out.clear();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        if (err != nullptr)
            *err = errno;
        return false;
    }
    char buffer[8192];
    while (out.size() < limit) {
        ssize_t n = ::read(fd, buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (err != nullptr)
                *err = errno;
            ::close(fd);
            return false;
        }
        if (n == 0)
            break;
        out.append(buffer, static_cast<size_t>(n));
    }
    ::close(fd);
    return true;
}

bool list_dir(std::string const& path, std::vector<std::string>& names, int* err)
{
    names.clear();
    DIR* dir = ::opendir(path.c_str());
    if (dir == nullptr) {
        if (err != nullptr)
            *err = errno;
        return false;
    }
    while (dirent* entry = ::readdir(dir)) {
        std::string name = entry->d_name;
        if (name != "." && name != "..")
            names.push_back(name);
    }
    ::closedir(dir);
    return true;
}

std::vector<pid_t> visible_pids()
{
    std::vector<std::string> names;
    std::vector<pid_t> pids;
    list_dir("/proc", names);
    for (auto const& name : names) {
        if (!name.empty() && name.find_first_not_of("0123456789") == std::string::npos)
            pids.push_back(static_cast<pid_t>(std::atoi(name.c_str())));
    }
    return pids;
}

std::vector<std::string> cmdline_of(pid_t pid)
{
    std::string raw;
    std::vector<std::string> argv;
    if (!read_file("/proc/" + std::to_string(pid) + "/cmdline", raw))
        return argv;
    size_t start = 0;
    while (start < raw.size()) {
        size_t end = raw.find('\0', start);
        if (end == std::string::npos)
            end = raw.size();
        argv.push_back(raw.substr(start, end - start));
        start = end + 1;
    }
    return argv;
}

std::string status_field(std::string const& status, std::string_view key)
{
    std::string needle = "\n" + std::string(key) + ":";
    size_t at = ("\n" + status).find(needle);
    if (at == std::string::npos)
        return {};
    size_t value = at + needle.size() - 1; // offsets in `status` are one less than in "\n" + status
    size_t end = status.find('\n', value);
    std::string field = status.substr(value, end == std::string::npos ? std::string::npos : end - value);
    size_t first = field.find_first_not_of(" \t");
    return first == std::string::npos ? std::string {} : field.substr(first);
}

void wait_for_stdin_eof()
{
    char buffer[256];
    while (true) {
        ssize_t n = ::read(0, buffer, sizeof(buffer));
        if (n == 0 || (n < 0 && errno != EINTR))
            return;
    }
}

// ---- identity ----

int check_whoami(Args const&)
{
    std::string status;
    read_file("/proc/self/status", status);
    std::string line = "euid=" + std::to_string(::geteuid()) + " uid=" + std::to_string(::getuid())
        + " egid=" + std::to_string(::getegid()) + " gid=" + std::to_string(::getgid())
        + " capeff=" + status_field(status, "CapEff") + " capprm=" + status_field(status, "CapPrm") + "\n";
    (void)!::write(1, line.data(), line.size());
    return 0;
}

int check_status(Args const&)
{
    Report report("status");
    std::string status;
    int err = 0;
    if (!read_file("/proc/self/status", status, &err)) {
        report.fail("cannot read /proc/self/status: " + errno_name(err));
        return report.exit_code();
    }
    for (char const* key : {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"}) {
        std::string value = status_field(status, key);
        if (!value.empty() && std::strtoull(value.c_str(), nullptr, 16) == 0)
            report.pass(std::string(key) + " is " + value);
        else
            report.fail(std::string(key) + " is '" + value + "', expected all zero");
    }
    std::string nnp = status_field(status, "NoNewPrivs");
    (nnp == "1" ? report.pass("NoNewPrivs is 1") : report.fail("NoNewPrivs is '" + nnp + "', expected 1"));
    std::string seccomp = status_field(status, "Seccomp");
    (seccomp == "2" ? report.pass("Seccomp is 2 (filter)") : report.fail("Seccomp is '" + seccomp + "', expected 2"));

    // Nothing inside may make itself immune to the OOM killer (the host may have lowered PID 1's
    // score; that must not have been inherited as a right to lower one's own).
    expect_refused(report, "write -1000 to /proc/self/oom_score_adj", in_child([] {
                       int fd = ::open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
                       if (fd < 0)
                           return -1L;
                       long rc = ::write(fd, "-1000", 5);
                       ::close(fd);
                       return rc;
                   }),
                   {EACCES, EPERM});

    // No id range may reach host root: a namespace escape must land as an unprivileged host id.
    for (char const* map : {"/proc/self/uid_map", "/proc/self/gid_map"}) {
        std::string content;
        if (!read_file(map, content, &err)) {
            report.fail(std::string("cannot read ") + map + ": " + errno_name(err));
            continue;
        }
        unsigned long inside = 0, outside = 0, count = 0;
        bool maps_root = false;
        int ranges = 0;
        for (char const* p = content.c_str(); std::sscanf(p, "%lu %lu %lu", &inside, &outside, &count) == 3; ++ranges) {
            maps_root |= outside == 0;
            p = std::strchr(p, '\n');
            if (p == nullptr)
                break;
            ++p;
        }
        if (ranges == 0 || maps_root || (ranges == 1 && count == 4294967295UL))
            report.fail(std::string(map) + " maps host id 0 or is the initial namespace: " + content);
        else
            report.pass(std::string(map) + " maps no host root");
    }
    int groups = ::getgroups(0, nullptr);
    (groups == 0 ? report.pass("no supplementary groups")
                 : report.fail("supplementary groups present: " + std::to_string(groups)));
    int bits = ::prctl(PR_GET_SECUREBITS, 0, 0, 0, 0);
    int wanted
        = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;
    if (bits >= 0 && (bits & wanted) == wanted)
        report.pass("securebits " + std::to_string(bits) + " include noroot and no-ambient-raise, locked");
    else
        report.fail("securebits are " + std::to_string(bits) + ", expected noroot and no-ambient-raise, locked");
    return report.exit_code();
}

int check_fds(Args const&)
{
    Report report("fds");
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) {
        report.fail("cannot list /proc/self/fd: " + errno_name(errno));
        return report.exit_code();
    }
    std::string extra;
    while (dirent* entry = ::readdir(dir)) {
        std::string name = entry->d_name;
        if (name == "." || name == "..")
            continue;
        int fd = std::atoi(name.c_str());
        if (fd == ::dirfd(dir) || fd <= 2)
            continue;
        char target[512] = {};
        ssize_t n = ::readlink(("/proc/self/fd/" + name).c_str(), target, sizeof(target) - 1);
        extra += " " + name + "->" + (n > 0 ? std::string(target, static_cast<size_t>(n)) : "?");
    }
    ::closedir(dir);
    (extra.empty() ? report.pass("only 0, 1 and 2 are open") : report.fail("inherited descriptors:" + extra));

    char cwd[4096];
    if (::getcwd(cwd, sizeof(cwd)) == nullptr) {
        report.fail("getcwd failed: " + errno_name(errno));
    } else if (std::string_view(cwd).starts_with("(unreachable)") || cwd[0] != '/') {
        report.fail(std::string("cwd is outside the root: ") + cwd);
    } else {
        struct stat by_path {
        }, by_dot {};
        bool same = ::stat(cwd, &by_path) == 0 && ::stat(".", &by_dot) == 0 && by_path.st_dev == by_dot.st_dev
            && by_path.st_ino == by_dot.st_ino;
        (same ? report.pass(std::string("cwd ") + cwd + " is inside the root")
              : report.fail(std::string("cwd path ") + cwd + " does not lead to the cwd"));
    }
    char link[4096] = {};
    ssize_t n = ::readlink("/proc/self/root", link, sizeof(link) - 1);
    (n == 1 && link[0] == '/' ? report.pass("/proc/self/root is /")
                              : report.fail("/proc/self/root is '" + std::string(link, n > 0 ? n : 0) + "'"));
    // Climbing from the cwd stops at the root.
    for (int i = 0; i < 64; ++i)
        (void)::chdir("..");
    struct stat top {
    }, root {};
    bool at_root
        = ::stat(".", &top) == 0 && ::stat("/", &root) == 0 && top.st_dev == root.st_dev && top.st_ino == root.st_ino;
    (at_root ? report.pass("64 x chdir(\"..\") ends at the root")
             : report.fail("chdir(\"..\") climbed above the root"));
    return report.exit_code();
}

// ---- privilege regain ----

int check_setuid(Args const& args)
{
    Report report("setuid");
    uid_t uid = ::getuid();
    gid_t gid = ::getgid();
    for (auto const& path : args) {
        struct stat st {};
        if (::stat(path.c_str(), &st) < 0) {
            report.fail(path + ": missing (" + errno_name(errno) + "): the harness did not prepare it");
            continue;
        }
        bool file_caps = ::getxattr(path.c_str(), "security.capability", nullptr, 0) > 0;
        if ((st.st_mode & S_ISUID) == 0 && !file_caps) {
            report.fail(path + ": has neither a setuid bit nor file capabilities: the harness did not prepare it");
            continue;
        }
        int out[2];
        if (::pipe2(out, O_CLOEXEC) < 0) {
            report.fail("pipe: " + errno_name(errno));
            continue;
        }
        pid_t pid = ::fork();
        if (pid == 0) {
            ::dup2(out[1], 1);
            char* argv[] = {const_cast<char*>(path.c_str()), const_cast<char*>("whoami"), nullptr};
            ::execv(path.c_str(), argv);
            std::string message = "exec failed: " + errno_name(errno) + "\n";
            (void)!::write(1, message.data(), message.size());
            ::_exit(127);
        }
        ::close(out[1]);
        std::string output;
        char buffer[512];
        ssize_t n;
        while ((n = ::read(out[0], buffer, sizeof(buffer))) > 0)
            output.append(buffer, static_cast<size_t>(n));
        ::close(out[0]);
        int status = 0;
        ::waitpid(pid, &status, 0);
        if (!output.empty() && output.back() == '\n')
            output.pop_back();
        unsigned euid = 0, ruid = 0, egid = 0, rgid = 0;
        char capeff[32] = {};
        char mode[8];
        std::snprintf(mode, sizeof(mode), "%04o", st.st_mode & 07777);
        std::string owner
            = " (owner " + std::to_string(st.st_uid) + ", mode " + mode + (file_caps ? ", file caps" : "") + ")";
        if (std::sscanf(output.c_str(), "euid=%u uid=%u egid=%u gid=%u capeff=%31s", &euid, &ruid, &egid, &rgid, capeff)
            != 5) {
            report.fail(path + owner + ": could not run it: " + output);
            continue;
        }
        bool same = euid == uid && egid == gid && std::strtoull(capeff, nullptr, 16) == 0;
        (same ? report.pass(path + owner + " ran as " + output)
              : report.fail(path + owner + " gained privilege: " + output + " (caller uid " + std::to_string(uid)
                            + ")"));
    }

    // Asking directly: another identity, capabilities back, ambient capabilities.
    if (uid != 0) {
        expect_refused(report, "setresuid(0, 0, 0)", in_child([] { return static_cast<long>(::setresuid(0, 0, 0)); }),
                       {EPERM});
        expect_refused(report, "setresgid(0, 0, 0)", in_child([] { return static_cast<long>(::setresgid(0, 0, 0)); }),
                       {EPERM});
    }
    expect_refused(report, "capset(all)", in_child([] {
                       __user_cap_header_struct header {_LINUX_CAPABILITY_VERSION_3, 0};
                       __user_cap_data_struct data[2] = {{~0U, ~0U, ~0U}, {~0U, ~0U, ~0U}};
                       return ::syscall(SYS_capset, &header, data);
                   }),
                   {EPERM});
    expect_refused(report, "prctl(PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN)", in_child([] {
                       return static_cast<long>(::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0));
                   }),
                   {EPERM});
    expect_refused(report, "prctl(PR_SET_SECUREBITS, 0)",
                   in_child([] { return static_cast<long>(::prctl(PR_SET_SECUREBITS, 0, 0, 0, 0)); }), {EPERM});
    expect_refused(report, "prctl(PR_SET_NO_NEW_PRIVS, 0)",
                   in_child([] { return static_cast<long>(::prctl(PR_SET_NO_NEW_PRIVS, 0, 0, 0, 0)); }), {EINVAL});
    return report.exit_code();
}

// ---- other ABIs ----

int check_abi(Args const&)
{
    Report report("abi");
    // x32: the same architecture token as x86_64, told apart only by bit 30 of the number.
    Outcome x32 = in_child([] { return ::syscall(0x40000000L | SYS_getpid); });
    if (x32.signal == SIGSYS)
        report.pass("x32 getpid killed the process with SIGSYS");
    else if (x32.signal != 0)
        report.fail("x32 getpid ended in " + signal_name(x32.signal) + ", expected SIGSYS");
    else
        report.fail("x32 getpid returned " + std::to_string(x32.rc) + (x32.rc < 0 ? " " + errno_name(x32.err) : "")
                    + ", expected SIGSYS");

    // i386 through int $0x80 from a 64-bit process.
    Outcome i386 = in_child([] {
        long ret = 20; // __NR_getpid on i386
        asm volatile("int $0x80" : "+a"(ret) : : "memory", "rcx", "r8", "r9", "r10", "r11");
        if (ret == ::getpid())
            return 1L;
        return ret < 0 ? ret : 2L;
    });
    if (i386.signal == SIGSYS)
        report.pass("int $0x80 getpid killed with SIGSYS (ia32 emulation is enabled; seccomp refused the ABI)");
    else if (i386.signal == SIGSEGV)
        report.pass("int $0x80 getpid killed with SIGSEGV (ia32 emulation is disabled in this kernel)");
    else if (i386.signal != 0)
        report.fail("int $0x80 getpid ended in " + signal_name(i386.signal));
    else if (i386.rc == 1)
        report.fail("int $0x80 getpid returned the pid: the i386 ABI is reachable");
    else
        report.fail("int $0x80 getpid returned " + std::to_string(i386.rc) + " instead of being killed");
    return report.exit_code();
}

// ---- core dumps: a crashing process must not hand its memory to anything (a core file, or a
// host-side core_pattern helper, which runs in the host's namespaces) ----

int check_core(Args const&)
{
    Report report("core");
    std::string pattern;
    read_file("/proc/sys/kernel/core_pattern", pattern);
    while (!pattern.empty() && pattern.back() == '\n')
        pattern.pop_back();
    rlimit core {};
    ::getrlimit(RLIMIT_CORE, &core);
    (core.rlim_max == 0 ? report.pass("RLIMIT_CORE hard limit is 0")
                        : report.fail("RLIMIT_CORE hard limit is " + std::to_string(core.rlim_max)));
    expect_refused(report, "setrlimit(RLIMIT_CORE, unlimited)", in_child([] {
                       rlimit unlimited {RLIM_INFINITY, RLIM_INFINITY};
                       return static_cast<long>(::setrlimit(RLIMIT_CORE, &unlimited));
                   }),
                   {EPERM});
    if (::chdir("/tmp") < 0) {
        report.fail("chdir /tmp: " + errno_name(errno));
        return report.exit_code();
    }
    pid_t pid = ::fork();
    if (pid == 0) {
        // Make the crash as dumpable as a process can make itself.
        ::prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        rlimit soft {core.rlim_max, core.rlim_max};
        ::setrlimit(RLIMIT_CORE, &soft);
        ::signal(SIGABRT, SIG_DFL);
        ::abort();
    }
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT)
        report.fail("the crashing child did not die of SIGABRT (status " + std::to_string(status) + ")");
    else if (WCOREDUMP(status))
        report.fail("a crash inside produced a core dump (core_pattern '" + pattern + "')");
    else
        report.pass("a crash inside produced no core dump (core_pattern '" + pattern + "')");
    std::vector<std::string> names;
    list_dir("/tmp", names);
    std::string cores;
    for (auto const& name : names) {
        if (name.starts_with("core"))
            cores += " " + name;
    }
    (cores.empty() ? report.pass("no core file in /tmp") : report.fail("core files in /tmp:" + cores));
    return report.exit_code();
}

} // namespace probe

namespace {

struct Check {
    char const* name;
    int (*run)(probe::Args const&);
};

constexpr Check checks[] = {
    {"whoami", probe::check_whoami},
    {"status", probe::check_status},
    {"fds", probe::check_fds},
    {"setuid", probe::check_setuid},
    {"abi", probe::check_abi},
    {"core", probe::check_core},
    {"tty", probe::check_tty},
    {"exe", probe::check_exe},
    {"host-files", probe::check_host_files},
    {"proc", probe::check_proc},
    {"dev", probe::check_dev},
    {"mounts", probe::check_mounts},
    {"ptrace", probe::check_ptrace},
    {"syscalls", probe::check_syscalls},
    {"host-procs", probe::check_host_procs},
    {"host-argv", probe::check_host_argv},
    {"serve", probe::check_serve},
    {"neighbour", probe::check_neighbour},
    {"network", probe::check_network},
    {"shm-create", probe::check_shm_create},
    {"shm-absent", probe::check_shm_absent},
    {"forkbomb", probe::check_forkbomb},
    {"memorybomb", probe::check_memorybomb},
};

} // namespace

int main(int argc, char** argv)
{
    if (argc >= 2) {
        probe::Args args(argv + 2, argv + argc);
        for (auto const& check : checks) {
            if (std::strcmp(argv[1], check.name) == 0)
                return check.run(args);
        }
    }
    std::string usage = "usage: bulkhead_escape_probe CHECK [ARGS...]\nchecks:";
    for (auto const& check : checks)
        usage += std::string(" ") + check.name;
    usage += "\n";
    (void)!::write(2, usage.data(), usage.size());
    return 2;
}
