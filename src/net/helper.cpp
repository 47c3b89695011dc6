// bulkhead-net: the broker's hands in network namespaces. The broker is a static binary and
// libnftables/libmnl come only as shared libraries, so it runs this small helper for each change:
// a JSON request on stdin, a list of steps run in order, each in the namespace it names; the first
// failure stops it (exit 1, the reason on stderr). Stdout: a JSON object of notes.
//
// A namespace is "host" (the helper's own), a path (a bind-mounted namespace file), or a number
// (a descriptor the broker passed, e.g. a compartment's /proc/PID/ns/net).
//
// Steps ("op"): make_netns {path}, remove_netns {path}, veth {name, mac?, peer, peer_in, peer_mac?},
// move {link, to, rename?}, carry_uplink {link, to}, up {link}, delete {link, missing_ok?},
// address {link, address}, route {to, via?, link}, sysctl {key, value}, nft {script, missing_ok?},
// client_rules {link, address, mac, rules?, update?} (rules parsed and host names resolved here),
// client_removed {link, address, mac}, firewall_base, provider_table {resolver?}, host_table {table, links},
// remove_table {table} (e.g. "ip bulkhead-1a2b"; a missing one is fine), counters {link} (the answer's
// "counters": {LINK: {RULE_NUMBER|"end"|"all": {packets, bytes}}}).
#include "net/firewall.hpp"
#include "net/netlink.hpp"
#include "net/nft_rules.hpp"
#include "sys/link.hpp"

#include <nftables/libnftables.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <iostream>
#include <iterator>
#include <map>
#include <optional>
#include <utility>
#include <netdb.h>
#include <sched.h>
#include <set>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

using namespace bulkhead;
using nlohmann::json;
namespace netlink = bulkhead::net::netlink;

