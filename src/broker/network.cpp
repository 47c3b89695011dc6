// The network of compartments (docs/network.md): each network compartment (provider) gets a
// firewall namespace of its own, created and held by the broker and running no process, between it
// and its clients. The broker never enters a namespace itself: bulkhead-net (src/net/helper.cpp)
// does each change as one ordered request, so that a client's link comes up only after its rules
// are in place.
#include "broker/broker.hpp"

#include "net/nft_rules.hpp"
#include "sys/syscalls.hpp"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bulkhead::broker {

using nlohmann::json;

namespace {

std::string dotted(uint32_t host_order)
{
    return std::to_string(host_order >> 24) + "." + std::to_string((host_order >> 16) & 255) + "."
           + std::to_string((host_order >> 8) & 255) + "." + std::to_string(host_order & 255);
}

// Clients: 100.64.0.0/16, one /32 per compartment slot (never .0 or .1).
std::string client_address(uint32_t slot) { return dotted((100u << 24) | (64u << 16) | (slot + 2)); }

std::string client_mac(uint32_t slot)
{
    char mac[32];
    std::snprintf(mac, sizeof(mac), "0a:b3:ec:00:%02x:%02x", (slot >> 8) & 255, slot & 255);
    return mac;
}

// A client's link in the firewall namespace is named after its PID 1, not its slot: the link of the
// slot's previous holder may still be on its way out (the kernel removes a dead namespace's links
// asynchronously), and deleting it first would cost a network synchronisation on every start.
std::string client_link(Live const& live) { return "c" + std::to_string(live.sandbox ? live.sandbox->pid() : 0); }

// The first nameserver of a resolv.conf text that a provider can reach (not a loopback one).
std::string first_nameserver(std::string const& text)
{
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string::npos)
            end = text.size();
        std::string line = text.substr(start, end - start);
        start = end + 1;
        char address[64] = {};
        if (std::sscanf(line.c_str(), " nameserver %63s", address) == 1 && std::strchr(address, ':') == nullptr
            && std::strncmp(address, "127.", 4) != 0)
            return address;
    }
    return {};
}

Status make_netns_dir(std::string const& path)
{
    if (::mkdir(path.c_str(), 0700) < 0 && errno != EEXIST)
        return Error::from_syscall("mkdir", path, errno);
    return {};
}

} // namespace

std::string Broker::net_helper_path() const
{
    for (auto const& path : helper_candidates("bulkhead-net"))
        if (::access(path.c_str(), X_OK) == 0)
            return path;
    return "/usr/lib/bulkhead/bulkhead-net";
}

