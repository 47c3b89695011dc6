// The admin API: one JSON object per SOCK_SEQPACKET record, from root on the host (checked with
// SO_PEERCRED on accept). Requests are {"op": ...} with the fields of that op; every reply is
// {"ok": true, ...} or {"ok": false, "error": TEXT, "exit": CODE} with CODE as in DESIGN.md.
// nlohmann-json is used in its non-throwing mode, and every field is type-checked before use.
#include "broker/broker.hpp"

#include "base/parse.hpp"
#include "base/wire.hpp"
#include "sys/socket.hpp"
#include "sys/syscalls.hpp"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

namespace bulkhead::broker {

namespace {

using nlohmann::json;

// Reads typed fields; the first wrong one is remembered.
class Fields {
public:
    explicit Fields(json const& object) : m_object(object) {}

    std::string string(char const* key, bool required = false)
    {
        auto found = m_object.find(key);
        if (found == m_object.end()) {
            if (required)
                fail(std::string("missing field '") + key + "'");
            return {};
        }
        if (!found->is_string()) {
            fail(std::string("field '") + key + "' must be a string");
            return {};
        }
        return found->get_ref<std::string const&>();
    }
    bool boolean(char const* key)
    {
        auto found = m_object.find(key);
        if (found == m_object.end())
            return false;
        if (!found->is_boolean()) {
            fail(std::string("field '") + key + "' must be true or false");
            return false;
        }
        return found->get<bool>();
    }
    uint32_t number(char const* key, uint32_t max)
    {
        auto found = m_object.find(key);
        if (found == m_object.end())
            return 0;
        if (!found->is_number_unsigned() || found->get<uint64_t>() > max) {
            fail(std::string("field '") + key + "' must be a number up to " + std::to_string(max));
            return 0;
        }
        return static_cast<uint32_t>(found->get<uint64_t>());
    }
    std::vector<std::string> strings(char const* key)
    {
        std::vector<std::string> out;
        auto found = m_object.find(key);
        if (found == m_object.end())
            return out;
        if (!found->is_array() || found->size() > wire::max_list_items) {
            fail(std::string("field '") + key + "' must be a list of strings");
            return out;
        }
        for (auto const& item : *found) {
            if (!item.is_string() || item.get_ref<std::string const&>().find('\0') != std::string::npos) {
                fail(std::string("field '") + key + "' must be a list of strings without NUL");
                return {};
            }
            out.push_back(item.get<std::string>());
        }
        return out;
    }
    bool has(char const* key) const { return m_object.contains(key); }
    std::string const& error() const { return m_error; }

private:
    void fail(std::string message)
    {
        if (m_error.empty())
            m_error = std::move(message);
    }
    json const& m_object;
    std::string m_error;
};

std::string lines_json(std::vector<std::string> const& lines, std::string const& key, json extra = json::object())
{
    extra["ok"] = true;
    extra[key] = lines;
    return extra.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool valid_term(std::string const& term)
{
    if (term.empty() || term.size() > 64)
        return false;
    return std::all_of(term.begin(), term.end(), [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '+' || c == '_'; });
}

} // namespace

void Broker::reply_error(int client, std::string const& message, int exit_code)
{
    json object = {{"ok", false}, {"error", message}, {"exit", exit_code}};
    reply(client, object.dump(-1, ' ', false, json::error_handler_t::replace));
}

void Broker::handle_admin(int client, std::vector<uint8_t> const& bytes, std::vector<sys::UniqueFd> fds)
{
    json request = json::parse(bytes.begin(), bytes.end(), nullptr, false);
    if (request.is_discarded() || !request.is_object())
        return reply_error(client, "malformed request: not a JSON object", 2);
    Fields fields(request);
    std::string op = fields.string("op", true);
    if (!fields.error().empty())
        return reply_error(client, "malformed request: " + fields.error(), 2);
    if (op != "run" && !fds.empty())
        return reply_error(client, "malformed request: descriptors beside '" + op + "'", 2);

    if (op == "ls")
        return admin_ls(client);
    if (op == "plan" || op == "apply") {
        std::string text = fields.string("config");
        std::string file = fields.string("file");
        if (!fields.error().empty())
            return reply_error(client, "malformed request: " + fields.error(), 2);
        return admin_apply(client, op, text, file);
    }
    if (op == "rollback")
        return admin_rollback(client);
    if (op == "start" || op == "stop" || op == "restart") {
        std::string name = fields.string("name", true);
        if (!fields.error().empty())
            return reply_error(client, "malformed request: " + fields.error(), 2);
        return admin_lifecycle(client, op, name);
    }
    if (op == "run") {
        std::string name = fields.string("name");
        std::string templ = fields.string("template");
        bool disposable = fields.boolean("disposable");
        auto argv = fields.strings("argv");
        std::string user = fields.has("user") ? fields.string("user") : "user";
        bool tty = fields.boolean("tty");
        uint32_t rows = fields.number("rows", 0xffff);
        uint32_t cols = fields.number("cols", 0xffff);
        std::string term = fields.string("term");
        if (!fields.error().empty())
            return reply_error(client, "malformed request: " + fields.error(), 2);
        return admin_run(client, name, templ, disposable, std::move(argv), user, tty, rows, cols, term, std::move(fds));
    }
    reply_error(client, "unknown request '" + op + "'", 2);
}

void Broker::admin_ls(int client)
{
    json list = json::array();
    auto describe = [&](config::Compartment const& settings, std::string const& name, Live const* live) {
        json entry;
        entry["name"] = name;
        entry["label"] = std::string(config::label_name(settings.label));
        entry["backend"] = settings.backend == config::Backend::Vm ? "vm" : "sandbox";
        entry["state"] = live ? (live->agent_ready ? "running" : "starting") : "stopped";
        entry["network"] = settings.network;
        entry["memory_limit"] = settings.memory_bytes;
        entry["memory_bytes"] = nullptr;
        if (live && live->sandbox) {
            entry["pid"] = live->sandbox->pid();
            if (auto used = live->sandbox->cgroup().memory_current(); used.has_value())
                entry["memory_bytes"] = used.value();
        }
        entry["disposable"] = live ? live->disposable : false;
        if (live && live->disposable) {
            entry["template"] = live->template_name;
            entry["preloaded"] = live->pooled;
        }
        list.push_back(entry);
    };
    for (auto const& settings : m_config.compartments) {
        auto live = m_live.find(settings.name);
        describe(settings, settings.name, live == m_live.end() || live->second.disposable ? nullptr : &live->second);
    }
    for (auto const& [name, live] : m_live) {
        if (live.disposable)
            describe(live.settings.name.empty() ? config::Compartment() : live.settings, name, &live);
        else if (m_config.find_compartment(name) == nullptr)
            describe(live.settings, name, &live); // from an older generation, still running
    }
    json object = {{"ok", true}, {"generation", m_generation}, {"compartments", list}};
    reply(client, object.dump(-1, ' ', false, json::error_handler_t::replace));
}

void Broker::admin_apply(int client, std::string const& op, std::string const& text, std::string const& file)
{
    std::string source = file;
    std::string config_text = text;
    if (config_text.empty() && file.empty()) {
        if (!m_default_config_path.empty()) {
            auto read = sys::read_file(m_default_config_path, 256 * 1024);
            if (read.is_error())
                return reply_error(client, read.error().message(), 125);
            config_text = read.release_value();
            source = m_default_config_path;
        } else {
            config_text = std::string(config::default_system_toml());
            source = "embedded default";
        }
    }
    if (source.empty())
        source = "system.toml";
    int exit_code = 0;
    auto result = apply_config(config_text, source, op == "plan", std::nullopt, exit_code);
    if (result.is_error())
        return reply_error(client, result.error().message(), exit_code);
    if (op == "apply")
        for (auto const& line : result.value())
            log("apply: " + line);
    reply(client, lines_json(result.value(), "changes", {{"generation", m_generation}}));
}

void Broker::admin_rollback(int client)
{
    auto previous = m_db->generation_before(m_generation);
    if (previous.is_error())
        return reply_error(client, previous.error().message(), 125);
    if (!previous.value())
        return reply_error(client, "there is no generation before " + std::to_string(m_generation) + " to return to", 2);
    int exit_code = 0;
    auto const& generation = *previous.value();
    auto result = apply_config(generation.config, generation.source, false, generation.id, exit_code);
    if (result.is_error())
        return reply_error(client, result.error().message(), exit_code);
    reply(client, lines_json(result.value(), "changes", {{"generation", m_generation}}));
}

void Broker::admin_lifecycle(int client, std::string const& op, std::string const& name)
{
    auto live = m_live.find(name);
    bool configured = m_config.find_compartment(name) != nullptr;
    if (!configured && live == m_live.end())
        return reply_error(client, "no compartment named '" + name + "'", 2);
    if (op == "stop" || op == "restart") {
        if (live == m_live.end() && op == "stop")
            return reply_error(client, name + " is not running", 2);
        stop_compartment(name, op == "stop" ? "stopped by the administrator" : "restarted by the administrator");
        if (op == "stop")
            return reply(client, R"({"ok":true})");
    } else if (live != m_live.end()) {
        return reply_error(client, name + " is already running", 2);
    }
    if (!configured)
        return reply_error(client, name + " is a disposable and cannot be started again", 2);
    auto started = start_persistent(name);
    if (started.is_error())
        return reply_error(client, "starting " + name + ": " + started.error().message(), 125);
    reply(client, R"({"ok":true})");
}

void Broker::admin_run(int client, std::string const& name, std::string const& disposable_template, bool disposable,
    std::vector<std::string> argv, std::string const& user, bool tty, uint32_t rows, uint32_t cols, std::string const& term,
    std::vector<sys::UniqueFd> fds)
{
    if (user != "user" && user != "root")
        return reply_error(client, "unknown user '" + user + "': a compartment has 'user' and 'root'", 2);
    if (fds.size() != (tty ? 1U : 4U))
        return reply_error(client, "malformed request: a run carries " + std::to_string(tty ? 1 : 4) + " descriptors", 2);
    Live* live = nullptr;
    if (disposable) {
        std::string templ = disposable_template.empty() ? m_config.default_disposable : disposable_template;
        if (templ.empty())
            return reply_error(client, "no default disposable is configured: name a template", 2);
        auto const* settings = m_config.find_compartment(templ);
        if (settings == nullptr || !settings->disposable_template)
            return reply_error(client, "'" + templ + "' is not a disposable template", 2);
        for (auto& [live_name, candidate] : m_live) {
            if (candidate.pooled && candidate.template_name == templ && (live == nullptr || candidate.agent_ready))
                live = &candidate;
        }
        if (live == nullptr) {
            auto made = make_disposable(templ, false);
            if (made.is_error())
                return reply_error(client, "starting a disposable of " + templ + ": " + made.error().message(), 125);
            live = made.value();
        }
        live->pooled = false;
        live->used = true;
    } else {
        auto found = m_live.find(name);
        if (found != m_live.end()) {
            live = &found->second;
        } else {
            if (m_config.find_compartment(name) == nullptr)
                return reply_error(client, "no compartment named '" + name + "'", 2);
            auto started = start_persistent(name);
            if (started.is_error())
                return reply_error(client, "starting " + name + ": " + started.error().message(), 125);
            live = started.value();
        }
    }
    wire::Exec exec;
    exec.id = m_next_run_id++;
    exec.run_as = user == "root" ? wire::RunAs::Root : wire::RunAs::User;
    exec.tty = tty;
    exec.rows = rows;
    exec.cols = cols;
    exec.argv = std::move(argv);
    // A clean environment: nothing of the caller's crosses (DESIGN.md, CLI).
    bool root = exec.run_as == wire::RunAs::Root;
    exec.env = {
        std::string("HOME=") + (root ? "/root" : "/home/user"),
        std::string("USER=") + (root ? "root" : "user"),
        std::string("LOGNAME=") + (root ? "root" : "user"),
        "PATH=/usr/local/bin:/usr/bin:/bin" + std::string(root ? ":/usr/local/sbin:/usr/sbin:/sbin" : ""),
        "LANG=C.UTF-8",
        "BULKHEAD_COMPARTMENT=" + live->name,
    };
    if (tty)
        exec.env.push_back("TERM=" + (valid_term(term) ? term : std::string("xterm")));
    auto encoded = wire::encode(wire::BrokerMessage(exec));
    if (encoded.size() > wire::max_broker_record)
        return reply_error(client, "the command and its arguments are too long", 2);
    PendingRun run;
    run.id = exec.id;
    run.client = client;
    run.tty = tty;
    run.exec_record = std::move(encoded);
    run.fds = std::move(fds);
    live->runs.emplace(exec.id, std::move(run));
    live->waiting.push_back(exec.id);
    m_client_runs[client].insert({live->name, exec.id});
    send_pending(*live);
}

} // namespace bulkhead::broker