namespace {

constexpr long nsfs_magic = 0x6e736673;

Error failure(std::string message) { return Error::from_message(std::move(message)); }
Error failure(std::string const& what, int error) { return Error::from_syscall(what, error); }

int host_netns = -1;

// Fields of a step, read without exceptions: a missing or mistyped field is an error that names it.
Result<std::string> text(json const& step, char const* key)
{
    auto found = step.find(key);
    if (found == step.end() || !found->is_string())
        return failure(std::string("field '") + key + "' missing or not a string");
    return found->get<std::string>();
}
std::string text_or(json const& step, char const* key, std::string fallback)
{
    auto found = step.find(key);
    return found != step.end() && found->is_string() ? found->get<std::string>() : fallback;
}
bool flag(json const& step, char const* key)
{
    auto found = step.find(key);
    return found != step.end() && found->is_boolean() && found->get<bool>();
}

// A namespace descriptor; closes what it opened.
class Netns {
public:
    static Result<Netns> of(json const& where)
    {
        if (where.is_number_integer())
            return Netns(where.get<int>(), false);
        if (!where.is_string())
            return failure("a network namespace is \"host\", a path or a descriptor");
        auto path = where.get<std::string>();
        if (path == "host")
            return Netns(host_netns, false);
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return failure("opening network namespace " + path, errno);
        return Netns(fd, true);
    }
    Netns(Netns&& other) noexcept : m_fd(std::exchange(other.m_fd, -1)), m_owned(other.m_owned) {}
    ~Netns()
    {
        if (m_owned && m_fd >= 0)
            ::close(m_fd);
    }
    int fd() const { return m_fd; }

private:
    Netns(int fd, bool owned) : m_fd(fd), m_owned(owned) {}
    int m_fd;
    bool m_owned;
};

Status enter(json const& where)
{
    auto netns = TRY(Netns::of(where));
    return check_syscall(::setns(netns.fd(), CLONE_NEWNET), "setns(CLONE_NEWNET)");
}

bool is_netns_file(std::string const& path)
{
    struct statfs fs {};
    return ::statfs(path.c_str(), &fs) == 0 && fs.f_type == nsfs_magic;
}

Status make_netns(std::string const& path)
{
    if (is_netns_file(path))
        return {}; // kept across broker restarts: the rules in it stand
    int file = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
    if (file < 0)
        return failure("creating " + path, errno);
    ::close(file);
    TRY(check_syscall(::unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)"));
    TRY(check_syscall(::mount("/proc/self/ns/net", path.c_str(), nullptr, MS_BIND, nullptr), "binding " + path));
    return sys::set_link_up("lo");
}

Status remove_netns(std::string const& path)
{
    if (is_netns_file(path))
        TRY(check_syscall(::umount2(path.c_str(), MNT_DETACH), "unmounting " + path));
    if (::unlink(path.c_str()) < 0 && errno != ENOENT)
        return failure("removing " + path, errno);
    return {};
}

// The counters of a client's chain, by the rule number each statement carries as its comment.
Status counters(std::string const& link, json& answer)
{
    nft_ctx* context = nft_ctx_new(NFT_CTX_DEFAULT);
    if (context == nullptr)
        return failure("nftables: no context");
    nft_ctx_output_set_flags(context, NFT_CTX_OUTPUT_JSON);
    nft_ctx_buffer_output(context);
    nft_ctx_buffer_error(context);
    std::string command = std::string("list chain inet ") + net::firewall_table + " client-" + link + "\n";
    int rc = nft_run_cmd_from_buffer(context, command.c_str());
    std::string output = nft_ctx_get_output_buffer(context);
    std::string errors = nft_ctx_get_error_buffer(context);
    nft_ctx_free(context);
    if (rc != 0)
        return failure("nftables: " + errors);
    json listing = json::parse(output, nullptr, false);
    json found = json::object();
    if (!listing.is_discarded() && listing.contains("nftables") && listing["nftables"].is_array()) {
        for (auto const& item : listing["nftables"]) {
            auto rule = item.find("rule");
            if (rule == item.end() || !rule->is_object() || !rule->contains("comment") || !rule->contains("expr"))
                continue;
            for (auto const& expression : rule->at("expr")) {
                auto counter = expression.find("counter");
                if (counter != expression.end() && counter->is_object())
                    found[rule->at("comment").get<std::string>()] = {{"packets", counter->value("packets", 0)},
                                                                     {"bytes", counter->value("bytes", 0)}};
            }
        }
    }
    answer["counters"][link] = found;
    return {};
}

Status run_nft(std::string const& script, bool missing_ok)
{
    nft_ctx* context = nft_ctx_new(NFT_CTX_DEFAULT);
    if (context == nullptr)
        return failure("nftables: no context");
    nft_ctx_buffer_output(context);
    nft_ctx_buffer_error(context);
    int rc = nft_run_cmd_from_buffer(context, script.c_str());
    std::string errors = nft_ctx_get_error_buffer(context);
    nft_ctx_free(context);
    if (rc != 0 && !(missing_ok && errors.find("No such file or directory") != std::string::npos))
        return failure("nftables refused the rules: " + errors);
    return {};
}

Status write_sysctl(std::string const& key, std::string const& value)
{
    if (key.find("..") != std::string::npos || key.rfind("net/", 0) != 0)
        return failure("sysctl " + key + " is not a network setting");
    std::string path = "/proc/sys/" + key;
    int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return failure("opening " + path, errno);
    bool written = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
    int error = errno;
    ::close(fd);
    return written ? Status() : Status(failure("writing " + path, error));
}

Result<std::optional<netlink::Mac>> mac_of(json const& step, char const* key)
{
    if (!step.contains(key))
        return std::optional<netlink::Mac>();
    auto mac = netlink::parse_mac(TRY(text(step, key)));
    if (!mac)
        return failure(std::string("bad MAC in ") + key);
    return std::optional<netlink::Mac>(mac);
}

Result<netlink::Ipv4Prefix> prefix_of(json const& step, char const* key)
{
    auto prefix = netlink::parse_ipv4_prefix(TRY(text(step, key)));
    if (!prefix)
        return failure(std::string("bad IPv4 prefix in ") + key);
    return *prefix;
}

// The interface's addresses and default route go with it into the provider (its configuration when
// it was moved: a static one, or a lease that is then not renewed).
Status carry_uplink(std::string const& link, json const& to, json& notes)
{
    auto addresses = TRY(netlink::addresses(link));
    auto gateway = TRY(netlink::default_gateway_via(link));
    {
        auto target = TRY(Netns::of(to));
        TRY(netlink::move_link(link, target.fd(), ""));
    }
    TRY(enter(to));
    for (auto const& address : addresses) {
        TRY(netlink::add_address(link, address));
        notes.push_back("uplink " + link + " keeps " + netlink::to_string(address));
    }
    TRY(netlink::set_link_up(link));
    if (gateway)
        TRY(netlink::add_route({0, 0}, gateway, link));
    return {};
}

// Host names in rules, resolved now: IPv4 addresses only (clients have no IPv6).
std::map<std::string, std::vector<std::string>> resolve_hosts(std::vector<net::Rule> const& rules)
{
    std::map<std::string, std::vector<std::string>> resolved;
    for (auto const& rule : rules) {
        auto const* host = std::get_if<net::HostDestination>(&rule.destination);
        if (host == nullptr || resolved.contains(host->name))
            continue;
        auto& addresses = resolved[host->name];
        addrinfo hints {};
        hints.ai_family = AF_INET;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* found = nullptr;
        if (::getaddrinfo(host->name.c_str(), nullptr, &hints, &found) != 0)
            continue;
        std::set<std::string> unique;
        for (auto* entry = found; entry != nullptr; entry = entry->ai_next) {
            char address[INET_ADDRSTRLEN] = {};
            ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(entry->ai_addr)->sin_addr, address, sizeof(address));
            unique.insert(address);
        }
        ::freeaddrinfo(found);
        addresses.assign(unique.begin(), unique.end());
    }
    return resolved;
}

Status client_rules(json const& step, json& notes)
{
    net::ClientLink client {TRY(text(step, "link")), TRY(text(step, "address")), TRY(text(step, "mac"))};
    std::optional<std::vector<net::Rule>> rules;
    if (auto found = step.find("rules"); found != step.end() && found->is_array()) {
        rules.emplace();
        for (auto const& rule : *found) {
            if (!rule.is_string())
                return failure("a firewall rule is not a string");
            auto parsed = net::parse_rule(rule.get<std::string>());
            if (auto const* error = std::get_if<net::RuleError>(&parsed))
                return failure("firewall rule '" + rule.get<std::string>() + "': " + error->message);
            rules->push_back(std::get<net::Rule>(parsed));
        }
    }
    auto resolved = rules ? resolve_hosts(*rules) : std::map<std::string, std::vector<std::string>> {};
    std::vector<std::string> disabled;
    auto const* list = rules ? &*rules : nullptr;
    auto script = flag(step, "update") ? net::client_rules_update(client, list, resolved, disabled)
                                       : net::client_rules(client, list, resolved, disabled);
    TRY(run_nft(script, false));
    for (auto const& rule : disabled)
        notes.push_back("rule '" + rule + "' is disabled: its host name does not resolve");
    return {};
}

Status run_step(json const& step, json& notes, json& answer)
{
    auto op = TRY(text(step, "op"));
    if (op == "counters")
        return counters(TRY(text(step, "link")), answer);
    if (op == "make_netns")
        return make_netns(TRY(text(step, "path")));
    if (op == "remove_netns")
        return remove_netns(TRY(text(step, "path")));
    if (op == "veth") {
        auto peer = TRY(Netns::of(step.contains("peer_in") ? step.at("peer_in") : json("host")));
        return netlink::create_veth(TRY(text(step, "name")), TRY(mac_of(step, "mac")), TRY(text(step, "peer")),
                                    peer.fd(), TRY(mac_of(step, "peer_mac")));
    }
    if (op == "move") {
        auto to = TRY(Netns::of(step.contains("to") ? step.at("to") : json()));
        return netlink::move_link(TRY(text(step, "link")), to.fd(), text_or(step, "rename", ""));
    }
    if (op == "carry_uplink")
        return carry_uplink(TRY(text(step, "link")), step.contains("to") ? step.at("to") : json(), notes);
    if (op == "up")
        return netlink::set_link_up(TRY(text(step, "link")));
    if (op == "delete") {
        auto link = TRY(text(step, "link"));
        if (!netlink::link_exists(link) && flag(step, "missing_ok"))
            return {};
        return netlink::delete_link(link);
    }
    if (op == "address")
        return netlink::add_address(TRY(text(step, "link")), TRY(prefix_of(step, "address")));
    if (op == "route") {
        std::optional<uint32_t> via;
        if (step.contains("via"))
            via = TRY(prefix_of(step, "via")).address;
        return netlink::add_route(TRY(prefix_of(step, "to")), via, TRY(text(step, "link")));
    }
    if (op == "sysctl")
        return write_sysctl(TRY(text(step, "key")), TRY(text(step, "value")));
    if (op == "nft")
        return run_nft(TRY(text(step, "script")), flag(step, "missing_ok"));
    if (op == "client_rules")
        return client_rules(step, notes);
    if (op == "client_removed")
        return run_nft(net::client_removed({TRY(text(step, "link")), TRY(text(step, "address")), TRY(text(step, "mac"))}),
                       true);
    if (op == "firewall_base") {
        if (flag(step, "keep") && run_nft(std::string("list table inet ") + net::firewall_table + "\n", false))
            return {}; // there already, with its clients' rules: kept as it is
        return run_nft(net::firewall_base(), false);
    }
    if (op == "provider_table")
        return run_nft(net::provider_table(text_or(step, "resolver", "")), false);
    if (op == "host_table")
        return run_nft(net::host_uplink_table(TRY(text(step, "table")), TRY(text(step, "links"))), false);
    if (op == "remove_table")
        return run_nft("delete table " + TRY(text(step, "table")) + "\n", true);
    return failure("unknown step '" + op + "'");
}

} // namespace

