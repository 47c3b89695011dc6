// The escape checklist, attacked from inside real compartments as root inside and as the user:
// each test runs bulkhead_escape_probe in a compartment and requires every attempt to fail, and
// checks on the host side that nothing changed. ProbeDetectsEscapesOnHost shows the probe's checks
// do fail where there is no compartment.
#include "engine_fixture.hpp"

#include "sandbox/compartment.hpp"
#include "sys/syscalls.hpp"

#include <csignal>
#include <fcntl.h>
#include <optional>
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

using namespace bulkhead;
using namespace bulkhead::sandbox;
using bulkhead::testing::EngineTest;
using bulkhead::testing::path_exists;
using bulkhead::testing::write_host_file;

namespace {

constexpr char const* probe_inside = "/opt/probe/probe";

struct ProbeRun {
    ExitStatus status;
    std::string output;
};

std::string read_all(int fd)
{
    std::string out;
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof(buffer))) > 0)
        out.append(buffer, static_cast<size_t>(n));
    return out;
}

std::string file_contents(std::string const& path)
{
    auto text = sys::read_file(path, 1 << 30);
    return text.has_value() ? text.value() : "<unreadable>";
}

// Every line PASS, at least one line, exit 0.
void expect_all_pass(ProbeRun const& run)
{
    EXPECT_EQ(run.status.code, 0) << run.output;
    EXPECT_FALSE(run.status.signaled) << run.output;
    EXPECT_NE(run.output.find("PASS "), std::string::npos) << run.output;
    EXPECT_EQ(run.output.find("FAIL "), std::string::npos) << run.output;
}

class Escape : public EngineTest, public ::testing::WithParamInterface<RunAs> {
protected:
    void SetUp() override
    {
        EngineTest::SetUp();
        if (IsSkipped() || HasFatalFailure())
            return;
        char dir[] = "/tmp/bulkhead-probe-XXXXXX";
        ASSERT_NE(::mkdtemp(dir), nullptr);
        m_probe_dir = dir;
        ASSERT_EQ(::chmod(dir, 0755), 0);
        m_probe = m_probe_dir + "/probe";
        ASSERT_TRUE(write_host_file(m_probe, file_contents(BULKHEAD_ESCAPE_PROBE), 0755));
    }
    void TearDown() override
    {
        if (!m_probe_dir.empty())
            (void)sys::remove_tree(m_probe_dir);
        EngineTest::TearDown();
    }

    Spec probe_spec(std::vector<std::string> args)
    {
        args.insert(args.begin(), probe_inside);
        Spec spec = make_spec(std::move(args));
        spec.run_as = GetParam();
        spec.env = default_environment(spec);
        spec.binds.push_back({m_probe_dir, "/opt/probe", AccessMode::ReadOnly});
        return spec;
    }

    // Starts a compartment whose stdout and stderr go to the returned pipe.
    std::pair<std::optional<Compartment>, sys::UniqueFd> start(Spec spec, int stdin_fd = -1)
    {
        int out[2];
        EXPECT_EQ(::pipe2(out, O_CLOEXEC), 0);
        sys::UniqueFd read_end(out[0]), write_end(out[1]);
        spec.stdin_fd = stdin_fd;
        spec.stdout_fd = write_end.get();
        spec.stderr_fd = write_end.get();
        auto compartment = Compartment::create(engine(), spec);
        if (compartment.is_error()) {
            ADD_FAILURE() << "create: " << compartment.error().message();
            return {std::nullopt, std::move(read_end)};
        }
        return {compartment.release_value(), std::move(read_end)};
    }

    ProbeRun run_probe(Spec spec, int stdin_fd = -1)
    {
        auto [compartment, output] = start(std::move(spec), stdin_fd);
        ProbeRun run;
        if (!compartment)
            return run;
        run.output = read_all(output.get());
        auto status = compartment->wait();
        EXPECT_TRUE(status.has_value());
        if (status.has_value())
            run.status = status.value();
        EXPECT_TRUE(compartment->destroy().has_value());
        return run;
    }

    std::string m_probe_dir;
    std::string m_probe;
};

// A host process the compartment must neither see nor signal.
struct HostProcess {
    pid_t pid = -1;
    explicit HostProcess(std::string const& marker)
    {
        pid = ::fork();
        if (pid == 0) {
            ::execl("/bin/sh", "sh", "-c", "sleep 60; :", marker.c_str(), nullptr);
            ::_exit(127);
        }
    }
    bool alive() const { return ::kill(pid, 0) == 0 && ::waitpid(pid, nullptr, WNOHANG) == 0; }
    ~HostProcess()
    {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
    }
};

} // namespace

