#include "base/parse.hpp"
#include "base/terminal.hpp"
#include "cli/commands.hpp"
#include "sys/syscalls.hpp"

#include <cstdio>
#include <cstdlib>
#include <sys/stat.h>
#include <unistd.h>

namespace bulkhead::cli {

namespace {

constexpr char const* sandbox_usage
    = "usage: bulkhead sandbox [OPTIONS] -- CMD [ARG...]\n"
      "\n"
      "Builds one compartment with the sandbox engine, runs CMD in it and tears it down.\n"
      "\n"
      "  --name NAME             compartment name (default sbx-PID)\n"
      "  --template host|DIR     template: the host's /usr, or a root filesystem directory (default host)\n"
      "  --hostname NAME         host name inside (default: the name)\n"
      "  --uid-base N            first host uid/gid of the compartment's 65536 ids (default derived from PID)\n"
      "  --bind SRC:DST[:ro|rw]  bind a host path (repeatable; default ro)\n"
      "  --home DIR              persistent home bound at /home/user (default: scratch)\n"
      "  --memory SIZE           memory limit, e.g. 256M\n"
      "  --pids N                process limit\n"
      "  --cpus X                CPU limit, e.g. 0.5\n"
      "  --user user|root        run CMD as user (uid 1000, default) or root inside\n"
      "  --cwd DIR               working directory inside\n"
      "  --env KEY=VALUE         add to the environment (repeatable)\n"
      "  --runtime-dir DIR       host directory for scratch state (default /run/bulkhead/sandbox)\n"
      "\n"
      "Exit code: CMD's own; 125 if bulkhead failed; 126 not executable; 127 not found; 2 bad usage.\n";

int usage_error(std::string const& message)
{
    print_error(message);
    std::fputs("run 'bulkhead sandbox --help' for the options\n", stderr);
    return exit_usage;
}

Result<sandbox::Bind> parse_bind(std::string_view text)
{
    auto parts = split(text, ':');
    if (parts.size() < 2 || parts.size() > 3)
        return Error::from_message("'" + std::string(text) + "' is not SRC:DST[:ro|rw]");
    sandbox::Bind bind {std::string(parts[0]), std::string(parts[1]), sandbox::AccessMode::ReadOnly};
    if (parts.size() == 3) {
        if (parts[2] == "rw")
            bind.mode = sandbox::AccessMode::ReadWrite;
        else if (parts[2] != "ro")
            return Error::from_message("'" + std::string(parts[2]) + "' is not ro or rw");
    }
    return bind;
}

} // namespace

std::string shown_on(int fd, std::string_view text)
{
    if (::isatty(fd) != 1)
        return std::string(text);
    terminal::ControlFilter filter;
    return filter.filter({reinterpret_cast<uint8_t const*>(text.data()), text.size()});
}

void print_error(std::string_view message)
{
    std::string shown = shown_on(2, message);
    std::fprintf(stderr, "bulkhead: error: %s\n", shown.c_str());
}

LocalEngine::~LocalEngine()
{
    if (cgroups)
        (void)cgroups->remove_if_empty();
}

Result<std::unique_ptr<LocalEngine>> open_local_engine(std::string const& instance)
{
    auto engine = std::make_unique<LocalEngine>();
    engine->cgroups = TRY(sandbox::CgroupRoot::open(instance));
    engine->seccomp = std::make_unique<sandbox::SeccompProgram>(
        sandbox::SeccompProgram::prebuilt(sandbox::SeccompProfile::Default));
    return engine;
}

Status ensure_private_dir(std::string const& path)
{
    std::string partial;
    for (auto component : split(path, '/')) {
        if (component.empty())
            continue;
        partial += "/" + std::string(component);
        if (::mkdir(partial.c_str(), 0700) < 0 && errno != EEXIST)
            return Error::from_syscall("mkdir", partial, errno);
    }
    return {};
}

int sandbox_command(std::span<char*> args)
{
    sandbox::Spec spec;
    spec.name = "sbx-" + std::to_string(::getpid());
    spec.runtime_dir = "/run/bulkhead/sandbox";
    // A distinct id block per concurrently running PID; the broker allocates blocks properly.
    spec.host_id_base = (1U << 30) + ((static_cast<uint32_t>(::getpid()) % 8192) << 16);
    std::vector<std::string> extra_env;
    bool user_env = false;

    size_t i = 0;
    auto value = [&](std::string_view option) -> Result<std::string> {
        if (i + 1 >= args.size())
            return Error::from_message(std::string(option) + " needs a value");
        return std::string(args[++i]);
    };
    for (; i < args.size(); ++i) {
        std::string_view arg = args[i];
        if (arg == "--") {
            ++i;
            break;
        }
        if (arg == "--help" || arg == "-h") {
            std::fputs(sandbox_usage, stdout);
            return 0;
        }
        auto v = value(arg);
        if (v.is_error())
            return usage_error(v.error().message());
        std::string const& text = v.value();
        if (arg == "--name") {
            spec.name = text;
        } else if (arg == "--template") {
            if (text != "host") {
                spec.templ.kind = sandbox::TemplateKind::Rootfs;
                spec.templ.root = text;
            }
        } else if (arg == "--hostname") {
            spec.hostname = text;
        } else if (arg == "--uid-base") {
            auto base = parse_uint(text);
            if (base.is_error() || base.value() > 0xFFFFFFFFULL)
                return usage_error("--uid-base: " + (base.is_error() ? base.error().message() : "too large"));
            spec.host_id_base = static_cast<uid_t>(base.value());
        } else if (arg == "--bind") {
            auto bind = parse_bind(text);
            if (bind.is_error())
                return usage_error("--bind: " + bind.error().message());
            spec.binds.push_back(bind.release_value());
        } else if (arg == "--home") {
            spec.home_source = text;
        } else if (arg == "--memory") {
            auto size = parse_size(text);
            if (size.is_error())
                return usage_error("--memory: " + size.error().message());
            // 0 would mean "no limit": a value that rounds down to nothing is a mistake, not a wish.
            if (size.value() == 0)
                return usage_error("--memory: '" + std::string(text) + "' is no memory at all (use e.g. 256M)");
            spec.limits.memory_bytes = size.value();
        } else if (arg == "--pids") {
            auto pids = parse_uint(text);
            if (pids.is_error())
                return usage_error("--pids: " + pids.error().message());
            spec.limits.pids = pids.value();
        } else if (arg == "--cpus") {
            auto cpus = parse_cpus(text);
            if (cpus.is_error())
                return usage_error("--cpus: " + cpus.error().message());
            spec.limits.cpu_millis = cpus.value();
        } else if (arg == "--user") {
            if (text != "user" && text != "root")
                return usage_error("--user: '" + text + "' is not user or root");
            spec.run_as = text == "root" ? sandbox::RunAs::Root : sandbox::RunAs::User;
        } else if (arg == "--cwd") {
            spec.cwd = text;
        } else if (arg == "--env") {
            if (text.find('=') == std::string::npos)
                return usage_error("--env: '" + text + "' is not KEY=VALUE");
            extra_env.push_back(text);
            user_env = true;
        } else if (arg == "--runtime-dir") {
            spec.runtime_dir = text;
        } else {
            return usage_error("unknown option '" + std::string(arg) + "'");
        }
    }
    for (; i < args.size(); ++i)
        spec.argv.emplace_back(args[i]);
    if (spec.argv.empty())
        return usage_error("no command given (put it after --)");

    spec.env = sandbox::default_environment(spec);
    if (user_env)
        spec.env.insert(spec.env.end(), extra_env.begin(), extra_env.end());
    spec.stdin_fd = 0;
    spec.stdout_fd = 1;
    spec.stderr_fd = 2;

    // Check the whole spec before touching anything on the host.
    if (auto status = sandbox::validate(spec); status.is_error()) {
        // A missing default runtime directory is ours to make, not the user's mistake.
        if (status.error().message().starts_with("runtime_dir") && spec.runtime_dir == "/run/bulkhead/sandbox") {
            if (auto made = ensure_private_dir(spec.runtime_dir); made.is_error()) {
                print_error(made.error().message());
                return exit_failed;
            }
            status = sandbox::validate(spec);
        }
        if (status.is_error()) {
            print_error(status.error().message());
            return exit_usage;
        }
    }

    auto engine = open_local_engine(spec.name);
    if (engine.is_error()) {
        print_error(engine.error().message());
        return exit_failed;
    }
    auto compartment = sandbox::Compartment::create(engine.value()->engine(), spec);
    if (compartment.is_error()) {
        print_error(compartment.error().message());
        return exit_failed;
    }
    auto status = compartment.value().wait();
    (void)compartment.value().destroy();
    if (status.is_error()) {
        print_error(status.error().message());
        return exit_failed;
    }
    return status.value().code;
}

} // namespace bulkhead::cli
