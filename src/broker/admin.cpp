// The admin API: one JSON object per SOCK_SEQPACKET record, from root on the host (checked with
// SO_PEERCRED on accept). Requests are {"op": ...} with the fields of that op; every reply is
// {"ok": true, ...} or {"ok": false, "error": TEXT, "exit": CODE} with CODE as in DESIGN.md.
// nlohmann-json is used in its non-throwing mode, and every field is type-checked before use.
#include "broker/broker.hpp"

#include "broker/admin_request.hpp"

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

std::vector<std::string> clean_environment(bool root, std::string const& compartment)
{
    return {
        std::string("HOME=") + (root ? "/root" : "/home/user"),
        std::string("USER=") + (root ? "root" : "user"),
        std::string("LOGNAME=") + (root ? "root" : "user"),
        "PATH=/usr/local/bin:/usr/bin:/bin:/run/bulkhead/bin" + std::string(root ? ":/usr/local/sbin:/usr/sbin:/sbin" : ""),
        "LANG=C.UTF-8",
        "BULKHEAD_COMPARTMENT=" + compartment,
    };
}

void Broker::reply_error(int client, std::string const& message, int exit_code)
{
    json object = {{"ok", false}, {"error", message}, {"exit", exit_code}};
    reply(client, object.dump(-1, ' ', false, json::error_handler_t::replace));
}

void Broker::handle_admin(int client, std::vector<uint8_t> const& bytes, std::vector<sys::UniqueFd> fds)
{
    auto decoded = decode_admin_request(bytes, fds.size());
    if (decoded.is_error())
        return reply_error(client, decoded.error().message(), 2);
    AdminRequest& request = decoded.value();
    auto const& op = request.op;
    if (op == "ls")
        return admin_ls(client);
    if (op == "net")
        return reply(client, json {{"ok", true}, {"clients", network_report()}}.dump());
    if (op == "plan" || op == "apply")
        return admin_apply(client, op, request.config, request.file, request.policy_dir);
    if (op == "policy_check")
        return admin_policy_check(client, request.source, request.target, request.service, request.arg, request.explain);
    if (op == "pending")
        return admin_pending(client);
    if (op == "approve" || op == "deny")
        return admin_answer(client, op == "approve", request.id, request.target);
    if (op == "audit")
        return admin_audit(client, request.after, request.limit);
    if (op == "audit_verify")
        return admin_audit_verify(client);
    if (op == "rollback")
        return admin_rollback(client);
    if (op == "stop_all")
        return admin_stop_all(client);
    if (op == "start" || op == "stop" || op == "restart")
        return admin_lifecycle(client, op, request.name);
    if (op == "generations")
        return admin_generations(client);
    if (op == "config_show") {
        config::EffectiveDefaults defaults;
        defaults.memory_bytes = host_memory_bytes() / 2;
        defaults.pids = default_pids;
        return reply(client, json {{"ok", true}, {"generation", m_generation}, {"text", config::format_system_config(m_config, defaults)}}
                                 .dump(-1, ' ', false, json::error_handler_t::replace));
    }
    if (op == "grant")
        return admin_grant(client, request.name, request.volume, request.at, request.mode != "rw");
    if (op == "revoke")
        return admin_revoke(client, request.name, request.volume);
    if (op == "show")
        return admin_show(client, request.name);
    // run: what decode_admin_request leaves
    admin_run(client, request.name, request.templ, request.disposable, std::move(request.argv), request.user, request.tty,
              request.rows, request.cols, request.term, std::move(fds), request.copy);
}

void Broker::admin_generations(int client)
{
    auto generations = m_db->generations();
    if (generations.is_error())
        return reply_error(client, "reading the generations: " + generations.error().message(), 125);
    json list = json::array();
    for (auto const& generation : generations.value())
        list.push_back({{"id", generation.id}, {"applied_at", generation.applied_at}, {"source", generation.source},
            {"current", generation.id == m_generation}});
    reply(client, json {{"ok", true}, {"generations", list}}.dump(-1, ' ', false, json::error_handler_t::replace));
}

