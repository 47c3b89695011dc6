#include "net/nft_rules.hpp"

namespace bulkhead::net {

namespace {

std::string chain_of(ClientLink const& client) { return "client-" + client.link; }

std::string element_of(ClientLink const& client)
{
    return "\"" + client.link + "\" . " + client.address + " . " + client.mac;
}

char const* const reject = "reject with icmpx admin-prohibited";

std::string ports_of(Rule const& rule)
{
    std::string out;
    if (rule.protocol == Protocol::Tcp)
        out = "meta l4proto tcp ";
    else if (rule.protocol == Protocol::Udp)
        out = "meta l4proto udp ";
    else if (rule.protocol == Protocol::Icmp)
        out = "meta l4proto icmp ";
    if (rule.port_first != 0) {
        out += "th dport " + std::to_string(rule.port_first);
        if (rule.port_last != rule.port_first)
            out += "-" + std::to_string(rule.port_last);
        out += " ";
    }
    return out;
}

// The statements of one client's chain, first match first, ending in the implicit deny.
std::string chain_body(ClientLink const& client, std::vector<Rule> const* rules,
                       std::map<std::string, std::vector<std::string>> const& resolved, std::vector<std::string>& disabled)
{
    std::string table = std::string("inet ") + firewall_table;
    std::string out;
    auto add = [&](std::string const& statement) { out += "add rule " + table + " " + chain_of(client) + " " + statement + "\n"; };
    // Each statement carries the number of its rule in the list (1-based), "end" the implicit deny,
    // so that counters can be told apart (bulkhead net) whatever was left out.
    if (rules == nullptr) {
        add("counter accept comment \"all\"");
        return out;
    }
    size_t number = 0;
    for (auto const& rule : *rules) {
        ++number;
        std::string comment = " comment \"" + std::to_string(number) + "\"";
        std::string verdict = rule.action == Action::Allow ? "counter accept" : std::string("counter ") + reject;
        if (std::holds_alternative<DnsDestination>(rule.destination)) {
            add(std::string("ip daddr ") + provider_link_address + " meta l4proto { tcp, udp } th dport 53 " + verdict + comment);
            continue;
        }
        std::string match = ports_of(rule);
        if (auto const* prefix = std::get_if<Prefix>(&rule.destination)) {
            // Clients have IPv4 only; an IPv6 destination can never match (kept for the counters' sake).
            match = (prefix->family == Prefix::Family::V4 ? "ip daddr " : "ip6 daddr ") + prefix->to_string() + " " + match;
        } else if (auto const* host = std::get_if<HostDestination>(&rule.destination)) {
            auto found = resolved.find(host->name);
            if (found == resolved.end() || found->second.empty()) {
                disabled.push_back(rule.to_string());
                continue;
            }
            std::string set;
            for (auto const& address : found->second)
                set += (set.empty() ? "" : ", ") + address;
            match = "ip daddr { " + set + " } " + match;
        }
        add(match + verdict + comment);
    }
    add(std::string("counter ") + reject + " comment \"end\"");
    return out;
}

} // namespace

std::string firewall_base()
{
    std::string t = firewall_table;
    return "table inet " + t + "\n"
           "delete table inet " + t + "\n"
           "table inet " + t + " {\n"
           "  set clients { type ifname . ipv4_addr . ether_addr; }\n"
           "  map client_chains { type ifname : verdict; }\n"
           "  chain spoof {\n"
           "    type filter hook prerouting priority raw; policy accept;\n"
           "    iifname \"c*\" meta nfproto ipv6 drop\n"
           "    iifname \"c*\" meta protocol ip iifname . ip saddr . ether saddr != @clients counter drop\n"
           "  }\n"
           "  chain dns {\n"
           "    type nat hook prerouting priority dstnat; policy accept;\n"
           "    iifname \"c*\" ip daddr " + gateway_address + " meta l4proto { tcp, udp } th dport 53 dnat ip to "
           + provider_link_address + "\n"
           "  }\n"
           "  chain input {\n"
           "    type filter hook input priority filter; policy drop;\n"
           "    ct state established,related accept\n"
           "    iifname \"c*\" meta l4proto icmp icmp type echo-request accept\n"
           "    iifname \"c*\" counter " + reject + "\n"
           "  }\n"
           "  chain forward {\n"
           "    type filter hook forward priority filter; policy drop;\n"
           "    ct state invalid drop\n"
           "    ct state established,related accept\n"
           "    iifname != \"c*\" counter drop\n"
           "    oifname != \"provider\" counter " + reject + "\n"
           "    ip daddr " + provider_link_address + " ct status & dnat == 0 counter " + reject + "\n"
           "    iifname vmap @client_chains\n"
           "  }\n"
           "}\n";
}

std::string client_rules(ClientLink const& client, std::vector<Rule> const* rules,
                         std::map<std::string, std::vector<std::string>> const& resolved, std::vector<std::string>& disabled)
{
    std::string table = std::string("inet ") + firewall_table;
    return "add chain " + table + " " + chain_of(client) + "\n"
           + "flush chain " + table + " " + chain_of(client) + "\n"
           + chain_body(client, rules, resolved, disabled)
           + "add element " + table + " clients { " + element_of(client) + " }\n"
           + "add element " + table + " client_chains { \"" + client.link + "\" : jump " + chain_of(client) + " }\n";
}

std::string client_rules_update(ClientLink const& client, std::vector<Rule> const* rules,
                                std::map<std::string, std::vector<std::string>> const& resolved,
                                std::vector<std::string>& disabled)
{
    std::string table = std::string("inet ") + firewall_table;
    return "flush chain " + table + " " + chain_of(client) + "\n" + chain_body(client, rules, resolved, disabled);
}

std::string client_removed(ClientLink const& client)
{
    std::string table = std::string("inet ") + firewall_table;
    return "delete element " + table + " client_chains { \"" + client.link + "\" }\n"
           + "delete element " + table + " clients { " + element_of(client) + " }\n"
           + "delete chain " + table + " " + chain_of(client) + "\n";
}

std::string provider_table(std::string const& resolver)
{
    std::string t = firewall_table;
    std::string dns = resolver.empty()
                          ? std::string("    iifname \"clients\" ip daddr ") + provider_link_address
                                + " meta l4proto { tcp, udp } th dport 53 drop\n"
                          : std::string("    iifname \"clients\" ip daddr ") + provider_link_address
                                + " meta l4proto { tcp, udp } th dport 53 dnat ip to " + resolver + "\n";
    return "table ip " + t + "\n"
           "delete table ip " + t + "\n"
           "table ip " + t + " {\n"
           "  chain dns {\n"
           "    type nat hook prerouting priority dstnat; policy accept;\n"
           + dns +
           "  }\n"
           "  chain out {\n"
           "    type nat hook postrouting priority srcnat; policy accept;\n"
           "    ip saddr " + client_range + " oifname != \"clients\" masquerade\n"
           "  }\n"
           "}\n";
}

std::string host_uplink_table(std::string const& table, std::string const& link_prefix)
{
    std::string links = "\"" + link_prefix + "*\"";
    return "table ip " + table + "\n"
           "delete table ip " + table + "\n"
           "table ip " + table + " {\n"
           "  chain in {\n"
           "    type filter hook input priority filter - 1; policy accept;\n"
           "    iifname " + links + " ct state established,related accept\n"
           "    iifname " + links + " counter drop\n"
           "  }\n"
           "  chain out {\n"
           "    type nat hook postrouting priority srcnat; policy accept;\n"
           "    ip saddr " + uplink_range + " oifname != " + links + " masquerade\n"
           "  }\n"
           "}\n";
}

} // namespace bulkhead::net
