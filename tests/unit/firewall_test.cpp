// The firewall rule language: what parses, what each word means, and where a bad rule is wrong.
#include "net/firewall.hpp"

#include <gtest/gtest.h>

using namespace bulkhead::net;

namespace {

Rule rule_of(std::string_view text)
{
    auto parsed = parse_rule(text);
    if (auto const* error = std::get_if<RuleError>(&parsed))
        ADD_FAILURE() << "'" << text << "': column " << error->column << ": " << error->message;
    return std::holds_alternative<Rule>(parsed) ? std::get<Rule>(parsed) : Rule{};
}

RuleError error_of(std::string_view text)
{
    auto parsed = parse_rule(text);
    if (std::holds_alternative<Rule>(parsed)) {
        ADD_FAILURE() << "'" << text << "' parsed as '" << std::get<Rule>(parsed).to_string() << "'";
        return {};
    }
    return std::get<RuleError>(parsed);
}

} // namespace

TEST(FirewallRule, TheGrammarsWords)
{
    auto https = rule_of("allow tcp 443");
    EXPECT_EQ(https.action, Action::Allow);
    EXPECT_EQ(https.protocol, Protocol::Tcp);
    EXPECT_EQ(https.port_first, 443);
    EXPECT_EQ(https.port_last, 443);
    EXPECT_TRUE(std::holds_alternative<AnyDestination>(https.destination));

    auto deny = rule_of("deny");
    EXPECT_EQ(deny.action, Action::Deny);
    EXPECT_EQ(deny.protocol, Protocol::Any);
    EXPECT_EQ(deny.port_first, 0);

    EXPECT_TRUE(std::holds_alternative<DnsDestination>(rule_of("allow dns").destination));

    auto range = rule_of("allow udp 6000-6010 to 192.0.2.0/24");
    EXPECT_EQ(range.protocol, Protocol::Udp);
    EXPECT_EQ(range.port_first, 6000);
    EXPECT_EQ(range.port_last, 6010);
    auto const& net = std::get<Prefix>(range.destination);
    EXPECT_EQ(net.to_string(), "192.0.2.0/24");
    EXPECT_TRUE(net.contains(*parse_prefix("192.0.2.77")));
    EXPECT_FALSE(net.contains(*parse_prefix("192.0.3.1")));

    auto v6 = rule_of("deny icmp to 2001:db8::/32");
    EXPECT_EQ(std::get<Prefix>(v6.destination).family, Prefix::Family::V6);
    EXPECT_EQ(rule_of("allow any to 10.1.2.3").to_string(), "allow to 10.1.2.3");
    EXPECT_EQ(std::get<HostDestination>(rule_of("allow tcp 443 to example.org").destination).name, "example.org");
    // Tabs and runs of spaces separate words like one space.
    EXPECT_EQ(rule_of("  allow\ttcp   80  ").to_string(), "allow tcp 80");
}

TEST(FirewallRule, CanonicalTextParsesBackToTheSameRule)
{
    for (auto text : {"allow tcp 443", "deny", "allow dns", "allow udp 1-65535 to ::1", "deny tcp 22 to 198.51.100.7",
                      "allow icmp to 0.0.0.0/0", "allow tcp 8080 to mirror.example.net", "allow to ::/0"}) {
        auto rule = rule_of(text);
        EXPECT_EQ(rule.to_string(), text);
        EXPECT_EQ(rule_of(rule.to_string()), rule);
    }
}

TEST(FirewallRule, BadRulesSayWhatAndWhere)
{
    struct Case {
        char const* text;
        uint32_t column;
        char const* says;
    };
    for (auto const& c : std::initializer_list<Case>{
             {"allow tcp banana", 11, "expected a port or 'to'"},
             {"permit tcp 443", 1, "expected 'allow' or 'deny'"},
             {"", 1, "empty rule"},
             {"allow tcp 0", 11, "not a number from 1 to 65535"},
             {"allow tcp 65536", 11, "not a number from 1 to 65535"},
             {"allow tcp 443-80", 11, "ends before it starts"},
             {"allow tcp 1-2-3", 11, "not a number"},
             {"allow icmp 7", 12, "needs 'tcp' or 'udp'"},
             {"allow 443", 7, "needs 'tcp' or 'udp'"},
             {"allow tcp 443 to 300.1.1.1", 18, "not an IPv4 or IPv6 address"},
             {"allow tcp 443 to 10.0.0.0/33", 18, "prefix length"},
             {"allow tcp 443 to 10.0.0.1/8", 18, "the network is 10.0.0.0/8"},
             {"allow tcp 443 to", 17, "needs an address"},
             {"allow tcp 443 to bad_-.name.", 18, "neither an address nor a host name"},
             {"allow tcp 443 to example.org extra", 30, "unexpected 'extra'"},
             {"allow dns now", 11, "nothing may follow 'dns'"},
             {"allow tcp\x01 443", 10, "control character"},
         }) {
        auto error = error_of(c.text);
        EXPECT_EQ(error.column, c.column) << c.text;
        EXPECT_NE(error.message.find(c.says), std::string::npos) << c.text << ": " << error.message;
    }
    EXPECT_NE(error_of(std::string(600, 'a')).message.find("longer than"), std::string::npos);
}

TEST(FirewallRule, HostNames)
{
    EXPECT_TRUE(valid_host_name("example.org"));
    EXPECT_TRUE(valid_host_name("a-b.example.org."));
    EXPECT_TRUE(valid_host_name("xn--bcher-kva.example"));
    EXPECT_FALSE(valid_host_name("1.2.3"));
    EXPECT_FALSE(valid_host_name("-a.example"));
    EXPECT_FALSE(valid_host_name("a..example"));
    EXPECT_FALSE(valid_host_name(std::string(64, 'a') + ".example"));
    EXPECT_FALSE(valid_host_name("a b"));
}
