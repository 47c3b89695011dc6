#include "cli/client.hpp"
#include "cli/commands.hpp"
#include "sandbox/landlock.hpp"

#include <cstdio>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace {

constexpr char const* usage_text
    = "usage: bulkhead COMMAND [ARGS...]\n"
      "\n"
      "commands available in this version:\n"
      "  daemon [--config FILE] [--root DIR] [--socket PATH] [--ask-timeout SECONDS] [--slots N]\n"
      "         [--audit-file-size SIZE] [--audit-keep-files N] [--state-reserve SIZE]\n"
      "                                      run the broker in the foreground\n"
      "  apply [FILE]                        validate, then make the running system match FILE\n"
      "  plan [FILE]                         show what apply would change; change nothing\n"
      "  rollback                            return to the previously applied generation\n"
      "  generations [--json]                the applied generations (* the one in force)\n"
      "  config show [--json]                the configuration in force, every default filled in\n"
      "  ls [--json]                         compartments: name, label, backend, state, memory, network\n"
      "  net [--json]                        running clients of network compartments: address, state, rules and counters\n"
      "  start|stop|restart NAME            (stop NAME... | stop --all)\n"
      "  run [--tty] [--user USER] NAME -- CMD [ARG...]\n"
      "  run [--tty] --disposable [TEMPLATE] -- CMD [ARG...]\n"
      "  shell NAME                          interactive shell (pty)\n"
      "  policy check [--explain] SOURCE TARGET SERVICE[+ARG]   what the policy decides, and why\n"
      "  policy lint [DIR]                   check a policy directory (default /etc/bulkhead/policy.d)\n"
      "  pending [--json] | approve ID [--target NAME] | deny ID   answer calls held by `ask` rules\n"
      "  audit [--follow] [--json] | audit verify   the audit log, and a check of its hash chain\n"
      "  copy SRC:PATH... DST                files from compartment SRC to DST:~/Incoming/SRC/ (policy-checked)\n"
      "  copy HOSTPATH... NAME               host files into NAME:~/Incoming/host/ (policy: @host -> NAME)\n"
      "  copy NAME:PATH... HOSTDIR/          files of NAME into a host folder (policy: NAME -> @host)\n"
      "  grant NAME VOLUME[/PATH] [--ro|--rw] [--at DIR]   put a volume folder into running NAME now (default ro)\n"
      "  revoke NAME VOLUME[/PATH]           take it out again (holders of open files in it are killed)\n"
      "  show NAME [--json]                  a compartment's state, volume mounts and grants\n"
      "  sandbox [OPTIONS] -- CMD [ARG...]   run CMD in a new compartment built directly by the engine\n"
      "                                      (no broker); `bulkhead sandbox --help` lists the options\n"
      "  demo                                two compartments that cannot see each other\n"
      "  version                             print the version\n"
      "\n"
      "Client commands reach the broker at --socket PATH, else --root DIR (DIR/run/admin.sock),\n"
      "else $BULKHEAD_SOCKET, else /run/bulkhead/admin.sock.\n";

} // namespace

int main(int argc, char** argv)
{
    std::span<char*> args(argv, static_cast<size_t>(argc));
    if (args.size() < 2) {
        std::fputs(usage_text, stderr);
        return bulkhead::cli::exit_usage;
    }
    // `bulkhead --socket PATH COMMAND ...` and `--root DIR` before the command: moved behind it.
    std::vector<char*> reordered(args.begin(), args.end());
    std::vector<char*> leading;
    while (reordered.size() >= 4 && (std::string_view(reordered[1]) == "--socket" || std::string_view(reordered[1]) == "--root")) {
        leading.insert(leading.end(), reordered.begin() + 1, reordered.begin() + 3);
        reordered.erase(reordered.begin() + 1, reordered.begin() + 3);
    }
    reordered.insert(reordered.begin() + 2, leading.begin(), leading.end());
    args = std::span<char*>(reordered);
    std::string_view command = args[1];
    auto rest = args.subspan(2);
    // COMMAND --help (before any `--`: what follows it belongs to a command in a compartment).
    if (command != "run" && command != "shell") {
        for (char* arg : rest) {
            std::string_view word = arg;
            if (word == "--")
                break;
            if ((word == "--help" || word == "-h") && bulkhead::cli::print_command_help(command))
                return 0;
        }
    }
    if (command == "version" || command == "--version") {
        std::printf("bulkhead %s\n", BULKHEAD_VERSION);
        // What the engine will use on this kernel, so that a weaker host is visible at a glance.
        if (int abi = bulkhead::sandbox::landlock_abi(); abi > 0)
            std::printf("landlock: ABI %d\n", abi);
        else
            std::printf("landlock: unavailable (compartments run without Landlock rules)\n");
        return 0;
    }
    if (command == "help" || command == "--help" || command == "-h") {
        std::fputs(usage_text, stdout);
        return 0;
    }
    if (command == "sandbox")
        return bulkhead::cli::sandbox_command(rest);
    if (command == "demo")
        return bulkhead::cli::demo_command(rest);
    std::vector<std::string> words(rest.begin(), rest.end());
    if (command == "daemon")
        return bulkhead::cli::daemon_command(std::move(words));
    for (char const* admin : {"apply", "plan", "rollback", "ls", "net", "start", "stop", "restart", "generations", "config"}) {
        if (command == admin)
            return bulkhead::cli::admin_command(std::string(command), std::move(words));
    }
    for (char const* policy : {"policy", "pending", "approve", "deny", "audit", "copy"}) {
        if (command == policy)
            return bulkhead::cli::policy_command(std::string(command), std::move(words));
    }
    if (command == "grant" || command == "revoke" || command == "show")
        return bulkhead::cli::data_command(std::string(command), std::move(words));
    if (command == "run" || command == "shell")
        return bulkhead::cli::run_command(std::string(command), std::move(words));
    std::fprintf(stderr, "bulkhead: unknown command '%.*s'\n\n%s", static_cast<int>(command.size()), command.data(), usage_text);
    return bulkhead::cli::exit_usage;
}
