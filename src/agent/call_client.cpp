// The calling side of a call (see call_client.hpp).
#include "agent/call_client.hpp"

#include "base/wire.hpp"
#include "sys/socket.hpp"

#include <cerrno>
#include <cstdlib>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace bulkhead::agent {

namespace {
constexpr char const* broker_socket = "/run/bulkhead/agent.sock";
} // namespace

int fail(std::string const& program, std::string const& message, int code)
{
    std::string line = program + ": " + message + "\n";
    (void)::write(2, line.data(), line.size());
    return code;
}

Result<Connection> open_call(std::string const& target, std::string const& service, std::string const& arg, int& refused_code, int beside)
{
    refused_code = exit_failed;
    auto connection = TRY_CTX(sys::connect_unix(broker_socket), "connecting to the broker");
    if (target.size() > wire::max_call_field || service.size() > wire::max_call_field || arg.size() > wire::max_call_field)
        return Error::from_message("a target, service or argument longer than " + std::to_string(wire::max_call_field) + " bytes");
    std::vector<int> fds;
    if (beside >= 0)
        fds.push_back(beside);
    TRY(sys::send_record(connection.get(), wire::encode(wire::Call {target, service, arg}), fds));
    auto received = TRY(sys::receive_record(connection.get(), wire::max_broker_record, wire::call_connected_descriptors));
    if (received.end_of_stream)
        return Error::from_message("the broker closed the connection without an answer");
    auto reply = TRY(wire::decode_call_reply(received.bytes));
    if (std::holds_alternative<wire::CallHeld>(reply) && received.fds.empty()) {
        // An `ask` rule holds the call: say so, then wait for the answer.
        std::string line = "bulkhead: waiting for the administrator to allow this call (bulkhead pending, on the host)\n";
        (void)!::write(2, line.data(), line.size());
        received = TRY(sys::receive_record(connection.get(), wire::max_broker_record, wire::call_connected_descriptors));
        if (received.end_of_stream)
            return Error::from_message("the broker closed the connection without an answer");
        reply = TRY(wire::decode_call_reply(received.bytes));
        if (std::holds_alternative<wire::CallHeld>(reply))
            return Error::from_message("the broker held the call twice");
    }
    if (auto* refused = std::get_if<wire::CallRefused>(&reply)) {
        refused_code = static_cast<int>(refused->exit_code);
        return Error::from_message(refused->message);
    }
    if (!std::holds_alternative<wire::CallConnected>(reply) || received.fds.size() != wire::call_connected_descriptors)
        return Error::from_message("the broker's answer carries the wrong descriptors");
    Connection call;
    call.target = std::get<wire::CallConnected>(reply).target;
    call.stream = std::move(received.fds[0]);
    call.errors = std::move(received.fds[1]);
    call.status = std::move(received.fds[2]);
    return call;
}

bool write_all(int fd, char const* data, size_t size)
{
    while (size > 0) {
        ssize_t n = ::write(fd, data, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        data += n;
        size -= static_cast<size_t>(n);
    }
    return true;
}

Result<int> read_status(int fd)
{
    std::string text;
    char buffer[64];
    while (text.size() < 64) {
        ssize_t n = ::read(fd, buffer, sizeof(buffer));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        text.append(buffer, static_cast<size_t>(n));
    }
    if (!text.starts_with("status ") || !text.ends_with("\n"))
        return Error::from_message("the service ended without an exit status (it could not be started)");
    char* end = nullptr;
    long status = std::strtol(text.c_str() + 7, &end, 10);
    if (end == nullptr || *end != '\n' || status < 0 || status > 0xffff)
        return Error::from_message("a malformed exit status");
    int wait_status = static_cast<int>(status);
    if (WIFEXITED(wait_status))
        return WEXITSTATUS(wait_status);
    if (WIFSIGNALED(wait_status))
        return 128 + WTERMSIG(wait_status);
    return Error::from_message("a malformed exit status");
}

bool write_shown(int fd, std::optional<terminal::ControlFilter>& filter, std::span<uint8_t const> bytes)
{
    if (!filter)
        return write_all(fd, reinterpret_cast<char const*>(bytes.data()), bytes.size());
    std::string safe = filter->filter(bytes);
    return write_all(fd, safe.data(), safe.size());
}

void relay(Connection& call, bool feed, bool raw)
{
    std::vector<char> buffer(1 << 16);
    bool input = feed, output = true, errors = true;
    std::optional<terminal::ControlFilter> to_stdout, to_stderr;
    if (!raw && ::isatty(1))
        to_stdout.emplace();
    if (!raw && ::isatty(2))
        to_stderr.emplace();
    auto shown = [&](ssize_t n) { return std::span<uint8_t const>(reinterpret_cast<uint8_t const*>(buffer.data()), static_cast<size_t>(n)); };
    if (!feed)
        (void)::shutdown(call.stream.get(), SHUT_WR);
    while (output || errors) {
        pollfd fds[3] = {{input ? 0 : -1, POLLIN, 0}, {output ? call.stream.get() : -1, POLLIN, 0}, {errors ? call.errors.get() : -1, POLLIN, 0}};
        if (::poll(fds, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        if (input && fds[0].revents) {
            ssize_t n = ::read(0, buffer.data(), buffer.size());
            if (n <= 0 || !write_all(call.stream.get(), buffer.data(), static_cast<size_t>(n))) {
                input = false;
                (void)::shutdown(call.stream.get(), SHUT_WR);
            }
        }
        if (output && fds[1].revents) {
            ssize_t n = ::read(call.stream.get(), buffer.data(), buffer.size());
            if (n <= 0 || !write_shown(1, to_stdout, shown(n)))
                output = false;
        }
        if (errors && fds[2].revents) {
            ssize_t n = ::read(call.errors.get(), buffer.data(), buffer.size());
            if (n <= 0 || !write_shown(2, to_stderr, shown(n)))
                errors = false;
        }
    }
}

int finish(std::string const& program, Connection& call)
{
    auto code = read_status(call.status.get());
    if (code.is_error())
        return fail(program, call.target + ": " + code.error().message());
    return code.value();
}

} // namespace bulkhead::agent