TEST_P(Escape, TerminalInjectionRefused)
{
    int master = -1, slave = -1;
    ASSERT_EQ(::openpty(&master, &slave, nullptr, nullptr, nullptr), 0);
    auto run = run_probe(probe_spec({"tty"}), slave);
    expect_all_pass(run);
    // Nothing was pushed into the terminal's input queue.
    ASSERT_EQ(::fcntl(slave, F_SETFL, O_NONBLOCK), 0);
    char c;
    errno = 0;
    EXPECT_EQ(::read(slave, &c, 1), -1);
    EXPECT_EQ(errno, EAGAIN);
    ::close(master);
    ::close(slave);
}

TEST_P(Escape, HostBinariesCannotBeOverwrittenThroughProcExe)
{
    std::string self = file_contents("/proc/self/exe"); // PID 1 inside is a fork of this binary
    std::string probe = file_contents(m_probe);
    std::string shell = file_contents("/bin/sh");
    expect_all_pass(run_probe(probe_spec({"exe"})));
    EXPECT_TRUE(file_contents("/proc/self/exe") == self) << "this test binary changed";
    EXPECT_TRUE(file_contents(m_probe) == probe) << "the probe binary changed";
    EXPECT_TRUE(file_contents("/bin/sh") == shell) << "/bin/sh changed";
}

TEST_P(Escape, HostFilesUnreachable)
{
    // Stands for the broker's state directory: a host directory no compartment is granted.
    std::string state = m_probe_dir + "-state";
    ASSERT_EQ(::mkdir(state.c_str(), 0700), 0);
    ASSERT_TRUE(write_host_file(state + "/secret", "host secret\n", 0600));
    auto run = run_probe(probe_spec({"host-files", state + "/secret", "/etc/shadow", "/root/.bashrc"}));
    expect_all_pass(run);
    (void)sys::remove_tree(state);
}

TEST_P(Escape, DangerousProcFilesMaskedOrReadOnly) { expect_all_pass(run_probe(probe_spec({"proc"}))); }

TEST_P(Escape, MountsNamespacesAndRootChangesRefused) { expect_all_pass(run_probe(probe_spec({"mounts"}))); }

TEST_P(Escape, PtraceAndForeignMemoryRefused)
{
    HostProcess host("bulkhead-ptrace-target");
    expect_all_pass(run_probe(probe_spec({"ptrace", std::to_string(host.pid)})));
    EXPECT_TRUE(host.alive());
}

TEST_P(Escape, KernelAttackSurfaceSyscallsRefused) { expect_all_pass(run_probe(probe_spec({"syscalls"}))); }

TEST_P(Escape, NoCapabilitiesNoNewPrivsSeccompFiltering) { expect_all_pass(run_probe(probe_spec({"status"}))); }

TEST_P(Escape, SetuidBinariesStayUnprivileged)
{
    auto spec = probe_spec({"setuid", "/opt/probe/suid-host-root", "/opt/probe/suid-inside-root"});
    std::string host_root = m_probe_dir + "/suid-host-root";
    std::string inside_root = m_probe_dir + "/suid-inside-root";
    ASSERT_TRUE(write_host_file(host_root, file_contents(m_probe), 0755));
    ASSERT_TRUE(write_host_file(inside_root, file_contents(m_probe), 0755));
    ASSERT_EQ(::chown(host_root.c_str(), 0, 0), 0);
    ASSERT_EQ(::chown(inside_root.c_str(), spec.host_id_base, spec.host_id_base), 0);
    ASSERT_EQ(::chmod(host_root.c_str(), 04755), 0);
    ASSERT_EQ(::chmod(inside_root.c_str(), 04755), 0);
    expect_all_pass(run_probe(spec));
}

TEST_P(Escape, HostProcessesInvisibleAndUnsignalable)
{
    std::string marker = "bulkhead-host-marker-" + std::to_string(::getpid());
    HostProcess host(marker);
    std::this_thread::sleep_for(std::chrono::milliseconds(50)); // let sh start with its marker
    expect_all_pass(run_probe(probe_spec({"host-procs", std::to_string(host.pid), marker})));
    EXPECT_TRUE(host.alive()) << "the host process was killed from inside";
}

TEST_P(Escape, NeighbourFilesSocketsAndIpcUnreachable)
{
    auto [neighbour, output] = start(probe_spec({"serve"}));
    ASSERT_TRUE(neighbour.has_value());
    char ready[64] = {};
    ssize_t n = ::read(output.get(), ready, sizeof(ready) - 1);
    ASSERT_GT(n, 0);
    ASSERT_EQ(std::string(ready, static_cast<size_t>(n)), "READY\n") << "the neighbour could not set up its objects";
    expect_all_pass(run_probe(probe_spec({"neighbour"})));
    ASSERT_TRUE(neighbour->signal(SIGKILL).has_value());
    (void)neighbour->wait();
    EXPECT_TRUE(neighbour->destroy().has_value());
}

