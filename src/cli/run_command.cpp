// bulkhead run / shell: a command in a compartment with this terminal's streams.
//
// The client makes the pipes (or, with --tty, the compartment's agent makes a pty in the
// compartment's own devpts and the broker hands its master over); their far ends travel to the
// command through the broker, so that the data flows between this process and the compartment and
// the broker stays off the data path. The compartment never gets a descriptor of the caller's
// terminal or files. The command's wait status arrives on a pipe of its own, so a run survives a
// restart of the broker. The relay itself, and what keeps the compartment from driving this
// terminal: relay.cpp.
#include "cli/client.hpp"
#include "cli/commands.hpp"
#include "cli/relay.hpp"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

namespace bulkhead::cli {

using nlohmann::json;
using sys::UniqueFd;

namespace {

struct RunArgs {
    bool tty = false;
    bool disposable = false;
    bool raw = false;
    bool help = false;
    std::string user = "user";
    std::string name; // compartment, or template with --disposable
    std::vector<std::string> argv;
};

constexpr char const* run_usage = "usage: bulkhead run [--tty] [--raw] [--user USER] NAME -- CMD [ARG...]\n"
                                  "       bulkhead run [--tty] [--raw] --disposable [TEMPLATE] -- CMD [ARG...]\n"
                                  "       bulkhead shell [--raw] NAME\n";

constexpr char const* run_help
    = "\n"
      "Runs CMD in compartment NAME (started if it is not running), or in a new disposable of TEMPLATE\n"
      "(default: [system] default_disposable) that is destroyed when CMD ends. `shell NAME` is\n"
      "`run --tty NAME` with a login shell. The run ends when CMD ends; CMD's exit code is bulkhead's.\n"
      "\n"
      "  -t, --tty         give CMD a terminal (a pty in the compartment); this terminal goes to raw mode,\n"
      "                    so Ctrl-C and the window size reach CMD\n"
      "  -u, --user USER   user (uid 1000 inside, the default) or root (root inside, without capabilities)\n"
      "  --disposable      run in a new disposable\n"
      "  --raw             pass what the compartment writes to this terminal unchanged. Without it, what\n"
      "                    goes to a terminal is filtered: control characters are shown as '?' (without\n"
      "                    --tty); with --tty only the escape sequences that make a terminal answer, type,\n"
      "                    write its clipboard or run something are dropped, and titles read \"[NAME] ...\".\n"
      "                    Into a pipe or a file the bytes always pass unchanged.\n"
      "\n"
      "Escapes, with --tty when stdin is a terminal, typed at the start of a line (after Enter):\n"
      "  ~.   end the session, whatever CMD did to its terminal; CMD is ended too (exit code 130)\n"
      "  ~~   send one ~\n"
      "  ~?   list the escapes\n"
      "\n"
      "Exit codes: CMD's own; 128+N when signal N ended it; 125 bulkhead failed; 126 not executable or\n"
      "denied; 127 not found; 2 bad usage.\n";

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
        if (arg == "--help" || arg == "-h") {
            run.help = true;
            return run;
        }
        if (arg == "--tty" || arg == "-t") {
            run.tty = true;
        } else if (arg == "--raw") {
            run.raw = true;
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
    std::string compartment = run.name;
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
        auto const& body = first.value().body;
        if (body.contains("compartment") && body["compartment"].is_string())
            compartment = body["compartment"].get<std::string>(); // a disposable's own name
    }

    Session session;
    session.broker = broker.value().get();
    session.status = std::move(status_read);
    session.master = std::move(master);
    session.in = std::move(in_write);
    session.out = std::move(out_read);
    session.err = std::move(err_read);
    session.compartment = compartment;
    session.disposable = run.disposable;
    session.raw = run.raw;
    return relay(session);
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
    if (run.value().help) {
        std::fputs(run_usage, stdout);
        std::fputs(run_help, stdout);
        return 0;
    }
    return run_in_compartment(run.value(), socket);
}

} // namespace bulkhead::cli
