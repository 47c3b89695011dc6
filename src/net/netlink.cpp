#include "net/netlink.hpp"

#include <arpa/inet.h>
#include <net/if.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>
#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <time.h>

namespace bulkhead::net::netlink {

namespace {

// One request and its answers on a fresh socket of the current network namespace.
class Request {
public:
    explicit Request(uint16_t type, uint16_t flags)
    {
        m_header = mnl_nlmsg_put_header(m_buffer.data());
        m_header->nlmsg_type = type;
        m_header->nlmsg_flags = NLM_F_REQUEST | flags;
        m_header->nlmsg_seq = static_cast<uint32_t>(::time(nullptr));
    }
    nlmsghdr* header() { return m_header; }
    template<typename T>
    T* extra()
    {
        return static_cast<T*>(mnl_nlmsg_put_extra_header(m_header, sizeof(T)));
    }

    // Sends, then reads answers until the ack (or the dump's end), handing each message to `on_message`.
    Status run(std::string const& what, mnl_cb_t on_message = nullptr, void* data = nullptr)
    {
        mnl_socket* socket = mnl_socket_open2(NETLINK_ROUTE, SOCK_CLOEXEC);
        if (socket == nullptr)
            return Error::from_syscall("netlink socket", errno);
        Status status = exchange(socket, what, on_message, data);
        mnl_socket_close(socket);
        return status;
    }

private:
    Status exchange(mnl_socket* socket, std::string const& what, mnl_cb_t on_message, void* data)
    {
        if (mnl_socket_bind(socket, 0, MNL_SOCKET_AUTOPID) < 0)
            return Error::from_syscall("netlink bind", errno);
        uint32_t port = mnl_socket_get_portid(socket);
        if (mnl_socket_sendto(socket, m_header, m_header->nlmsg_len) < 0)
            return Error::from_syscall(what, errno);
        std::vector<char> answer(MNL_SOCKET_BUFFER_SIZE);
        for (;;) {
            ssize_t length = mnl_socket_recvfrom(socket, answer.data(), answer.size());
            if (length < 0)
                return Error::from_syscall(what, errno);
            int result = mnl_cb_run(answer.data(), static_cast<size_t>(length), m_header->nlmsg_seq, port, on_message, data);
            if (result < 0)
                return Error::from_syscall(what, errno);
            if (result == MNL_CB_STOP)
                return {};
        }
    }

    std::vector<char> m_buffer = std::vector<char>(MNL_SOCKET_BUFFER_SIZE);
    nlmsghdr* m_header;
};

// Calls `visit` with each attribute of a message after its fixed header of `offset` bytes.
template<typename Visit>
void for_each_attribute(nlmsghdr const* header, size_t offset, Visit visit)
{
    auto const* start = static_cast<char const*>(mnl_nlmsg_get_payload_offset(header, offset));
    auto const* end = static_cast<char const*>(mnl_nlmsg_get_payload_tail(header));
    auto const* attribute = reinterpret_cast<nlattr const*>(start);
    while (mnl_attr_ok(attribute, static_cast<int>(end - reinterpret_cast<char const*>(attribute)))) {
        visit(attribute);
        attribute = static_cast<nlattr const*>(mnl_attr_next(attribute));
    }
}

Result<int> index_of(std::string const& name)
{
    unsigned index = ::if_nametoindex(name.c_str());
    if (index == 0)
        return Error::from_syscall("no network interface", name, errno);
    return static_cast<int>(index);
}

} // namespace

Status create_veth(std::string const& name, std::optional<Mac> mac, std::string const& peer, int peer_netns_fd,
                   std::optional<Mac> peer_mac)
{
    Request request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL | NLM_F_ACK);
    auto* header = request.header();
    auto* info = request.extra<ifinfomsg>();
    info->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(header, IFLA_IFNAME, name.c_str());
    if (mac)
        mnl_attr_put(header, IFLA_ADDRESS, mac->size(), mac->data());
    nlattr* link_info = mnl_attr_nest_start(header, IFLA_LINKINFO);
    mnl_attr_put_strz(header, IFLA_INFO_KIND, "veth");
    nlattr* data = mnl_attr_nest_start(header, IFLA_INFO_DATA);
    nlattr* peer_info = mnl_attr_nest_start(header, VETH_INFO_PEER);
    // The peer's attributes follow an ifinfomsg of its own inside the nest.
    auto* peer_message = static_cast<ifinfomsg*>(mnl_nlmsg_get_payload_tail(header));
    header->nlmsg_len += MNL_ALIGN(sizeof(ifinfomsg));
    std::memset(peer_message, 0, sizeof(ifinfomsg));
    peer_message->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(header, IFLA_IFNAME, peer.c_str());
    if (peer_netns_fd >= 0)
        mnl_attr_put_u32(header, IFLA_NET_NS_FD, static_cast<uint32_t>(peer_netns_fd));
    if (peer_mac)
        mnl_attr_put(header, IFLA_ADDRESS, peer_mac->size(), peer_mac->data());
    mnl_attr_nest_end(header, peer_info);
    mnl_attr_nest_end(header, data);
    mnl_attr_nest_end(header, link_info);
    return request.run("creating veth " + name + "/" + peer);
}