TEST_P(Escape, OnlyLoopbackAndNoRoute) { expect_all_pass(run_probe(probe_spec({"network"}))); }

TEST_P(Escape, OnlyStdioInheritedAndCwdInside)
{
    // An fd the test process holds without close-on-exec must not cross.
    int leak = ::open("/dev/null", O_RDONLY);
    ASSERT_GE(leak, 3);
    expect_all_pass(run_probe(probe_spec({"fds"})));
    ::close(leak);
}

TEST_P(Escape, ForkBombContainedWhileHostAndNeighbourKeepWorking)
{
    auto spec = probe_spec({"forkbomb", "32"});
    spec.limits.pids = 32;
    auto [bomb, output] = start(spec);
    ASSERT_TRUE(bomb.has_value());
    // While the bomb runs: a neighbour compartment and the host can still start processes.
    auto neighbour = run_probe(probe_spec({"status"}));
    expect_all_pass(neighbour);
    EXPECT_EQ(std::system("/bin/true"), 0);
    std::string text = read_all(output.get());
    auto status = bomb->wait();
    ASSERT_TRUE(status.has_value());
    EXPECT_EQ(status.value().code, 0) << text;
    EXPECT_EQ(text.find("FAIL"), std::string::npos) << text;
    EXPECT_NE(text.find("PASS forkbomb"), std::string::npos) << text;
    EXPECT_TRUE(bomb->destroy().has_value());
}

TEST_P(Escape, MemoryBombContained)
{
    auto spec = probe_spec({"memorybomb", "64"});
    spec.limits.memory_bytes = 64ULL << 20;
    expect_all_pass(run_probe(spec));
    expect_all_pass(run_probe(probe_spec({"status"}))); // the next compartment starts fine
}

TEST_P(Escape, SysvSharedMemoryDoesNotOutliveItsCompartment)
{
    expect_all_pass(run_probe(probe_spec({"shm-create"})));
    expect_all_pass(run_probe(probe_spec({"shm-absent"})));
    // Nor did it ever appear on the host (key 0x4343 = 17219).
    std::string host_shm = file_contents("/proc/sysvipc/shm");
    EXPECT_EQ(host_shm.find(" 17219 "), std::string::npos) << host_shm;
}

TEST_P(Escape, OtherSyscallAbisRefused) { expect_all_pass(run_probe(probe_spec({"abi"}))); }

INSTANTIATE_TEST_SUITE_P(Inside, Escape, ::testing::Values(RunAs::Root, RunAs::User),
                         [](auto const& info) { return info.param == RunAs::Root ? "AsRoot" : "AsUser"; });

// The control: on the bare host (as host root, in a child, harmless arguments only) the probe's
// checks report FAIL. A check that cannot fail would pass here too.
TEST(ProbeControl, ProbeDetectsEscapesOnHost)
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root";
    auto on_host = [](std::vector<std::string> args, bool extra_fd) {
        int out[2];
        EXPECT_EQ(::pipe(out), 0);
        pid_t pid = ::fork();
        if (pid == 0) {
            ::setsid(); // no controlling terminal for anything the probe tries
            int null = ::open("/dev/null", O_RDONLY);
            ::dup2(null, 0);
            ::dup2(out[1], 1);
            ::dup2(out[1], 2);
            if (!extra_fd)
                ::close_range(3, ~0U, 0);
            std::vector<char*> argv {const_cast<char*>(BULKHEAD_ESCAPE_PROBE)};
            for (auto& a : args)
                argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(BULKHEAD_ESCAPE_PROBE, argv.data());
            ::_exit(127);
        }
        ::close(out[1]);
        std::string text = read_all(out[0]);
        ::close(out[0]);
        int status = 0;
        ::waitpid(pid, &status, 0);
        return std::make_pair(status, text);
    };
    for (auto const& [args, extra_fd] : std::vector<std::pair<std::vector<std::string>, bool>> {
             {{"status"}, false}, {{"syscalls"}, false}, {{"fds"}, true}, {{"host-files"}, false}}) {
        auto [status, text] = on_host(args, extra_fd);
        EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << args[0] << ":\n" << text;
        EXPECT_NE(text.find("FAIL " + args[0]), std::string::npos) << args[0] << ":\n" << text;
    }
    // The network check fails on a host that has any interface besides lo.
    std::string dev = file_contents("/proc/net/dev");
    if (std::count(dev.begin(), dev.end(), ':') > 1) {
        auto [status, text] = on_host({"network"}, false);
        EXPECT_NE(text.find("FAIL network: interfaces"), std::string::npos) << text;
    }
}
