// bulkhead copy between the host and a compartment (DESIGN.md, CLI):
//   bulkhead copy HOSTPATH... NAME       into NAME:~/Incoming/host/
//   bulkhead copy NAME:PATH... HOSTDIR/  out of NAME into a host directory
// The stream is the one compartments send each other (filecopy.hpp), over a pipe between this
// process and a command the broker runs in NAME as its user: the compartment's own receiver of
// bulkhead.Filecopy coming in, `bulkhead-copy --stdout` going out. What comes out of a compartment
// is hostile: the host side receives it in a child that runs as the destination's owner (never as
// root), with no capabilities, no_new_privs and Landlock allowing nothing but the destination, and
// the receiver's own rules (no links, no overwrite, limits, partial files removed).
#include "agent/filecopy.hpp"
#include "cli/client.hpp"
#include "cli/commands.hpp"
#include "cli/relay.hpp"
#include "sandbox/landlock.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bulkhead::cli {

namespace {

using sys::UniqueFd;

struct Pipe {
    UniqueFd read, write;
};

Result<Pipe> make_pipe()
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0)
        return Error::from_syscall("pipe", errno);
    return Pipe {UniqueFd(fds[0]), UniqueFd(fds[1])};
}

// The host side of a copy out, in its own process: becomes the destination's owner, confined to
// the destination, and receives.
[[noreturn]] void receive_as_owner(int stream, int destination, std::string const& path, struct stat const& owner)
{
    auto die = [](std::string const& message) {
        print_error("copy: " + message);
        ::_exit(1);
    };
    // Prepared while the path can still be opened; enforced once nothing else is needed.
    auto ruleset = sandbox::landlock_prepare({{path, sandbox::LandlockAccess::ReadWrite}});
    if (ruleset.is_error())
        die("confining the receiver: " + ruleset.error().message());
    if (::geteuid() == 0) {
        gid_t const gid = owner.st_gid;
        if (::setgroups(1, &gid) < 0 || ::setresgid(gid, gid, gid) < 0 || ::setresuid(owner.st_uid, owner.st_uid, owner.st_uid) < 0)
            die(std::string("becoming the destination's owner: ") + std::strerror(errno));
    }
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        die(std::string("no_new_privs: ") + std::strerror(errno));
    if (ruleset.value() && sandbox::landlock_enforce(ruleset.value().get()).is_error())
        die("confining the receiver with Landlock failed");
    auto received = filecopy::receive_into(stream, destination, filecopy::Limits {});
    if (received.is_error())
        die(received.error().message());
    ::_exit(0);
}

[[noreturn]] void send_host_files(int stream, std::vector<std::string> const& paths)
{
    auto sent = filecopy::send(stream, paths);
    if (sent.is_error()) {
        print_error("copy: " + sent.error().message() + " (nothing was sent)");
        ::_exit(1);
    }
    ::_exit(0);
}

} // namespace

int host_copy(std::string const& socket, std::string const& name, std::vector<std::string> const& paths, std::string const& host_dir)
{
    bool const in = host_dir.empty();
    UniqueFd destination;
    struct stat owner {};
    if (in) {
        for (auto const& path : paths) {
            struct stat st {};
            if (::lstat(path.c_str(), &st) < 0) {
                print_error("copy: " + path + ": " + std::strerror(errno));
                return exit_usage;
            }
        }
        // Refused before the compartment is asked for anything.
        if (auto sendable = filecopy::check_sendable(paths); sendable.is_error()) {
            print_error("copy: " + sendable.error().message() + " (nothing was sent)");
            return exit_failed;
        }
    } else {
        int fd = ::open(host_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) {
            print_error("copy: " + host_dir + ": " + (errno == ENOTDIR ? std::string("not a directory") : std::strerror(errno)));
            return exit_usage;
        }
        destination.reset(fd);
        ::fstat(fd, &owner);
        if (owner.st_uid == 0 && ::geteuid() == 0) {
            print_error("copy: " + host_dir + " belongs to root: files from a compartment are never written as root "
                        "(copy into a folder of a user, or give this one to a user with chown)");
            return exit_usage;
        }
    }

    auto stream = make_pipe(), side = make_pipe(), err = make_pipe(), status = make_pipe();
    for (auto* made : {&stream, &side, &err, &status})
        if (made->is_error()) {
            print_error("copy: " + made->error().message());
            return exit_failed;
        }
    // In: the stream is the command's stdin, and its stdout goes where its stderr goes (relayed).
    // Out: the stream is its stdout, its stdin a pipe already at its end.
    int const command_in = in ? stream.value().read.get() : side.value().read.get();
    int const command_out = in ? err.value().write.get() : stream.value().write.get();
    side.value().write.reset();

    nlohmann::json request = {{"op", "run"}, {"name", name}, {"copy", in ? "in" : "out"}, {"user", "user"}};
    request["argv"] = in ? std::vector<std::string> {} : paths;
    auto broker = connect_broker(socket);
    if (broker.is_error()) {
        print_error(broker.error().message());
        return exit_failed;
    }
    int const pass[] = {command_in, command_out, err.value().write.get(), status.value().write.get()};
    if (auto sent = send_request(broker.value().get(), request, pass); sent.is_error()) {
        print_error("sending to the broker: " + sent.error().message());
        return exit_failed;
    }
    // Only the compartment holds the far ends now.
    if (in)
        stream.value().read.reset();
    else
        stream.value().write.reset();
    side.value().read.reset();
    side.value().write.reset();
    err.value().write.reset();
    status.value().write.reset();

    pid_t child = ::fork();
    if (child < 0) {
        print_error(std::string("copy: fork: ") + std::strerror(errno));
        return exit_failed;
    }
    if (child == 0) {
        broker.value().reset();
        if (in)
            send_host_files(stream.value().write.get(), paths);
        receive_as_owner(stream.value().read.get(), destination.get(), host_dir, owner);
    }
    stream.value().read.reset();
    stream.value().write.reset();
    destination.reset();

    // The relay carries the command's messages (and the broker's answer); it reads no stdin here.
    int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0) {
        ::dup2(null, 0);
        ::close(null);
    }
    auto empty_in = make_pipe(), empty_out = make_pipe();
    if (empty_in.is_error() || empty_out.is_error())
        return exit_failed;
    empty_out.value().write.reset();
    Session session;
    session.broker = broker.value().get();
    session.status = std::move(status.value().read);
    session.in = std::move(empty_in.value().write);
    session.out = std::move(empty_out.value().read);
    session.err = std::move(err.value().read);
    session.compartment = name;
    int code = relay(session);

    int child_status = 0;
    while (::waitpid(child, &child_status, 0) < 0 && errno == EINTR) {
    }
    int const child_code = WIFEXITED(child_status) ? WEXITSTATUS(child_status) : 1;
    if (code != 0)
        return code;
    return child_code;
}

