#include "escape_fixture.hpp"

#include <pty.h>
#include <termios.h>

#include "sys/syscalls.hpp"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sstream>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bulkhead::escape {

namespace {

std::string s_probe_dir;
std::string s_probe_copy;

std::vector<std::string> split_lines(std::string const& text)
{
    std::vector<std::string> lines;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty())
            lines.push_back(line);
    }
    return lines;
}

} // namespace

::testing::AssertionResult all_pass(testing::RunResult const& result, std::string const& check)
{
    // BULKHEAD_ESCAPE_VERBOSE=1 shows what every attempt came to, passing or not.
    if (std::getenv("BULKHEAD_ESCAPE_VERBOSE") != nullptr)
        std::printf("%s", result.output.c_str());
    std::string const pass = "PASS " + check + ": ";
    size_t passes = 0;
    std::string bad;
    for (auto const& line : split_lines(result.output)) {
        if (line == "READY")
            continue;
        if (line.starts_with(pass))
            ++passes;
        else
            bad += "  " + line + "\n";
    }
    if (result.status.code == 0 && !result.status.signaled && passes > 0 && bad.empty())
        return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "probe " << check << ": exit " << result.status.code
                                         << (result.status.signaled ? " (signal)" : "") << ", " << passes
                                         << " PASS lines; not PASS:\n"
                                         << bad << "whole output:\n"
                                         << result.output;
}

bool has_fail(std::string const& output, std::string const& check, std::string const& fragment)
{
    for (auto const& line : split_lines(output)) {
        if (line.starts_with("FAIL " + check + ": ") && line.find(fragment) != std::string::npos)
            return true;
    }
    return false;
}

// ---- EscapeTest ----

void EscapeTest::SetUpTestSuite()
{
    s_probe_dir = make_host_dir("/tmp/bulkhead-escape-probe-", 0755);
    s_probe_copy = s_probe_dir + "/bulkhead_escape_probe";
    if (!s_probe_dir.empty() && !copy_host_file(BULKHEAD_ESCAPE_PROBE, s_probe_copy, 0755))
        s_probe_copy.clear();
}

void EscapeTest::TearDownTestSuite()
{
    if (!s_probe_dir.empty())
        (void)sys::remove_tree(s_probe_dir);
    s_probe_dir.clear();
    s_probe_copy.clear();
}

void EscapeTest::SetUp()
{
    EngineTest::SetUp();
    if (IsSkipped() || HasFatalFailure())
        return;
    ASSERT_FALSE(s_probe_copy.empty()) << "could not copy " << BULKHEAD_ESCAPE_PROBE;
}

std::string const& EscapeTest::probe_copy()
{
    return s_probe_copy;
}

std::string const& EscapeTest::probe_dir()
{
    return s_probe_dir;
}

sandbox::Spec EscapeTest::probe_spec(std::vector<std::string> args)
{
    args.insert(args.begin(), probe_inside);
    sandbox::Spec spec = make_spec(std::move(args));
    spec.run_as = GetParam();
    spec.env = sandbox::default_environment(spec);
    spec.binds.push_back({s_probe_dir, "/probe", sandbox::AccessMode::ReadOnly});
    return spec;
}

testing::RunResult EscapeTest::run_with_stdin(sandbox::Spec spec, int stdin_fd)
{
    LiveCompartment live;
    if (!live.start(engine(), std::move(spec), stdin_fd))
        return {};
    return live.finish();
}

// ---- LiveCompartment ----

LiveCompartment::~LiveCompartment()
{
    if (m_compartment)
        (void)m_compartment->destroy();
}

bool LiveCompartment::start(sandbox::Engine const& engine, sandbox::Spec spec, int stdin_fd)
{
    int out[2];
    int in[2];
    if (::pipe2(out, O_CLOEXEC) < 0 || ::pipe2(in, O_CLOEXEC) < 0) {
        ADD_FAILURE() << "pipe2: " << std::strerror(errno);
        return false;
    }
    sys::UniqueFd out_write(out[1]), in_read(in[0]);
    m_out.reset(out[0]);
    m_in.reset(in[1]);
    spec.stdin_fd = stdin_fd >= 0 ? stdin_fd : in_read.get();
    spec.stdout_fd = out_write.get();
    spec.stderr_fd = out_write.get();
    auto created = sandbox::Compartment::create(engine, spec);
    if (created.is_error()) {
        ADD_FAILURE() << "create: " << created.error().message();
        return false;
    }
    m_compartment.emplace(created.release_value());
    return true;
}

bool LiveCompartment::wait_for_line(std::string const& line, int timeout_ms)
{
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (true) {
        if (m_output.starts_with(line + "\n") || m_output.find("\n" + line + "\n") != std::string::npos)
            return true;
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd pfd {m_out.get(), POLLIN, 0};
        if (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(left.count())) <= 0)
            return false;
        char buffer[4096];
        ssize_t n = ::read(m_out.get(), buffer, sizeof(buffer));
        if (n <= 0)
            return false;
        m_output.append(buffer, static_cast<size_t>(n));
    }
}

