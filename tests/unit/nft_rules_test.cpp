// The nftables text of a client's firewall: each rule becomes the statement it means, first match
// first, and every list ends in a reject; host names take their resolved addresses or drop out.
#include "net/nft_rules.hpp"

#include <gtest/gtest.h>

using namespace bulkhead::net;

namespace {

std::vector<Rule> rules_of(std::initializer_list<char const*> texts)
{
    std::vector<Rule> rules;
    for (auto const* text : texts)
        rules.push_back(std::get<Rule>(parse_rule(text)));
    return rules;
}

ClientLink const client {"c42", "100.64.0.9", "0a:b3:ec:00:00:07"};

} // namespace

TEST(NftRules, EachRuleInOrderThenTheImplicitReject)
{
    auto rules = rules_of({"allow dns", "allow tcp 443 to 192.0.2.0/24", "deny udp 1000-2000", "allow icmp"});
    std::vector<std::string> disabled;
    auto text = client_rules(client, &rules, {}, disabled);
    EXPECT_TRUE(disabled.empty());
    auto at = [&](char const* needle) { return text.find(needle); };
    auto dns = at("ip daddr 100.65.0.1 meta l4proto { tcp, udp } th dport 53 counter accept comment \"1\"");
    auto https = at("ip daddr 192.0.2.0/24 meta l4proto tcp th dport 443 counter accept comment \"2\"");
    auto udp = at("meta l4proto udp th dport 1000-2000 counter reject with icmpx admin-prohibited comment \"3\"");
    auto icmp = at("meta l4proto icmp counter accept comment \"4\"");
    auto last = text.rfind("add rule inet bulkhead client-c42 counter reject with icmpx admin-prohibited comment \"end\"");
    ASSERT_NE(dns, std::string::npos) << text;
    ASSERT_NE(https, std::string::npos) << text;
    ASSERT_NE(udp, std::string::npos) << text;
    ASSERT_NE(icmp, std::string::npos) << text;
    ASSERT_NE(last, std::string::npos) << text;
    EXPECT_LT(dns, https);
    EXPECT_LT(https, udp);
    EXPECT_LT(udp, icmp);
    EXPECT_LT(icmp, last);
    // The anti-spoofing element and the jump come in the same batch as the chain.
    EXPECT_NE(at("add element inet bulkhead clients { \"c42\" . 100.64.0.9 . 0a:b3:ec:00:00:07 }"), std::string::npos);
    EXPECT_NE(at("add element inet bulkhead client_chains { \"c42\" : jump client-c42 }"), std::string::npos);
}

TEST(NftRules, NoListAllowsEverythingOutbound)
{
    std::vector<std::string> disabled;
    auto text = client_rules(client, nullptr, {}, disabled);
    EXPECT_NE(text.find("add rule inet bulkhead client-c42 counter accept comment \"all\""), std::string::npos);
    EXPECT_EQ(text.find("reject"), std::string::npos);
}

TEST(NftRules, AHostNameThatDoesNotResolveDisablesOnlyItsRule)
{
    auto rules = rules_of({"allow tcp 443 to good.example", "allow tcp 443 to gone.example", "allow tcp 22"});
    std::vector<std::string> disabled;
    auto text = client_rules(client, &rules, {{"good.example", {"192.0.2.1", "192.0.2.2"}}}, disabled);
    EXPECT_NE(text.find("ip daddr { 192.0.2.1, 192.0.2.2 } meta l4proto tcp th dport 443 counter accept comment \"1\""), std::string::npos);
    EXPECT_NE(text.find("meta l4proto tcp th dport 22 counter accept comment \"3\""), std::string::npos);
    ASSERT_EQ(disabled.size(), 1u);
    EXPECT_EQ(disabled[0], "allow tcp 443 to gone.example");
}

TEST(NftRules, AnUpdateFlushesAndRefillsTheChainOnly)
{
    auto rules = rules_of({"allow tcp 80"});
    std::vector<std::string> disabled;
    auto text = client_rules_update(client, &rules, {}, disabled);
    EXPECT_EQ(text.rfind("flush chain inet bulkhead client-c42\n", 0), 0u) << text;
    EXPECT_EQ(text.find("add element"), std::string::npos);
}
