// system.toml parsing and validation. toml++ is used header-only with exceptions off: its parse
// errors come back as values, and the bulkhead binary links statically.
#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 0
#include <toml++/toml.h>

#include "config/config.hpp"

#include "base/parse.hpp"
#include "net/firewall.hpp"
#include "sandbox/spec.hpp"

#include <algorithm>
#include <cstdio>
#include <array>
#include <cctype>
#include <cmath>
#include <set>

namespace bulkhead::config {

namespace {

constexpr std::array<std::string_view, 8> label_names {"red", "orange", "yellow", "green", "gray", "blue", "purple", "black"};

// toml++ 3.3 reaches __builtin_unreachable() (undefined behaviour) when it tests some non-ASCII
// code points for whitespace, which it does wherever its lexer looks ahead (found by fuzz_config,
// three different ways). So toml++ never sees those code points: each is swapped for one of a block
// of private-use code points before parsing, and swapped back in every string taken out of the
// document. Input that already holds a code point of that block is refused.
struct CodeRange {
    char32_t first;
    char32_t last;
};
// The code points toml++ 3.3's is_non_ascii_horizontal_whitespace() has no answer for.
constexpr CodeRange unsafe_ranges[] = {{0xA1, 0x499}, {0x2C5E, 0x2FFF}, {0x3001, 0x3057}, {0xFB26, 0xFEFE}};
constexpr char32_t stand_in_base = 0xE000; // private use area; safe for toml++
constexpr char32_t stand_in_count = (0x499 - 0xA1 + 1) + (0x2FFF - 0x2C5E + 1) + (0x3057 - 0x3001 + 1) + (0xFEFE - 0xFB26 + 1);

void append_utf8(std::string& out, char32_t cp)
{
    if (cp < 0x80) {
        out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
}

// Decodes a 2- or 3-byte sequence at text[i]; 0 when there is none (ASCII, 4-byte or invalid).
char32_t decode_bmp(std::string_view text, size_t i, size_t& length)
{
    auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
    auto continuation = [&](size_t k) { return k < text.size() && (byte(k) & 0xC0) == 0x80; };
    if ((byte(i) & 0xE0) == 0xC0 && continuation(i + 1)) {
        length = 2;
        char32_t cp = ((byte(i) & 0x1F) << 6) | (byte(i + 1) & 0x3F);
        return cp >= 0x80 ? cp : 0;
    }
    if ((byte(i) & 0xF0) == 0xE0 && continuation(i + 1) && continuation(i + 2)) {
        length = 3;
        char32_t cp = ((byte(i) & 0x0F) << 12) | ((byte(i + 1) & 0x3F) << 6) | (byte(i + 2) & 0x3F);
        return cp >= 0x800 ? cp : 0;
    }
    return 0;
}

// Maps the unsafe code points to stand-ins (to_stand_in) or back.
enum class Direction { ToStandIn, Back };
std::optional<std::string> swap_code_points(std::string_view text, Direction direction, size_t* refused_at = nullptr)
{
    std::string out;
    out.reserve(text.size() + text.size() / 2);
    for (size_t i = 0; i < text.size();) {
        size_t length = 1;
        char32_t cp = decode_bmp(text, i, length);
        char32_t mapped = 0;
        if (cp != 0 && direction == Direction::ToStandIn) {
            if (cp >= stand_in_base && cp < stand_in_base + stand_in_count) {
                if (refused_at != nullptr)
                    *refused_at = i;
                return std::nullopt;
            }
            char32_t index = 0;
            for (auto const& range : unsafe_ranges) {
                if (cp >= range.first && cp <= range.last) {
                    mapped = stand_in_base + index + (cp - range.first);
                    break;
                }
                index += range.last - range.first + 1;
            }
        } else if (cp >= stand_in_base && cp < stand_in_base + stand_in_count && direction == Direction::Back) {
            char32_t index = cp - stand_in_base;
            for (auto const& range : unsafe_ranges) {
                if (index <= range.last - range.first) {
                    mapped = range.first + index;
                    break;
                }
                index -= range.last - range.first + 1;
            }
        }
        if (mapped != 0)
            append_utf8(out, mapped);
        else
            out.append(text.substr(i, length));
        i += length;
    }
    return out;
}

std::string restore(std::string_view text) { return *swap_code_points(text, Direction::Back); }

// A Linux interface name: 1 to IFNAMSIZ-1 bytes, no '/', ':' or white space, not "." or "..".
bool valid_interface_name(std::string_view name)
{
    if (name.empty() || name.size() > 15 || name == "." || name == "..")
        return false;
    return std::all_of(name.begin(), name.end(),
                       [](char ch) { return ch > 0x20 && ch < 0x7f && ch != '/' && ch != ':'; });
}

class Checker {
public:
    explicit Checker(std::string_view file) : m_file(file) {}

    Position at(toml::source_region const& region) const
    {
        return {m_file, static_cast<uint32_t>(region.begin.line), static_cast<uint32_t>(region.begin.column)};
    }
    Position at(toml::node const& node) const { return at(node.source()); }

    void error(Position where, std::string const& message) { m_errors.push_back({std::move(where), restore(message)}); }
    void error(toml::node const& node, std::string const& message) { error(at(node), message); }

    std::vector<Diagnostic> take_errors() { return std::move(m_errors); }
    bool failed() const { return !m_errors.empty(); }

    // Reports every key of `table` that is not in `known`, with the key's own position.
    void only_keys(toml::table const& table, std::initializer_list<std::string_view> known, std::string_view where)
    {
        for (auto&& [key, value] : table) {
            if (std::find(known.begin(), known.end(), key.str()) != known.end())
                continue;
            error(at(key.source()), "unknown key '" + std::string(key.str()) + "' in " + std::string(where));
        }
    }

    toml::table const* table_at(toml::node const& node, std::string const& what)
    {
        if (auto const* table = node.as_table())
            return table;
        error(node, what + " must be a table");
        return nullptr;
    }

    std::optional<std::string> string_at(toml::node const& node, std::string const& what)
    {
        if (auto const* s = node.as_string())
            return restore(s->get());
        error(node, what + " must be a string, not " + type_name(node));
        return std::nullopt;
    }

    std::optional<bool> bool_at(toml::node const& node, std::string const& what)
    {
        if (auto const* b = node.as_boolean())
            return b->get();
        error(node, what + " must be true or false, not " + type_name(node));
        return std::nullopt;
    }

    std::optional<int64_t> integer_at(toml::node const& node, std::string const& what, int64_t min, int64_t max)
    {
        auto const* i = node.as_integer();
        if (i == nullptr) {
            error(node, what + " must be an integer, not " + type_name(node));
            return std::nullopt;
        }
        if (i->get() < min || i->get() > max) {
            error(node, what + " must be between " + std::to_string(min) + " and " + std::to_string(max));
            return std::nullopt;
        }
        return i->get();
    }

    std::optional<std::vector<std::string>> strings_at(toml::node const& node, std::string const& what)
    {
        auto const* array = node.as_array();
        if (array == nullptr) {
            error(node, what + " must be an array of strings, not " + type_name(node));
            return std::nullopt;
        }
        std::vector<std::string> out;
        for (auto const& element : *array) {
            auto value = string_at(element, what + " element");
            if (!value)
                return std::nullopt;
            out.push_back(*value);
        }
        return out;
    }

    // A keyword value: sets `out` to the choice whose word `node` holds, else reports the choices.
    template<typename E>
    void one_of(toml::node const& node, std::string const& what, std::initializer_list<std::pair<char const*, E>> choices,
                E& out)
    {
        auto text = string_at(node, what);
        if (!text)
            return;
        std::string expected;
        for (auto const& [word, value] : choices) {
            if (*text == word) {
                out = value;
                return;
            }
            expected += std::string(expected.empty() ? "\"" : " or \"") + word + "\"";
        }
        error(node, what + " '" + *text + "': expected " + expected);
    }

    // Reports a compartment, template, volume or tag name that valid_name() refuses.
    void name_ok(Position const& where, std::string const& what, std::string const& name)
    {
        if (!valid_name(name))
            error(where, what + " '" + name + "': use a-z, 0-9 and '-' (at most 32, starting with a letter or digit)");
    }

    static std::string type_name(toml::node const& node)
    {
        switch (node.type()) {
        case toml::node_type::string: return "a string";
        case toml::node_type::integer: return "an integer";
        case toml::node_type::floating_point: return "a number";
        case toml::node_type::boolean: return "a boolean";
        case toml::node_type::array: return "an array";
        case toml::node_type::table: return "a table";
        default: return "a date or time";
        }
    }

private:
    std::string m_file;
    std::vector<Diagnostic> m_errors;
};

bool relative_clean_path(std::string_view path)
{
    if (path.empty() || path.front() == '/' || path.find('\0') != std::string_view::npos)
        return false;
    for (auto part : split(path, '/'))
        if (part.empty() || part == "." || part == "..")
            return false;
    return true;
}

void parse_system_table(Checker& check, toml::node const& node, SystemConfig& config)
{
    auto const* table = check.table_at(node, "[system]");
    if (table == nullptr)
        return;
    check.only_keys(*table, {"default_disposable", "display"}, "[system]");
    if (auto const* value = table->get("default_disposable"))
        if (auto name = check.string_at(*value, "default_disposable")) {
            config.default_disposable = *name;
            config.default_disposable_where = check.at(*value);
        }
    if (auto const* value = table->get("display"))
        if (auto display = check.string_at(*value, "display")) {
            // An X display name: ":N", ":N.S" or "HOST:N" (a local socket is what the GUI daemons use).
            bool ok = !display->empty() && display->size() <= 64 && display->find(':') != std::string::npos;
            for (char ch : *display)
                ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == ':' || ch == '.' || ch == '-' || ch == '_');
            if (!ok)
                check.error(*value, "display: '" + *display + "' is not an X display name like \":0\"");
            else
                config.display = *display;
        }
}

void parse_templates(Checker& check, toml::node const& node, SystemConfig& config)
{
    auto const* table = check.table_at(node, "[templates]");
    if (table == nullptr)
        return;
    for (auto&& [key, value] : *table) {
        std::string name = restore(key.str());
        Template templ {name, TemplateKind::Host, {}, check.at(key.source())};
        check.name_ok(check.at(key.source()), "template name", name);
        auto const* body = check.table_at(value, "template '" + name + "'");
        if (body == nullptr)
            continue;
        check.only_keys(*body, {"kind", "path"}, "template '" + name + "'");
        if (auto const* kind = body->get("kind")) {
            check.one_of<TemplateKind>(*kind, "kind", {{"host", TemplateKind::Host}, {"rootfs", TemplateKind::Rootfs}},
                                       templ.kind);
        } else {
            check.error(check.at(key.source()), "template '" + name + "' has no kind (\"host\" or \"rootfs\")");
        }
        if (auto const* path = body->get("path")) {
            auto text = check.string_at(*path, "path");
            if (text && (text->empty() || text->front() != '/'))
                check.error(*path, "path '" + *text + "' must be absolute");
            else if (text)
                templ.path = *text;
            if (templ.kind == TemplateKind::Host)
                check.error(*path, "a host template takes no path");
        } else if (templ.kind == TemplateKind::Rootfs) {
            check.error(check.at(key.source()), "rootfs template '" + name + "' needs a path");
        }
        config.templates.push_back(std::move(templ));
    }
}

void parse_volumes(Checker& check, toml::node const& node, SystemConfig& config)
{
    auto const* table = check.table_at(node, "[volumes]");
    if (table == nullptr)
        return;
    for (auto&& [key, value] : *table) {
        std::string name = restore(key.str());
        check.name_ok(check.at(key.source()), "volume name", name);
        if (auto const* body = check.table_at(value, "volume '" + name + "'"))
            check.only_keys(*body, {}, "volume '" + name + "'");
        config.volumes.push_back({name, check.at(key.source())});
    }
}

void parse_mount(Checker& check, toml::node const& node, Compartment& compartment)
{
    auto const* table = check.table_at(node, "a mount");
    if (table == nullptr)
        return;
    check.only_keys(*table, {"volume", "path", "at", "mode"}, "a mount");
    Mount mount;
    mount.where = check.at(node);
    auto required = [&](char const* key) -> std::optional<std::string> {
        auto const* value = table->get(key);
        if (value == nullptr) {
            check.error(node, std::string("mount needs '") + key + "'");
            return std::nullopt;
        }
        return check.string_at(*value, key);
    };
    mount.volume = required("volume").value_or("");
    if (auto const* path = table->get("path")) {
        mount.path = check.string_at(*path, "path").value_or("");
        if (!mount.path.empty() && !relative_clean_path(mount.path))
            check.error(*path, "path '" + mount.path + "' must be relative to the volume, without '.' or '..'");
    }
    if (auto at = required("at")) {
        mount.at = *at;
        if (!relative_clean_path(mount.at))
            check.error(*table->get("at"), "at '" + mount.at + "' must be relative to the home, without '.' or '..'");
    }
    if (auto const* mode = table->get("mode"))
        check.one_of<MountMode>(*mode, "mode", {{"ro", MountMode::ReadOnly}, {"rw", MountMode::ReadWrite}}, mount.mode);
    compartment.mounts.push_back(std::move(mount));
}

void parse_compartment(Checker& check, toml::key const& key, toml::node const& node, SystemConfig& config)
{
    std::string name = restore(key.str());
    Compartment c;
    c.name = name;
    c.where = check.at(key.source());
    check.name_ok(c.where, "compartment name", name);
    if (name.starts_with(disposable_prefix))
        check.error(c.where, "compartment name '" + name + "': names starting with '" + std::string(disposable_prefix)
                                 + "' are kept for disposables");
    std::string const what = "compartment '" + name + "'";
    auto const* table = check.table_at(node, what);
    if (table == nullptr)
        return;
    check.only_keys(*table,
                    {"label", "template", "backend", "network", "memory", "pids", "cpus", "tags", "autostart",
                     "mounts", "disposable_template", "provides_network", "uplink", "dns", "firewall", "preload", "max_disposables", "disk", "gui"},
                    what);
    if (auto const* v = table->get("label")) {
        auto text = check.string_at(*v, "label");
        if (auto label = text ? parse_label(*text) : std::nullopt)
            c.label = *label;
        else if (text)
            check.error(*v, "label '" + *text + "': expected one of red orange yellow green gray blue purple black");
    }
    if (auto const* v = table->get("template")) {
        c.template_name = check.string_at(*v, "template").value_or(c.template_name);
        c.template_where = check.at(*v);
    }
    if (auto const* v = table->get("backend"))
        check.one_of<Backend>(*v, "backend", {{"sandbox", Backend::Sandbox}, {"vm", Backend::Vm}}, c.backend);
    if (auto const* v = table->get("network")) {
        c.network = check.string_at(*v, "network").value_or(c.network);
        c.network_where = check.at(*v);
    }
    if (auto const* v = table->get("memory")) {
        if (auto text = check.string_at(*v, "memory"); text && *text == "none") {
            c.memory_none = true;
        } else if (text) {
            auto bytes = parse_size(*text);
            if (bytes.is_error())
                check.error(*v, "memory: " + bytes.error().message());
            else if (bytes.value() < sandbox::min_memory_bytes)
                check.error(*v, "memory '" + *text + "' is less than the " + format_size(sandbox::min_memory_bytes)
                                    + " a compartment needs");
            else
                c.memory_bytes = bytes.value();
        }
    }
    if (auto const* v = table->get("pids")) {
        if (auto const* s = v->as_string(); s != nullptr && s->get() == "none")
            c.pids_none = true;
        else if (s != nullptr)
            check.error(*v, "pids must be an integer or \"none\", not \"" + restore(s->get()) + "\"");
        else
            c.pids = static_cast<uint64_t>(check.integer_at(*v, "pids", 8, 4'194'304).value_or(0));
    }
    if (auto const* v = table->get("cpus")) {
        std::optional<double> cpus;
        if (auto const* f = v->as_floating_point())
            cpus = f->get();
        else if (auto const* i = v->as_integer())
            cpus = static_cast<double>(i->get());
        else
            check.error(*v, "cpus must be a number, not " + Checker::type_name(*v));
        if (cpus && (!std::isfinite(*cpus) || *cpus < 0.01 || *cpus > 4096))
            check.error(*v, "cpus must be between 0.01 and 4096");
        else if (cpus)
            c.cpu_millis = static_cast<uint32_t>(std::llround(*cpus * 1000));
    }
    if (auto const* v = table->get("tags")) {
        c.tags = check.strings_at(*v, "tags").value_or(std::vector<std::string> {});
        for (auto const& tag : c.tags)
            check.name_ok(check.at(*v), "tag", tag);
    }
    if (auto const* v = table->get("autostart"))
        c.autostart = check.bool_at(*v, "autostart").value_or(false);
    if (auto const* v = table->get("gui"))
        c.gui = check.bool_at(*v, "gui").value_or(false);
    if (auto const* v = table->get("disposable_template"))
        c.disposable_template = check.bool_at(*v, "disposable_template").value_or(false);
    if (auto const* v = table->get("provides_network"))
        c.provides_network = check.bool_at(*v, "provides_network").value_or(false);
    if (auto const* v = table->get("dns")) {
        if (auto text = check.string_at(*v, "dns")) {
            auto prefix = net::parse_prefix(*text);
            if (!c.provides_network)
                check.error(*v, "dns is only for compartments with provides_network = true");
            else if (!prefix || prefix->family != net::Prefix::Family::V4 || prefix->length != 32)
                check.error(*v, "dns must be an IPv4 address, not '" + *text + "'");
            else
                c.dns = *text;
        }
    }
    if (auto const* v = table->get("uplink")) {
        if (auto text = check.string_at(*v, "uplink")) {
            if (!c.provides_network)
                check.error(*v, "uplink is only for compartments with provides_network = true");
            else if (*text != "host" && !valid_interface_name(*text))
                check.error(*v, "uplink must be \"host\" or the name of a host network interface (1 to 15 "
                                "characters, no '/', ':' or white space), not '" + *text + "'");
            else
                c.uplink = *text;
        }
    }
    if (auto const* v = table->get("preload")) {
        c.preload = static_cast<uint32_t>(check.integer_at(*v, "preload", 0, 64).value_or(0));
        if (c.preload > 0 && !c.disposable_template)
            check.error(*v, "preload is only for compartments with disposable_template = true");
    }
    if (auto const* v = table->get("disk")) {
        if (auto text = check.string_at(*v, "disk"); text && *text == "none") {
            c.disk_none = true;
        } else if (text) {
            auto bytes = parse_size(*text);
            if (bytes.is_error())
                check.error(*v, "disk: " + bytes.error().message());
            else if (bytes.value() < min_disk_bytes)
                check.error(*v, "disk '" + *text + "' is less than the " + format_size(min_disk_bytes) + " a home needs");
            else
                c.disk_bytes = bytes.value();
        }
    }
    if (auto const* v = table->get("max_disposables"))
        c.max_disposables = static_cast<uint32_t>(check.integer_at(*v, "max_disposables", 0, 1000).value_or(c.max_disposables));
    if (auto const* v = table->get("mounts")) {
        if (auto const* array = v->as_array())
            for (auto const& element : *array)
                parse_mount(check, element, c);
        else
            check.error(*v, "mounts must be an array of tables, not " + Checker::type_name(*v));
    }
    if (auto const* v = table->get("firewall")) {
        if (auto const* fw = check.table_at(*v, "firewall")) {
            if (!c.provides_network)
                check.error(*v, "firewall is only for compartments with provides_network = true");
            for (auto&& [client, rules] : *fw) {
                std::string what = "firewall." + restore(client.str());
                auto list = check.strings_at(rules, what);
                if (!list)
                    continue;
                if (list->size() > net::max_rules) {
                    check.error(rules, what + " has more than " + std::to_string(net::max_rules) + " rules");
                    continue;
                }
                // Each rule is checked where it stands; the column points into the string (after its quote).
                auto const& array = *rules.as_array();
                for (size_t i = 0; i < list->size(); ++i) {
                    auto parsed = net::parse_rule((*list)[i]);
                    if (auto const* error = std::get_if<net::RuleError>(&parsed)) {
                        auto where = check.at(array[i]);
                        where.column += error->column;
                        check.error(where, what + ": " + error->message);
                    }
                }
                c.firewall[restore(client.str())] = *list;
                c.firewall_where[restore(client.str())] = check.at(client.source());
            }
        }
    }
    config.compartments.push_back(std::move(c));
}

// References between parts of the configuration, checked once everything is read.
void check_references(Checker& check, SystemConfig const& config)
{
    std::set<std::string> volumes;
    for (auto const& v : config.volumes)
        volumes.insert(v.name);
    // Each reference is reported at its own key (the header when the key was left to its default).
    auto at = [](Position const& key, Position const& header) { return key.line != 0 ? key : header; };
    for (auto const& c : config.compartments) {
        if (config.find_template(c.template_name) == nullptr)
            check.error(at(c.template_where, c.where), "compartment '" + c.name + "': unknown template '" + c.template_name + "'");
        if (c.network != "none") {
            auto const* provider = config.find_compartment(c.network);
            auto const where = at(c.network_where, c.where);
            if (provider == nullptr)
                check.error(where, "compartment '" + c.name + "': unknown network compartment '" + c.network + "'");
            else if (!provider->provides_network)
                check.error(where, "compartment '" + c.name + "': network '" + c.network
                                       + "' is not a compartment with provides_network = true");
            else if (provider->name == c.name)
                check.error(where, "compartment '" + c.name + "' cannot be its own network");
        }
        for (auto const& m : c.mounts)
            if (!m.volume.empty() && volumes.count(m.volume) == 0)
                check.error(m.where, "compartment '" + c.name + "': unknown volume '" + m.volume + "'");
        for (auto const& [client, rules] : c.firewall) {
            auto const* user = config.find_compartment(client);
            auto where = c.firewall_where.count(client) ? c.firewall_where.at(client) : c.where;
            if (user == nullptr)
                check.error(where, "compartment '" + c.name + "': firewall names unknown compartment '" + client + "'");
            // A list for a compartment behind another provider would never filter its traffic: an error. A
            // list for one with no network (DESIGN.md's example) waits, harmless, until it is connected here.
            else if (user->network != c.name && user->network != "none")
                check.error(where, "compartment '" + c.name + "': firewall for '" + client
                                       + "', whose traffic goes through '" + user->network
                                       + "', not this network compartment");
        }
        // Providers chain (a firewall or VPN compartment in front of sys-net), but never in a circle.
        if (c.provides_network && c.network != c.name) {
            std::set<std::string> seen = {c.name};
            std::string chain = c.name;
            for (auto const* next = config.find_compartment(c.network); next != nullptr && next->provides_network;
                 next = config.find_compartment(next->network)) {
                chain += " -> " + next->name;
                if (next->name == c.name) {
                    check.error(c.where, "compartment '" + c.name + "': its network leads back to it (" + chain + ")");
                    break;
                }
                if (!seen.insert(next->name).second)
                    break; // a circle that does not pass through c: reported at its own members
            }
        }
    }
    if (!config.default_disposable.empty()) {
        auto const* d = config.find_compartment(config.default_disposable);
        if (d == nullptr)
            check.error(config.default_disposable_where,
                        "default_disposable: unknown compartment '" + config.default_disposable + "'");
        else if (!d->disposable_template)
            check.error(d->where, "default_disposable '" + d->name + "' is not a compartment with disposable_template = true");
    }
}

} // namespace

std::string Diagnostic::format() const
{
    return where.file + ":" + std::to_string(where.line) + ":" + std::to_string(where.column) + ": error: " + message;
}

std::string_view label_name(Label label) { return label_names[static_cast<size_t>(label)]; }

std::optional<Label> parse_label(std::string_view text)
{
    for (size_t i = 0; i < label_names.size(); ++i)
        if (label_names[i] == text)
            return static_cast<Label>(i);
    return std::nullopt;
}

bool valid_name(std::string_view name)
{
    if (name.empty() || name.size() > 32 || name.front() == '-')
        return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; });
}

