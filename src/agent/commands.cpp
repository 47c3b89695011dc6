// The commands inside every compartment (DESIGN.md, "Commands inside every compartment"). They are
// the agent's executable under other names (RUN/bin, bound at /run/bulkhead/bin), chosen by
// argv[0]. They run as the compartment's user with no privilege: everything they may do, the
// broker decides.
//
//   bulkhead-call [--raw] TARGET SERVICE[+ARG]   stdin/stdout joined to the service; its exit code
//   bulkhead-copy DST FILE...            files to DST:~/Incoming/SOURCE/
//   bulkhead-move DST FILE...            copy, then remove the originals
//   bulkhead-clip copy|paste             stdin to / the global clipboard to stdout
//   bulkhead-open-disposable FILE [CMD]  a copy of FILE opened in a new disposable (open_command.cpp)
//   bulkhead-service SERVICE ARG         (run by the agent in the target) finds and runs a service
#include "agent/commands.hpp"

#include "base/wire.hpp"

#include "agent/call_client.hpp"
#include "agent/filecopy.hpp"
#include "agent/open_command.hpp"
#include "sys/syscalls.hpp"

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace bulkhead::agent {

namespace {

int call_main(std::vector<std::string> args)
{
    bool raw = !args.empty() && args[0] == "--raw";
    if (raw)
        args.erase(args.begin());
    if (args.size() != 2 || args[0].starts_with("-"))
        return fail("bulkhead-call", "usage: bulkhead-call [--raw] TARGET SERVICE[+ARG]", 2);
    std::string service = args[1];
    std::string arg;
    if (auto plus = service.find('+'); plus != std::string::npos) {
        arg = service.substr(plus + 1);
        service.resize(plus);
    }
    if (!wire::valid_call_target(args[0]) || !wire::valid_service_name(service) || !wire::valid_service_arg(arg))
        return fail("bulkhead-call",
                    "a target, service or argument outside [A-Za-z0-9._-] (targets also ':' and '@'), or starting with '.' or '-'",
                    2);
    int refused = exit_failed;
    auto call = open_call(args[0], service, arg, refused);
    if (call.is_error())
        return fail("bulkhead-call", call.error().message(), refused);
    relay(call.value(), true, raw);
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
    if (!move && args.size() >= 2 && args[0] == "--stdout") {
        // The stream itself on stdout: the administrator's `bulkhead copy NAME:PATH... HOSTDIR/`
        // runs this and receives it on the host.
        std::vector<std::string> files(args.begin() + 1, args.end());
        auto sent = filecopy::send(1, files);
        if (sent.is_error())
            return fail(program, sent.error().message(), exit_failed);
        return 0;
    }
    if (args.size() < 2 || args[0].starts_with("-"))
        return fail(program, "usage: " + program + " DESTINATION FILE...", 2);
    std::vector<std::string> files(args.begin() + 1, args.end());
    for (auto const& file : files) {
        struct stat info {};
        if (::lstat(file.c_str(), &info) < 0)
            return fail(program, file + ": " + std::strerror(errno), 2);
    }
    // What would be refused is refused before the call is placed (and before anyone is asked).
    if (auto sendable = filecopy::check_sendable(files); sendable.is_error())
        return fail(program, sendable.error().message() + " (nothing was sent)", exit_failed);
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
    // The broker's decoder allows nothing else; checked again here, where the name becomes a path.
    if (!wire::valid_service_name(service) || !wire::valid_service_arg(arg))
        return fail("bulkhead-service", "malformed service name", 2);
    // The first executable of DESIGN.md's list; the compartment's own files may override a built-in.
    // The template's /etc/bulkhead/services (passed through into the generated /etc), then the
    // compartment's own ~/.config/bulkhead/services (kept with its home), then /usr/lib.
    std::vector<std::string> dirs = {"/etc/bulkhead/services"};
    if (char const* home = std::getenv("HOME"); home != nullptr && home[0] == '/')
        dirs.push_back(std::string(home) + "/.config/bulkhead/services");
    std::vector<std::string> candidates;
    for (auto const& dir : dirs) {
        if (!arg.empty())
            candidates.push_back(dir + "/" + service + "+" + arg);
        candidates.push_back(dir + "/" + service);
    }
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
    if (service == "bulkhead.OpenInDisposable")
        return open_disposable_service();
    char const* compartment = std::getenv("BULKHEAD_COMPARTMENT");
    return fail("bulkhead-service", "no service " + service + " in " + (compartment ? compartment : "this compartment"), 127);
}

} // namespace

// `COMMAND --help` inside a compartment.
std::optional<std::string_view> help_of(std::string_view program)
{
    if (program == "bulkhead-call")
        return "usage: bulkhead-call [--raw] TARGET SERVICE[+ARG]\n"
               "\n"
               "Calls SERVICE in compartment TARGET through the broker, which checks the policy and records the\n"
               "call. stdin and stdout are connected to the service; its exit code is this command's. TARGET may\n"
               "be a compartment, @default, @disposable or @disposable:TEMPLATE (a new disposable for this call).\n"
               "A call held by an `ask` rule waits for the administrator (bulkhead approve).\n"
               "--raw: the service's bytes reach a terminal unfiltered.\n"
               "Exit 126: denied by policy (or no such compartment); 125: bulkhead failed.\n";
    if (program == "bulkhead-copy" || program == "bulkhead-move")
        return program == "bulkhead-copy"
            ? "usage: bulkhead-copy DESTINATION FILE...\n\nCopies files and folders to compartment DESTINATION, where they arrive in ~/Incoming/THIS-COMPARTMENT/\n"
              "(policy: bulkhead.Filecopy). Links and special files are refused before anything is sent; nothing\n"
              "is overwritten at the destination (a suffix is added).\n"
            : "usage: bulkhead-move DESTINATION FILE...\n\nAs bulkhead-copy, then removes the originals once the copy succeeded.\n";
    if (program == "bulkhead-clip")
        return "usage: bulkhead-clip copy|paste\n"
               "\n"
               "copy: puts stdin (text, at most 1 MiB) on the global clipboard, held by the broker.\n"
               "paste: prints it, if the policy allows it from the compartment that copied it; then it is empty.\n";
    if (program == "bulkhead-open-disposable")
        return "usage: bulkhead-open-disposable [--view-only] [--template T] [--max-size SIZE] FILE [CMD...]\n"
               "\n"
               "Opens a copy of FILE in a new disposable with CMD (default: xdg-open when there is a display, else\n"
               "cat); the edited copy comes back into FILE when CMD ends, unless --view-only. --template: the\n"
               "disposable's template; --max-size: the largest edited copy accepted (default 4G).\n";
    if (program == "bulkhead-service")
        return "usage: bulkhead-service SERVICE ARG\n\nRuns the service SERVICE for a call (the agent starts it; not meant to be typed).\n";
    return std::nullopt;
}

std::optional<int> run_command(std::string_view program, std::vector<std::string> const& args)
{
    if (!args.empty() && (args.front() == "--help" || args.front() == "-h")) {
        if (auto help = help_of(program)) {
            std::fwrite(help->data(), 1, help->size(), stdout);
            return 0;
        }
    }
    if (program == "bulkhead-call" || program == "bulkhead-copy" || program == "bulkhead-move" || program == "bulkhead-clip"
        || program == "bulkhead-open-disposable")
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
    if (program == "bulkhead-open-disposable")
        return open_disposable_main(args);
    return std::nullopt;
}

} // namespace bulkhead::agent
