// The calling side of a call, shared by the in-compartment commands: ask the broker over
// /run/bulkhead/agent.sock, get the service's stream, its stderr and its exit status.
#pragma once

#include "base/result.hpp"
#include "base/terminal.hpp"
#include "sys/fd.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>

namespace bulkhead::agent {

// The exit code of a command that could not do its work for a reason of its own (DESIGN.md).
constexpr int exit_failed = 125;

// Writes "PROGRAM: MESSAGE" to stderr and returns `code`.
int fail(std::string const& program, std::string const& message, int code = exit_failed);

// Writes all of `data` (retrying short writes and EINTR); false on an error or a closed peer.
bool write_all(int fd, char const* data, size_t size);

// An allowed call: the service's stdin+stdout, its stderr and its status ("status N\n").
struct Connection {
    std::string target; // as the broker resolved it (a disposable's own name for @disposable)
    sys::UniqueFd stream;
    sys::UniqueFd errors;
    sys::UniqueFd status;
};

// Asks the broker for a call. A refusal carries the exit code the caller ends with in
// `refused_code` (126 denied, 125 failed, ...). `beside`: a descriptor sent with the request
// (the clipboard's sealed memfd), or -1.
Result<Connection> open_call(std::string const& target, std::string const& service, std::string const& arg, int& refused_code, int beside = -1);

// Reads the service's "status N\n" and turns it into an exit code: its own, or 128 + its signal.
Result<int> read_status(int fd);

// Writes `bytes` to `fd`, through `filter` when it is set (on a terminal: control characters
// defused, see base/terminal.hpp); false on an error or a closed peer.
bool write_shown(int fd, std::optional<terminal::ControlFilter>& filter, std::span<uint8_t const> bytes);

// Relays until the service is done: stdin -> stream (then shut down for writing), stream ->
// stdout, the service's stderr -> stderr. `feed` false: stdin is not read (the stream is shut
// down for writing at once; the copy commands write it themselves). What goes to a terminal has
// its control characters defused (another compartment must not drive the caller's terminal)
// unless `raw`; into a pipe or a file the bytes pass unchanged.
void relay(Connection& call, bool feed, bool raw = false);

// read_status, with a failure said as PROGRAM: TARGET: REASON.
int finish(std::string const& program, Connection& call);

} // namespace bulkhead::agent
