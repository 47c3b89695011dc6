// Fuzzes the agent protocol's decoders (src/base/wire.hpp), and decode_call / decode_call_reply (a
// call from any process in any compartment, and its answer), with records as a hostile peer could
// send them; a decoded call's words are checked against their alphabet. Besides "no crash, no sanitizer report", for every input and both sides:
//   a record either decodes or fails with a message, and never decodes on both sides (the type
//   spaces are disjoint);
//   what decodes re-encodes to the very bytes that were decoded (the format has one encoding per
//   message, so a strict decoder accepts nothing else), and that re-encoding decodes and
//   re-encodes to the same bytes again;
//   what decodes stays within the bounds the decoders promise (sizes, counts, field ranges).
#include "base/wire.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>
#include <variant>
#include <vector>

using namespace bulkhead;
using namespace bulkhead::wire;

namespace {

void check(bool holds, char const* invariant)
{
    if (holds)
        return;
    std::fprintf(stderr, "fuzz_wire: invariant broken: %s\n", invariant);
    std::abort();
}

bool has_nul(std::string const& text)
{
    return text.find('\0') != std::string::npos;
}

void check_exec(Exec const& exec)
{
    check(exec.run_as == RunAs::Root || exec.run_as == RunAs::User, "Exec decodes with an unknown run_as");
    check(exec.rows <= 0xffff && exec.cols <= 0xffff, "Exec decodes with a window size out of range");
    check(exec.argv.size() <= max_list_items && exec.env.size() <= max_list_items, "Exec decodes a list too long");
    check(exec.cwd.size() <= 4096 && !has_nul(exec.cwd), "Exec decodes a cwd too long or with a NUL");
    for (auto const& arg : exec.argv)
        check(!has_nul(arg), "Exec decodes an argument with a NUL");
    for (auto const& entry : exec.env) {
        check(!has_nul(entry), "Exec decodes an environment entry with a NUL");
        check(!entry.empty() && entry.front() != '=' && entry.find('=') != std::string::npos,
              "Exec decodes an environment entry without a name");
    }
    check(descriptors_for(BrokerMessage(exec)) == (exec.tty ? 1u : 4u), "descriptors_for(Exec) miscounts");
}

void check_agent_fields(AgentMessage const& message)
{
    if (auto const* hello = std::get_if<Hello>(&message))
        check(hello->version == protocol_version, "Hello decodes with another protocol version");
    if (auto const* exited = std::get_if<Exited>(&message)) {
        uint32_t const raw = static_cast<uint32_t>(exited->wait_status);
        // WIFEXITED or WIFSIGNALED, spelled out: never stopped (0x7f), continued (0xffff) or above 16 bits.
        check(raw <= 0xffff && (raw & 0x7f) != 0x7f, "Exited decodes an impossible wait status");
    }
    if (auto const* failed = std::get_if<Failed>(&message)) {
        check(failed->message.size() <= max_error_text, "Failed decodes a text too long");
        for (char c : failed->message)
            check(c >= 0x20 && c < 0x7f, "Failed decodes a text with an unprintable byte");
    }
    bool const started = std::holds_alternative<Started>(message);
    check(descriptors_for(message, true) == (started ? 1u : 0u) && descriptors_for(message, false) == 0,
          "descriptors_for(AgentMessage) miscounts");
}

void check_broker(std::span<uint8_t const> record)
{
    auto decoded = decode_broker_message(record);
    if (decoded.is_error()) {
        check(!decoded.error().message().empty(), "decode_broker_message fails without a message");
        return;
    }
    check(record.size() <= max_broker_record, "decode_broker_message accepts a record over max_broker_record");
    check(decode_agent_message(record).is_error(), "a record decodes as both a broker and an agent message");
    if (auto const* exec = std::get_if<Exec>(&decoded.value()))
        check_exec(*exec);

    std::vector<uint8_t> const encoded = encode(decoded.value());
    check(std::equal(encoded.begin(), encoded.end(), record.begin(), record.end()),
          "a decoded broker message re-encodes to other bytes than it was decoded from");
    auto again = decode_broker_message(encoded);
    check(again.has_value(), "a re-encoded broker message does not decode");
    check(again.value().index() == decoded.value().index(), "a re-encoded broker message decodes as another type");
    check(encode(again.value()) == encoded, "a broker message changes on encode -> decode -> encode");
}

void check_agent(std::span<uint8_t const> record)
{
    auto decoded = decode_agent_message(record);
    if (decoded.is_error()) {
        check(!decoded.error().message().empty(), "decode_agent_message fails without a message");
        return;
    }
    check(record.size() <= max_agent_record, "decode_agent_message accepts a record over max_agent_record");
    check_agent_fields(decoded.value());

    std::vector<uint8_t> const encoded = encode(decoded.value());
    check(std::equal(encoded.begin(), encoded.end(), record.begin(), record.end()),
          "a decoded agent message re-encodes to other bytes than it was decoded from");
    auto again = decode_agent_message(encoded);
    check(again.has_value(), "a re-encoded agent message does not decode");
    check(again.value().index() == decoded.value().index(), "a re-encoded agent message decodes as another type");
    check(encode(again.value()) == encoded, "an agent message changes on encode -> decode -> encode");
}

// A call from any process in any compartment (decode_call), and the broker's answer to it.
void check_call(std::span<uint8_t const> record)
{
    auto decoded = decode_call(record);
    if (decoded.is_error()) {
        check(!decoded.error().message().empty(), "decode_call fails without a message");
    } else {
        Call const& call = decoded.value();
        check(record.size() <= max_caller_record, "decode_call accepts a record over max_caller_record");
        check(valid_service_name(call.service), "decode_call accepts a service name outside its alphabet");
        check(valid_service_arg(call.arg), "decode_call accepts an argument outside its alphabet");
        check(valid_call_target(call.target), "decode_call accepts a target outside its alphabet");
        check(call.service.find('+') == std::string::npos, "a service name hides an argument");
        std::vector<uint8_t> const encoded = encode(call);
        check(std::equal(encoded.begin(), encoded.end(), record.begin(), record.end()),
              "a decoded call re-encodes to other bytes than it was decoded from");
    }
    auto reply = decode_call_reply(record);
    if (reply.is_error()) {
        check(!reply.error().message().empty(), "decode_call_reply fails without a message");
        return;
    }
    std::vector<uint8_t> const encoded = encode(reply.value());
    check(std::equal(encoded.begin(), encoded.end(), record.begin(), record.end()),
          "a decoded call reply re-encodes to other bytes than it was decoded from");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::span<uint8_t const> const record(data, size);
    check_broker(record);
    check_agent(record);
    check_call(record);
    return 0;
}
