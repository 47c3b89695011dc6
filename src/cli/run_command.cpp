// bulkhead run / shell: a command in a compartment with this terminal's streams.
//
// The client makes the pipes (or, with --tty, the compartment's agent makes a pty in the
// compartment's own devpts and the broker hands its master over); their far ends travel to the
// command through the broker, so that the data flows between this process and the compartment and
// the broker stays off the data path. The compartment never gets a descriptor of the caller's
// terminal or files. The command's wait status arrives on a pipe of its own, so a run survives a
// restart of the broker.
#include "base/parse.hpp"
#include "cli/client.hpp"
#include "cli/commands.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

namespace bulkhead::cli {

using nlohmann::json;
using sys::UniqueFd;

namespace {

struct RunArgs {
    bool tty = false;
    bool disposable = false;
    std::string user = "user";
    std::string name; // compartment, or template with --disposable
    std::vector<std::string> argv;
};

constexpr char const* run_usage = "usage: bulkhead run [--tty] [--user USER] NAME -- CMD [ARG...]\n"
                                  "       bulkhead run [--tty] --disposable [TEMPLATE] -- CMD [ARG...]\n"
                                  "       bulkhead shell NAME\n";

Result<RunArgs> parse_run(std::vector<std::string> const& args, bool shell)
{
    RunArgs run;
    size_t i = 0;
    for (; i < args.size(); ++i) {
        std::string const& arg = args[i];
        if (arg == "--") {
            ++i;
            break;
        }
        if (arg == "--tty" || arg == "-t") {
            run.tty = true;
        } else if (arg == "--disposable") {
            run.disposable = true;
        } else if (arg == "--user" || arg == "-u") {
            if (++i >= args.size())
                return Error::from_message("--user needs a value");
            run.user = args[i];
        } else if (arg.starts_with("--user=")) {
            run.user = arg.substr(7);
        } else if (arg.starts_with("-")) {
            return Error::from_message("unknown option '" + arg + "'");
        } else if (run.name.empty()) {
            run.name = arg;
            if (!run.disposable && !shell) {
                ++i; // `run NAME CMD...` without `--` is accepted too
                if (i < args.size() && args[i] == "--")
                    ++i;
                break;
            }
        } else {
            return Error::from_message("unexpected argument '" + arg + "' (put the command after --)");
        }
    }
    run.argv.assign(args.begin() + static_cast<long>(std::min(i, args.size())), args.end());
    if (shell) {
        if (run.name.empty() || !run.argv.empty() || run.disposable)
            return Error::from_message("shell takes one compartment name");
        run.tty = true;
        return run;
    }
    if (!run.disposable && run.name.empty())
        return Error::from_message("no compartment named");
    if (run.argv.empty())
        return Error::from_message("no command given");
    return run;
}

Status set_nonblocking(int fd)
{
    int flags = ::fcntl(fd, F_GETFL);
    if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return Error::from_syscall("fcntl", errno);
    return {};
}

// Copies one stream. Reads only while its buffer is empty, so a slow reader slows the writer.
struct Pump {
    int from = -1;
    int to = -1;
    bool close_to_at_end = false; // the far end must see EOF (the command's stdin)
    bool done = false;
    std::vector<char> buffer = std::vector<char>(64 * 1024);
    size_t length = 0;
    size_t offset = 0;

    short want_from() const { return done || length > offset ? 0 : POLLIN; }
    short want_to() const { return !done && length > offset ? POLLOUT : 0; }
    void finish()
    {
        done = true;
        if (close_to_at_end && to >= 0) {
            ::close(to);
            to = -1;
        }
    }
    void on_readable()
    {
        ssize_t n = ::read(from, buffer.data(), buffer.size());
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) // EOF, or EIO from a pty whose other side closed
            return finish();
        length = static_cast<size_t>(n);
        offset = 0;
        on_writable();
    }
    void on_writable()
    {
        while (offset < length) {
            ssize_t n = ::write(to, buffer.data() + offset, length - offset);
            if (n < 0 && errno == EAGAIN)
                return;
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) // EPIPE: the reader went away
                return finish();
            offset += static_cast<size_t>(n);
        }
        length = offset = 0;
    }
};