Compartment const* SystemConfig::find_compartment(std::string_view name) const
{
    auto it = std::find_if(compartments.begin(), compartments.end(), [&](auto const& c) { return c.name == name; });
    return it == compartments.end() ? nullptr : &*it;
}

Template const* SystemConfig::find_template(std::string_view name) const
{
    auto it = std::find_if(templates.begin(), templates.end(), [&](auto const& t) { return t.name == name; });
    return it == templates.end() ? nullptr : &*it;
}

ParseOutcome parse_system_config(std::string_view text, std::string_view file)
{
    Checker check(file);
    ParseOutcome outcome;
    size_t refused_at = 0;
    auto shielded = swap_code_points(text, Direction::ToStandIn, &refused_at);
    if (!shielded) {
        uint32_t line = 1, column = 1;
        for (size_t i = 0; i < refused_at; ++i) {
            if (text[i] == '\n')
                ++line, column = 1;
            else if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80)
                ++column;
        }
        check.error(Position {std::string(file), line, column}, "private-use character not allowed in the configuration");
        outcome.errors = check.take_errors();
        return outcome;
    }
    auto parsed = toml::parse(*shielded, file);
    if (!parsed) {
        auto const& err = parsed.error();
        check.error(check.at(err.source()), std::string(err.description()));
        outcome.errors = check.take_errors();
        return outcome;
    }
    toml::table const& root = parsed.table();
    SystemConfig config;
    check.only_keys(root, {"system", "templates", "volumes", "compartments"}, "the configuration");
    if (auto const* node = root.get("system"))
        parse_system_table(check, *node, config);
    if (auto const* node = root.get("templates"))
        parse_templates(check, *node, config);
    // The host template always exists; a [templates.host] entry may restate it.
    if (config.find_template("host") == nullptr)
        config.templates.insert(config.templates.begin(), Template {"host", TemplateKind::Host, {}, {std::string(file), 0, 0}});
    if (auto const* node = root.get("volumes"))
        parse_volumes(check, *node, config);
    if (auto const* node = root.get("compartments")) {
        if (auto const* table = check.table_at(*node, "[compartments]"))
            for (auto&& [key, value] : *table)
                parse_compartment(check, key, value, config);
    }
    // toml++ keeps tables sorted by key; compartments keep the order of the file.
    auto by_position = [](auto const& a, auto const& b) {
        return std::tie(a.where.line, a.where.column) < std::tie(b.where.line, b.where.column);
    };
    std::stable_sort(config.compartments.begin(), config.compartments.end(), by_position);
    std::stable_sort(config.volumes.begin(), config.volumes.end(), by_position);
    // References are checked even when something else failed: every error in one pass.
    check_references(check, config);
    outcome.errors = check.take_errors();
    std::stable_sort(outcome.errors.begin(), outcome.errors.end(), [](Diagnostic const& a, Diagnostic const& b) {
        return std::tie(a.where.line, a.where.column) < std::tie(b.where.line, b.where.column);
    });
    if (outcome.errors.empty())
        outcome.config = std::move(config);
    return outcome;
}

