// bulkhead-agent: PID 1 of every compartment. It reaps every process of the compartment and
// runs commands when the broker asks, over the one socket the broker listens on for this
// compartment (/run/bulkhead/agent.sock inside). When that connection breaks (the broker was
// restarted) it keeps its commands running and reconnects.
//
// It starts as root inside, with no_new_privs and the seccomp filter already in force (the engine
// set them before the exec); it enforces the Landlock ruleset handed to it on fd 4 itself, because
// its own executable lies outside the compartment's tree. Every command it starts gives up all
// capabilities and becomes `user` (uid 1000) or root without capabilities.
#include "agent/commands.hpp"
#include "base/wire.hpp"
#include "sandbox/caps.hpp"
#include "sandbox/spec.hpp"
#include "sys/socket.hpp"
#include "sys/syscalls.hpp"

#include <csignal>
#include <cstring>
#include <fcntl.h>
#include <linux/landlock.h>
#include <deque>
#include <map>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

namespace {

using namespace bulkhead;
using sys::UniqueFd;

constexpr char const* broker_socket = "/run/bulkhead/agent.sock";
constexpr int reconnect_interval_ms = 50;
constexpr size_t max_commands = 4096;

struct Command {
    pid_t pid = -1;
    UniqueFd status; // receives "status N\n"
};

[[noreturn]] void setup_failed(char const* what, int err)
{
    std::string message = std::string("error: agent: ") + what + ": " + std::strerror(err);
    (void)::send(3, message.data(), message.size(), MSG_NOSIGNAL);
    ::_exit(125);
}

std::string find_executable(std::string const& command, std::vector<std::string> const& env)
{
    if (command.find('/') != std::string::npos)
        return command;
    std::string path = "/usr/local/bin:/usr/bin:/bin";
    for (auto const& entry : env) {
        if (entry.starts_with("PATH="))
            path = entry.substr(5);
    }
    size_t start = 0;
    while (start <= path.size()) {
        size_t end = path.find(':', start);
        if (end == std::string::npos)
            end = path.size();
        std::string candidate = path.substr(start, end - start) + "/" + command;
        if (end > start && ::access(candidate.c_str(), X_OK) == 0)
            return candidate;
        start = end + 1;
    }
    return {};
}

// In the forked child: becomes the command. Never returns.
[[noreturn]] void become_command(wire::Exec const& exec, int in, int out, int err)
{
    auto die = [](char const* what) {
        std::string message = std::string("bulkhead: ") + what + ": " + std::strerror(errno) + "\n";
        (void)::write(2, message.data(), message.size());
        ::_exit(125);
    };
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGCHLD, SIGTERM, SIGINT, SIGHUP})
        ::signal(sig, SIG_DFL);
    if (::setsid() < 0)
        die("setsid");
    if (exec.tty && ::ioctl(in, TIOCSCTTY, 0) < 0)
        die("TIOCSCTTY");
    int const sources[3] = {in, out, err};
    int high[3];
    for (int i = 0; i < 3; ++i) {
        if ((high[i] = ::fcntl(sources[i], F_DUPFD_CLOEXEC, 10)) < 0)
            die("fcntl");
    }
    for (int i = 0; i < 3; ++i) {
        if (::dup2(high[i], i) < 0)
            die("dup2");
    }
    int const keep[] = {0, 1, 2};
    (void)sys::close_fds_except(0, keep);

    uid_t id = exec.run_as == wire::RunAs::User ? sandbox::inside_user_id : 0;
    if (sandbox::drop_bounding_and_lock().is_error())
        die("dropping capabilities");
    if (::setresgid(id, id, id) < 0 || ::setresuid(id, id, id) < 0)
        die("setresuid");
    if (sandbox::clear_capabilities().is_error())
        die("capset");

    std::string home = id == 0 ? "/root" : "/home/user";
    std::string cwd = exec.cwd.empty() ? home : exec.cwd;
    if (::chdir(cwd.c_str()) < 0)
        die(("chdir " + cwd).c_str());

    std::vector<std::string> args = exec.argv;
    if (args.empty())
        args = {::access("/bin/bash", X_OK) == 0 ? "/bin/bash" : "/bin/sh", "-l"};
    std::vector<char*> argv;
    for (auto& arg : args)
        argv.push_back(arg.data());
    argv.push_back(nullptr);
    std::vector<std::string> env = exec.env;
    std::vector<char*> envp;
    for (auto& entry : env)
        envp.push_back(entry.data());
    envp.push_back(nullptr);

    // A call's service: found and started right here, in the child, without first executing
    // bulkhead-service (one exec fewer on every call; the same code as that command).
    if (args.front() == "/run/bulkhead/bin/bulkhead-service") {
        for (auto& entry : env)
            (void)::putenv(entry.data());
        std::vector<std::string> service_args(args.begin() + 1, args.end());
        ::_exit(agent::run_command("bulkhead-service", service_args).value_or(125));
    }
    std::string executable = find_executable(args.front(), env);
    int error = ENOENT;
    if (!executable.empty()) {
        ::execve(executable.c_str(), argv.data(), envp.data());
        error = errno;
    }
    std::string message = "bulkhead: " + args.front() + ": " + std::strerror(error) + "\n";
    (void)::write(2, message.data(), message.size());
    ::_exit(error == ENOENT ? 127 : 126);
}