// The terminal in raw mode for the run, restored on every way out.
class RawTerminal {
public:
    explicit RawTerminal(int fd)
    {
        if (::tcgetattr(fd, &m_saved) < 0)
            return;
        termios raw = m_saved;
        ::cfmakeraw(&raw);
        if (::tcsetattr(fd, TCSAFLUSH, &raw) == 0)
            m_fd = fd;
    }
    ~RawTerminal()
    {
        if (m_fd >= 0)
            ::tcsetattr(m_fd, TCSAFLUSH, &m_saved);
    }

private:
    int m_fd = -1;
    termios m_saved {};
};

// "status N\n" from the agent, which is as untrusted as the compartment: parsed strictly.
Result<int> parse_status(std::string const& text)
{
    if (!text.starts_with("status ") || !text.ends_with("\n") || text.size() > 32)
        return Error::from_message("malformed status from the compartment");
    auto value = parse_uint(std::string_view(text).substr(7, text.size() - 8));
    if (value.is_error() || value.value() > 0xffff)
        return Error::from_message("malformed status from the compartment");
    int status = static_cast<int>(value.value());
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return Error::from_message("malformed status from the compartment");
}

int run_in_compartment(RunArgs const& run, std::string const& socket)
{
    json request = {{"op", "run"}, {"argv", run.argv}, {"user", run.user}, {"tty", run.tty}};
    if (run.disposable) {
        request["disposable"] = true;
        request["template"] = run.name;
    } else {
        request["name"] = run.name;
    }
    int status_pipe[2];
    if (::pipe2(status_pipe, O_CLOEXEC) < 0) {
        print_error(std::string("pipe: ") + std::strerror(errno));
        return exit_failed;
    }
    UniqueFd status_read(status_pipe[0]), status_write(status_pipe[1]);
    UniqueFd in_read, in_write, out_read, out_write, err_read, err_write;
    std::vector<int> pass;
    bool const terminal = run.tty && ::isatty(0) == 1;
    if (run.tty) {
        winsize size {};
        if (::ioctl(terminal ? 0 : 1, TIOCGWINSZ, &size) == 0 && size.ws_row > 0) {
            request["rows"] = size.ws_row;
            request["cols"] = size.ws_col;
        }
        if (char const* term = std::getenv("TERM"))
            request["term"] = term;
        pass = {status_write.get()};
    } else {
        int fds[6];
        if (::pipe2(fds, O_CLOEXEC) < 0 || ::pipe2(fds + 2, O_CLOEXEC) < 0 || ::pipe2(fds + 4, O_CLOEXEC) < 0) {
            print_error(std::string("pipe: ") + std::strerror(errno));
            return exit_failed;
        }
        in_read.reset(fds[0]);
        in_write.reset(fds[1]);
        out_read.reset(fds[2]);
        out_write.reset(fds[3]);
        err_read.reset(fds[4]);
        err_write.reset(fds[5]);
        pass = {in_read.get(), out_write.get(), err_write.get(), status_write.get()};
    }

    auto broker = connect_broker(socket);
    if (broker.is_error()) {
        print_error(broker.error().message());
        return exit_failed;
    }
    if (auto sent = send_request(broker.value().get(), request, pass); sent.is_error()) {
        print_error("sending to the broker: " + sent.error().message());
        return exit_failed;
    }
    // Only the compartment holds the far ends now: EOFs mean what they say.
    in_read.reset();
    out_write.reset();
    err_write.reset();
    status_write.reset();

    // With a pty the master comes with the first reply. Without one the output is relayed at once,
    // and the broker's first answer (started, or why not) is read in the loop below.
    UniqueFd master;
    if (run.tty) {
        auto first = receive_reply(broker.value().get(), 1);
        if (first.is_error() || first.value().closed) {
            print_error(first.is_error() ? first.error().message() : "the broker closed the connection");
            return exit_failed;
        }
        if (!first.value().body.value("ok", false))
            return report_failure(first.value().body);
        if (first.value().fds.size() != 1) {
            print_error("the broker sent no terminal");
            return exit_failed;
        }
        master = std::move(first.value().fds.front());
    }

    ::signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGWINCH);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    UniqueFd winch(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));

    std::vector<Pump> pumps;
    if (run.tty) {
        (void)set_nonblocking(master.get());
        pumps.push_back({0, master.get(), false});
        pumps.push_back({master.get(), 1, false});
    } else {
        (void)set_nonblocking(in_write.get());
        (void)set_nonblocking(out_read.get());
        (void)set_nonblocking(err_read.get());
        pumps.push_back({0, in_write.release(), true});
        pumps.push_back({out_read.get(), 1, false});
        pumps.push_back({err_read.get(), 2, false});
    }
    std::optional<RawTerminal> raw;
    if (terminal)
        raw.emplace(0);

    std::string status_text;
    bool status_done = false;
    bool broker_done = false;
    bool const disposable = run.disposable;
    while (true) {
        bool outputs_done = std::all_of(pumps.begin() + 1, pumps.end(), [](Pump const& p) { return p.done; });
        if (outputs_done && status_done && broker_done)
            break;
        std::vector<pollfd> fds;
        std::vector<std::pair<size_t, bool>> owners; // pump index, is the write side
        for (size_t i = 0; i < pumps.size(); ++i) {
            if (short events = pumps[i].want_from()) {
                fds.push_back({pumps[i].from, events, 0});
                owners.emplace_back(i, false);
            }
            if (short events = pumps[i].want_to()) {
                fds.push_back({pumps[i].to, events, 0});
                owners.emplace_back(i, true);
            }
        }
        size_t const fixed = fds.size();
        fds.push_back({status_done ? -1 : status_read.get(), POLLIN, 0});
        fds.push_back({broker_done ? -1 : broker.value().get(), POLLIN, 0});
        fds.push_back({winch.get(), POLLIN, 0});
        if (::poll(fds.data(), fds.size(), -1) < 0) {
            if (errno == EINTR)
                continue;
            print_error(std::string("poll: ") + std::strerror(errno));
            return exit_failed;
        }
        for (size_t i = 0; i < fixed; ++i) {
            if (fds[i].revents == 0)
                continue;
            auto [index, write_side] = owners[i];
            Pump& pump = pumps[index];
            if (write_side) {
                if (fds[i].revents & (POLLERR | POLLHUP))
                    pump.finish();
                else
                    pump.on_writable();
            } else {
                pump.on_readable();
            }
        }
        if (fds[fixed].revents) {
            char buffer[64];
            ssize_t n = ::read(status_read.get(), buffer, sizeof(buffer));
            if (n > 0 && status_text.size() < 64)
                status_text.append(buffer, static_cast<size_t>(n));
            else if (n == 0 || (n < 0 && errno != EINTR))
                status_done = true;
        }
        if (fds[fixed + 1].revents) {
            auto message = receive_reply(broker.value().get(), 0);
            if (message.has_value() && !message.value().closed && !message.value().body.value("ok", false)) {
                raw.reset();
                return report_failure(message.value().body);
            }
            if (message.is_error() || message.value().closed || message.value().body.value("done", false)) {
                if ((message.is_error() || message.value().closed) && disposable)
                    print_error("lost the broker before the disposable was torn down; the next broker removes it");
                broker_done = true;
            }
        }
        if (fds[fixed + 2].revents) {
            signalfd_siginfo info;
            while (::read(winch.get(), &info, sizeof(info)) == sizeof(info)) {
            }
            winsize size {};
            if (master && ::ioctl(terminal ? 0 : 1, TIOCGWINSZ, &size) == 0)
                (void)::ioctl(master.get(), TIOCSWINSZ, &size);
        }
    }
    raw.reset();
    if (pumps.front().to >= 0 && pumps.front().close_to_at_end)
        ::close(pumps.front().to);
    if (status_text.empty()) {
        print_error("the compartment stopped before the command finished");
        return exit_failed;
    }
    auto code = parse_status(status_text);
    if (code.is_error()) {
        print_error(code.error().message());
        return exit_failed;
    }
    return code.value();
}

} // namespace

int run_command(std::string const& command, std::vector<std::string> args)
{
    std::string error;
    std::string socket = take_socket_option(args, error);
    if (!error.empty()) {
        print_error(error);
        return exit_usage;
    }
    auto run = parse_run(args, command == "shell");
    if (run.is_error()) {
        print_error(command + ": " + run.error().message());
        std::fputs(run_usage, stderr);
        return exit_usage;
    }
    return run_in_compartment(run.value(), socket);
}

} // namespace bulkhead::cli
