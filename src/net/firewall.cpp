#include "net/firewall.hpp"

#include <arpa/inet.h>
#include <charconv>

namespace bulkhead::net {

namespace {

struct Token {
    std::string_view text;
    uint32_t column; // 1-based
};

std::vector<Token> split(std::string_view text)
{
    std::vector<Token> tokens;
    size_t i = 0;
    while (i < text.size()) {
        if (text[i] == ' ' || text[i] == '\t') {
            ++i;
            continue;
        }
        size_t start = i;
        while (i < text.size() && text[i] != ' ' && text[i] != '\t')
            ++i;
        tokens.push_back({text.substr(start, i - start), static_cast<uint32_t>(start + 1)});
    }
    return tokens;
}

// Quoted for a message, cut short and with anything unprintable shown as '?'.
std::string quoted(std::string_view word)
{
    std::string out = "'";
    for (char c : word.substr(0, 40))
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    if (word.size() > 40)
        out += "...";
    return out + "'";
}

std::optional<uint16_t> parse_port(std::string_view text)
{
    unsigned value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || text.empty() || text.size() > 5 || value == 0
        || value > 65535)
        return std::nullopt;
    return static_cast<uint16_t>(value);
}

bool looks_numeric(std::string_view text) { return !text.empty() && text[0] >= '0' && text[0] <= '9'; }

bool is_port_range(std::string_view text)
{
    return looks_numeric(text) && text.find_first_not_of("0123456789-") == std::string_view::npos;
}

void mask(Prefix& prefix)
{
    size_t bits = prefix.family == Prefix::Family::V4 ? 32 : 128;
    for (size_t bit = prefix.length; bit < bits; ++bit)
        prefix.bytes[bit / 8] &= static_cast<uint8_t>(~(0x80u >> (bit % 8)));
}

char const* protocol_word(Protocol protocol)
{
    switch (protocol) {
    case Protocol::Tcp: return "tcp";
    case Protocol::Udp: return "udp";
    case Protocol::Icmp: return "icmp";
    case Protocol::Any: break;
    }
    return "any";
}

} // namespace

std::optional<Prefix> parse_prefix(std::string_view text, std::string* why)
{
    auto fail = [&](std::string message) -> std::optional<Prefix> {
        if (why != nullptr)
            *why = std::move(message);
        return std::nullopt;
    };
    if (text.size() > 64)
        return fail("address is too long");
    auto slash = text.find('/');
    std::string address(text.substr(0, slash));
    Prefix prefix;
    if (::inet_pton(AF_INET, address.c_str(), prefix.bytes.data()) == 1) {
        prefix.family = Prefix::Family::V4;
        prefix.length = 32;
    } else if (::inet_pton(AF_INET6, address.c_str(), prefix.bytes.data()) == 1) {
        prefix.family = Prefix::Family::V6;
        prefix.length = 128;
    } else {
        return fail(quoted(address) + " is not an IPv4 or IPv6 address");
    }
    if (slash != std::string_view::npos) {
        auto length_text = text.substr(slash + 1);
        unsigned length = 0;
        auto [end, ec] = std::from_chars(length_text.data(), length_text.data() + length_text.size(), length);
        if (ec != std::errc() || end != length_text.data() + length_text.size() || length_text.empty()
            || length_text.size() > 3 || length > prefix.length)
            return fail("prefix length " + quoted(length_text) + " is not a number from 0 to "
                        + std::to_string(prefix.length));
        Prefix network = prefix;
        network.length = static_cast<uint8_t>(length);
        mask(network);
        if (network.bytes != prefix.bytes)
            return fail(quoted(text) + " has bits set past its prefix length; the network is " + network.to_string());
        prefix = network;
    }
    return prefix;
}

bool valid_host_name(std::string_view name)
{
    if (name.empty() || name.size() > 253)
        return false;
    if (name.back() == '.')
        name.remove_suffix(1);
    bool letter = false;
    size_t label = 0;
    for (size_t i = 0; i <= name.size(); ++i) {
        if (i == name.size() || name[i] == '.') {
            if (label == 0 || label > 63 || name[i - 1] == '-' || name[i - label] == '-')
                return false;
            label = 0;
            continue;
        }
        char c = name[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alpha && !(c >= '0' && c <= '9') && c != '-' && c != '_')
            return false;
        letter = letter || alpha;
        ++label;
    }
    // All digits and dots would be a malformed address, not a name.
    return letter;
}

std::string Prefix::to_string() const
{
    char text[INET6_ADDRSTRLEN] = {};
    bool v4 = family == Family::V4;
    ::inet_ntop(v4 ? AF_INET : AF_INET6, bytes.data(), text, sizeof(text));
    std::string out = text;
    if (length != (v4 ? 32 : 128))
        out += "/" + std::to_string(length);
    return out;
}