Result<json> Broker::run_net_helper(json const& steps, std::vector<int> const& fds)
{
    std::string request = json {{"steps", steps}}.dump();
    int in[2], out[2], err[2];
    if (::pipe2(in, O_CLOEXEC) < 0)
        return Error::from_syscall("pipe2", errno);
    if (::pipe2(out, O_CLOEXEC) < 0 || ::pipe2(err, O_CLOEXEC) < 0)
        return Error::from_syscall("pipe2", errno);
    std::string helper = net_helper_path();
    pid_t pid = ::fork();
    if (pid < 0)
        return Error::from_syscall("fork", errno);
    if (pid == 0) {
        ::dup2(in[0], 0);
        ::dup2(out[1], 1);
        ::dup2(err[1], 2);
        // The namespaces it works in, at the descriptor numbers the request names (3, 4, ...): each is
        // dup'd without close-on-exec.
        for (size_t i = 0; i < fds.size(); ++i) {
            int target = static_cast<int>(3 + i);
            if (fds[i] == target)
                ::fcntl(target, F_SETFD, 0);
            else
                ::dup2(fds[i], target);
        }
        char const* argv[] = {helper.c_str(), nullptr};
        char const* envp[] = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", nullptr};
        ::execve(helper.c_str(), const_cast<char* const*>(argv), const_cast<char* const*>(envp));
        ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    ::close(err[1]);
    // Requests are a few KiB: far below a pipe's capacity, so this write does not wait on the reader.
    bool written = ::write(in[1], request.data(), request.size()) == static_cast<ssize_t>(request.size());
    ::close(in[1]);
    std::string output = sys::read_all(out[0]);
    std::string errors = sys::read_all(err[0]);
    ::close(out[0]);
    ::close(err[0]);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    json answer = json::parse(output, nullptr, false);
    if (answer.is_discarded() || !answer.is_object())
        answer = json::object();
    if (answer.contains("notes") && answer["notes"].is_array())
        for (auto const& note : answer["notes"])
            if (note.is_string())
                log("network: " + note.get<std::string>());
    if (!written || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        while (!errors.empty() && errors.back() == '\n')
            errors.pop_back();
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
            errors = helper + " could not be run";
        return Error::from_message(errors.empty() ? "bulkhead-net failed" : errors);
    }
    return answer;
}

std::string Broker::firewall_netns_path(std::string const& provider) const
{
    return m_paths.run + "/netns/fw-" + provider;
}

Result<sys::UniqueFd> Broker::netns_of(Live const& live) const
{
    if (!live.sandbox)
        return Error::from_message(live.name + " has no namespace");
    return sys::open_path("/proc/" + std::to_string(live.sandbox->pid()) + "/ns/net", O_RDONLY | O_CLOEXEC);
}

// The firewall namespace of `provider`, made on first use with its base table (kept as it is when it
// exists: a broker restart or a provider restart changes nothing in it).
json Broker::firewall_steps(std::string const& provider) const
{
    std::string fw = firewall_netns_path(provider);
    return json::array({
        {{"op", "make_netns"}, {"path", fw}},
        {{"op", "firewall_base"}, {"in", fw}, {"keep", true}},
        {{"op", "sysctl"}, {"in", fw}, {"key", "net/ipv4/ip_forward"}, {"value", "1"}},
    });
}

Status Broker::network_provider_up(Live& live)
{
    auto const& settings = live.settings;
    std::string fw = firewall_netns_path(live.name);
    TRY(make_netns_dir(m_paths.run + "/netns"));
    auto netns = TRY(netns_of(live));
    json steps = firewall_steps(live.name);
    auto add = [&](json step) { steps.push_back(std::move(step)); };
    // The link between the provider ("clients") and its firewall namespace ("provider").
    add({{"op", "delete"}, {"in", fw}, {"link", "provider"}, {"missing_ok", true}});
    add({{"op", "veth"}, {"in", fw}, {"name", "provider"}, {"peer", "clients"}, {"peer_in", 3}});
    add({{"op", "address"}, {"in", fw}, {"link", "provider"}, {"address", std::string(net::firewall_link_address) + "/30"}});
    add({{"op", "up"}, {"in", fw}, {"link", "provider"}});
    add({{"op", "route"}, {"in", fw}, {"to", "0.0.0.0/0"}, {"via", net::provider_link_address}, {"link", "provider"}});
    add({{"op", "address"}, {"in", 3}, {"link", "clients"}, {"address", std::string(net::provider_link_address) + "/30"}});
    add({{"op", "up"}, {"in", 3}, {"link", "clients"}});
    add({{"op", "route"}, {"in", 3}, {"to", net::client_range}, {"via", net::firewall_link_address}, {"link", "clients"}});
    add({{"op", "sysctl"}, {"in", 3}, {"key", "net/ipv4/ip_forward"}, {"value", "1"}});
    std::string resolver;
    if (settings.network == "none") {
        if (settings.uplink == "host") {
            // A veth to the host, masqueraded there: 100.66.0.0/16, a /30 per provider.
            uint32_t index = static_cast<uint32_t>((std::stoull(m_instance.substr(0, 8), nullptr, 16) % 16) * 1024 + live.slot);
            uint32_t base = (100u << 24) | (66u << 16) | (index * 4);
            std::string host_link = uplink_link_prefix() + std::to_string(live.slot);
            add({{"op", "host_table"}, {"table", "bulkhead-" + m_instance}, {"links", uplink_link_prefix()}});
            add({{"op", "sysctl"}, {"key", "net/ipv4/ip_forward"}, {"value", "1"}});
            add({{"op", "delete"}, {"link", host_link}, {"missing_ok", true}});
            add({{"op", "veth"}, {"name", host_link}, {"peer", "uplink"}, {"peer_in", 3}});
            add({{"op", "address"}, {"link", host_link}, {"address", dotted(base + 1) + "/30"}});
            add({{"op", "up"}, {"link", host_link}});
            add({{"op", "address"}, {"in", 3}, {"link", "uplink"}, {"address", dotted(base + 2) + "/30"}});
            add({{"op", "up"}, {"in", 3}, {"link", "uplink"}});
            add({{"op", "route"}, {"in", 3}, {"to", "0.0.0.0/0"}, {"via", dotted(base + 1)}, {"link", "uplink"}});
            auto host_resolv = sys::read_file("/etc/resolv.conf", 65536);
            resolver = first_nameserver(host_resolv.is_error() ? "" : host_resolv.value());
            if (resolver.empty()) {
                auto upstream = sys::read_file("/run/systemd/resolve/resolv.conf", 65536);
                resolver = first_nameserver(upstream.is_error() ? "" : upstream.value());
            }
        } else {
            add({{"op", "carry_uplink"}, {"link", settings.uplink}, {"to", 3}});
        }
    }
    if (!settings.dns.empty())
        resolver = settings.dns;
    add({{"op", "provider_table"}, {"in", 3}, {"resolver", resolver}});
    TRY_CTX(run_net_helper(steps, {netns.get()}), "connecting " + live.name + " as a network compartment");
    log(live.name + ": provides network" + (resolver.empty() ? " (no resolver: its clients' DNS is dropped)"
                                                              : " (DNS of its clients to " + resolver + ")"));
    return {};
}

// A client's provider starts with it (as Qubes starts a qube's netvm). If it cannot, the client
// still starts, offline: its link and rules wait in the firewall namespace for the provider.
void Broker::network_start_provider(std::string const& provider, std::string const& client)
{
    if (m_live.contains(provider))
        return;
    if (auto started = start_persistent(provider); started.is_error())
        log(client + ": starts offline: its network " + provider + " did not start: " + started.error().message());
    else
        log(provider + ": started as the network of " + client);
}

std::vector<std::string> const* Broker::firewall_rules_of(std::string const& client) const
{
    auto const* settings = m_config.find_compartment(client);
    std::string const& provider_name = settings ? settings->network : "";
    auto const* provider = m_config.find_compartment(provider_name);
    if (provider == nullptr)
        return nullptr;
    auto found = provider->firewall.find(client);
    return found == provider->firewall.end() ? nullptr : &found->second;
}

// A client resolves through its gateway (the provider's DNS, if its rules allow it): its own
// /etc/resolv.conf, from RUN/ipc/NAME (read-only inside).
Status Broker::network_prepare(config::Compartment const& settings, std::string const& ipc_dir, sandbox::Spec& spec) const
{
    if (settings.network == "none")
        return {};
    auto dir = TRY(sys::open_path(ipc_dir, O_PATH | O_DIRECTORY | O_CLOEXEC));
    TRY(sys::write_file_beneath(dir.get(), "resolv.conf", std::string("nameserver ") + net::gateway_address + "\n", 0644));
    spec.binds.push_back({ipc_dir + "/resolv.conf", "/etc/resolv.conf", sandbox::AccessMode::ReadOnly});
    return {};
}

Status Broker::network_client_up(Live& live)
{
    std::string const& provider = live.settings.network;
    std::string fw = firewall_netns_path(provider);
    TRY(make_netns_dir(m_paths.run + "/netns"));
    auto netns = TRY(netns_of(live));
    std::string link = client_link(live), address = client_address(live.slot), mac = client_mac(live.slot);
    json steps = firewall_steps(provider);
    auto add = [&](json step) { steps.push_back(std::move(step)); };
    // Disposables are firewalled as their template is.
    json rules = nullptr;
    if (auto const* list = firewall_rules_of(live.disposable ? live.template_name : live.name))
        rules = *list;
    add({{"op", "veth"}, {"in", fw}, {"name", link}, {"peer", "eth0"}, {"peer_in", 3}, {"peer_mac", mac}});
    // Rules first, in one transaction; only then does either end of the link come up.
    add({{"op", "client_rules"}, {"in", fw}, {"link", link}, {"address", address}, {"mac", mac}, {"rules", rules}});
    add({{"op", "address"}, {"in", fw}, {"link", link}, {"address", std::string(net::gateway_address) + "/32"}});
    add({{"op", "up"}, {"in", fw}, {"link", link}});
    add({{"op", "route"}, {"in", fw}, {"to", address + "/32"}, {"link", link}});
    add({{"op", "address"}, {"in", 3}, {"link", "eth0"}, {"address", address + "/32"}});
    add({{"op", "up"}, {"in", 3}, {"link", "eth0"}});
    add({{"op", "route"}, {"in", 3}, {"to", std::string(net::gateway_address) + "/32"}, {"link", "eth0"}});
    add({{"op", "route"}, {"in", 3}, {"to", "0.0.0.0/0"}, {"via", net::gateway_address}, {"link", "eth0"}});
    TRY_CTX(run_net_helper(steps, {netns.get()}), "connecting " + live.name + " to " + provider);
    live.net_address = address;
    return {};
}

void Broker::network_stopped(Live const& live)
{
    if (live.net_address.empty() && !live.settings.provides_network)
        return;
    json steps = json::array();
    if (!live.net_address.empty()) {
        std::string fw = firewall_netns_path(live.settings.network);
        if (::access(fw.c_str(), F_OK) == 0)
            steps.push_back({{"op", "client_removed"}, {"in", fw}, {"link", client_link(live)},
                             {"address", live.net_address}, {"mac", client_mac(live.slot)}});
    }
    // The provider's links went with its namespace. Its firewall namespace stays while it runs or any
    // client is linked to it (offline until the provider starts again): fail closed.
    auto unused = [&](std::string const& provider) {
        if (provider != live.name && m_live.contains(provider))
            return false;
        for (auto const& [name, other] : m_live)
            if (name != live.name && other.settings.network == provider && !other.net_address.empty())
                return false;
        return ::access(firewall_netns_path(provider).c_str(), F_OK) == 0;
    };
    if (live.settings.provides_network && unused(live.name))
        steps.push_back({{"op", "remove_netns"}, {"path", firewall_netns_path(live.name)}});
    // The host's table goes with the last provider that used it.
    auto uses_host = [](config::Compartment const& settings) {
        return settings.provides_network && settings.network == "none" && settings.uplink == "host";
    };
    if (uses_host(live.settings)) {
        bool others = false;
        for (auto const& [name, other] : m_live)
            others = others || (name != live.name && uses_host(other.settings));
        if (!others)
            steps.push_back({{"op", "remove_table"}, {"table", "ip bulkhead-" + m_instance}});
    }
    if (!live.net_address.empty() && unused(live.settings.network))
        steps.push_back({{"op", "remove_netns"}, {"path", firewall_netns_path(live.settings.network)}});
    if (steps.empty())
        return;
    if (auto done = run_net_helper(steps, {}); done.is_error())
        log(live.name + ": network teardown: " + done.error().message());
}

// An adopted client: its link and rules stayed in the kernel while no broker ran.
void Broker::network_adopted(Live& live)
{
    if (live.settings.network != "none" && ::access(firewall_netns_path(live.settings.network).c_str(), F_OK) == 0)
        live.net_address = client_address(live.slot);
}

Status Broker::network_update_rules(std::string const& provider)
{
    std::string fw = firewall_netns_path(provider);
    json steps = json::array();
    for (auto const& [name, live] : m_live) {
        if (live.net_address.empty() || live.settings.network != provider)
            continue;
        json rules = nullptr;
        if (auto const* list = firewall_rules_of(live.disposable ? live.template_name : name))
            rules = *list;
        steps.push_back({{"op", "client_rules"}, {"in", fw}, {"link", client_link(live)}, {"address", live.net_address},
                         {"mac", client_mac(live.slot)}, {"rules", rules}, {"update", true}});
    }
    if (steps.empty())
        return {};
    TRY_CTX(run_net_helper(steps, {}), "updating the firewall of " + provider + "'s clients");
    return {};
}

std::string Broker::network_state(Live const* live, config::Compartment const& settings) const
{
    if (settings.network == "none")
        return settings.provides_network ? "provider" : "none";
    auto provider = m_live.find(settings.network);
    bool provider_up = provider != m_live.end() && provider->second.sandbox.has_value();
    if (live == nullptr)
        return settings.network;
    if (live->net_address.empty())
        return "offline";
    return provider_up ? "connected" : "provider down";
}

// bulkhead net: each running client's provider, state, address and rules with their counters (one
// helper run for all of them).
json Broker::network_report()
{
    json clients = json::array();
    json steps = json::array();
    for (auto const& [name, live] : m_live) {
        if (live.settings.network == "none")
            continue;
        if (!live.net_address.empty() && ::access(firewall_netns_path(live.settings.network).c_str(), F_OK) == 0)
            steps.push_back({{"op", "counters"}, {"in", firewall_netns_path(live.settings.network)}, {"link", client_link(live)}});
    }
    json counters = json::object();
    if (!steps.empty()) {
        auto answer = run_net_helper(steps, {});
        if (answer.has_value() && answer.value().contains("counters"))
            counters = answer.value()["counters"];
        else if (answer.is_error())
            log("network: reading counters: " + answer.error().message());
    }
    for (auto const& [name, live] : m_live) {
        if (live.settings.network == "none")
            continue;
        json entry = {{"name", name}, {"network", live.settings.network}, {"state", network_state(&live, live.settings)}};
        if (!live.net_address.empty())
            entry["address"] = live.net_address;
        json const* found = nullptr;
        if (auto it = counters.find(client_link(live)); it != counters.end())
            found = &*it;
        auto count = [&](std::string const& key) {
            if (found != nullptr && found->contains(key))
                return json {{"packets", found->at(key).value("packets", 0)}, {"bytes", found->at(key).value("bytes", 0)}};
            return json {{"packets", nullptr}, {"bytes", nullptr}};
        };
        auto with_rule = [](std::string const& text, json counted) {
            counted["rule"] = text;
            return counted;
        };
        json rules = json::array();
        if (auto const* list = firewall_rules_of(live.disposable ? live.template_name : name)) {
            for (size_t i = 0; i < list->size(); ++i)
                rules.push_back(with_rule((*list)[i], count(std::to_string(i + 1))));
            rules.push_back(with_rule("(the list's end: deny)", count("end")));
        } else {
            rules.push_back(with_rule("(no list: allow all)", count("all")));
        }
        entry["rules"] = rules;
        clients.push_back(entry);
    }
    return clients;
}

std::string Broker::uplink_link_prefix() const { return "bh" + m_instance.substr(0, 4) + "u"; }

} // namespace bulkhead::broker
