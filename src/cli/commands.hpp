// The subcommands of the bulkhead command. Each returns the process exit code (DESIGN.md:
// the command's own code, 125 = bulkhead failed, 126/127 = could not execute / not found, 2 = bad usage).
#pragma once

#include "base/result.hpp"
#include "sandbox/compartment.hpp"
#include "sandbox/seccomp.hpp"

#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace bulkhead::cli {

inline constexpr int exit_usage = 2;
inline constexpr int exit_failed = 125;

int sandbox_command(std::span<char*> args);
int demo_command(std::span<char*> args);

// What every command that builds compartments directly (without a broker) needs.
struct LocalEngine {
    std::unique_ptr<sandbox::CgroupRoot> cgroups;
    std::unique_ptr<sandbox::SeccompProgram> seccomp;
    sandbox::Engine engine() const { return {cgroups.get(), seccomp.get()}; }
    ~LocalEngine();
};
Result<std::unique_ptr<LocalEngine>> open_local_engine(std::string const& instance);
// Makes `path` (and its parents) a root-only directory if it does not exist.
Status ensure_private_dir(std::string const& path);

// Messages may carry what a compartment said (a service's error, a name it chose): on a terminal,
// its control characters are defused (base/terminal.hpp ControlFilter); elsewhere unchanged.
std::string shown_on(int fd, std::string_view text);
// "bulkhead: error: MESSAGE" on stderr, through shown_on.
void print_error(std::string_view message);
// Prints `bulkhead COMMAND --help` (help.cpp); false for a command it does not know.
bool print_command_help(std::string_view command);

} // namespace bulkhead::cli
