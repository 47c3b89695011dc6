// The control: the probe run on the bare host (as host root, in a forked child, no compartment)
// must report FAIL. A check that passes here too could not tell a compartment from no compartment.
// Only attacks that are harmless on the host are run: syscalls with arguments the kernel rejects
// after its permission check, namespace changes in children that exit, terminal injection into a
// private pty, a crash in a scratch directory. Never a mount, a /proc/sys write, sysrq, kexec or a
// signal to a host process.
#include "escape_fixture.hpp"

#include <cstring>

#include "sys/syscalls.hpp"

#include <algorithm>
#include <fcntl.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

using namespace bulkhead;
using namespace bulkhead::escape;
using sys::UniqueFd;

namespace {

struct HostRun {
    int exit_code = -1;
    std::string output;
};

// The probe in a child of this process: a new session, stdin `stdin_fd` (or /dev/null), stdout
// and stderr captured, descriptors from 3 closed but for `extra_fd` (moved to 5) when given.
HostRun run_on_host(std::vector<std::string> args, int stdin_fd = -1, int extra_fd = -1, std::string const& cwd = "/")
{
    int out[2];
    if (::pipe(out) < 0)
        return {};
    args.insert(args.begin(), BULKHEAD_ESCAPE_PROBE);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::setsid();
        int in = stdin_fd >= 0 ? stdin_fd : ::open("/dev/null", O_RDONLY);
        ::dup2(in, 0);
        ::dup2(out[1], 1);
        ::dup2(out[1], 2);
        if (extra_fd >= 0)
            ::dup2(extra_fd, 5);
        ::close(3);
        ::close(4);
        ::close_range(extra_fd >= 0 ? 6 : 5, ~0U, 0);
        if (::chdir(cwd.c_str()) < 0)
            ::_exit(126);
        std::vector<char*> argv;
        for (auto& arg : args)
            argv.push_back(arg.data());
        argv.push_back(nullptr);
        ::execv(BULKHEAD_ESCAPE_PROBE, argv.data());
        ::_exit(127);
    }
    ::close(out[1]);
    HostRun run;
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(out[0], buffer, sizeof(buffer))) > 0)
        run.output.append(buffer, static_cast<size_t>(n));
    ::close(out[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return run;
}

void expect_fails(HostRun const& run, std::string const& check, std::vector<std::string> const& fragments)
{
    EXPECT_EQ(run.exit_code, 1) << check << ":\n" << run.output;
    for (auto const& fragment : fragments)
        EXPECT_TRUE(has_fail(run.output, check, fragment))
            << "no FAIL " << check << " line with '" << fragment << "' on the host:\n"
            << run.output;
}

} // namespace

TEST(EscapeControl, ProbeDetectsEscapesOnHost)
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root";

    expect_fails(run_on_host({"status"}), "status",
                 {"CapPrm", "CapEff", "CapBnd", "NoNewPrivs", "Seccomp", "uid_map", "securebits"});

    expect_fails(run_on_host({"syscalls"}), "syscalls",
                 {"bpf(", "perf_event_open(", "keyctl(", "add_key(", "userfaultfd(", "io_uring_setup(", "iopl(",
                  "ioperm(", "reboot(", "swapon(", "delete_module(", "sched_setscheduler(SCHED_FIFO)",
                  "setpriority(self, -20)"});

    expect_fails(run_on_host({"mounts", "--harmless"}), "mounts",
                 {"unshare(CLONE_NEWUSER)", "unshare(CLONE_NEWNS)", "clone(CLONE_NEWUSER)", "setns(/proc/self/ns/net)",
                  "fsopen(tmpfs)", "chroot(/tmp)"});

    // A descriptor the probe should not have.
    UniqueFd extra(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    ASSERT_TRUE(extra.valid());
    expect_fails(run_on_host({"fds"}, -1, extra.get()), "fds", {"inherited descriptors: 5->/dev/null"});

    // x32 fails on any host; int $0x80 only where the kernel runs i386 code at all.
    auto abi = run_on_host({"abi"});
    expect_fails(abi, "abi", {"x32 getpid returned"});
    if (abi.output.find("int $0x80 getpid killed with SIGSEGV") == std::string::npos)
        EXPECT_TRUE(has_fail(abi.output, "abi", "int $0x80 getpid returned the pid")) << abi.output;
    else
        RecordProperty("ia32_control", "skipped: ia32 emulation is disabled in this kernel");

    // Terminal injection into a private pty: the host side sees the bytes arrive.
    auto pty = open_raw_pty();
    ASSERT_TRUE(pty.slave.valid()) << "openpty: " << std::strerror(errno);
    int const slave = pty.slave.get();
    auto tty = run_on_host({"tty"}, slave);
    expect_fails(tty, "tty", {"ioctl(0, TIOCSTI)", "ioctl(0, TIOCSTI|1<<32)", "ioctl(0, TIOCLINUX)"});
    EXPECT_NE(drain(slave), "") << "TIOCSTI on the host left nothing in the pty: the harness's pty check cannot fail";

    // Host files: the secret is right there.
    std::string const dir = make_host_dir("/tmp/bulkhead-escape-control-", 0755);
    ASSERT_FALSE(dir.empty());
    ASSERT_TRUE(bulkhead::testing::write_host_file(dir + "/secret.txt", "host secret\n", 0644));
    expect_fails(run_on_host({"host-files", dir + "/secret.txt"}), "host-files",
                 {"open(/etc/shadow)", "host file reachable as " + dir + "/secret.txt"});

    // This process's own command line is right there in /proc.
    expect_fails(run_on_host({"host-argv", self_argv0()}), "host-argv", {"is visible in /proc/"});

    // A crash in a scratch directory leaves a core dump (or hands it to the host's core handler).
    expect_fails(run_on_host({"core"}, -1, -1, dir), "core", {"RLIMIT_CORE hard limit"});
    (void)sys::remove_tree(dir);

    // The network: only where the host has an interface besides lo. No TCP: nothing is sent.
    auto dev = sys::read_file("/proc/net/dev");
    ASSERT_TRUE(dev.has_value());
    if (std::count(dev.value().begin(), dev.value().end(), ':') > 1)
        expect_fails(run_on_host({"network", "--no-tcp"}), "network", {"interfaces:"});
    else
        RecordProperty("network_control", "skipped: the host has only lo");
}
