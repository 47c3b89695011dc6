// The client side of the admin API: finding the broker, one request and its reply.
#pragma once

#include "base/result.hpp"
#include "sys/fd.hpp"

#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <vector>

namespace bulkhead::cli {

// Where the broker listens: --socket PATH, else --root DIR (DIR/run/admin.sock), else
// $BULKHEAD_SOCKET, else /run/bulkhead/admin.sock. Removes the options it used from `args`.
std::string take_socket_option(std::vector<std::string>& args, std::string& error);

Result<sys::UniqueFd> connect_broker(std::string const& socket_path);

struct Reply {
    nlohmann::json body;
    std::vector<sys::UniqueFd> fds;
    bool closed = false; // the broker closed the connection instead of replying
};

Status send_request(int broker, nlohmann::json const& request, std::span<int const> fds = {});
Result<Reply> receive_reply(int broker, size_t max_fds = 1);

// One request, one reply (no descriptors): the reply's body, whatever its "ok".
Result<nlohmann::json> call_broker(std::string const& socket_path, nlohmann::json const& request);

// Prints a failed reply's error and returns its exit code (125 when it names none).
int report_failure(nlohmann::json const& body);

int daemon_command(std::vector<std::string> args);
int admin_command(std::string const& command, std::vector<std::string> args);
int run_command(std::string const& command, std::vector<std::string> args);
// policy check|lint, pending, approve, deny, audit [verify] (policy_command.cpp)
int policy_command(std::string const& command, std::vector<std::string> args);
// bulkhead copy between the host and NAME (copy_command.cpp): into NAME:~/Incoming/host/ when
// `host_dir` is empty, else NAME's `paths` into the host directory `host_dir`.
// grant, revoke, show (copy_command.cpp).
int data_command(std::string const& command, std::vector<std::string> args);
int host_copy(std::string const& socket, std::string const& name, std::vector<std::string> const& paths, std::string const& host_dir);

} // namespace bulkhead::cli
