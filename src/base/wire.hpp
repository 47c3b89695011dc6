// The agent protocol: the messages between the broker and the agent (PID 1 of every compartment).
// Pure encode/decode, no syscalls. One message per SOCK_SEQPACKET record; descriptors travel
// beside a message as SCM_RIGHTS and are counted here, not carried.
//
// The agent runs inside a compartment that may be fully hostile, so every decoder is strict:
// sizes and counts are bounded, every byte of a record must be consumed, strings may not contain
// NUL, and any violation is an Error (the broker then disconnects and stops that compartment).
//
// Record layout: u8 type, then the fields of that type in order. Integers are little-endian
// u32; a string is a u32 length and that many bytes; a list is a u32 count and that many strings.
#pragma once

#include "base/result.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

namespace bulkhead::wire {

inline constexpr uint32_t protocol_version = 1;
// Largest record either side sends or accepts. The broker's messages carry argv and environment.
inline constexpr size_t max_broker_record = 64 * 1024;
// The agent has nothing long to say: its records are small, and bounded far below the broker's.
inline constexpr size_t max_agent_record = 1024;
inline constexpr size_t max_list_items = 1024;
inline constexpr size_t max_error_text = 512;

enum class MessageType : uint8_t {
    // broker -> agent
    Exec = 1,
    Kill = 2,
    // agent -> broker
    Hello = 16,
    Started = 17,
    Exited = 18,
    Failed = 19,
    // caller -> broker (any other process of the compartment, on the same socket)
    Call = 32,
    // broker -> caller
    CallConnected = 48,
    CallRefused = 49,
    CallHeld = 50,
};

enum class RunAs : uint32_t { Root = 0, User = 1 };

// Run a command. Descriptors beside it: stdin, stdout, stderr, status (no tty), or status (tty).
// `status` receives "status N\n" (N = the wait status) when the command ends.
struct Exec {
    uint32_t id = 0;
    RunAs run_as = RunAs::User;
    bool tty = false;
    uint32_t rows = 0; // initial window size (tty only)
    uint32_t cols = 0;
    std::vector<std::string> argv; // empty: the compartment's login shell
    std::vector<std::string> env;  // the whole environment, KEY=VALUE
    std::string cwd;               // empty: the user's home
};

// Kill the command's process group (its client went away).
struct Kill {
    uint32_t id = 0;
};

// First record after every (re)connection. `running`: commands still running inside, so that a
// broker that reattaches knows whether a disposable has finished.
struct Hello {
    uint32_t version = 0;
    uint32_t running = 0;
};

// The command runs; with tty, the pty's master travels beside this record.
struct Started {
    uint32_t id = 0;
};

struct Exited {
    uint32_t id = 0;
    int32_t wait_status = 0;
};

struct Failed {
    uint32_t id = 0;
    std::string message; // at most max_error_text bytes, printable ASCII only
};

// --- calls: bulkhead-call and the other in-compartment commands ---
// Any process of a compartment other than its PID 1 may connect to /run/bulkhead/agent.sock and
// send one Call. The broker knows the caller by the socket (each compartment has its own), never
// by anything in the record.
inline constexpr size_t max_caller_record = 512;
inline constexpr size_t max_call_field = 64;

struct Call {
    std::string target;  // a compartment, "" or "@default", "@disposable[:T]", "@dispvm[:T]"
    std::string service; // e.g. "bulkhead.Filecopy"
    std::string arg;     // "" = no argument
};

// Allowed and running: one end of a connected stream socket (the service's stdin and stdout),
// the read end of the service's stderr and the read end of its status pipe ("status N\n")
// travel beside it. `target`: where it runs (a new disposable's name).
struct CallConnected {
    std::string target;
};

// Not allowed or failed. `exit_code`: 126 denied by policy, 125 bulkhead failed, 2 bad request.
struct CallRefused {
    uint32_t exit_code = 125;
    std::string message;
};

using BrokerMessage = std::variant<Exec, Kill>;
using AgentMessage = std::variant<Hello, Started, Exited, Failed>;

// How many descriptors must arrive beside a message.
size_t descriptors_for(BrokerMessage const& message);
size_t descriptors_for(AgentMessage const& message, bool tty);

std::vector<uint8_t> encode(BrokerMessage const& message);
std::vector<uint8_t> encode(AgentMessage const& message);

Result<BrokerMessage> decode_broker_message(std::span<uint8_t const> record);
Result<AgentMessage> decode_agent_message(std::span<uint8_t const> record);

// Held by an `ask` rule: the final answer (CallConnected or CallRefused) follows on the same
// connection once the administrator has answered or the time ran out. It carries nothing: not even
// the ask's number, which would tell a compartment how many asks other compartments made.
struct CallHeld {};

using CallReply = std::variant<CallConnected, CallRefused, CallHeld>;
inline constexpr size_t call_connected_descriptors = 3;
std::vector<uint8_t> encode(Call const& call);
std::vector<uint8_t> encode(CallReply const& reply);
// The words of a call are tokens of a fixed alphabet, so that a policy rule means what it says and
// no name can be read as a path, an option or two words:
//   service: 1..max_call_field of [A-Za-z0-9._-], not starting with '.' or '-' ("my.Svc+x" is not one)
//   arg:     0..max_call_field of the same, not starting with '.' or '-'
//   target:  0..max_call_field of [A-Za-z0-9._-:@] (a name, "@default", "@disposable:T", "@dispvm:T")
bool valid_service_name(std::string_view text);
bool valid_service_arg(std::string_view text);
bool valid_call_target(std::string_view text);
// Strict: the fields above, each checked; anything else is refused whole.
Result<Call> decode_call(std::span<uint8_t const> record);
Result<CallReply> decode_call_reply(std::span<uint8_t const> record);

} // namespace bulkhead::wire