Status move_link(std::string const& name, int netns_fd, std::string const& new_name)
{
    int index = TRY(index_of(name));
    Request request(RTM_NEWLINK, NLM_F_ACK);
    auto* info = request.extra<ifinfomsg>();
    info->ifi_family = AF_UNSPEC;
    info->ifi_index = index;
    mnl_attr_put_u32(request.header(), IFLA_NET_NS_FD, static_cast<uint32_t>(netns_fd));
    if (!new_name.empty() && new_name != name)
        mnl_attr_put_strz(request.header(), IFLA_IFNAME, new_name.c_str());
    return request.run("moving " + name + " to another network namespace");
}

Status set_link_up(std::string const& name)
{
    int index = TRY(index_of(name));
    Request request(RTM_NEWLINK, NLM_F_ACK);
    auto* info = request.extra<ifinfomsg>();
    info->ifi_family = AF_UNSPEC;
    info->ifi_index = index;
    info->ifi_change = IFF_UP;
    info->ifi_flags = IFF_UP;
    return request.run("bringing " + name + " up");
}

Status delete_link(std::string const& name)
{
    int index = TRY(index_of(name));
    Request request(RTM_DELLINK, NLM_F_ACK);
    auto* info = request.extra<ifinfomsg>();
    info->ifi_family = AF_UNSPEC;
    info->ifi_index = index;
    return request.run("deleting " + name);
}

bool link_exists(std::string const& name)
{
    return ::if_nametoindex(name.c_str()) != 0;
}

Status add_address(std::string const& link, Ipv4Prefix address)
{
    int index = TRY(index_of(link));
    Request request(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK);
    auto* message = request.extra<ifaddrmsg>();
    message->ifa_family = AF_INET;
    message->ifa_prefixlen = address.length;
    message->ifa_scope = RT_SCOPE_UNIVERSE;
    message->ifa_index = static_cast<uint32_t>(index);
    mnl_attr_put_u32(request.header(), IFA_LOCAL, address.address);
    mnl_attr_put_u32(request.header(), IFA_ADDRESS, address.address);
    return request.run("adding " + to_string(address) + " to " + link);
}

Status add_route(Ipv4Prefix destination, std::optional<uint32_t> gateway, std::string const& link)
{
    int index = TRY(index_of(link));
    Request request(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE | NLM_F_ACK);
    auto* message = request.extra<rtmsg>();
    message->rtm_family = AF_INET;
    message->rtm_dst_len = destination.length;
    message->rtm_table = RT_TABLE_MAIN;
    message->rtm_protocol = RTPROT_STATIC;
    message->rtm_scope = gateway ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK;
    message->rtm_type = RTN_UNICAST;
    if (destination.length > 0)
        mnl_attr_put_u32(request.header(), RTA_DST, destination.address);
    if (gateway)
        mnl_attr_put_u32(request.header(), RTA_GATEWAY, *gateway);
    mnl_attr_put_u32(request.header(), RTA_OIF, static_cast<uint32_t>(index));
    return request.run("adding the route to " + to_string(destination) + " on " + link);
}

