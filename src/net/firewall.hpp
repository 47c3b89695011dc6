// The per-client firewall rule language (DESIGN.md "Network"), parsed into values the network
// plumbing turns into nftables statements. Pure: no system calls, no name resolution.
//
//   allow|deny [tcp|udp|icmp|any] [PORT|PORT-PORT] [to ADDRESS[/LEN]|to HOSTNAME]
//   allow dns                                 the provider's resolver
//
// A list is read first match first and ends in an implicit deny.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace bulkhead::net {

enum class Action { Allow, Deny };
enum class Protocol { Any, Tcp, Udp, Icmp };

// An IPv4 or IPv6 network: the address with every bit past `length` zero.
struct Prefix {
    enum class Family { V4, V6 } family = Family::V4;
    std::array<uint8_t, 16> bytes{}; // V4 uses the first 4
    uint8_t length = 0;

    std::string to_string() const; // "192.0.2.0/24", "2001:db8::/32"; a full-length prefix without "/LEN"
    bool contains(Prefix const& address) const;
    friend bool operator==(Prefix const&, Prefix const&) = default;
};

struct AnyDestination {
    friend bool operator==(AnyDestination const&, AnyDestination const&) = default;
};
struct DnsDestination { // "allow dns": udp and tcp 53 to the provider's resolver
    friend bool operator==(DnsDestination const&, DnsDestination const&) = default;
};
struct HostDestination { // resolved when the rules are applied
    std::string name;
    friend bool operator==(HostDestination const&, HostDestination const&) = default;
};
using Destination = std::variant<AnyDestination, DnsDestination, Prefix, HostDestination>;

struct Rule {
    Action action = Action::Deny;
    Protocol protocol = Protocol::Any;
    uint16_t port_first = 0; // 0: every port (tcp and udp only)
    uint16_t port_last = 0;
    Destination destination = AnyDestination{};

    std::string to_string() const; // the canonical text: parse(to_string()) gives this rule back
    friend bool operator==(Rule const&, Rule const&) = default;
};

// A rule that does not parse: what is wrong and where, as a 1-based column in the rule's text.
struct RuleError {
    uint32_t column = 1;
    std::string message;
};

// Rules are short; longer text is an error, not a cost.
inline constexpr size_t max_rule_length = 512;
// Rules per client list.
inline constexpr size_t max_rules = 256;

std::variant<Rule, RuleError> parse_rule(std::string_view text);
std::optional<Prefix> parse_prefix(std::string_view text, std::string* why = nullptr);
bool valid_host_name(std::string_view name);

} // namespace bulkhead::net