int main()
{
    host_netns = ::open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (host_netns < 0) {
        std::perror("bulkhead-net: /proc/self/ns/net");
        return 1;
    }
    std::string input((std::istreambuf_iterator<char>(std::cin)), std::istreambuf_iterator<char>());
    json request = json::parse(input, nullptr, false);
    if (request.is_discarded() || !request.is_object() || !request.contains("steps") || !request.at("steps").is_array()) {
        std::cerr << "bulkhead-net: the request is not a JSON object with a list of steps\n";
        return 1;
    }
    json notes = json::array();
    json answer = json::object();
    size_t index = 0;
    for (auto const& step : request.at("steps")) {
        ++index;
        if (!step.is_object()) {
            std::cerr << "bulkhead-net: step " << index << " is not an object\n";
            return 1;
        }
        Status status = enter(step.contains("in") ? step.at("in") : json("host"));
        if (!status.is_error())
            status = run_step(step, notes, answer);
        if (status.is_error()) {
            std::cerr << "bulkhead-net: step " << index << " (" << text_or(step, "op", "?") << "): "
                      << status.error().message() << "\n";
            answer["notes"] = notes;
            std::cout << answer.dump() << "\n";
            return 1;
        }
    }
    answer["notes"] = notes;
    std::cout << answer.dump() << "\n";
    return 0;
}
