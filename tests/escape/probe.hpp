// The escape probe: attacks a compartment from the inside and reports each attempt as one line,
// `PASS <check>: <detail>` when the attack was refused or had no effect, `FAIL <check>: <detail>`
// otherwise. It is deliberately independent of bulkhead's own libraries (libc and libstdc++ only), so
// that it tests the compartment rather than sharing code with what it tests.
#pragma once

#include <functional>
#include <initializer_list>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace probe {

using Args = std::vector<std::string>;

// One check's lines. Each line is written to stdout with a single write(): forked children report
// through the same descriptor, and nothing is buffered across a fork.
class Report {
public:
    explicit Report(std::string check) : m_check(std::move(check)) {}
    void pass(std::string const& detail);
    void fail(std::string const& detail);
    // 0 when at least one line was reported and every line was PASS.
    int exit_code() const { return m_lines > 0 && m_failures == 0 ? 0 : 1; }
    int failures() const { return m_failures; }

private:
    void line(char const* verdict, std::string const& detail);
    std::string m_check;
    int m_lines = 0;
    int m_failures = 0;
};

std::string errno_name(int err);
std::string signal_name(int sig);

// What an attempt came to: its return value and errno, or the signal that ended the child it ran in.
struct Outcome {
    long rc = 0;
    int err = 0;
    int signal = 0;  // the attempt's child was killed by this signal
    bool ran = true; // false: the child could not be started (err says why)
};

// Captures errno right after `rc` was computed in the caller: `now(::open(...))`.
Outcome now(long rc);
// Runs `attempt` in a forked child, so that a success cannot change this process (new namespaces,
// a new root, dropped privileges) and a crash is reported instead of ending the probe.
Outcome in_child(std::function<long()> const& attempt);

// PASS when the attempt failed with one of `expected`; FAIL on success, on any other errno, or on a
// signal. The detail always names what was tried and what happened.
void expect_refused(Report& report, std::string const& what, Outcome const& outcome, std::vector<int> const& expected);

// Small helpers that never throw.
bool read_file(std::string const& path, std::string& out, int* err = nullptr, size_t limit = 1 << 20);
bool list_dir(std::string const& path, std::vector<std::string>& names, int* err = nullptr);
std::vector<pid_t> visible_pids();
std::vector<std::string> cmdline_of(pid_t pid);
std::string status_field(std::string const& status, std::string_view key);
// Blocks until stdin reaches end of file (the harness's signal to finish a held check).
void wait_for_stdin_eof();

// The checks. Each returns the process exit code.
int check_whoami(Args const& args);
int check_status(Args const& args);
int check_fds(Args const& args);
int check_setuid(Args const& args);
int check_abi(Args const& args);
int check_core(Args const& args);
int check_tty(Args const& args);
int check_exe(Args const& args);
int check_host_files(Args const& args);
int check_proc(Args const& args);
int check_dev(Args const& args);
int check_mounts(Args const& args);
int check_ptrace(Args const& args);
int check_syscalls(Args const& args);
int check_host_procs(Args const& args);
int check_host_argv(Args const& args);
int check_serve(Args const& args);
int check_neighbour(Args const& args);
int check_network(Args const& args);
int check_shm_create(Args const& args);
int check_shm_absent(Args const& args);
int check_forkbomb(Args const& args);
int check_memorybomb(Args const& args);

} // namespace probe
