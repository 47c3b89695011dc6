// rtnetlink through libmnl: the links, addresses and routes of the calling thread's network
// namespace. Used by bulkhead-net (src/net/helper.cpp) only; the broker, a static binary, asks that
// helper instead of linking libmnl.
#pragma once

#include "base/result.hpp"

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace bulkhead::net::netlink {

using Mac = std::array<uint8_t, 6>;

struct Ipv4Prefix {
    uint32_t address = 0; // network byte order
    uint8_t length = 32;
};

// A veth pair: NAME here, PEER in the namespace `peer_netns_fd` (-1: here), each with its MAC if given.
Status create_veth(std::string const& name, std::optional<Mac> mac, std::string const& peer, int peer_netns_fd,
                   std::optional<Mac> peer_mac);
// Moves NAME into the namespace `netns_fd`, renamed to NEW_NAME there (empty: same name).
Status move_link(std::string const& name, int netns_fd, std::string const& new_name);
Status set_link_up(std::string const& name);
Status delete_link(std::string const& name);
bool link_exists(std::string const& name);
Status add_address(std::string const& link, Ipv4Prefix address);
// A route to `destination` through `link`, via `gateway` if set (else on the link); replaces one there.
Status add_route(Ipv4Prefix destination, std::optional<uint32_t> gateway, std::string const& link);
// The IPv4 addresses of a link, and the gateway of the main table's default route if it leaves by it.
Result<std::vector<Ipv4Prefix>> addresses(std::string const& link);
Result<std::optional<uint32_t>> default_gateway_via(std::string const& link);

std::string to_string(Ipv4Prefix prefix);
std::optional<Ipv4Prefix> parse_ipv4_prefix(std::string const& text);
std::optional<Mac> parse_mac(std::string const& text);

} // namespace bulkhead::net::netlink