testing::RunResult LiveCompartment::finish(int timeout_ms)
{
    testing::RunResult result;
    if (!m_compartment)
        return result;
    m_in.reset();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    bool killed = false;
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd pfd {m_out.get(), POLLIN, 0};
        if (!killed && (left.count() <= 0 || ::poll(&pfd, 1, static_cast<int>(std::max<long>(left.count(), 0))) == 0)) {
            ADD_FAILURE() << "the compartment did not finish within " << timeout_ms << " ms; killing it";
            (void)m_compartment->signal(SIGKILL);
            killed = true;
            continue;
        }
        char buffer[4096];
        ssize_t n = ::read(m_out.get(), buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        m_output.append(buffer, static_cast<size_t>(n));
    }
    auto status = m_compartment->wait();
    EXPECT_TRUE(status.has_value());
    if (status.has_value())
        result.status = status.value();
    EXPECT_TRUE(m_compartment->destroy().has_value());
    m_compartment.reset();
    result.output = m_output;
    return result;
}

// ---- host-side helpers ----

std::string fingerprint(std::string const& path)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) < 0)
        return "missing: " + path;
    auto content = sys::read_file(path, 1 << 30);
    std::ostringstream out;
    out << "mode " << std::oct << st.st_mode << std::dec << " owner " << st.st_uid << ":" << st.st_gid << " size "
        << st.st_size << " mtime " << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec << " ino " << st.st_ino
        << " content-bytes " << (content.has_value() ? content.value().size() : 0) << " hash "
        << std::hash<std::string> {}(content.has_value() ? content.value() : std::string {});
    return out.str();
}

std::string self_exe()
{
    char path[4096] = {};
    ssize_t n = ::readlink("/proc/self/exe", path, sizeof(path) - 1);
    return n > 0 ? std::string(path, static_cast<size_t>(n)) : std::string {};
}

std::string self_argv0()
{
    auto cmdline = sys::read_file("/proc/self/cmdline");
    if (!cmdline.has_value())
        return {};
    return cmdline.value().substr(0, cmdline.value().find('\0'));
}

std::string make_host_dir(std::string const& prefix, mode_t mode)
{
    std::string pattern = prefix + "XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr || ::chmod(pattern.c_str(), mode) < 0)
        return {};
    return pattern;
}

bool copy_host_file(std::string const& from, std::string const& to, mode_t mode)
{
    auto content = sys::read_file(from, 1 << 30);
    return content.has_value() && testing::write_host_file(to, content.value(), mode);
}

std::string drain(int fd)
{
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    std::string queued;
    char buffer[256];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof(buffer))) > 0)
        queued.append(buffer, static_cast<size_t>(n));
    ::fcntl(fd, F_SETFL, flags);
    return queued;
}

HostProcess::HostProcess(std::string const& path, std::vector<std::string> argv)
{
    m_pid = ::fork();
    if (m_pid == 0) {
        std::vector<char*> args;
        for (auto& arg : argv)
            args.push_back(arg.data());
        args.push_back(nullptr);
        ::execv(path.c_str(), args.data());
        ::_exit(127);
    }
}

HostProcess::~HostProcess()
{
    if (m_pid > 0) {
        ::kill(m_pid, SIGKILL);
        ::waitpid(m_pid, nullptr, 0);
    }
}

bool HostProcess::alive_and_untraced() const
{
    if (m_pid <= 0 || ::waitpid(m_pid, nullptr, WNOHANG) != 0 || ::kill(m_pid, 0) != 0)
        return false;
    auto status = sys::read_file("/proc/" + std::to_string(m_pid) + "/status");
    return status.has_value() && status.value().find("\nTracerPid:\t0\n") != std::string::npos;
}

bool host_runs_true(int times)
{
    for (int i = 0; i < times; ++i) {
        pid_t pid = ::fork();
        if (pid < 0)
            return false;
        if (pid == 0) {
            ::execl("/bin/true", "true", nullptr);
            ::_exit(127);
        }
        int status = 0;
        if (::waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return false;
    }
    return true;
}

RawPty open_raw_pty()
{
    int master = -1;
    int slave = -1;
    if (::openpty(&master, &slave, nullptr, nullptr, nullptr) != 0)
        return {};
    RawPty pty {sys::UniqueFd(master), sys::UniqueFd(slave)};
    termios mode {};
    if (::tcgetattr(slave, &mode) != 0)
        return {};
    ::cfmakeraw(&mode);
    if (::tcsetattr(slave, TCSANOW, &mode) != 0)
        return {};
    return pty;
}

} // namespace bulkhead::escape
