// The commands inside every compartment (DESIGN.md, "Commands inside every compartment"). They are
// the agent's executable under other names (RUN/bin, bound at /run/bulkhead/bin), chosen by
// argv[0]. They run as the compartment's user with no privilege: everything they may do, the
// broker decides.
//
//   bulkhead-call TARGET SERVICE[+ARG]   stdin/stdout joined to the service; its exit code
//   bulkhead-copy DST FILE...            files to DST:~/Incoming/SOURCE/
//   bulkhead-move DST FILE...            copy, then remove the originals
//   bulkhead-clip copy|paste             stdin to / the global clipboard to stdout
//   bulkhead-service SERVICE ARG         (run by the agent in the target) finds and runs a service
#include "agent/commands.hpp"

#include "agent/filecopy.hpp"
#include "base/wire.hpp"
#include "sys/socket.hpp"
#include "sys/syscalls.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace bulkhead::agent {

namespace {

using sys::UniqueFd;

constexpr char const* broker_socket = "/run/bulkhead/agent.sock";
constexpr int exit_failed = 125;

int fail(std::string const& program, std::string const& message, int code = exit_failed)
{
    std::string line = program + ": " + message + "\n";
    (void)::write(2, line.data(), line.size());
    return code;
}

// An allowed call: the service's stdin+stdout, its stderr and its status ("status N\n").
struct Connection {
    std::string target;
    UniqueFd stream;
    UniqueFd errors;
    UniqueFd status;
};

// Asks the broker for a call. A refusal carries the exit code the caller ends with.
Result<Connection> open_call(std::string const& target, std::string const& service, std::string const& arg, int& refused_code, int beside = -1)
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
    if (auto* refused = std::get_if<wire::CallRefused>(&reply)) {
        refused_code = static_cast<int>(refused->exit_code);
        return Error::from_message(refused->message);
    }
    if (received.fds.size() != wire::call_connected_descriptors)
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

// Reads "status N\n" and turns it into an exit code: the service's own, or 128 + its signal.
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

// Relays until the service is done: stdin -> stream (then shut down for writing), stream ->
// stdout, the service's stderr -> stderr. `feed`: when stdin is not to be read (the copy
// commands write the stream themselves).
void relay(Connection& call, bool feed)
{
    std::vector<char> buffer(1 << 16);
    bool input = feed, output = true, errors = true;
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
            if (n <= 0 || !write_all(1, buffer.data(), static_cast<size_t>(n)))
                output = false;
        }
        if (errors && fds[2].revents) {
            ssize_t n = ::read(call.errors.get(), buffer.data(), buffer.size());
            if (n <= 0 || !write_all(2, buffer.data(), static_cast<size_t>(n)))
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

int call_main(std::vector<std::string> const& args)
{
    if (args.size() != 2 || args[0].starts_with("-"))
        return fail("bulkhead-call", "usage: bulkhead-call TARGET SERVICE[+ARG]", 2);
    std::string service = args[1];
    std::string arg;
    if (auto plus = service.find('+'); plus != std::string::npos) {
        arg = service.substr(plus + 1);
        service.resize(plus);
    }
    int refused = exit_failed;
    auto call = open_call(args[0], service, arg, refused);
    if (call.is_error())
        return fail("bulkhead-call", call.error().message(), refused);
    relay(call.value(), true);
    return finish("bulkhead-call", call.value());
}

// bulkhead-clip copy|paste: the global clipboard held by the broker. Copy always succeeds (the
// content goes to the broker, sealed in a memfd); paste is the call CLIPBOARD-SOURCE -> here,
// checked by the policy, and empties the clipboard.
int clip_main(std::vector<std::string> const& args)
{
    constexpr size_t max_bytes = 1 << 20;
    if (args.size() != 1 || (args[0] != "copy" && args[0] != "paste"))
        return fail("bulkhead-clip", "usage: bulkhead-clip copy|paste", 2);
    int refused = exit_failed;
    if (args[0] == "paste") {
        auto call = open_call("", "bulkhead.Clipboard", "paste", refused);
        if (call.is_error())
            return fail("bulkhead-clip", call.error().message(), refused);
        relay(call.value(), false);
        return finish("bulkhead-clip", call.value());
    }
    std::string content;
    std::vector<char> buffer(1 << 16);
    while (content.size() <= max_bytes) {
        ssize_t n = ::read(0, buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail("bulkhead-clip", std::string("reading stdin: ") + std::strerror(errno));
        if (n == 0)
            break;
        content.append(buffer.data(), static_cast<size_t>(n));
    }
    if (content.size() > max_bytes)
        return fail("bulkhead-clip", "the clipboard holds at most 1 MiB", 2);
    auto sealed = sys::sealed_memfd("bulkhead-clip", content);
    if (sealed.is_error())
        return fail("bulkhead-clip", sealed.error().message());
    auto call = open_call("", "bulkhead.Clipboard", "copy", refused, sealed.value().get());
    if (call.is_error())
        return fail("bulkhead-clip", call.error().message(), refused);
    relay(call.value(), false);
    return finish("bulkhead-clip", call.value());
}

// Removes what was sent, without following links (a directory's content first).
Status remove_sent(std::string const& path)
{
    struct stat info {};
    if (::lstat(path.c_str(), &info) < 0)
        return Error::from_syscall("lstat", path, errno);
    if (!S_ISDIR(info.st_mode))
        return check_syscall(::unlink(path.c_str()), "unlink " + path);
    TRY(sys::remove_tree(path));
    return {};
}

int copy_main(std::vector<std::string> const& args, bool move)
{
    std::string const program = move ? "bulkhead-move" : "bulkhead-copy";
    if (args.size() < 2 || args[0].starts_with("-"))
        return fail(program, "usage: " + program + " DESTINATION FILE...", 2);
    std::vector<std::string> files(args.begin() + 1, args.end());
    for (auto const& file : files) {
        struct stat info {};
        if (::lstat(file.c_str(), &info) < 0)
            return fail(program, file + ": " + std::strerror(errno), 2);
    }
    int refused = exit_failed;
    auto call = open_call(args[0], "bulkhead.Filecopy", "", refused);
    if (call.is_error())
        return fail(program, call.error().message(), refused);
    auto sent = filecopy::send(call.value().stream.get(), files);
    (void)::shutdown(call.value().stream.get(), SHUT_WR);
    relay(call.value(), false);
    int code = finish(program, call.value());
    if (sent.is_error())
        return fail(program, sent.error().message(), code == 0 ? exit_failed : code);
    if (code != 0)
        return code;
    if (move) {
        for (auto const& file : files) {
            if (auto removed = remove_sent(file); removed.is_error())
                return fail(program, "copied, but removing the original: " + removed.error().message());
        }
    }
    return 0;
}

// The built-in receiver of bulkhead.Filecopy: ~/Incoming/SOURCE/ in the target.
int filecopy_service()
{
    char const* source = std::getenv("BULKHEAD_SOURCE");
    char const* home = std::getenv("HOME");
    if (source == nullptr || home == nullptr)
        return fail("bulkhead.Filecopy", "BULKHEAD_SOURCE and HOME must be set");
    auto home_fd = sys::open_path(home, O_DIRECTORY | O_RDONLY | O_NOFOLLOW);
    if (home_fd.is_error())
        return fail("bulkhead.Filecopy", home_fd.error().message());
    auto received = filecopy::receive(0, home_fd.value().get(), source, filecopy::Limits {});
    if (received.is_error())
        return fail("bulkhead.Filecopy", received.error().message(), 1);
    return 0;
}

int service_main(std::vector<std::string> const& args)
{
    if (args.size() != 2)
        return fail("bulkhead-service", "usage: bulkhead-service SERVICE ARG", 2);
    std::string const& service = args[0];
    std::string const& arg = args[1];
    if (service.empty() || service.find('/') != std::string::npos || service.starts_with(".") || arg.find('/') != std::string::npos)
        return fail("bulkhead-service", "malformed service name", 2);
    // The first executable of DESIGN.md's list; the compartment's own files may override a built-in.
    std::vector<std::string> candidates;
    if (!arg.empty())
        candidates.push_back("/etc/bulkhead/services/" + service + "+" + arg);
    candidates.push_back("/etc/bulkhead/services/" + service);
    candidates.push_back("/usr/lib/bulkhead/services/" + service);
    for (auto const& candidate : candidates) {
        if (::access(candidate.c_str(), X_OK) != 0)
            continue;
        char* argv[] = {const_cast<char*>(candidate.c_str()), nullptr};
        ::execve(candidate.c_str(), argv, environ);
        return fail("bulkhead-service", candidate + ": " + std::strerror(errno), 126);
    }
    if (service == "bulkhead.Filecopy")
        return filecopy_service();
    char const* compartment = std::getenv("BULKHEAD_COMPARTMENT");
    return fail("bulkhead-service", "no service " + service + " in " + (compartment ? compartment : "this compartment"), 127);
}

} // namespace

std::optional<int> run_command(std::string_view program, std::vector<std::string> const& args)
{
    if (program == "bulkhead-call" || program == "bulkhead-copy" || program == "bulkhead-move" || program == "bulkhead-clip")
        ::signal(SIGPIPE, SIG_IGN); // a peer that goes away must not kill a command about to say why
    if (program == "bulkhead-call")
        return call_main(args);
    if (program == "bulkhead-copy")
        return copy_main(args, false);
    if (program == "bulkhead-move")
        return copy_main(args, true);
    if (program == "bulkhead-service")
        return service_main(args);
    if (program == "bulkhead-clip")
        return clip_main(args);
    return std::nullopt;
}

} // namespace bulkhead::agent
