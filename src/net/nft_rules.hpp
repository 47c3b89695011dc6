// nftables text for the firewall namespace and the providers (pure: strings in, strings out).
// Each function returns a complete batch that libnftables applies as one transaction.
#pragma once

#include "net/firewall.hpp"

#include <map>
#include <string>
#include <vector>

namespace bulkhead::net {

// The fixed addresses of every network compartment's plumbing (docs/network.md).
inline constexpr char const* gateway_address = "169.254.0.1";    // on every client-facing link, the resolver too
inline constexpr char const* provider_link_address = "100.65.0.1"; // the provider's end of its firewall link
inline constexpr char const* firewall_link_address = "100.65.0.2"; // the firewall namespace's end
inline constexpr char const* client_range = "100.64.0.0/10";
inline constexpr char const* firewall_table = "bulkhead";

struct ClientLink {
    std::string link;    // the client's link in the firewall namespace, "c<slot>"
    std::string address; // its /32, e.g. "100.64.0.7"
    std::string mac;     // the client's MAC, "0a:b3:ec:00:00:05"
};

// The base table of a firewall namespace: anti-spoofing, no client-to-client, nothing in from outside,
// nothing to the provider but DNS, DNS DNAT, a jump per client. Replaces any earlier one.
std::string firewall_base();

// One client's chain from its rules (nullptr: no list, all outbound allowed), its anti-spoofing
// element and its jump, as one batch. `resolved` gives the addresses of host names; a host rule
// whose name has none is left out and named in `disabled`.
std::string client_rules(ClientLink const& client, std::vector<Rule> const* rules,
                         std::map<std::string, std::vector<std::string>> const& resolved,
                         std::vector<std::string>& disabled);
// The same chain, flushed and refilled in one batch (apply: new rules for a running client).
std::string client_rules_update(ClientLink const& client, std::vector<Rule> const* rules,
                                std::map<std::string, std::vector<std::string>> const& resolved,
                                std::vector<std::string>& disabled);
// Removes a client's element, jump and chain (its link is gone with its namespace).
std::string client_removed(ClientLink const& client);

// A provider's own table: masquerade of its clients out of every other link, DNS of its clients to
// `resolver` (empty: dropped).
std::string provider_table(std::string const& resolver);

// The host's table for providers with uplink = "host" (links named LINK_PREFIX*): their traffic is
// masqueraded out of the host's own links, and nothing from them reaches the host itself. `table`
// names it per broker.
inline constexpr char const* uplink_range = "100.66.0.0/16";
std::string host_uplink_table(std::string const& table, std::string const& link_prefix);

} // namespace bulkhead::net