class Agent {
public:
    Agent()
    {
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGCHLD);
        ::sigprocmask(SIG_BLOCK, &mask, nullptr);
        m_signals = UniqueFd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
        ::signal(SIGPIPE, SIG_IGN);
    }

    [[noreturn]] void run()
    {
        while (true) {
            if (!m_broker)
                try_connect();
            pollfd fds[2] = {{m_signals.get(), POLLIN, 0}, {m_broker.get(), POLLIN, 0}};
            int ready = ::poll(fds, m_broker ? 2 : 1, m_broker ? -1 : reconnect_interval_ms);
            if (ready <= 0)
                continue;
            if (fds[0].revents & POLLIN)
                reap();
            if (m_broker && (fds[1].revents & (POLLIN | POLLHUP | POLLERR)))
                serve_one();
        }
    }

private:
    void try_connect()
    {
        auto connected = sys::connect_unix(broker_socket);
        if (connected.is_error())
            return;
        m_broker = connected.release_value();
        send(wire::Hello {wire::protocol_version, static_cast<uint32_t>(m_commands.size())});
        // Commands that ended while no broker listened: a disposable ends with its command, so the
        // broker must hear of it even across its restart.
        while (m_broker && !m_unreported.empty()) {
            send(m_unreported.front());
            if (m_broker)
                m_unreported.pop_front();
        }
    }

    void send(wire::AgentMessage const& message, std::span<int const> fds = {})
    {
        if (!m_broker)
            return;
        auto bytes = wire::encode(message);
        if (sys::send_record(m_broker.get(), bytes, fds).is_error())
            m_broker.reset();
    }

    void serve_one()
    {
        auto record = sys::receive_record(m_broker.get(), wire::max_broker_record, 4);
        if (record.is_error() || record.value().end_of_stream) {
            m_broker.reset(); // reconnect; the commands keep running
            return;
        }
        auto message = wire::decode_broker_message(record.value().bytes);
        if (message.is_error()) {
            m_broker.reset();
            return;
        }
        if (auto* kill = std::get_if<wire::Kill>(&message.value())) {
            if (auto found = m_commands.find(kill->id); found != m_commands.end()) {
                ::kill(-found->second.pid, SIGKILL);
                ::kill(found->second.pid, SIGKILL);
            }
            return;
        }
        auto& exec = std::get<wire::Exec>(message.value());
        auto& fds = record.value().fds;
        if (fds.size() != wire::descriptors_for(message.value())) {
            send(wire::Failed {exec.id, "wrong number of descriptors"});
            return;
        }
        start(exec, fds);
    }

    void start(wire::Exec const& exec, std::vector<UniqueFd>& fds)
    {
        if (m_commands.size() >= max_commands || m_commands.contains(exec.id)) {
            send(wire::Failed {exec.id, m_commands.contains(exec.id) ? "duplicate command id" : "too many commands"});
            return;
        }
        UniqueFd master, slave;
        if (exec.tty) {
            master = UniqueFd(::open("/dev/pts/ptmx", O_RDWR | O_NOCTTY | O_CLOEXEC));
            int unlock = 0;
            if (!master || ::ioctl(master.get(), TIOCSPTLCK, &unlock) < 0) {
                send(wire::Failed {exec.id, std::string("opening a pty: ") + std::strerror(errno)});
                return;
            }
            slave = UniqueFd(::ioctl(master.get(), TIOCGPTPEER, O_RDWR | O_NOCTTY | O_CLOEXEC));
            if (!slave) {
                send(wire::Failed {exec.id, std::string("opening the pty's peer: ") + std::strerror(errno)});
                return;
            }
            uid_t owner = exec.run_as == wire::RunAs::User ? sandbox::inside_user_id : 0;
            (void)::fchown(slave.get(), owner, 5);
            winsize size {static_cast<unsigned short>(exec.rows), static_cast<unsigned short>(exec.cols), 0, 0};
            if (exec.rows > 0 && exec.cols > 0)
                (void)::ioctl(master.get(), TIOCSWINSZ, &size);
        }
        int in = exec.tty ? slave.get() : fds[0].get();
        int out = exec.tty ? slave.get() : fds[1].get();
        int err = exec.tty ? slave.get() : fds[2].get();
        pid_t pid = ::fork();
        if (pid < 0) {
            send(wire::Failed {exec.id, std::string("fork: ") + std::strerror(errno)});
            return;
        }
        if (pid == 0)
            become_command(exec, in, out, err);
        Command command;
        command.pid = pid;
        command.status = std::move(fds.back());
        m_commands.emplace(exec.id, std::move(command));
        int const master_fd[] = {master.get()};
        send(wire::Started {exec.id}, exec.tty ? std::span<int const>(master_fd) : std::span<int const>());
    }

    void reap()
    {
        signalfd_siginfo info;
        while (::read(m_signals.get(), &info, sizeof(info)) == sizeof(info)) {
        }
        while (true) {
            int status = 0;
            pid_t pid = ::waitpid(-1, &status, WNOHANG);
            if (pid <= 0)
                return;
            for (auto it = m_commands.begin(); it != m_commands.end(); ++it) {
                if (it->second.pid != pid)
                    continue;
                std::string line = "status " + std::to_string(status) + "\n";
                (void)::write(it->second.status.get(), line.data(), line.size());
                uint32_t id = it->first;
                m_commands.erase(it);
                send(wire::Exited {id, status});
                if (!m_broker) {
                    if (m_unreported.size() >= max_commands)
                        m_unreported.pop_front();
                    m_unreported.push_back(wire::Exited {id, status});
                }
                break;
            }
        }
    }

    UniqueFd m_signals;
    UniqueFd m_broker;
    std::map<uint32_t, Command> m_commands;
    std::deque<wire::Exited> m_unreported;
};

} // namespace