bool Prefix::contains(Prefix const& address) const
{
    if (address.family != family || address.length < length)
        return false;
    Prefix masked = address;
    masked.length = length;
    mask(masked);
    return masked.bytes == bytes;
}

std::string Rule::to_string() const
{
    std::string out = action == Action::Allow ? "allow" : "deny";
    if (std::holds_alternative<DnsDestination>(destination))
        return out + " dns";
    if (protocol != Protocol::Any)
        out += std::string(" ") + protocol_word(protocol);
    if (port_first != 0) {
        out += " " + std::to_string(port_first);
        if (port_last != port_first)
            out += "-" + std::to_string(port_last);
    }
    if (auto const* prefix = std::get_if<Prefix>(&destination))
        out += " to " + prefix->to_string();
    else if (auto const* host = std::get_if<HostDestination>(&destination))
        out += " to " + host->name;
    return out;
}

std::variant<Rule, RuleError> parse_rule(std::string_view text)
{
    if (text.size() > max_rule_length)
        return RuleError{1, "rule is longer than " + std::to_string(max_rule_length) + " characters"};
    for (size_t i = 0; i < text.size(); ++i)
        if (static_cast<unsigned char>(text[i]) < 0x20 && text[i] != '\t')
            return RuleError{static_cast<uint32_t>(i + 1), "control character in rule"};
    auto tokens = split(text);
    if (tokens.empty())
        return RuleError{1, "empty rule: expected 'allow' or 'deny'"};

    Rule rule;
    size_t next = 0;
    auto const& verb = tokens[next++];
    if (verb.text == "allow")
        rule.action = Action::Allow;
    else if (verb.text == "deny")
        rule.action = Action::Deny;
    else
        return RuleError{verb.column, "expected 'allow' or 'deny', not " + quoted(verb.text)};

    if (next < tokens.size() && tokens[next].text == "dns") {
        if (next + 1 < tokens.size())
            return RuleError{tokens[next + 1].column, "nothing may follow 'dns', found " + quoted(tokens[next + 1].text)};
        rule.destination = DnsDestination{};
        return rule;
    }
    if (next < tokens.size()) {
        auto word = tokens[next].text;
        if (word == "tcp" || word == "udp" || word == "icmp" || word == "any") {
            rule.protocol = word == "tcp" ? Protocol::Tcp
                            : word == "udp" ? Protocol::Udp
                            : word == "icmp" ? Protocol::Icmp
                                             : Protocol::Any;
            ++next;
        }
    }
    if (next < tokens.size() && is_port_range(tokens[next].text)) {
        auto const& token = tokens[next++];
        if (rule.protocol != Protocol::Tcp && rule.protocol != Protocol::Udp)
            return RuleError{token.column, "a port needs 'tcp' or 'udp' before it"};
        auto dash = token.text.find('-');
        auto first = parse_port(token.text.substr(0, dash));
        auto last = dash == std::string_view::npos ? first : parse_port(token.text.substr(dash + 1));
        if (!first || !last)
            return RuleError{token.column, "port " + quoted(token.text) + " is not a number from 1 to 65535 (or FIRST-LAST)"};
        if (*last < *first)
            return RuleError{token.column, "port range " + quoted(token.text) + " ends before it starts"};
        rule.port_first = *first;
        rule.port_last = *last;
    }
    if (next < tokens.size()) {
        auto const& token = tokens[next++];
        if (token.text != "to")
            return RuleError{token.column, std::string("expected ")
                                               + (rule.port_first == 0 && rule.protocol != Protocol::Icmp
                                                          && rule.protocol != Protocol::Any
                                                      ? "a port or "
                                                      : "")
                                               + "'to', not " + quoted(token.text)};
        if (next == tokens.size())
            return RuleError{static_cast<uint32_t>(text.size() + 1), "'to' needs an address, a network or a host name"};
        auto const& target = tokens[next++];
        bool address_like = target.text.find(':') != std::string_view::npos || target.text.find('/') != std::string_view::npos
                            || target.text.find_first_not_of("0123456789.") == std::string_view::npos;
        if (address_like) {
            std::string why;
            auto prefix = parse_prefix(target.text, &why);
            if (!prefix)
                return RuleError{target.column, why};
            rule.destination = *prefix;
        } else if (valid_host_name(target.text)) {
            rule.destination = HostDestination{std::string(target.text)};
        } else {
            return RuleError{target.column, quoted(target.text) + " is neither an address nor a host name"};
        }
    }
    if (next < tokens.size())
        return RuleError{tokens[next].column, "unexpected " + quoted(tokens[next].text) + " at the end of the rule"};
    return rule;
}

} // namespace bulkhead::net