// bulkhead grant NAME VOLUME[/PATH] [--ro|--rw] [--at DIR] | revoke NAME VOLUME[/PATH] | show NAME [--json]
int data_command(std::string const& command, std::vector<std::string> args)
{
    std::string error;
    std::string socket = take_socket_option(args, error);
    if (!error.empty()) {
        print_error(error);
        return exit_usage;
    }
    std::vector<std::string> words;
    std::string mode, at;
    bool as_json = false, at_given = false;
    for (size_t i = 0; i < args.size(); ++i) {
        if (command == "grant" && (args[i] == "--ro" || args[i] == "--rw")) {
            mode = args[i].substr(2);
        } else if (command == "grant" && args[i] == "--at" && i + 1 < args.size()) {
            at = args[++i];
            at_given = true;
        } else if (command == "show" && args[i] == "--json") {
            as_json = true;
        } else if (args[i].starts_with("-")) {
            print_error(command + ": unexpected option '" + args[i] + "'");
            return exit_usage;
        } else {
            words.push_back(args[i]);
        }
    }
    if (at_given && at.empty()) {
        print_error("grant: --at names a folder relative to the home");
        return exit_usage;
    }
    size_t const wanted = command == "show" ? 1 : 2;
    if (words.size() != wanted) {
        print_error(command == "grant"    ? "usage: bulkhead grant NAME VOLUME[/PATH] [--ro|--rw] [--at DIR]"
                    : command == "revoke" ? "usage: bulkhead revoke NAME VOLUME[/PATH]"
                                          : "usage: bulkhead show NAME [--json]");
        return exit_usage;
    }
    nlohmann::json request = {{"op", command}, {"name", words[0]}};
    if (command != "show")
        request["volume"] = words[1];
    if (command == "grant") {
        request["mode"] = mode;
        request["at"] = at;
    }
    auto reply = call_broker(socket, request);
    if (reply.is_error()) {
        print_error(reply.error().message());
        return exit_failed;
    }
    auto const& body = reply.value();
    if (!body.value("ok", false))
        return report_failure(body);
    if (command == "grant") {
        std::printf("%s: %s %s at %s\n", words[0].c_str(), words[1].c_str(), body.value("mode", "").c_str(), body.value("at", "").c_str());
    } else if (command == "revoke") {
        auto killed = body.value("killed", nlohmann::json::array());
        std::printf("%s: %s revoked\n", words[0].c_str(), words[1].c_str());
        if (!killed.empty())
            std::printf("%zu process(es) that held it open were killed: %s\n", killed.size(), killed.dump().c_str());
    } else if (as_json) {
        nlohmann::json out = body;
        out.erase("ok");
        std::printf("%s\n", out.dump(2).c_str());
    } else {
        std::printf("%s: %s, label %s, template %s, network %s\n", body.value("name", "").c_str(), body.value("state", "").c_str(),
            body.value("label", "").c_str(), body.value("template", "").c_str(), body.value("network", "").c_str());
        auto mounts = body.value("mounts", nlohmann::json::array());
        if (mounts.empty())
            std::printf("no volumes\n");
        for (auto const& m : mounts)
            std::printf("  ~/%-24s %-28s %s%s\n", m.value("at", "").c_str(), m.value("volume", "").c_str(), m.value("mode", "").c_str(),
                m.value("granted", false) ? "  (granted)" : "");
    }
    return 0;
}

} // namespace bulkhead::cli