void Broker::admin_ls(int client)
{
    // One pass over /proc for every compartment's CPU time, not one per compartment.
    auto const processes = processes_by_pid_namespace();
    json list = json::array();
    auto describe = [&](config::Compartment const& settings, std::string const& name, Live const* live) {
        json entry;
        entry["name"] = name;
        entry["label"] = std::string(config::label_name(settings.label));
        entry["backend"] = settings.backend == config::Backend::Vm ? "vm" : "sandbox";
        entry["state"] = live ? (live->agent_ready ? "running" : "starting") : "stopped";
        entry["network"] = settings.network;
        entry["mounts"] = mounts_of(settings, live);
        entry["tags"] = settings.tags;
        entry["root_template"] = settings.template_name;
        if (live && live->sandbox) {
            auto ns = pid_namespace_of(live->sandbox->pid());
            auto found = ns ? processes.find(*ns) : processes.end();
            entry["cpu_seconds"] = found == processes.end() ? 0.0 : cpu_seconds_of(found->second);
        }
        entry["network_state"] = network_state(live, settings);
        // The desktop: "no" (gui = false), "off" (stopped), or its state while it runs (gui.cpp).
        entry["gui"] = !settings.gui ? "no" : live ? live->gui.state : "off";
        if (live && !live->net_address.empty())
            entry["address"] = live->net_address;
        auto limits = limits_of(settings);
        entry["memory_limit"] = limits.memory_bytes; // 0: none
        entry["pids_limit"] = limits.pids;
        entry["memory_bytes"] = nullptr;
        if (live && live->sandbox) {
            auto events = live->sandbox->cgroup().limit_events();
            entry["oom_kills"] = events.oom_kills;
            entry["pids_refused"] = events.pids_refused;
        }
        if (live && live->sandbox) {
            entry["pid"] = live->sandbox->pid();
            if (auto used = live->sandbox->cgroup().memory_current(); used.has_value())
                entry["memory_bytes"] = used.value();
        }
        entry["disposable"] = live ? live->disposable : false;
        if (live && live->disposable) {
            entry["template"] = live->template_name;
            entry["preloaded"] = live->pooled;
            entry["owner"] = live->owner; // "" while pooled
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
    json draining = json::array();
    for (auto const& entry : m_draining)
        draining.push_back(entry.name);
    json object = {{"ok", true}, {"generation", m_generation}, {"compartments", list}, {"draining", draining}};
    reply(client, object.dump(-1, ' ', false, json::error_handler_t::replace));
}

void Broker::admin_apply(int client, std::string const& op, std::string const& text, std::string const& file, std::string const& policy_dir_in)
{
    // The policy comes from policy.d beside the configuration (or the embedded default policy);
    // an invalid policy refuses the whole apply, like an invalid configuration.
    std::string policy_dir = policy_dir_in;
    if (policy_dir.empty() && text.empty() && file.empty())
        policy_dir = policy_dir_for(m_default_config_path);
    if (!policy_dir.empty() && ::access(policy_dir.c_str(), F_OK) != 0)
        policy_dir.clear();
    auto new_policy = read_policy(policy_dir);
    if (new_policy.is_error())
        return reply_error(client, new_policy.error().message() + "\nnothing applied: the policy is invalid", 2);
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
    auto result = apply_config(config_text, source, op == "plan", std::nullopt, exit_code, new_policy.value().snapshot);
    if (result.is_error())
        return reply_error(client, result.error().message(), exit_code);
    auto changes = result.release_value();
    std::string const policy_line = "policy: " + std::to_string(new_policy.value().policy.rules.size()) + " rules from "
        + (policy_dir.empty() ? std::string("the embedded default policy") : policy_dir);
    changes.push_back(policy_line);
    if (op == "apply") {
        (void)use_policy(new_policy.release_value()); // `changes` says it already
        for (auto const& line : changes)
            log("apply: " + line);
        (void)record({.kind = "admin", .caller = "@host", .service = "apply", .verdict = "ok",
            .detail = "generation " + std::to_string(m_generation) + " from " + source});
    }
    reply(client, lines_json(changes, "changes", {{"generation", m_generation}}));
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
    // The policy applied with that generation comes back with it (checked before anything changes).
    std::optional<LoadedPolicy> old_policy;
    if (!generation.policy.empty()) {
        auto stored = policy_from_snapshot(generation.policy);
        if (stored.is_error())
            return reply_error(client, "the policy of generation " + std::to_string(generation.id) + ": " + stored.error().message()
                + "\nnothing was rolled back", 125);
        old_policy = stored.release_value();
    }
    auto result = apply_config(generation.config, generation.source, false, generation.id, exit_code);
    if (result.is_error())
        return reply_error(client, result.error().message(), exit_code);
    if (old_policy) {
        result.value().push_back("policy: " + use_policy(std::move(*old_policy), generation.id));
    } else {
        result.value().push_back("policy: unchanged (generation " + std::to_string(generation.id) + " was applied before policies were kept with generations)");
    }
    (void)record({.kind = "admin", .caller = "@host", .service = "rollback", .verdict = "ok", .detail = "generation " + std::to_string(m_generation)});
    reply(client, lines_json(result.value(), "changes", {{"generation", m_generation}}));
}

// `stop --all`: every running compartment; pools stay empty until used or until the next apply.
void Broker::admin_stop_all(int client)
{
    std::vector<std::string> names;
    for (auto const& [running, live] : m_live) {
        names.push_back(running);
        if (live.disposable)
            m_pools_paused.insert(live.template_name);
    }
    for (auto const& running : names)
        stop_compartment(running, "stopped by the administrator (stop --all)");
    (void)record({.kind = "admin", .caller = "@host", .target = "@all", .service = "stop", .verdict = "ok",
        .detail = std::to_string(names.size()) + " stopped"});
    reply(client, json {{"ok", true}, {"stopped", names}}.dump());
}

void Broker::admin_lifecycle(int client, std::string const& op, std::string const& name)
{
    auto live = m_live.find(name);
    bool configured = m_config.find_compartment(name) != nullptr;
    if (!configured && live == m_live.end())
        return reply_error(client, "no compartment named '" + name + "'", 2);
    if (op == "stop" || op == "restart") {
        if (live == m_live.end() && op == "stop")
            return reply(client, json {{"ok", true}, {"stopped", json::array()}}.dump()); // already stopped: nothing to do
        if (op == "stop" && live->second.pooled)
            m_pools_paused.insert(live->second.template_name); // not refilled behind the administrator's back
        stop_compartment(name, op == "stop" ? "stopped by the administrator" : "restarted by the administrator");
        if (op == "stop") {
            (void)record({.kind = "admin", .caller = "@host", .target = name, .service = op, .verdict = "ok"});
            return reply(client, json {{"ok", true}, {"stopped", {name}}}.dump());
        }
    } else if (live != m_live.end()) {
        return reply(client, json {{"ok", true}, {"already_running", true}}.dump()); // start of a running one: nothing to do
    }
    if (!configured)
        return reply_error(client, name + " is a disposable and cannot be started again", 2);
    auto started = start_persistent(name);
    if (started.is_error())
        return reply_error(client, "starting " + name + ": " + started.error().message(), 125);
    (void)record({.kind = "admin", .caller = "@host", .target = name, .service = op, .verdict = "ok"});
    reply(client, R"({"ok":true})");
}

void Broker::admin_run(int client, std::string const& name, std::string const& disposable_template, bool disposable,
    std::vector<std::string> argv, std::string const& user, bool tty, uint32_t rows, uint32_t cols, std::string const& term,
    std::vector<sys::UniqueFd> fds, std::string const& copy)
{
    if (user != "user" && user != "root")
        return reply_error(client, "unknown user '" + user + "': a compartment has 'user' and 'root'", 2);
    bool const copy_in = copy == "in";
    if (!copy.empty()) {
        // `bulkhead copy` between the host and NAME: the administrator typing it is the consent an
        // `ask` rule waits for (recorded as "approved"); a `deny` still refuses.
        if (disposable || tty || user != "user" || name.empty())
            return reply_error(client, "malformed request: a copy runs as the user of a named compartment, without a terminal", 2);
        if (!copy_in && argv.empty())
            return reply_error(client, "malformed request: a copy out names the files", 2);
        if (m_config.find_compartment(name) == nullptr && !m_live.contains(name))
            return reply_error(client, "no compartment named '" + name + "'", 2);
        policy::Request request;
        request.service = "bulkhead.Filecopy";
        if (copy_in) {
            request.source.host = true;
            request.target = party_of(name);
        } else {
            request.source = party_of(name);
            request.target_kind = policy::TargetKind::Host;
            request.target.host = true;
        }
        auto decision = policy::evaluate(m_policy, request);
        std::string const rule = policy::decision_where(m_policy, decision);
        bool const denied = decision.action == policy::Action::Deny;
        std::string const verdict = denied ? "deny" : decision.action == policy::Action::Ask ? "approved" : "allow";
        if (!record({.kind = "call", .caller = copy_in ? "@host" : name, .target = copy_in ? name : "@host",
                .service = "bulkhead.Filecopy", .verdict = verdict, .rule = rule,
                .detail = std::string(copy_in ? "bulkhead copy into " : "bulkhead copy out of ") + name
                    + (verdict == "approved" ? ", the administrator's copy as consent" : "")}))
            return reply_error(client, "the audit log cannot be written: the copy is refused", 125);
        if (denied)
            return reply_error(client, "denied by policy (" + rule + ")", 126);
        if (copy_in) {
            argv = {"/run/bulkhead/bin/bulkhead-service", "bulkhead.Filecopy", ""};
        } else {
            argv.insert(argv.begin(), {"/run/bulkhead/bin/bulkhead-copy", "--stdout"});
        }
    }
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
        auto taken = take_disposable(templ, "@host");
        if (taken.is_error())
            return reply_error(client, "starting a disposable of " + templ + ": " + taken.error().message(), 125);
        live = taken.value();
    } else {
        auto found = m_live.find(name);
        if (found != m_live.end()) {
            // A disposable is its owner's alone: one made for a compartment (or still in the pool)
            // takes no command from the administrator either; `stop` ends it.
            if (!reachable_by(found->second, "@host")) {
                std::string whose = found->second.owner.empty() ? "is in the pool of " + found->second.template_name + " (not taken yet)"
                                                                : "was made for " + found->second.owner;
                return reply_error(client, name + " " + whose + ": it runs nothing else (bulkhead stop " + name + " ends it)", 2);
            }
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
    exec.env = environment_of(*live, root);
    if (copy_in)
        exec.env.insert(exec.env.end(), {"BULKHEAD_SOURCE=host", "BULKHEAD_SERVICE=bulkhead.Filecopy", "BULKHEAD_ARG="});
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
    if (disposable)
        set_main_run(*live, exec.id);
    send_pending(*live);
}

// ---- policy, pending calls, audit ----

void Broker::admin_policy_check(int client, std::string const& source, std::string const& target, std::string const& service,
    std::string const& arg, bool explain)
{
    policy::Request request;
    request.service = service;
    request.arg = arg;
    if (source == "@host" || source == "@adminvm")
        request.source.host = true;
    else
        request.source = party_of(source);
    std::string templ;
    if (target.empty() || target == "@default") {
        request.target_kind = policy::TargetKind::Default;
    } else if (target.starts_with("@disposable") || target.starts_with("@dispvm")) {
        request.target_kind = policy::TargetKind::NewDisposable;
        auto colon = target.find(':');
        request.disposable_template = colon == std::string::npos ? m_config.default_disposable : target.substr(colon + 1);
    } else if (target == "@host" || target == "@adminvm") {
        request.target_kind = policy::TargetKind::Host;
        request.target.host = true;
    } else {
        request.target = party_of(target);
    }
    std::vector<policy::Step> steps;
    auto decision = explain ? policy::explain(m_policy, request, steps) : policy::evaluate(m_policy, request);
    json lines = json::array();
    for (auto const& step : steps) {
        auto const& rule = m_policy.rules[step.rule];
        lines.push_back(rule.where.file_line() + ": " + (step.matched ? "matches: " : "no: ") + step.why);
    }
    json object = {{"ok", true}, {"action", std::string(policy::action_name(decision.action))},
        {"rule", policy::decision_where(m_policy, decision)}, {"policy", m_policy_source}, {"steps", lines}};
    if (decision.params.target)
        object["target"] = *decision.params.target;
    // FILE:LINE names the rule as applied: say so when the files have changed since.
    if (!m_policy_dir.empty()) {
        auto on_disk = read_policy(m_policy_dir);
        if (on_disk.is_error() || on_disk.value().snapshot != m_policy_snapshot)
            object["differs"] = "the policy files in " + m_policy_dir + " differ from the policy in force"
                + (on_disk.is_error() ? " (they do not parse: " + on_disk.error().message() + ")" : "")
                + "; this answer is the policy in force, FILE:LINE as it was applied (bulkhead apply to use the files)";
    }
    reply(client, object.dump(-1, ' ', false, json::error_handler_t::replace));
}

void Broker::admin_pending(int client)
{
    int64_t now = sys::monotonic_ms();
    json list = json::array();
    for (auto const& [id, ask] : m_asks) {
        list.push_back({{"id", id}, {"caller", ask.source}, {"target", ask.call.target.empty() ? "@default" : ask.call.target},
            {"service", ask.call.service}, {"arg", ask.call.arg}, {"age_ms", now - ask.asked_at_ms},
            {"expires_in_ms", std::max<int64_t>(0, ask.deadline_ms - now)}, {"rule", ask.rule},
            {"default_target", ask.decision.params.default_target.value_or("")}});
    }
    json object = {{"ok", true}, {"pending", list}};
    reply(client, object.dump(-1, ' ', false, json::error_handler_t::replace));
}

void Broker::admin_answer(int client, bool approve, uint64_t id, std::string const& target_in)
{
    auto found = m_asks.find(id);
    if (found == m_asks.end())
        return reply_error(client, "no pending request " + std::to_string(id), 2);
    PendingAsk& ask = found->second;
    std::string target = target_in.empty() ? ask.decision.params.default_target.value_or("") : target_in;
    audit::Record entry {.kind = "ask", .caller = ask.source, .target = ask.call.target.empty() ? "@default" : ask.call.target,
        .service = ask.call.service, .arg = ask.call.arg, .verdict = approve ? "approved" : "denied", .rule = ask.rule};
    policy::Params params = ask.decision.params;
    policy::Request request = ask.request;
    bool const paste = ask.call.service == "bulkhead.Clipboard";
    if (approve && paste && ask.clipboard_serial != m_clipboard.serial) {
        // The administrator was asked about other content (or another source): that is not
        // what would be pasted now.
        PendingAsk taken = std::move(ask);
        m_asks.erase(found);
        entry.verdict = "denied";
        entry.detail = "the clipboard changed after the request was made";
        (void)record(entry);
        refuse_call(taken.caller, 126, "denied: the clipboard changed after the request was made");
        return reply_error(client, "request " + std::to_string(id) + " was refused: the clipboard changed after "
            + taken.source + "'s content was asked about", 126);
    }
    if (approve && paste && !target.empty() && target != ask.call.target)
        return reply_error(client, "a paste goes to the compartment that pastes; --target does not apply", 2);
    if (approve && !target.empty() && target != ask.call.target) {
        // The administrator may send the call elsewhere, but not where the policy denies it; it
        // then runs with the parameters of the rule that allows it there.
        policy::Request redirected = ask.request;
        std::string templ;
        if (target.starts_with("@disposable") || target.starts_with("@dispvm")) {
            redirected.target_kind = policy::TargetKind::NewDisposable;
            auto colon = target.find(':');
            redirected.disposable_template = colon == std::string::npos ? m_config.default_disposable : target.substr(colon + 1);
            redirected.target = {};
            auto const* settings = m_config.find_compartment(redirected.disposable_template);
            if (settings == nullptr || !settings->disposable_template)
                return reply_error(client, "'" + redirected.disposable_template + "' is not a disposable template", 2);
        } else if (m_config.find_compartment(target) || m_live.contains(target)) {
            redirected.target_kind = policy::TargetKind::Compartment;
            redirected.target = party_of(target);
            if (auto live = m_live.find(target); live != m_live.end() && !reachable_by(live->second, ask.source))
                return reply_error(client, target + " is a disposable not made for " + ask.source, 126);
        } else {
            return reply_error(client, "no compartment named '" + target + "'", 2);
        }
        auto decision = policy::evaluate(m_policy, redirected);
        if (decision.action == policy::Action::Deny)
            return reply_error(client, "the policy denies " + ask.source + " -> " + target + " (" + policy::decision_where(m_policy, decision) + ")", 126);
        params = decision.params;
        params.target.reset(); // the administrator's choice of target stands
        request = redirected;
        entry.detail = "target " + target + " (" + policy::decision_where(m_policy, decision) + ")";
    }
    PendingAsk taken = std::move(ask);
    m_asks.erase(found);
    bool recorded = record(entry);
    recorded = record({.kind = "admin", .caller = "@host", .target = taken.source, .service = approve ? "approve" : "deny",
                   .arg = std::to_string(id), .verdict = "ok", .detail = entry.detail})
        && recorded;
    if (!approve) {
        refuse_call(taken.caller, 126, "denied by the administrator");
        return reply(client, R"({"ok":true})");
    }
    if (!recorded) {
        refuse_call(taken.caller, 125, "refused: the broker cannot record the call in its audit log");
        return reply_error(client, "the audit log cannot be written: request " + std::to_string(id) + " was refused", 125);
    }
    run_call(taken.caller, taken.source, taken.call, request, params, target);
    reply(client, R"({"ok":true})");
}

} // namespace bulkhead::broker