std::string_view default_system_toml()
{
    return R"(# The embedded default system of bulkhead.
[system]
default_disposable = "untrusted"

[templates.host]
kind = "host"

[compartments.work]
label = "blue"
network = "sys-net"
tags = ["work"]
gui = true

[compartments.personal]
label = "green"
network = "sys-net"
tags = ["personal"]
gui = true

[compartments.untrusted]
label = "red"
disposable_template = true
network = "sys-net"
gui = true

[compartments.vault]
label = "black"
network = "none"
gui = true

[compartments.sys-net]
label = "orange"
provides_network = true
)";
}

} // namespace bulkhead::config

namespace bulkhead::config {

namespace {

// A TOML basic string: quotes, backslashes and control characters escaped.
std::string quoted(std::string_view text)
{
    std::string out = "\"";
    for (unsigned char c : text) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            char buffer[8];
            std::snprintf(buffer, sizeof(buffer), "\\u%04x", c);
            out += buffer;
        } else {
            out += static_cast<char>(c);
        }
    }
    return out + "\"";
}

std::string quoted_list(std::vector<std::string> const& items)
{
    std::string out = "[";
    for (size_t i = 0; i < items.size(); ++i)
        out += (i == 0 ? "" : ", ") + quoted(items[i]);
    return out + "]";
}

