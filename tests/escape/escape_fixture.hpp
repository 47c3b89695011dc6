// Shared set-up for the escape tests: a copy of the probe bound read-only into every compartment,
// compartments the test can talk to while they run, and host-side observers (file fingerprints,
// host processes, /bin/true on the host).
#pragma once

#include "engine_fixture.hpp"
#include "sandbox/compartment.hpp"
#include "sys/fd.hpp"

#include <optional>
#include <ostream>
#include <string>
#include <sys/types.h>
#include <vector>

namespace bulkhead::sandbox {
// For gtest's messages: "GetParam() = Root" rather than the enum's bytes.
inline void PrintTo(RunAs run_as, std::ostream* out)
{
    *out << (run_as == RunAs::Root ? "Root" : "User");
}
} // namespace bulkhead::sandbox

namespace bulkhead::escape {

// Where the probe is inside every compartment.
inline constexpr char probe_inside[] = "/probe/bulkhead_escape_probe";

// Exit 0, at least one line, and every line "PASS <check>: ..." (a bare "READY" line is allowed).
::testing::AssertionResult all_pass(testing::RunResult const& result, std::string const& check);
// Whether some line starts with "FAIL <check>: " and contains `fragment`.
bool has_fail(std::string const& output, std::string const& check, std::string const& fragment);

class EscapeTest : public testing::EngineTest, public ::testing::WithParamInterface<sandbox::RunAs> {
public:
    static void SetUpTestSuite();
    static void TearDownTestSuite();

protected:
    void SetUp() override;
    // Runs the probe copy with `args` as GetParam(), the probe's directory bound read-only at /probe.
    sandbox::Spec probe_spec(std::vector<std::string> args);
    testing::RunResult run_probe(std::vector<std::string> args) { return run(probe_spec(std::move(args))); }
    // Like run(), with `stdin_fd` (borrowed) as the compartment's stdin.
    testing::RunResult run_with_stdin(sandbox::Spec spec, int stdin_fd);

    // The host copy of the probe that compartments run (a copy, so that the build's own file is
    // never what an attack reaches).
    static std::string const& probe_copy();
    static std::string const& probe_dir();
};

// A compartment the test talks to while it runs: stdin is a pipe until close_stdin(), its output
// is read as it comes.
class LiveCompartment {
public:
    LiveCompartment() = default;
    LiveCompartment(LiveCompartment const&) = delete;
    LiveCompartment& operator=(LiveCompartment const&) = delete;
    ~LiveCompartment();

    // `stdin_fd` (borrowed) replaces the stdin pipe when given.
    bool start(sandbox::Engine const& engine, sandbox::Spec spec, int stdin_fd = -1);
    // Reads output until a line equals `line`; false on end of output or after `timeout_ms`.
    bool wait_for_line(std::string const& line, int timeout_ms = 20'000);
    // Closes stdin, reads to the end (killing the compartment if it takes over `timeout_ms`), waits, destroys.
    testing::RunResult finish(int timeout_ms = 60'000);
    std::string const& output() const { return m_output; }

private:
    std::optional<sandbox::Compartment> m_compartment;
    sys::UniqueFd m_in;
    sys::UniqueFd m_out;
    std::string m_output;
};

// Content, mode, owner and modification time of a host file, as one comparable string.
std::string fingerprint(std::string const& path);
std::string self_exe();
// This process's argv[0] as the kernel keeps it (what /proc/PID/cmdline shows).
std::string self_argv0();
std::string make_host_dir(std::string const& prefix, mode_t mode);
bool copy_host_file(std::string const& from, std::string const& to, mode_t mode);
// Everything queued for reading on `fd`, read without blocking.
std::string drain(int fd);

// A host process (argv[0] may be anything: it carries markers). Killed and reaped on destruction.
class HostProcess {
public:
    explicit HostProcess(std::string const& path, std::vector<std::string> argv);
    HostProcess(HostProcess const&) = delete;
    HostProcess& operator=(HostProcess const&) = delete;
    ~HostProcess();
    pid_t pid() const { return m_pid; }
    // Running, not a zombie, and not traced.
    bool alive_and_untraced() const;

private:
    pid_t m_pid = -1;
};

// The host can still fork and run /bin/true, `times` times in a row.
bool host_runs_true(int times = 4);

// A pty in raw mode, so that any byte injected into its input is readable at once rather than
// held back for a complete line. Empty fds when openpty or the mode change fails.
struct RawPty {
    sys::UniqueFd master;
    sys::UniqueFd slave;
};
RawPty open_raw_pty();

} // namespace bulkhead::escape
