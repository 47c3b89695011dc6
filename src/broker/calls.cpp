// The call router: the one place where anything crosses between compartments.
//
// A process inside compartment SOURCE connects to /run/bulkhead/agent.sock (its compartment's own
// socket, so the socket is the caller's identity) and sends one wire::Call. The broker decides with
// the policy (default deny), records the decision in the audit log, starts the target if needed,
// asks the target's agent to run the service with one end of a fresh socketpair as its stdin and
// stdout, and hands the other end to the caller: the data then flows between the two compartments
// through the kernel, never through the broker. An `ask` rule parks the call until the
// administrator answers (`bulkhead approve|deny`) or the time runs out (deny).
//
// Floods are bounded per compartment: at most max_callers_per_compartment open caller connections
// (further connections wait in the kernel's backlog, the listener is paused) and a token bucket of
// calls per second, so that one compartment cannot starve the others or grow the broker. The
// bucket refills at calls_per_second_per_cpu for each CPU the broker may run on: a call costs a
// few process starts (the caller's command, the service), so a machine serves roughly 40 calls per
// second per CPU; one compartment gets at most half of that, past its burst.
#include "broker/broker.hpp"

#include "sys/socket.hpp"
#include "sys/syscalls.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

namespace bulkhead::broker {

namespace {

using sys::UniqueFd;

constexpr uint32_t max_callers_per_compartment = 32;
constexpr size_t max_clipboard_bytes = 1 << 20;
constexpr char const* clipboard_service = "bulkhead.Clipboard";
constexpr size_t max_asks_per_compartment = 16;
constexpr double call_burst = 200;
constexpr double calls_per_second_per_cpu = 20;
// Where a service's executable is looked for inside the target, first to last (DESIGN.md).
constexpr char const* service_runner = "/run/bulkhead/bin/bulkhead-service";

policy::TargetKind target_kind_of(std::string const& target, std::string& templ)
{
    if (target.empty() || target == "@default")
        return policy::TargetKind::Default;
    for (auto const* prefix : {"@disposable", "@dispvm"}) {
        std::string_view text = target;
        if (!text.starts_with(prefix))
            continue;
        text.remove_prefix(std::string_view(prefix).size());
        if (text.empty())
            return policy::TargetKind::NewDisposable;
        if (text.front() == ':') {
            templ = std::string(text.substr(1));
            return policy::TargetKind::NewDisposable;
        }
    }
    if (target == "@host" || target == "@adminvm")
        return policy::TargetKind::Host;
    return policy::TargetKind::Compartment;
}

} // namespace

// ---- policy ----

Result<Broker::LoadedPolicy> Broker::read_policy(std::string const& policy_dir) const
{
    using nlohmann::json;
    if (policy_dir.empty())
        return LoadedPolicy {TRY(policy::parse(policy::default_policy_text(), "embedded default policy", {})), json {{"dir", ""}}.dump(), ""};
    json files = json::object(), dirs = json::object();
    policy::Reader reader;
    reader.read_file = [&files](std::string const& path) -> Result<std::string> {
        auto text = TRY(sys::read_file(path, 16 << 20));
        files[path] = text;
        return text;
    };
    reader.list_dir = [&dirs](std::string const& dir) -> Result<std::vector<std::string>> {
        auto names = TRY(sys::list_directory(dir));
        dirs[dir] = names;
        return names;
    };
    auto parsed = TRY(policy::parse_dir(policy_dir, reader));
    json snapshot {{"dir", policy_dir}, {"files", files}, {"dirs", dirs}};
    return LoadedPolicy {std::move(parsed), snapshot.dump(-1, ' ', false, json::error_handler_t::replace), policy_dir};
}

Result<Broker::LoadedPolicy> Broker::policy_from_snapshot(std::string const& snapshot) const
{
    using nlohmann::json;
    json stored = json::parse(snapshot, nullptr, false);
    if (stored.is_discarded() || !stored.is_object() || !stored.contains("dir") || !stored["dir"].is_string())
        return Error::from_message("the stored policy is damaged");
    std::string dir = stored["dir"].get<std::string>();
    if (dir.empty())
        return read_policy({});
    json const files = stored.value("files", json::object()), dirs = stored.value("dirs", json::object());
    policy::Reader reader;
    reader.read_file = [&files](std::string const& path) -> Result<std::string> {
        auto found = files.find(path);
        if (found == files.end() || !found->is_string())
            return Error::from_syscall("open", path, ENOENT);
        return found->get<std::string>();
    };
    reader.list_dir = [&dirs](std::string const& path) -> Result<std::vector<std::string>> {
        auto found = dirs.find(path);
        if (found == dirs.end() || !found->is_array())
            return Error::from_syscall("opendir", path, ENOENT);
        std::vector<std::string> names;
        for (auto const& name : *found)
            if (name.is_string())
                names.push_back(name.get<std::string>());
        return names;
    };
    return LoadedPolicy {TRY(policy::parse_dir(dir, reader)), snapshot, dir};
}

std::string Broker::use_policy(LoadedPolicy loaded, std::optional<int64_t> generation)
{
    m_policy = std::move(loaded.policy);
    m_policy_dir = loaded.dir;
    m_policy_snapshot = loaded.snapshot;
    m_policy_source = loaded.dir.empty() ? "embedded default policy" : loaded.dir;
    if (generation)
        m_policy_source += " as applied with generation " + std::to_string(*generation);
    // For a broker whose generation keeps no policy of its own (an older database).
    remember_policy_dir(loaded.dir);
    return std::to_string(m_policy.rules.size()) + " rules from " + m_policy_source;
}

// policy.d beside an absolute configuration path; "" (the embedded default policy) otherwise.
std::string Broker::policy_dir_for(std::string const& config_source) const
{
    if (config_source.empty() || config_source.front() != '/')
        return {};
    std::string dir = config_source.substr(0, config_source.rfind('/')) + "/policy.d";
    return ::access(dir.c_str(), F_OK) == 0 ? dir : std::string();
}

void Broker::remember_policy_dir(std::string const& policy_dir)
{
    auto state = sys::open_path(m_paths.state, O_DIRECTORY | O_RDONLY);
    if (state.is_error())
        return log("remembering the policy directory: " + state.error().message());
    if (auto written = sys::write_file_beneath(state.value().get(), "policy-dir", policy_dir, 0600); written.is_error())
        log("remembering the policy directory: " + written.error().message());
}


policy::Party Broker::party_of(std::string const& name) const
{
    policy::Party party;
    party.name = name;
    auto live = m_live.find(name);
    if (live != m_live.end()) {
        party.tags = live->second.settings.tags;
        party.disposable = live->second.disposable;
        party.template_name = live->second.template_name;
        return party;
    }
    if (auto const* settings = m_config.find_compartment(name))
        party.tags = settings->tags;
    return party;
}

// ---- caller connections ----

void Broker::on_caller_accepted(Live& live, UniqueFd connection, pid_t pid)
{
    int fd = connection.get();
    if (auto watched = watch(fd, live.name, static_cast<int>(CallerConnection)); watched.is_error()) {
        log(live.name + ": a call could not be watched: " + watched.error().message());
        return; // the caller sees its connection closed
    }
    m_callers.emplace(fd, Caller {live.name, std::move(connection), pid, false});
    ++live.callers;
    if (live.callers >= max_callers_per_compartment)
        pause_listener(live, true);
    // Over its rate: this call is served, further connections wait in the kernel's backlog until
    // the bucket refills (expire_asks resumes the listener), so the calls go on one at a time.
    int64_t const now = sys::monotonic_ms();
    if (!take_call_token(live, now)) {
        pause_listener(live, true);
        m_throttled = true;
        // Said at most once a minute per compartment: a flood would otherwise flood the log.
        if (live.throttle_logged_ms < 0 || now - live.throttle_logged_ms >= 60000) {
            live.throttle_logged_ms = now;
            char rate[32];
            std::snprintf(rate, sizeof(rate), "%.0f", m_call_rate);
            log(live.name + ": calls throttled: more than " + std::to_string(int(call_burst)) + " at once, then " + rate
                + " per second (its further calls wait)");
        }
    }
}

void Broker::pause_listener(Live& live, bool paused)
{
    if (live.listener_paused == paused || !live.listener)
        return;
    epoll_event event {};
    event.events = paused ? 0U : static_cast<uint32_t>(EPOLLIN);
    event.data.fd = live.listener.get();
    if (::epoll_ctl(m_epoll.get(), EPOLL_CTL_MOD, live.listener.get(), &event) < 0) {
        log(live.name + ": its listener could not be " + (paused ? "paused" : "resumed") + ": " + std::strerror(errno));
        return;
    }
    live.listener_paused = paused;
}

void Broker::close_caller(int fd)
{
    auto found = m_callers.find(fd);
    if (found == m_callers.end())
        return;
    for (auto it = m_asks.begin(); it != m_asks.end();) {
        if (it->second.caller == fd)
            it = m_asks.erase(it);
        else
            ++it;
    }
    auto live = m_live.find(found->second.compartment);
    unwatch(fd);
    m_callers.erase(found);
    if (live == m_live.end())
        return;
    if (live->second.callers > 0)
        --live->second.callers;
    if (live->second.callers < max_callers_per_compartment && call_tokens_at(live->second, sys::monotonic_ms()) >= 1)
        pause_listener(live->second, false); // (a throttled bucket is resumed by expire_asks)
}

void Broker::refuse_call(int fd, uint32_t exit_code, std::string const& message)
{
    auto bytes = wire::encode(wire::CallReply(wire::CallRefused {exit_code, message}));
    (void)sys::send_record(fd, bytes);
    close_caller(fd);
}

// The one answer a caller gets for "no such compartment", "not yours", "no such template" and a
// policy's deny alike.
void Broker::refuse_denied(int fd)
{
    refuse_call(fd, 126, "denied by policy");
}

// A failure inside bulkhead: the details (host paths, the engine's errors) go to the broker's log.
void Broker::fail_call(int fd, std::string const& source, std::string const& detail)
{
    log(source + ": a call failed: " + detail);
    refuse_call(fd, 125, "the call failed in bulkhead (the administrator's log says why)");
}

// Refills the bucket and takes one token for a connection just accepted; false when the bucket is
// below 1 after it: the listener then stays paused until the bucket is back at 1.
bool Broker::take_call_token(Live& live, int64_t now_ms)
{
    live.call_tokens = call_tokens_at(live, now_ms) - 1;
    live.call_tokens_at_ms = now_ms;
    return live.call_tokens >= 1;
}

// calls_per_second_per_cpu for every CPU the broker may run on.
double Broker::default_call_rate()
{
    cpu_set_t cpus;
    CPU_ZERO(&cpus);
    int count = ::sched_getaffinity(0, sizeof(cpus), &cpus) == 0 ? CPU_COUNT(&cpus) : 1;
    return calls_per_second_per_cpu * std::max(count, 1);
}

// The bucket's tokens at `now_ms` (full before the compartment's first call).
double Broker::call_tokens_at(Live const& live, int64_t now_ms) const
{
    if (live.call_tokens_at_ms < 0)
        return call_burst;
    return std::min(call_burst, live.call_tokens + double(now_ms - live.call_tokens_at_ms) * m_call_rate / 1000.0);
}

void Broker::on_caller_readable(int fd)
{
    auto found = m_callers.find(fd);
    if (found == m_callers.end())
        return;
    Caller& caller = found->second;
    auto received = sys::receive_record(fd, wire::max_caller_record, 1); // a clipboard copy carries its content
    if (received.is_error()) {
        if (received.error().code() == EAGAIN)
            return;
        log(caller.compartment + ": a caller (pid " + std::to_string(caller.pid) + ") sent a bad record (" + received.error().message() + "): disconnected");
        return close_caller(fd);
    }
    if (received.value().end_of_stream || caller.answered)
        return close_caller(fd);
    auto call = wire::decode_call(received.value().bytes);
    if (call.is_error()) {
        log(caller.compartment + ": a caller (pid " + std::to_string(caller.pid) + ") sent a record that is not a call (" + call.error().message() + "): disconnected");
        return close_caller(fd);
    }
    caller.answered = true;
    // Qubes names are the built-ins they stand for, in the policy and in calls alike.
    call.value().service = std::string(policy::canonical_service(call.value().service));
    auto live = m_live.find(caller.compartment);
    if (live == m_live.end())
        return close_caller(fd);
    auto& fds = received.value().fds;
    bool clipboard_copy = call.value().service == clipboard_service && call.value().arg == "copy";
    if (fds.size() != (clipboard_copy ? 1U : 0U)) {
        log(caller.compartment + ": a caller (pid " + std::to_string(caller.pid) + ") sent descriptors it should not: disconnected");
        return close_caller(fd);
    }
    if (clipboard_copy)
        return clipboard_copy_from(fd, std::move(fds.front()));
    route_call(fd, call.value());
}

// ---- the clipboard (bulkhead.Clipboard): held by the broker, never logged ----

// `bulkhead-clip copy`: the content arrives in a sealed memfd, so that reading it can neither block
// nor change under the broker's feet; it replaces the clipboard, with its source.
void Broker::clipboard_copy_from(int fd, UniqueFd content)
{
    std::string const source = m_callers.at(fd).compartment;
    int seals = ::fcntl(content.get(), F_GET_SEALS);
    int const wanted = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;
    struct stat info {};
    if (seals < 0 || (seals & wanted) != wanted || ::fstat(content.get(), &info) < 0 || !S_ISREG(info.st_mode))
        return refuse_call(fd, 2, "the clipboard's content must come in a sealed memfd");
    if (info.st_size > static_cast<off_t>(max_clipboard_bytes))
        return refuse_call(fd, 2, "the clipboard holds at most " + std::to_string(max_clipboard_bytes) + " bytes");
    std::string data(static_cast<size_t>(info.st_size), '\0');
    if (::pread(content.get(), data.data(), data.size(), 0) != static_cast<ssize_t>(data.size()))
        return refuse_call(fd, 125, "reading the clipboard's content failed");
    if (!record({.kind = "call", .caller = source, .target = "@clipboard", .service = clipboard_service, .arg = "copy", .verdict = "ok",
            .detail = std::to_string(data.size()) + " bytes"}))
        return refuse_call(fd, 125, "refused: the broker cannot record the call in its audit log");
    m_clipboard.content = std::move(data);
    m_clipboard.source = party_of(source); // as it is now: it may be gone when the content is pasted
    ++m_clipboard.serial;
    deliver_to_caller(fd, "@clipboard", {});
}

// Answers an allowed call the broker serves itself: `content` (possibly empty) as the stream,
// nothing on stderr, exit status 0.
void Broker::deliver_to_caller(int fd, std::string const& target, std::string const& content)
{
    auto stream = sys::sealed_memfd("bulkhead-clipboard", content);
    int errors[2], status[2];
    if (stream.is_error() || ::pipe2(errors, O_CLOEXEC) < 0)
        return refuse_call(fd, 125, "making the clipboard's stream failed");
    UniqueFd errors_read(errors[0]);
    ::close(errors[1]);
    if (::pipe2(status, O_CLOEXEC) < 0)
        return refuse_call(fd, 125, "pipe: " + std::string(std::strerror(errno)));
    UniqueFd status_read(status[0]);
    (void)::write(status[1], "status 0\n", 9);
    ::close(status[1]);
    auto reply = wire::encode(wire::CallReply(wire::CallConnected {target}));
    int pass[] = {stream.value().get(), errors_read.get(), status_read.get()};
    (void)sys::send_record(fd, reply, pass);
    close_caller(fd);
}

void Broker::route_call(int fd, wire::Call const& call_in)
{
    std::string const caller = m_callers.at(fd).compartment;
    wire::Call call = call_in;
    policy::Request request;
    if (call.service == clipboard_service) {
        if (call.arg != "paste")
            return refuse_call(fd, 2, "bulkhead.Clipboard takes 'copy' or 'paste'");
        if (m_clipboard.source.name.empty())
            return refuse_call(fd, 1, "the clipboard is empty");
        // Pasting is a crossing from the compartment the content came from (as it was when it
        // copied) to the caller.
        request.source = m_clipboard.source;
        call.target = caller;
    } else {
        request.source = party_of(caller);
    }
    std::string const source = request.source.name;
    request.service = call.service;
    request.arg = call.arg;
    std::string templ;
    request.target_kind = target_kind_of(call.target, templ);
    audit::Record entry;
    entry.kind = "call";
    entry.caller = source;
    entry.target = call.target.empty() ? "@default" : call.target;
    entry.service = call.service;
    entry.arg = call.arg;
    // Refused before the policy is asked: recorded with the reason, answered like any denial.
    auto deny_unseen = [&](std::string const& why) {
        entry.verdict = "deny";
        entry.detail = why;
        (void)record(entry, Durability::Later);
        refuse_denied(fd);
    };

    if (request.target_kind == policy::TargetKind::NewDisposable) {
        request.disposable_template = templ.empty() ? m_config.default_disposable : templ;
        auto const* settings = m_config.find_compartment(request.disposable_template);
        if (request.disposable_template.empty() || settings == nullptr || !settings->disposable_template)
            return deny_unseen("no such disposable template");
    } else if (request.target_kind == policy::TargetKind::Compartment) {
        auto live = m_live.find(call.target);
        if (live != m_live.end() && !reachable_by(live->second, caller))
            return deny_unseen(live->second.owner.empty() ? "a pooled disposable" : "a disposable made for " + live->second.owner);
        if (m_config.find_compartment(call.target) == nullptr && live == m_live.end())
            return deny_unseen("no such compartment");
        request.target = party_of(call.target);
    } else if (request.target_kind == policy::TargetKind::Host) {
        request.target.host = true;
    }

    auto decision = policy::evaluate(m_policy, request);
    std::string const where = policy::decision_where(m_policy, decision);
    entry.verdict = std::string(policy::action_name(decision.action));
    entry.rule = where;
    bool const recorded = record(entry, Durability::Later);
    if (decision.action == policy::Action::Deny)
        return refuse_denied(fd);
    // Fail closed: a call the audit log cannot record does not happen.
    if (!recorded)
        return refuse_call(fd, 125, "refused: the broker cannot record the call in its audit log");
    if (decision.action == policy::Action::Ask) {
        size_t waiting = std::count_if(m_asks.begin(), m_asks.end(), [&](auto const& ask) { return m_callers.contains(ask.second.caller) && m_callers.at(ask.second.caller).compartment == caller; });
        if (waiting >= max_asks_per_compartment)
            return refuse_call(fd, 125, "too many calls of " + caller + " wait for an answer");
        // Ids go on across broker restarts, so that `approve N` and the audit's records of N
        // always mean one request.
        auto id = m_db->next_number("next_ask");
        if (id.is_error())
            return fail_call(fd, caller, "numbering an ask: " + id.error().message());
        PendingAsk ask;
        ask.id = id.value();
        ask.caller = fd;
        ask.source = source;
        ask.call = call;
        ask.request = request;
        ask.decision = decision;
        ask.rule = where;
        if (call.service == clipboard_service)
            ask.clipboard_serial = m_clipboard.serial;
        ask.asked_at_ms = sys::monotonic_ms();
        ask.deadline_ms = ask.asked_at_ms + m_ask_timeout_ms;
        log("ask " + std::to_string(ask.id) + ": " + source + " -> " + entry.target + " " + call.service
            + (call.arg.empty() ? "" : "+" + call.arg) + " (" + where + "): bulkhead approve|deny " + std::to_string(ask.id));
        m_asks.emplace(ask.id, std::move(ask));
        // The caller is told it waits (the answer follows on this connection).
        (void)sys::send_record(fd, wire::encode(wire::CallReply(wire::CallHeld {})));
        return;
    }
    if (decision.params.notify.value_or(false))
        log("notify: " + source + " -> " + entry.target + " " + call.service + " allowed (" + where + ")");
    run_call(fd, source, call, request, decision.params, {});
}

// `bulkhead-clip paste` is the call CLIPBOARD-SOURCE -> the pasting compartment.
void Broker::clipboard_paste_to(int fd, std::string const& target)
{
    // Whoever allowed it (policy or administrator): the content goes, and the clipboard is emptied.
    std::string content = std::move(m_clipboard.content);
    m_clipboard.content.clear();
    m_clipboard.source = {};
    ++m_clipboard.serial;
    deliver_to_caller(fd, target, content);
}

void Broker::run_call(int fd, std::string const& source, wire::Call const& call, policy::Request const& request,
    policy::Params const& params, std::string const& target_override)
{
    if (call.service == clipboard_service)
        return clipboard_paste_to(fd, call.target);
    // Where the service runs: the administrator's choice, the rule's redirect, or what was asked
    // for. A redirect is taken as written: `target=@disposable` means a disposable of the default
    // template, never of the template the caller named.
    std::string target_text = call.target;
    std::string templ = request.disposable_template;
    if (!target_override.empty() || params.target) {
        target_text = !target_override.empty() ? target_override : *params.target;
        templ.clear();
    }
    policy::TargetKind kind = target_kind_of(target_text, templ);
    if (kind == policy::TargetKind::Default)
        return refuse_call(fd, 125, "the call names no target and the policy gives none (target=NAME)");
    if (kind == policy::TargetKind::Host)
        return refuse_call(fd, 125, "the host runs no services");
    std::string run_as = params.user.value_or("user");
    if (run_as != "user" && run_as != "root")
        return fail_call(fd, source, "the policy runs the service as '" + run_as + "': a compartment has 'user' and 'root'");

    // The streams first: once a disposable is taken for this call, nothing may fail before its run.
    int pair[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0)
        return fail_call(fd, source, "socketpair: " + std::string(std::strerror(errno)));
    UniqueFd caller_end(pair[0]), service_end(pair[1]);
    int errors[2], status[2];
    if (::pipe2(errors, O_CLOEXEC) < 0)
        return fail_call(fd, source, "pipe: " + std::string(std::strerror(errno)));
    UniqueFd errors_read(errors[0]), errors_write(errors[1]);
    if (::pipe2(status, O_CLOEXEC) < 0)
        return fail_call(fd, source, "pipe: " + std::string(std::strerror(errno)));
    UniqueFd status_read(status[0]), status_write(status[1]);
    UniqueFd service_out(::fcntl(service_end.get(), F_DUPFD_CLOEXEC, 3));
    if (!service_out)
        return fail_call(fd, source, "dup: " + std::string(std::strerror(errno)));

    Live* live = nullptr;
    if (kind == policy::TargetKind::NewDisposable) {
        if (templ.empty())
            templ = m_config.default_disposable;
        auto const* settings = m_config.find_compartment(templ);
        if (settings == nullptr || !settings->disposable_template)
            return fail_call(fd, source, "the policy sends the call to '" + target_text + "', which is not a disposable template");
        if (auto allowed = check_disposable_allowance(templ, source); allowed.is_error()) {
            log(source + ": no disposable: " + allowed.error().message());
            return refuse_call(fd, 125, "refused: " + allowed.error().message());
        }
        auto taken = take_disposable(templ, source);
        if (taken.is_error())
            return fail_call(fd, source, "starting a disposable of " + templ + ": " + taken.error().message());
        live = taken.value();
    } else {
        if (target_text == source && !m_live.contains(target_text))
            return fail_call(fd, source, "the caller is not running");
        auto found = m_live.find(target_text);
        if (found != m_live.end()) {
            // A redirect or the administrator's choice cannot hand the caller someone else's disposable.
            if (!reachable_by(found->second, source)) {
                (void)record({.kind = "call", .caller = source, .target = target_text, .service = call.service, .arg = call.arg,
                                 .verdict = "deny", .detail = "a disposable not made for " + source},
                    Durability::Later);
                return refuse_denied(fd);
            }
            live = &found->second;
        } else {
            if (m_config.find_compartment(target_text) == nullptr)
                return fail_call(fd, source, "no compartment named '" + target_text + "'");
            if (!params.autostart.value_or(true))
                return refuse_call(fd, 125, "the target is not running and the policy does not start it (autostart=no)");
            auto started = start_persistent(target_text);
            if (started.is_error())
                return fail_call(fd, source, "starting " + target_text + ": " + started.error().message());
            live = started.value();
        }
    }
    bool const taken_for_this_call = kind == policy::TargetKind::NewDisposable;

    wire::Exec exec;
    exec.id = m_next_run_id++;
    exec.run_as = run_as == "root" ? wire::RunAs::Root : wire::RunAs::User;
    exec.argv = {service_runner, call.service, call.arg};
    bool root = exec.run_as == wire::RunAs::Root;
    exec.env = environment_of(*live, root);
    exec.env.insert(exec.env.end(), {"BULKHEAD_SOURCE=" + source, "BULKHEAD_SERVICE=" + call.service, "BULKHEAD_ARG=" + call.arg});
    PendingRun run;
    run.id = exec.id;
    run.client = -1; // the caller holds the streams and the status itself
    run.exec_record = wire::encode(wire::BrokerMessage(exec));
    run.fds.push_back(std::move(service_end));
    run.fds.push_back(std::move(service_out));
    run.fds.push_back(std::move(errors_write));
    run.fds.push_back(std::move(status_write));
    std::string const target_name = live->name;
    live->runs.emplace(exec.id, std::move(run));
    live->waiting.push_back(exec.id);
    if (taken_for_this_call)
        set_main_run(*live, exec.id);
    send_pending(*live);

    auto reply = wire::encode(wire::CallReply(wire::CallConnected {target_name}));
    int pass[] = {caller_end.get(), errors_read.get(), status_read.get()};
    if (auto sent = sys::send_record(fd, reply, pass); sent.is_error())
        log(source + ": handing a call's socket to the caller: " + sent.error().message());
    close_caller(fd);
}

// ---- ask ----

void Broker::expire_asks(int64_t now_ms)
{
    write_due_denials(now_ms);
    for (auto it = m_asks.begin(); it != m_asks.end();) {
        if (it->second.deadline_ms > now_ms) {
            ++it;
            continue;
        }
        PendingAsk ask = std::move(it->second);
        it = m_asks.erase(it);
        audit::Record entry {.kind = "ask", .caller = ask.source, .target = ask.call.target.empty() ? "@default" : ask.call.target,
            .service = ask.call.service, .arg = ask.call.arg, .verdict = "timeout", .rule = ask.rule, .detail = "no answer: denied"};
        (void)record(entry);
        log("ask " + std::to_string(ask.id) + ": no answer in time: denied");
        refuse_call(ask.caller, 126, "denied: the administrator did not answer in time");
    }
    // Throttled listeners come back once their bucket has a token again.
    if (!m_throttled)
        return;
    m_throttled = false;
    for (auto& [name, live] : m_live) {
        if (!live.listener_paused)
            continue;
        double tokens = call_tokens_at(live, now_ms);
        if (tokens >= 1 && live.callers < max_callers_per_compartment)
            pause_listener(live, false);
        else if (tokens < 1)
            m_throttled = true;
    }
}

int Broker::next_timeout_ms(int64_t now_ms) const
{
    int64_t timeout = -1;
    for (auto const& [id, ask] : m_asks)
        timeout = timeout < 0 ? ask.deadline_ms - now_ms : std::min(timeout, ask.deadline_ms - now_ms);
    // Counted denials are summed up in the audit log when their window ends.
    if (auto due = m_denials.next_due())
        timeout = timeout < 0 ? *due - now_ms : std::min(timeout, *due - now_ms);
    // A throttled compartment's listener comes back when its bucket reaches 1 token.
    if (m_throttled) {
        for (auto const& [name, live] : m_live) {
            double missing = 1 - call_tokens_at(live, now_ms);
            if (!live.listener_paused || missing <= 0)
                continue;
            auto wait = static_cast<int64_t>(std::ceil(missing * 1000 / m_call_rate));
            timeout = timeout < 0 ? wait : std::min(timeout, wait);
        }
    }
    if (timeout < 0)
        return -1;
    return static_cast<int>(std::max<int64_t>(timeout, 0));
}

} // namespace bulkhead::broker