// In a sanitizer build (make sanitize): LeakSanitizer stops the world with ptrace, which every
// compartment's seccomp filter denies, and then dies with "LeakSanitizer has encountered a fatal
// error" instead of the program's exit status. Programs inside compartments therefore run without
// leak detection (AddressSanitizer and UBSan still check them); host-side programs keep it. Read by
// the sanitizer runtime only; a normal build never calls it.
extern "C" char const* __asan_default_options()
{
    return "detect_leaks=0";
}

int main(int argc, char** argv)
{
    if (argc > 0 && argv[0] != nullptr) {
        std::string_view program = argv[0];
        if (auto slash = program.rfind('/'); slash != std::string_view::npos)
            program.remove_prefix(slash + 1);
        if (program != "bulkhead-agent") {
            std::vector<std::string> args(argv + 1, argv + argc);
            if (auto code = agent::run_command(program, args))
                return *code;
        }
    }
    // exec made this process dumpable again; nothing inside may read its memory or descriptors.
    ::prctl(PR_SET_DUMPABLE, 0);
    if (::fcntl(4, F_GETFD) >= 0) {
        if (::syscall(SYS_landlock_restrict_self, 4, 0) < 0)
            setup_failed("landlock_restrict_self", errno);
        ::close(4);
    }
    ::close(5);
    if (::send(3, "ok", 2, MSG_NOSIGNAL) != 2)
        ::_exit(125);
    ::close(3);
    Agent agent;
    agent.run();
}