std::string key_of(std::string const& name)
{
    return valid_name(name) ? name : quoted(name);
}

} // namespace

std::string format_system_config(SystemConfig const& config, EffectiveDefaults const& defaults)
{
    std::string out = "# the configuration in force, every default filled in\n\n[system]\n";
    out += config.default_disposable.empty() ? "# default_disposable: none\n" : "default_disposable = " + quoted(config.default_disposable) + "\n";
    out += config.display.empty() ? "# display: the daemon's $DISPLAY\n" : "display = " + quoted(config.display) + "\n";
    for (auto const& templ : config.templates) {
        out += "\n[templates." + key_of(templ.name) + "]\nkind = " + quoted(templ.kind == TemplateKind::Host ? "host" : "rootfs") + "\n";
        if (templ.kind == TemplateKind::Rootfs)
            out += "path = " + quoted(templ.path) + "\n";
    }
    for (auto const& volume : config.volumes)
        out += "\n[volumes." + key_of(volume.name) + "]\n";
    for (auto const& c : config.compartments) {
        out += "\n[compartments." + key_of(c.name) + "]\n";
        out += "label = " + quoted(label_name(c.label)) + "\n";
        out += "template = " + quoted(c.template_name) + "\n";
        out += "backend = " + quoted(c.backend == Backend::Vm ? "vm" : "sandbox") + "\n";
        out += "network = " + quoted(c.network) + "\n";
        uint64_t const default_memory = defaults.memory_bytes / (1 << 20) * (1 << 20); // whole MiB
        out += "memory = " + (c.memory_none ? quoted("none") : quoted(format_size(c.memory_bytes != 0 ? c.memory_bytes : default_memory)))
            + (c.memory_bytes == 0 && !c.memory_none ? "   # default: half the RAM\n" : "\n");
        out += "pids = " + (c.pids_none ? quoted("none") : std::to_string(c.pids != 0 ? c.pids : defaults.pids))
            + (c.pids == 0 && !c.pids_none ? "   # default\n" : "\n");
        if (c.cpu_millis != 0) {
            char cpus[32];
            std::snprintf(cpus, sizeof(cpus), "%g", c.cpu_millis / 1000.0);
            out += std::string("cpus = ") + cpus + "\n";
        } else {
            out += "# cpus: no limit\n";
        }
        if (!c.disposable_template)
            out += "disk = " + (c.disk_none ? quoted("none") : quoted(format_size(c.disk_bytes != 0 ? c.disk_bytes : default_disk_bytes)))
                + (c.disk_bytes == 0 && !c.disk_none ? "   # default\n" : "\n");
        out += "tags = " + quoted_list(c.tags) + "\n";
        out += std::string("autostart = ") + (c.autostart ? "true" : "false") + "\n";
        out += std::string("gui = ") + (c.gui ? "true" : "false") + "\n";
        out += std::string("disposable_template = ") + (c.disposable_template ? "true" : "false") + "\n";
        if (c.disposable_template)
            out += "preload = " + std::to_string(c.preload) + "\n";
        out += "max_disposables = " + std::to_string(c.max_disposables) + "\n";
        out += std::string("provides_network = ") + (c.provides_network ? "true" : "false") + "\n";
        if (c.provides_network) {
            out += "uplink = " + quoted(c.uplink) + "\n";
            out += c.dns.empty() ? "# dns: the host's first nameserver\n" : "dns = " + quoted(c.dns) + "\n";
            for (auto const& [client, rules] : c.firewall)
                out += "firewall." + key_of(client) + " = " + quoted_list(rules) + "\n";
        }
        out += "mounts = [";
        for (size_t i = 0; i < c.mounts.size(); ++i) {
            auto const& m = c.mounts[i];
            out += std::string(i == 0 ? "\n" : "") + "  { volume = " + quoted(m.volume) + (m.path.empty() ? "" : ", path = " + quoted(m.path))
                + ", at = " + quoted(m.at) + ", mode = " + quoted(m.mode == MountMode::ReadWrite ? "rw" : "ro") + " },\n";
        }
        out += "]\n";
    }
    return out;
}

} // namespace bulkhead::config
