// `bulkhead COMMAND --help`: what each host command does, its arguments and options, and its exit
// codes. `run`, `shell` and `sandbox` answer --help themselves.
#include "cli/commands.hpp"

#include <array>
#include <cstdio>
#include <string_view>

namespace bulkhead::cli {

namespace {

struct Help {
    std::string_view command;
    std::string_view text;
};

constexpr std::string_view client_options
    = "\nThe broker is reached at --socket PATH, else --root DIR (DIR/run/admin.sock), else\n"
      "$BULKHEAD_SOCKET, else /run/bulkhead/admin.sock (root only).\n";

constexpr std::array helps = {
    Help {"daemon",
        "usage: bulkhead daemon [--config FILE] [--root DIR] [--socket PATH] [--ask-timeout SECONDS]\n"
        "                       [--slots N] [--audit-file-size SIZE] [--audit-keep-files N] [--state-reserve SIZE]\n"
        "\n"
        "Runs the broker in the foreground (as root). It applies FILE (default /etc/bulkhead/system.toml, or\n"
        "the embedded default system), serves the admin socket and keeps compartments running across its\n"
        "own restarts.\n"
        "\n"
        "  --config FILE          the system to apply at start\n"
        "  --root DIR             keep state in DIR/state and runtime files in DIR/run (a separate system)\n"
        "  --socket PATH          the admin socket (default RUN/admin.sock)\n"
        "  --ask-timeout SECONDS  how long a call held by an `ask` rule waits for an answer (default 60)\n"
        "  --slots N              compartments that may run at once (16..1024, default 1024)\n"
        "  --audit-file-size SIZE rotate the audit log at SIZE (default 16M)\n"
        "  --audit-keep-files N   rotated audit files kept (default 32)\n"
        "  --state-reserve SIZE   space the audit log leaves free for the state database\n"},
    Help {"apply",
        "usage: bulkhead apply [FILE]\n"
        "\n"
        "Validates FILE (default: the configuration in force) and its policy.d/ beside it, then makes the\n"
        "running system match: compartments that went away are stopped, changed ones restarted when needed.\n"
        "All or nothing; each apply is a numbered generation (bulkhead generations, bulkhead rollback).\n"
        "Errors are printed as FILE:LINE:COL: error: MESSAGE and nothing is applied (exit 2).\n"},
    Help {"plan",
        "usage: bulkhead plan [FILE]\n"
        "\n"
        "Shows what `bulkhead apply FILE` would change, with defaults filled in; changes nothing.\n"},
    Help {"rollback", "usage: bulkhead rollback\n\nApplies the generation before the one in force.\n"},
    Help {"generations", "usage: bulkhead generations [--json]\n\nLists the applied generations: number, when, from which file; the one in force is marked.\n"},
    Help {"config",
        "usage: bulkhead config show [--json]\n"
        "\n"
        "Prints the configuration in force with every default filled in (docs/configuration.md).\n"},
    Help {"ls",
        "usage: bulkhead ls [--json]\n"
        "\n"
        "Compartments: name, label, backend, state, template, memory in use (and its limit), CPU time of\n"
        "the processes running in it, network, tags.\n"
        "--json: every field, including limits, mounts and grants (docs/broker.md).\n"},
    Help {"net", "usage: bulkhead net [--json]\n\nRunning clients of network compartments: address, state, rules and their packet counters.\n"},
    Help {"start", "usage: bulkhead start NAME\n\nStarts compartment NAME (a no-op if it runs).\n"},
    Help {"stop",
        "usage: bulkhead stop NAME... | bulkhead stop --all\n"
        "\n"
        "Stops compartments (every process in them ends). Stopping one that is not running is not an\n"
        "error. --all stops every running compartment; disposable pools are not refilled by a stop.\n"},
    Help {"restart", "usage: bulkhead restart NAME\n\nStops NAME, then starts it again.\n"},
    Help {"policy",
        "usage: bulkhead policy check [--explain] SOURCE TARGET SERVICE[+ARG]\n"
        "       bulkhead policy lint [DIR]\n"
        "\n"
        "check: what the policy in force decides for a call, and which rule decides; --explain lists every\n"
        "rule considered. Exit 0 allow, 1 deny, 3 ask. Says so when policy files changed since they were\n"
        "applied.\n"
        "lint: checks a policy directory (default /etc/bulkhead/policy.d) without applying it.\n"},
    Help {"pending", "usage: bulkhead pending [--json]\n\nCalls held by `ask` rules, waiting for bulkhead approve ID or bulkhead deny ID.\n"},
    Help {"approve", "usage: bulkhead approve ID [--target NAME]\n\nLets the held call ID go ahead (to NAME, when the rule allows choosing).\n"},
    Help {"deny", "usage: bulkhead deny ID\n\nRefuses the held call ID.\n"},
    Help {"audit",
        "usage: bulkhead audit [--follow] [--json]\n"
        "       bulkhead audit verify\n"
        "\n"
        "Prints the audit log (every call, decision and administrative action); --follow waits for more.\n"
        "verify checks its hash chain and names an edited, deleted, inserted or reordered record.\n"},
    Help {"copy",
        "usage: bulkhead copy SRC:PATH... DST         between compartments, into DST:~/Incoming/SRC/\n"
        "       bulkhead copy HOSTPATH... NAME        from the host into NAME:~/Incoming/host/\n"
        "       bulkhead copy NAME:PATH... HOSTDIR/   out of NAME into a host folder (a destination with '/')\n"
        "\n"
        "Policy-checked as bulkhead.Filecopy (the host is @host); typing the command is the consent an `ask`\n"
        "rule waits for. Links and special files are refused, nothing is overwritten (a suffix is added).\n"
        "A copy out is written as the destination folder's owner, never as root (docs/data.md).\n"
        "Exit 0 copied, 126 denied by policy, 2 bad arguments, 1 or 125 failed.\n"},
    Help {"grant",
        "usage: bulkhead grant NAME VOLUME[/PATH] [--ro|--rw] [--at DIR]\n"
        "\n"
        "Puts a volume folder into the running compartment NAME now, at ~/DIR (default: the last part of\n"
        "VOLUME[/PATH]), read-only unless --rw. Lasts until revoke or until NAME stops (docs/data.md).\n"},
    Help {"revoke",
        "usage: bulkhead revoke NAME VOLUME[/PATH]\n"
        "\n"
        "Takes a granted folder out of NAME at once; processes in NAME that still hold something of it open\n"
        "are killed and listed.\n"},
    Help {"show", "usage: bulkhead show NAME [--json]\n\nOne compartment: state, label, template, network, volume mounts and grants.\n"},
    Help {"demo", "usage: bulkhead demo\n\nStarts a broker on a temporary root and shows two compartments that cannot see each other.\n"},
    Help {"version", "usage: bulkhead version\n\nPrints the version and the Landlock ABI the engine will use on this kernel.\n"},
};

bool is_client(std::string_view command)
{
    return command != "daemon" && command != "demo" && command != "version";
}

} // namespace

bool print_command_help(std::string_view command)
{
    for (auto const& help : helps) {
        if (help.command != command)
            continue;
        std::fwrite(help.text.data(), 1, help.text.size(), stdout);
        if (is_client(command))
            std::fwrite(client_options.data(), 1, client_options.size(), stdout);
        return true;
    }
    return false;
}

} // namespace bulkhead::cli
