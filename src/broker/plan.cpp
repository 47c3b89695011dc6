#include "broker/plan.hpp"

#include "base/parse.hpp"

#include <algorithm>

namespace bulkhead::broker {

namespace {

using config::Compartment;
using config::SystemConfig;

std::string join(std::vector<std::string> const& items)
{
    std::string text;
    for (auto const& item : items)
        text += (text.empty() ? "" : ",") + item;
    return "[" + text + "]";
}

std::string size_text(uint64_t bytes)
{
    return bytes == 0 ? "unlimited" : format_size(bytes);
}

std::string cpu_text(uint32_t millis)
{
    if (millis == 0)
        return "unlimited";
    return std::to_string(millis / 1000) + "." + std::to_string(millis % 1000 / 100);
}

std::string mounts_text(std::vector<config::Mount> const& mounts)
{
    std::vector<std::string> items;
    for (auto const& m : mounts)
        items.push_back(m.volume + "/" + m.path + "->" + m.at + (m.mode == config::MountMode::ReadWrite ? ":rw" : ":ro"));
    return join(items);
}

std::string firewall_text(std::map<std::string, std::vector<std::string>> const& firewall)
{
    std::vector<std::string> items;
    for (auto const& [client, rules] : firewall)
        items.push_back(client + "=" + join(rules));
    return join(items);
}

std::string template_text(SystemConfig const& config, std::string const& name)
{
    auto const* t = config.find_template(name);
    if (t == nullptr)
        return name;
    return t->kind == config::TemplateKind::Host ? name + "(host)" : name + "(rootfs " + t->path + ")";
}

// Field-by-field differences; `restart` is set when one of them changes what a running
// compartment is made of.
std::vector<std::string> differences(SystemConfig const& old_config, Compartment const& a, SystemConfig const& new_config,
    Compartment const& b, bool& restart)
{
    std::vector<std::string> out;
    auto field = [&](char const* name, std::string const& before, std::string const& after, bool affects_running) {
        if (before == after)
            return;
        out.push_back(std::string(name) + " " + before + " -> " + after);
        restart = restart || affects_running;
    };
    auto yes_no = [](bool value) { return std::string(value ? "true" : "false"); };
    field("label", std::string(config::label_name(a.label)), std::string(config::label_name(b.label)), false);
    field("template", template_text(old_config, a.template_name), template_text(new_config, b.template_name), true);
    field("backend", a.backend == config::Backend::Vm ? "vm" : "sandbox", b.backend == config::Backend::Vm ? "vm" : "sandbox", true);
    field("network", a.network, b.network, true);
    auto memory_text = [](config::Compartment const& c) {
        return c.memory_none ? std::string("none") : c.memory_bytes == 0 ? std::string("default (half the RAM)") : size_text(c.memory_bytes);
    };
    auto pids_text = [](config::Compartment const& c) {
        return c.pids_none ? std::string("none") : c.pids == 0 ? std::string("default (4096)") : std::to_string(c.pids);
    };
    auto disk_text = [](config::Compartment const& c) {
        return c.disk_none ? std::string("none") : c.disk_bytes == 0 ? std::string("default (10G)") : size_text(c.disk_bytes);
    };
    field("memory", memory_text(a), memory_text(b), true);
    field("disk", disk_text(a), disk_text(b), true);
    field("pids", pids_text(a), pids_text(b), true);
    field("cpus", cpu_text(a.cpu_millis), cpu_text(b.cpu_millis), true);
    field("tags", join(a.tags), join(b.tags), false);
    field("autostart", yes_no(a.autostart), yes_no(b.autostart), false);
    field("disposable_template", yes_no(a.disposable_template), yes_no(b.disposable_template), false);
    field("provides_network", yes_no(a.provides_network), yes_no(b.provides_network), true);
    field("preload", std::to_string(a.preload), std::to_string(b.preload), false);
    field("max_disposables", std::to_string(a.max_disposables), std::to_string(b.max_disposables), false);
    field("mounts", mounts_text(a.mounts), mounts_text(b.mounts), true);
    field("uplink", a.uplink, b.uplink, true);
    field("dns", a.dns.empty() ? "default" : a.dns, b.dns.empty() ? "default" : b.dns, true);
    // Applied to running clients in place (network.cpp), without a restart.
    field("firewall", firewall_text(a.firewall), firewall_text(b.firewall), false);
    return out;
}

} // namespace

Plan make_plan(SystemConfig const* current, SystemConfig const& desired, std::set<std::string> const& running)
{
    static SystemConfig const nothing;
    SystemConfig const& old_config = current ? *current : nothing;
    Plan plan;
    for (auto const& compartment : desired.compartments) {
        bool is_running = running.contains(compartment.name);
        auto const* before = old_config.find_compartment(compartment.name);
        if (before == nullptr) {
            plan.changes.push_back({ChangeKind::Add, compartment.name, {}, false});
        } else {
            bool restart = false;
            auto details = differences(old_config, *before, desired, compartment, restart);
            if (!details.empty()) {
                plan.changes.push_back({ChangeKind::Modify, compartment.name, details, restart && is_running});
                if (restart && is_running)
                    plan.restart.push_back(compartment.name);
            }
        }
        if (compartment.autostart && !is_running)
            plan.start.push_back(compartment.name);
    }
    for (auto const& compartment : old_config.compartments) {
        if (desired.find_compartment(compartment.name) != nullptr)
            continue;
        plan.changes.push_back({ChangeKind::Remove, compartment.name, {}, false});
        if (running.contains(compartment.name))
            plan.stop.push_back(compartment.name);
    }
    // Running compartments that no configuration knows (applied under an older generation).
    for (auto const& name : running) {
        if (desired.find_compartment(name) == nullptr && old_config.find_compartment(name) == nullptr)
            plan.stop.push_back(name);
    }
    if (current != nullptr && old_config.default_disposable != desired.default_disposable)
        plan.other.push_back("default_disposable " + (old_config.default_disposable.empty() ? "none" : old_config.default_disposable)
            + " -> " + (desired.default_disposable.empty() ? "none" : desired.default_disposable));
    for (auto const& volume : desired.volumes) {
        bool known = std::any_of(old_config.volumes.begin(), old_config.volumes.end(), [&](auto const& v) { return v.name == volume.name; });
        if (!known)
            plan.other.push_back("+ volume " + volume.name);
    }
    for (auto const& volume : old_config.volumes) {
        bool kept = std::any_of(desired.volumes.begin(), desired.volumes.end(), [&](auto const& v) { return v.name == volume.name; });
        if (!kept)
            plan.other.push_back("- volume " + volume.name + " (its data stays in STATE/volumes/" + volume.name + ")");
    }
    return plan;
}

std::vector<std::string> Plan::describe() const
{
    std::vector<std::string> lines;
    auto contains = [](std::vector<std::string> const& list, std::string const& name) {
        return std::find(list.begin(), list.end(), name) != list.end();
    };
    for (auto const& change : changes) {
        std::string line;
        switch (change.kind) {
        case ChangeKind::Add:
            line = "+ " + change.name;
            break;
        case ChangeKind::Remove:
            line = "- " + change.name + (contains(stop, change.name) ? " (running: will be stopped)" : "")
                + "; its home stays in STATE/compartments/" + change.name;
            break;
        case ChangeKind::Modify: {
            line = "~ " + change.name + ":";
            for (size_t i = 0; i < change.details.size(); ++i)
                line += (i == 0 ? " " : ", ") + change.details[i];
            if (change.needs_restart)
                line += " (running: will be restarted)";
            break;
        }
        }
        lines.push_back(line);
    }
    for (auto const& name : stop) {
        bool listed = std::any_of(changes.begin(), changes.end(), [&](auto const& c) { return c.name == name; });
        if (!listed)
            lines.push_back("- " + name + " (running, not in any configuration: will be stopped)");
    }
    for (auto const& line : other)
        lines.push_back(line);
    for (auto const& name : start)
        lines.push_back("> " + name + " will be started (autostart)");
    if (lines.empty())
        lines.push_back("no changes");
    return lines;
}

} // namespace bulkhead::broker
