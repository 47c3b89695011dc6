// The in-compartment commands, which are the agent's executable under other names.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bulkhead::agent {

// Runs the command named `program` (argv[0]'s last component) with `args` (argv[1..]) and returns
// its exit code; nullopt when `program` is not one of them (the process is the agent itself).
std::optional<int> run_command(std::string_view program, std::vector<std::string> const& args);

} // namespace bulkhead::agent
