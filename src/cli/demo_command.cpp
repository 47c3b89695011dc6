// `bulkhead demo`: two compartments built by the engine, "work" and "untrusted", side by side.
// untrusted tries to see work's files, processes and network, and the demo shows each attempt fail.
#include "base/parse.hpp"
#include "cli/commands.hpp"
#include "sys/syscalls.hpp"

#include <cstdio>
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

namespace bulkhead::cli {

namespace {

struct Captured {
    sandbox::ExitStatus status;
    std::string output;
};

sandbox::Spec demo_spec(std::string const& name, uint32_t slot, std::string const& runtime_dir, std::string script)
{
    sandbox::Spec spec;
    spec.name = name;
    spec.runtime_dir = runtime_dir;
    spec.host_id_base = (1U << 30) + (((static_cast<uint32_t>(::getpid()) % 4096) * 2 + slot) << 16);
    spec.limits.memory_bytes = 128ULL << 20;
    spec.limits.pids = 64;
    spec.argv = {"/bin/sh", "-c", std::move(script)};
    spec.env = sandbox::default_environment(spec);
    return spec;
}

Result<std::string> read_all(int fd)
{
    std::string out;
    char buffer[4096];
    while (true) {
        ssize_t n = ::read(fd, buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return Error::from_syscall("read", errno);
        if (n == 0)
            return out;
        out.append(buffer, static_cast<size_t>(n));
    }
}

// Starts a compartment whose stdout and stderr go to a pipe; returns the compartment and the read end.
Result<std::pair<sandbox::Compartment, sys::UniqueFd>> start(sandbox::Engine const& engine, sandbox::Spec spec)
{
    int fds[2];
    TRY(check_syscall(::pipe2(fds, O_CLOEXEC), "pipe2"));
    sys::UniqueFd read_end(fds[0]);
    sys::UniqueFd write_end(fds[1]);
    spec.stdout_fd = write_end.get();
    spec.stderr_fd = write_end.get();
    auto compartment = TRY(sandbox::Compartment::create(engine, spec));
    return std::make_pair(std::move(compartment), std::move(read_end));
}

Result<std::string> read_line(int fd)
{
    std::string line;
    char c;
    while (line.size() < 4096) {
        pollfd pfd {fd, POLLIN, 0};
        if (::poll(&pfd, 1, 10'000) <= 0)
            return Error::from_message("timed out waiting for a compartment");
        ssize_t n = ::read(fd, &c, 1);
        if (n <= 0)
            return Error::from_message("compartment closed its output early");
        if (c == '\n')
            return line;
        line.push_back(c);
    }
    return line;
}

void report(bool ok, char const* what, int& failures)
{
    std::printf("  %s %s\n", ok ? "[ok]    " : "[FAILED]", what);
    failures += ok ? 0 : 1;
}

Result<int> run_demo(sandbox::Engine const& engine, std::string const& runtime_dir)
{
    std::printf("bulkhead demo: two compartments built by the sandbox engine\n\n");
    // work: keeps a secret in its home and /tmp, runs a long process, then reports its own view.
    auto work_spec = demo_spec("work", 0, runtime_dir,
        "echo 'quarterly numbers' > $HOME/secret.txt; echo token > /tmp/work-token; "
        // The marker name is assembled at run time, so that only the marker process itself (and
        // not this script's own command line) carries it; "; :" keeps sh from exec'ing sleep.
        "m=work-mark; sh -c 'sleep 60; :' \"${m}er-process\" & sleep 0.1; "
        "n=$(for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '[w]ork-marker'); "
        "echo \"$n started as $(hostname), keeps a secret in its home and /tmp, sees its own marker process $n time(s)\"; wait");
    work_spec.hostname = "work";
    auto work = TRY_CTX(start(engine, work_spec), "starting work");
    auto line = TRY(read_line(work.second.get()));
    // The first word is how many marker processes work sees of its own: the control for the check below.
    bool work_sees_itself = line.starts_with("1 ");
    std::printf("work:       %s (pid %d on the host)\n", line.substr(line.find(' ') + 1).c_str(), work.first.pid());

    std::string const work_root = work.first.runtime_dir();
    auto untrusted_spec = demo_spec("untrusted", 1, runtime_dir,
        "echo \"hostname=$(hostname)\"; "
        "echo \"uid=$(id -u)\"; "
        "ls /proc | grep -E '^[0-9]+$' | tr '\\n' ' ' | sed 's/^/pids=/'; echo; "
        "for p in /proc/[0-9]*; do tr '\\0' ' ' < $p/cmdline 2>/dev/null; echo; done | grep -c '[w]ork-marker' | sed 's/^/work_procs=/'; "
        "ls /home/user/secret.txt /tmp/work-token " + work_root + " 2>/dev/null | wc -l | sed 's/^/work_files=/'; "
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | tr '\\n' ' ' | sed 's/^/interfaces=/'; echo; "
        "cat /proc/net/route | tail -n +2 | wc -l | sed 's/^/routes=/'");
    untrusted_spec.hostname = "untrusted";
    auto untrusted = TRY_CTX(start(engine, untrusted_spec), "starting untrusted");
    auto status = TRY(untrusted.first.wait());
    std::string output = TRY(read_all(untrusted.second.get()));
    std::printf("untrusted:  exit %d, saw:\n", status.code);
    for (auto part : split(output, '\n')) {
        if (!part.empty())
            std::printf("              %.*s\n", static_cast<int>(part.size()), part.data());
    }

    auto field = [&](std::string const& key) -> std::string {
        for (auto part : split(output, '\n')) {
            if (part.starts_with(key + "="))
                return std::string(trim(part.substr(key.size() + 1)));
        }
        return "?";
    };
    std::printf("\nchecks:\n");
    int failures = 0;
    report(status.code == 0, "untrusted ran to completion", failures);
    report(field("hostname") == "untrusted", "untrusted has its own host name", failures);
    report(field("uid") == "1000", "untrusted runs as its own unprivileged user", failures);
    report(work_sees_itself, "work sees its own marker process (the control)", failures);
    report(field("work_procs") == "0", "untrusted cannot see work's processes", failures);
    report(field("work_files") == "0", "untrusted cannot see work's files (home, /tmp, its host directory)", failures);
    report(field("interfaces") == "lo", "untrusted has no network but its own loopback", failures);
    report(field("routes") == "0", "untrusted has no route anywhere", failures);

    (void)work.first.destroy();
    report(::access(work_root.c_str(), F_OK) != 0, "work torn down: its scratch directory is gone", failures);
    std::printf("\n%s\n", failures == 0 ? "demo passed: the compartments are isolated" : "demo FAILED");
    return failures == 0 ? 0 : 1;
}

} // namespace

int demo_command(std::span<char*> args)
{
    if (!args.empty()) {
        print_error("demo takes no arguments");
        return exit_usage;
    }
    std::string runtime_dir = "/run/bulkhead/demo-" + std::to_string(::getpid());
    if (auto made = ensure_private_dir(runtime_dir); made.is_error()) {
        print_error(made.error().message());
        return exit_failed;
    }
    int code = exit_failed;
    {
        auto engine = open_local_engine("demo-" + std::to_string(::getpid()));
        if (engine.is_error()) {
            print_error(engine.error().message());
        } else if (auto result = run_demo(engine.value()->engine(), runtime_dir); result.is_error()) {
            print_error(result.error().message());
        } else {
            code = result.value();
        }
    }
    ::rmdir(runtime_dir.c_str());
    return code;
}

} // namespace bulkhead::cli
