// Fuzzes the firewall rule language (src/net/firewall.hpp): configuration text an administrator or a
// generated configuration may get wrong. Besides "no crash, no sanitizer report", for every input:
//   a rule either parses or fails with a message and a column inside the text (or just past it);
//   what parses prints canonically, and the canonical text parses to the same rule and prints the same;
//   what parses is within bounds (ports 1..65535 and ordered, only with tcp/udp; prefixes within their
//   family's length, with no host bits set).
#include "net/firewall.hpp"

#include <cstdio>
#include <cstdlib>
#include <string_view>

using namespace bulkhead::net;

namespace {

void check(bool holds, char const* invariant)
{
    if (holds)
        return;
    std::fprintf(stderr, "fuzz_firewall: invariant broken: %s\n", invariant);
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string_view text(reinterpret_cast<char const*>(data), size);
    auto parsed = parse_rule(text);
    if (auto const* error = std::get_if<RuleError>(&parsed)) {
        check(!error->message.empty(), "an error says what is wrong");
        check(error->column >= 1 && error->column <= text.size() + 1, "an error's column is in the text");
        return 0;
    }
    auto const& rule = std::get<Rule>(parsed);
    if (rule.port_first != 0) {
        check(rule.protocol == Protocol::Tcp || rule.protocol == Protocol::Udp, "ports only with tcp or udp");
        check(rule.port_first <= rule.port_last, "port ranges are ordered");
    } else {
        check(rule.port_last == 0, "no last port without a first");
    }
    if (auto const* prefix = std::get_if<Prefix>(&rule.destination)) {
        check(prefix->length <= (prefix->family == Prefix::Family::V4 ? 32 : 128), "prefix length in range");
        check(prefix->contains(*prefix), "a prefix contains itself");
        auto again = parse_prefix(prefix->to_string());
        check(again && *again == *prefix, "a prefix prints and parses back");
    }
    if (auto const* host = std::get_if<HostDestination>(&rule.destination))
        check(valid_host_name(host->name), "host names are valid");
    auto canonical = rule.to_string();
    auto reparsed = parse_rule(canonical);
    check(std::holds_alternative<Rule>(reparsed), "the canonical text parses");
    check(std::get<Rule>(reparsed) == rule, "the canonical text is the same rule");
    check(std::get<Rule>(reparsed).to_string() == canonical, "canonical text is a fixed point");
    return 0;
}