Result<std::vector<Ipv4Prefix>> addresses(std::string const& link)
{
    struct Collect {
        int index;
        std::vector<Ipv4Prefix> found;
    } collect {TRY(index_of(link)), {}};
    Request request(RTM_GETADDR, NLM_F_DUMP);
    request.extra<ifaddrmsg>()->ifa_family = AF_INET;
    auto on_message = [](nlmsghdr const* header, void* data) -> int {
        auto* state = static_cast<Collect*>(data);
        auto const* message = static_cast<ifaddrmsg const*>(mnl_nlmsg_get_payload(header));
        if (static_cast<int>(message->ifa_index) != state->index || message->ifa_family != AF_INET)
            return MNL_CB_OK;
        for_each_attribute(header, sizeof(ifaddrmsg), [&](nlattr const* attribute) {
            if (mnl_attr_get_type(attribute) == IFA_LOCAL && mnl_attr_get_payload_len(attribute) == 4)
                state->found.push_back({mnl_attr_get_u32(attribute), message->ifa_prefixlen});
        });
        return MNL_CB_OK;
    };
    TRY(request.run("listing the addresses of " + link, on_message, &collect));
    return collect.found;
}

Result<std::optional<uint32_t>> default_gateway_via(std::string const& link)
{
    struct Collect {
        int index;
        std::optional<uint32_t> gateway;
    } collect {TRY(index_of(link)), {}};
    Request request(RTM_GETROUTE, NLM_F_DUMP);
    request.extra<rtmsg>()->rtm_family = AF_INET;
    auto on_message = [](nlmsghdr const* header, void* data) -> int {
        auto* state = static_cast<Collect*>(data);
        auto const* message = static_cast<rtmsg const*>(mnl_nlmsg_get_payload(header));
        if (message->rtm_dst_len != 0 || message->rtm_table != RT_TABLE_MAIN)
            return MNL_CB_OK;
        std::optional<uint32_t> gateway;
        int oif = 0;
        for_each_attribute(header, sizeof(rtmsg), [&](nlattr const* attribute) {
            if (mnl_attr_get_type(attribute) == RTA_GATEWAY && mnl_attr_get_payload_len(attribute) == 4)
                gateway = mnl_attr_get_u32(attribute);
            else if (mnl_attr_get_type(attribute) == RTA_OIF)
                oif = static_cast<int>(mnl_attr_get_u32(attribute));
        });
        if (oif == state->index && gateway && !state->gateway)
            state->gateway = gateway;
        return MNL_CB_OK;
    };
    TRY(request.run("listing the routes", on_message, &collect));
    return collect.gateway;
}

std::string to_string(Ipv4Prefix prefix)
{
    char text[INET_ADDRSTRLEN] = {};
    ::inet_ntop(AF_INET, &prefix.address, text, sizeof(text));
    return std::string(text) + "/" + std::to_string(prefix.length);
}

std::optional<Ipv4Prefix> parse_ipv4_prefix(std::string const& text)
{
    auto slash = text.find('/');
    Ipv4Prefix prefix;
    if (::inet_pton(AF_INET, text.substr(0, slash).c_str(), &prefix.address) != 1)
        return std::nullopt;
    if (slash != std::string::npos) {
        auto length = text.substr(slash + 1);
        if (length.empty() || length.size() > 2 || length.find_first_not_of("0123456789") != std::string::npos
            || std::stoi(length) > 32)
            return std::nullopt;
        prefix.length = static_cast<uint8_t>(std::stoi(length));
    }
    return prefix;
}

std::optional<Mac> parse_mac(std::string const& text)
{
    Mac mac {};
    unsigned parts[6];
    char end = 0;
    if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &parts[0], &parts[1], &parts[2], &parts[3], &parts[4],
                    &parts[5], &end)
        != 6)
        return std::nullopt;
    for (size_t i = 0; i < 6; ++i)
        mac[i] = static_cast<uint8_t>(parts[i]);
    return mac;
}

} // namespace bulkhead::net::netlink
