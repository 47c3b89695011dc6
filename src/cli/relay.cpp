// The stream relay of bulkhead run and shell (see relay.hpp).
//
// What a compartment writes is hostile to the terminal it is shown on: on a terminal it passes a
// filter of base/terminal.hpp (unless --raw): every control character defused without --tty, only
// the sequences that make the terminal answer, type, copy or run something dropped with --tty.
//
// A run ends with its command. Once the command's status has arrived, stdin is not read any more
// (a process the command left behind, holding the pty or the pipes, cannot collect the next line
// the administrator types at a prompt it forged), what is still written is relayed for at most
// drain_ms and drain_bytes, and the pty master is closed, which hangs up every process still
// holding the pty's other side. With --tty on a terminal the administrator can leave at any time
// with ~., whatever the command did to its pty (raw mode, -isig): the client reads it, not the pty.
#include "cli/relay.hpp"

#include "base/parse.hpp"
#include "base/terminal.hpp"
#include "cli/client.hpp"
#include "cli/commands.hpp"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
#include <vector>

namespace bulkhead::cli {

namespace {

using Clock = std::chrono::steady_clock;
using sys::UniqueFd;

void set_nonblocking(int fd)
{
    int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0)
        (void)::fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

void write_all(int fd, std::string_view text)
{
    while (!text.empty()) {
        ssize_t n = ::write(fd, text.data(), text.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        text.remove_prefix(static_cast<size_t>(n));
    }
}

// Copies one stream, through a filter or the escape scanner if it has one. Reads only while
// nothing is waiting to be written, so that a slow reader slows the writer.
class Pump {
public:
    Pump(int from, int to, bool close_to_at_end) : m_from(from), m_to(to), m_close_to_at_end(close_to_at_end) {}

    std::optional<terminal::ControlFilter> text;
    std::optional<terminal::SessionFilter> session;
    std::optional<terminal::EscapeScanner> escapes;
    bool disconnect = false; // ~. was typed
    bool help = false;       // ~? was typed

    int from() const { return m_from; }
    int to() const { return m_to; }
    bool done() const { return !m_reading && m_pending.empty(); }
    short want_from() const { return m_reading && m_pending.empty() ? POLLIN : 0; }
    short want_to() const { return m_pending.empty() ? 0 : POLLOUT; }
    uint64_t bytes_read() const { return m_read; }

    enum class Read { Data, Again, End };
    Read on_readable()
    {
        ssize_t n = ::read(m_from, m_buffer.data(), m_buffer.size());
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return Read::Again;
        if (n <= 0) { // EOF, or EIO from a pty whose other side is gone
            stop_reading();
            return Read::End;
        }
        m_read += static_cast<uint64_t>(n);
        std::span<uint8_t const> bytes(reinterpret_cast<uint8_t const*>(m_buffer.data()), static_cast<size_t>(n));
        if (escapes) {
            auto scan = escapes->scan(bytes);
            m_pending = std::move(scan.forward);
            disconnect = disconnect || scan.disconnect;
            help = help || scan.help;
        } else if (text) {
            m_pending = text->filter(bytes);
        } else if (session) {
            m_pending = session->filter(bytes);
        } else {
            m_pending.assign(m_buffer.data(), static_cast<size_t>(n));
        }
        m_offset = 0;
        on_writable();
        return Read::Data;
    }
    void on_writable()
    {
        while (m_offset < m_pending.size()) {
            ssize_t n = ::write(m_to, m_pending.data() + m_offset, m_pending.size() - m_offset);
            if (n < 0 && errno == EAGAIN)
                return;
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) // EPIPE: the reader went away
                return stop();
            m_offset += static_cast<size_t>(n);
        }
        m_pending.clear();
        m_offset = 0;
        if (!m_reading)
            close_to();
    }
    // Nothing more is read; what was read is still written.
    void stop_reading()
    {
        m_reading = false;
        if (m_pending.empty())
            close_to();
    }
    // Nothing more is read or written.
    void stop()
    {
        m_reading = false;
        m_pending.clear();
        m_offset = 0;
        close_to();
    }

private:
    void close_to()
    {
        if (m_close_to_at_end && m_to >= 0) { // the far end must see EOF (the command's stdin)
            ::close(m_to);
            m_to = -1;
        }
    }

    int m_from;
    int m_to;
    bool m_close_to_at_end;
    bool m_reading = true;
    std::vector<char> m_buffer = std::vector<char>(64 * 1024);
    std::string m_pending;
    size_t m_offset = 0;
    uint64_t m_read = 0;
};

// The terminal in raw mode for the session, restored on every way out.
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

} // namespace

int relay(Session& session)
{
    bool const tty = session.master.valid();
    bool const terminal_in = tty && ::isatty(0) == 1;
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGWINCH);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    UniqueFd winch(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));

    std::vector<Pump> pumps;
    if (tty) {
        set_nonblocking(session.master.get());
        pumps.emplace_back(0, session.master.get(), false);
        pumps.emplace_back(session.master.get(), 1, false);
        if (terminal_in)
            pumps[0].escapes.emplace();
        if (!session.raw && ::isatty(1) == 1)
            pumps[1].session.emplace(session.compartment);
    } else {
        set_nonblocking(session.in.get());
        set_nonblocking(session.out.get());
        set_nonblocking(session.err.get());
        pumps.emplace_back(0, session.in.release(), true);
        pumps.emplace_back(session.out.get(), 1, false);
        pumps.emplace_back(session.err.get(), 2, false);
        if (!session.raw && ::isatty(1) == 1)
            pumps[1].text.emplace();
        if (!session.raw && ::isatty(2) == 1)
            pumps[2].text.emplace();
    }
    Pump& input = pumps.front();
    std::optional<RawTerminal> raw;
    if (terminal_in)
        raw.emplace(0);
    bool terminal_done = false;
    // Puts back what the session changed in this terminal: the modes it left on, then cooked mode.
    auto finish_terminal = [&] {
        if (terminal_done)
            return;
        terminal_done = true;
        if (pumps[1].session)
            write_all(1, pumps[1].session->restore());
        raw.reset();
    };
    auto outputs_done = [&] { return std::all_of(pumps.begin() + 1, pumps.end(), [](Pump const& p) { return p.done(); }); };

    std::string status_text;
    bool status_done = false;
    bool broker_done = false;
    std::optional<Clock::time_point> drain_until;
    std::vector<uint64_t> read_at_status(pumps.size());
    while (true) {
        if (!drain_until && (status_done || status_text.ends_with("\n"))) {
            // The command has ended: nothing more is typed into the compartment, and what it still
            // writes is relayed briefly.
            drain_until = Clock::now() + std::chrono::milliseconds(drain_ms);
            input.stop();
            for (size_t i = 1; i < pumps.size(); ++i)
                read_at_status[i] = pumps[i].bytes_read();
        }
        if (outputs_done()) {
            finish_terminal();
            if (tty) { // hangs up whatever still holds the pty inside
                input.stop();
                session.master.reset();
            }
            if (status_done && broker_done)
                break;
        }
        std::vector<pollfd> fds;
        std::vector<std::pair<size_t, bool>> owners; // pump index, is the write side
        for (size_t i = 0; i < pumps.size(); ++i) {
            if (short events = pumps[i].want_from()) {
                fds.push_back({pumps[i].from(), events, 0});
                owners.emplace_back(i, false);
            }
            if (short events = pumps[i].want_to()) {
                fds.push_back({pumps[i].to(), events, 0});
                owners.emplace_back(i, true);
            }
        }
        size_t const fixed = fds.size();
        fds.push_back({status_done ? -1 : session.status.get(), POLLIN, 0});
        fds.push_back({broker_done ? -1 : session.broker, POLLIN, 0});
        fds.push_back({winch.get(), POLLIN, 0});
        // While draining, poll wakes up at the deadline; after it, only to try the streams that
        // wait for input once more (a stream waiting to write waits for its reader, however slow).
        int timeout = -1;
        if (drain_until && !outputs_done()) {
            auto left = std::chrono::ceil<std::chrono::milliseconds>(*drain_until - Clock::now()).count();
            bool reading = std::any_of(pumps.begin() + 1, pumps.end(), [](Pump const& p) { return p.want_from() != 0; });
            if (left > 0)
                timeout = static_cast<int>(left);
            else if (reading)
                timeout = 0;
        }
        if (::poll(fds.data(), fds.size(), timeout) < 0) {
            if (errno == EINTR)
                continue;
            finish_terminal();
            print_error(std::string("poll: ") + std::strerror(errno));
            return exit_failed;
        }
        for (size_t i = 0; i < fixed; ++i) {
            if (fds[i].revents == 0)
                continue;
            auto [index, write_side] = owners[i];
            Pump& pump = pumps[index];
            if (!write_side)
                (void)pump.on_readable();
            else if (fds[i].revents & (POLLERR | POLLHUP))
                pump.stop();
            else
                pump.on_writable();
        }
        if (input.help) {
            input.help = false;
            write_all(1, terminal::escape_help);
        }
        if (input.disconnect) {
            finish_terminal();
            std::fprintf(stderr, "bulkhead: session ended with ~.; the command in %s is ended\n", session.compartment.c_str());
            return exit_escaped; // closing the connection has the broker end the command
        }
        if (fds[fixed].revents) {
            char buffer[64];
            ssize_t n = ::read(session.status.get(), buffer, sizeof(buffer));
            if (n > 0 && status_text.size() < 64)
                status_text.append(buffer, static_cast<size_t>(n));
            else if (n == 0 || (n < 0 && errno != EINTR))
                status_done = true;
        }
        if (fds[fixed + 1].revents) {
            auto message = receive_reply(session.broker, 0);
            if (message.has_value() && !message.value().closed && !message.value().body.value("ok", false)) {
                finish_terminal();
                return report_failure(message.value().body);
            }
            if (message.has_value() && !message.value().closed && message.value().body.contains("limit")
                && message.value().body["limit"].is_string())
                print_error(session.compartment + ": " + message.value().body["limit"].get<std::string>());
            if (message.is_error() || message.value().closed || message.value().body.value("done", false)) {
                if ((message.is_error() || message.value().closed) && session.disposable)
                    print_error("lost the broker before the disposable was torn down; the next broker removes it");
                broker_done = true;
            }
        }
        if (fds[fixed + 2].revents) {
            signalfd_siginfo info;
            while (::read(winch.get(), &info, sizeof(info)) == sizeof(info)) {
            }
            winsize size {};
            if (session.master && ::ioctl(terminal_in ? 0 : 1, TIOCGWINSZ, &size) == 0)
                (void)::ioctl(session.master.get(), TIOCSWINSZ, &size);
        }
        if (drain_until) {
            // After the status: what is there is still relayed (a pipe holds all the command
            // wrote), but once drain_ms have passed, a stream that has nothing at hand is done,
            // and none goes on beyond drain_bytes.
            bool const late = Clock::now() >= *drain_until;
            for (size_t i = 1; i < pumps.size(); ++i) {
                Pump& pump = pumps[i];
                if (pump.bytes_read() - read_at_status[i] > drain_bytes)
                    pump.stop_reading();
                else if (late && pump.want_from() && pump.on_readable() == Pump::Read::Again)
                    pump.stop_reading();
            }
        }
    }
    finish_terminal();
    input.stop();
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

} // namespace bulkhead::cli
