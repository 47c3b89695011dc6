// The client side of a run's streams: relays this process's stdin, stdout and stderr to and from a
// command in a compartment (three pipes, or a pty master with --tty) until the command has ended.
#pragma once

#include "sys/fd.hpp"

#include <string>

namespace bulkhead::cli {

struct Session {
    int broker = -1;            // the run's connection: failures and "done" arrive on it
    sys::UniqueFd status;       // "status N\n" from the compartment's agent, then EOF
    sys::UniqueFd master;       // --tty: the pty master
    sys::UniqueFd in, out, err; // without --tty: the write end of the command's stdin, the read ends of its outputs
    std::string compartment;    // where the command runs (shown in the terminal's title)
    bool disposable = false;
    bool raw = false; // --raw: the compartment's bytes reach this terminal unfiltered
};

// After the command's status has arrived, what a compartment still writes is relayed for this
// long, and no more than `drain_bytes` of it per stream; stdin is no longer read at all.
inline constexpr int drain_ms = 100;
inline constexpr size_t drain_bytes = 4 << 20;
// The exit code when the administrator ends a session with `~.` (as Ctrl-C ends a run without --tty).
inline constexpr int exit_escaped = 130;

// Relays until the command has ended and the broker has said so; the run's exit code.
int relay(Session& session);

} // namespace bulkhead::cli
