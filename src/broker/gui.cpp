// The desktop of `gui = true` compartments (DESIGN.md "Desktop", docs/desktop.md).
//
// The broker speaks no X and reads no pixel: it starts the pieces, joins them with sockets and holds
// the clipboard. For each running gui compartment:
//   - its own X server (Xvfb :0), started inside by a run of `bulkhead-gui-agent --start-x WxH`
//     before any other command of the compartment is sent (they wait: a program started at once
//     finds its display);
//   - the host-side GUI daemon, bulkhead-guid, a child of the broker that connects to the host
//     display and then confines itself (its own uid, no files, seccomp): it draws the windows with
//     the label's border;
//   - the bridge inside, a run of bulkhead-gui-agent whose standard input is the other end of the
//     daemon's socket.
// The daemon's control socket brings Ctrl-Shift-C (a copy into the broker's clipboard) and
// Ctrl-Shift-V (a paste, policy-checked as SOURCE -> this compartment; the keystroke is the
// consent an `ask` rule wants, a `deny` still refuses). A daemon that dies is started again (at most
// 5 times a minute) with a new bridge; one whose compartment sent a malformed record is not.
#include "broker/broker.hpp"
#include "gui/protocol.hpp"
#include "sys/socket.hpp"
#include "sys/syscalls.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bulkhead::broker {

using sys::UniqueFd;

namespace {

constexpr char const* gui_agent_inside = "/run/bulkhead/bin/bulkhead-gui-agent";
constexpr int guid_misbehaved_status = 3;
constexpr int64_t restart_delay_ms = 1000;
constexpr size_t max_restarts_per_minute = 5;
constexpr uint32_t default_screen_width = 1920, default_screen_height = 1080;

std::string display_environment()
{
    char const* display = std::getenv("DISPLAY");
    return display != nullptr ? display : "";
}

// The screen size of `display`, from `bulkhead-guid --probe` (2 s at most).
std::optional<std::pair<uint32_t, uint32_t>> probe_display(std::string const& guid, std::string const& display)
{
    int out[2];
    if (::pipe2(out, O_CLOEXEC) < 0)
        return std::nullopt;
    std::string const display_variable = "DISPLAY=" + display;
    char const* xauthority = std::getenv("XAUTHORITY");
    std::string const xauthority_variable = xauthority != nullptr ? std::string("XAUTHORITY=") + xauthority : "";
    pid_t pid = ::fork();
    if (pid < 0) {
        ::close(out[0]);
        ::close(out[1]);
        return std::nullopt;
    }
    if (pid == 0) {
        ::dup2(out[1], 1);
        ::close_range(3, ~0U, 0);
        char const* argv[] = {guid.c_str(), "--probe", nullptr};
        char const* envp[] = {display_variable.c_str(), xauthority_variable.empty() ? nullptr : xauthority_variable.c_str(), nullptr};
        ::execve(guid.c_str(), const_cast<char* const*>(argv), const_cast<char* const*>(envp));
        ::_exit(127);
    }
    ::close(out[1]);
    std::string text;
    int64_t const deadline = sys::monotonic_ms() + 2000;
    for (;;) {
        int64_t const left = deadline - sys::monotonic_ms();
        pollfd readable {out[0], POLLIN, 0};
        if (left <= 0 || ::poll(&readable, 1, static_cast<int>(left)) <= 0)
            break;
        char buffer[64];
        ssize_t got = ::read(out[0], buffer, sizeof(buffer));
        if (got <= 0)
            break;
        text.append(buffer, static_cast<size_t>(got));
    }
    ::close(out[0]);
    ::kill(pid, SIGKILL);
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    unsigned width = 0, height = 0;
    if (std::sscanf(text.c_str(), "%ux%u", &width, &height) != 2 || width < 64 || height < 64 || width > gui::max_dimension
        || height > gui::max_dimension)
        return std::nullopt;
    return std::pair {width, height};
}

std::string guid_path()
{
    for (auto const& path : helper_candidates("bulkhead-guid"))
        if (::access(path.c_str(), X_OK) == 0)
            return path;
    return {};
}

} // namespace

std::vector<std::string> Broker::environment_of(Live const& live, bool root) const
{
    auto env = clean_environment(root, live.name);
    if (live.gui.enabled)
        env.push_back("DISPLAY=:0");
    return env;
}

Result<uint32_t> Broker::queue_own_run(Live& live, std::vector<std::string> argv, UniqueFd input)
{
    wire::Exec exec;
    exec.id = m_next_run_id++;
    exec.run_as = wire::RunAs::User;
    exec.argv = std::move(argv);
    exec.env = environment_of(live, false);
    PendingRun run;
    run.id = exec.id;
    run.client = -1;
    run.exec_record = wire::encode(wire::BrokerMessage(exec));
    if (!input)
        input = TRY(sys::open_path("/dev/null", O_RDONLY | O_CLOEXEC));
    run.fds.push_back(std::move(input));
    for (int i = 0; i < 3; ++i) // stdout, stderr, status
        run.fds.push_back(TRY(sys::open_path("/dev/null", O_WRONLY | O_CLOEXEC)));
    live.runs.emplace(exec.id, std::move(run));
    live.waiting.push_back(exec.id);
    return exec.id;
}

void Broker::gui_prepare(Live& live)
{
    if (!live.settings.gui || live.gui.enabled)
        return;
    m_display = m_config.display.empty() ? display_environment() : m_config.display;
    std::string const guid = guid_path();
    if (m_display.empty() || guid.empty()) {
        live.gui.state = "no display";
        if (!m_display_said)
            log(guid.empty() ? "gui: bulkhead-guid is not installed: gui compartments show no windows"
                             : "gui: no display ([system] display unset and no $DISPLAY): gui compartments show no windows");
        m_display_said = true;
        return;
    }
    if (m_screen_width == 0) {
        auto size = probe_display(guid, m_display);
        if (!size) {
            live.gui.state = "no display";
            log(live.name + ": gui: the display " + m_display + " does not answer: no windows");
            return;
        }
        std::tie(m_screen_width, m_screen_height) = *size;
    }
    uint32_t const width = m_screen_width != 0 ? m_screen_width : default_screen_width;
    uint32_t const height = m_screen_height != 0 ? m_screen_height : default_screen_height;
    live.gui.enabled = true;
    auto queued = queue_own_run(live, {gui_agent_inside, "--start-x", std::to_string(width) + "x" + std::to_string(height)}, {});
    if (queued.is_error()) {
        live.gui.enabled = false;
        live.gui.state = "failed";
        log(live.name + ": gui: " + queued.error().message());
        return;
    }
    live.gui.xserver_run = queued.value();
    live.gui.holding = true;
    live.gui.state = "starting";
    // The X server's run goes first: anything queued before it (a reattached compartment) waits.
    std::erase(live.waiting, live.gui.xserver_run);
    live.waiting.push_front(live.gui.xserver_run);
    send_pending(live);
}

void Broker::gui_xserver_ended(Live& live, bool started)
{
    live.gui.holding = false;
    live.gui.xserver_run = 0;
    if (!started) {
        live.gui.state = "failed";
        log(live.name + ": gui: its X server did not start (see /tmp/.bulkhead-xserver.log inside; is xvfb in its template?)");
        send_pending(live);
        return;
    }
    gui_spawn(live);
    send_pending(live);
}

void Broker::gui_spawn(Live& live)
{
    std::string const guid = guid_path();
    int pair[2], control[2];
    if (guid.empty() || ::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0) {
        live.gui.state = "failed";
        return log(live.name + ": gui: cannot start its GUI daemon");
    }
    UniqueFd daemon_end(pair[0]), bridge_end(pair[1]);
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, control) < 0) {
        live.gui.state = "failed";
        return log(live.name + ": gui: socketpair: " + std::strerror(errno));
    }
    UniqueFd broker_end(control[0]), daemon_control(control[1]);
    // Its uid: one of its own, below every compartment's range and the volumes' owner.
    uint32_t const instance = (m_id_range_base - (1U << 30)) / (1024U << 16);
    uid_t const uid = (1U << 30) - (1U << 16) + instance * 1024 + live.slot;
    char color[16];
    std::snprintf(color, sizeof(color), "0x%06x", gui::label_color(std::string(config::label_name(live.settings.label))));
    std::string const display_variable = "DISPLAY=" + m_display;
    char const* xauthority = std::getenv("XAUTHORITY");
    std::string const xauthority_variable = xauthority != nullptr ? std::string("XAUTHORITY=") + xauthority : "";
    std::string const uid_text = std::to_string(uid);
    pid_t pid = ::fork();
    if (pid < 0) {
        live.gui.state = "failed";
        return log(live.name + ": gui: fork: " + std::strerror(errno));
    }
    if (pid == 0) {
        ::dup2(daemon_end.get(), 3);
        ::dup2(daemon_control.get(), 4);
        ::close_range(5, ~0U, 0); // nothing else of the broker's
        char const* argv[] = {guid.c_str(), "--name", live.name.c_str(), "--color", color, "--uid", uid_text.c_str(), nullptr};
        char const* envp[] = {display_variable.c_str(), xauthority_variable.empty() ? nullptr : xauthority_variable.c_str(), nullptr};
        ::execve(guid.c_str(), const_cast<char* const*>(argv), const_cast<char* const*>(envp));
        ::_exit(127);
    }
    auto pidfd = sys::pidfd_open(pid);
    if (pidfd.is_error()) {
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        live.gui.state = "failed";
        return log(live.name + ": gui: " + pidfd.error().message());
    }
    live.gui.daemon_pid = pid;
    live.gui.daemon_pidfd = pidfd.release_value();
    live.gui.control = std::move(broker_end);
    if (auto watched = watch(live.gui.daemon_pidfd.get(), live.name, GuiDaemon); watched.is_error())
        log(live.name + ": gui: " + watched.error().message());
    if (auto watched = watch(live.gui.control.get(), live.name, GuiControl); watched.is_error())
        log(live.name + ": gui: " + watched.error().message());
    auto bridge = queue_own_run(live, {gui_agent_inside}, std::move(bridge_end));
    if (bridge.is_error()) {
        log(live.name + ": gui: " + bridge.error().message());
        return gui_stop(live);
    }
    live.gui.bridge_run = bridge.value();
    live.gui.state = "starting";
    send_pending(live);
}

// The daemon is killed (its windows go with its display connection) and the bridge inside too.
void Broker::gui_stop(Live& live)
{
    if (live.gui.daemon_pidfd) {
        unwatch(live.gui.daemon_pidfd.get());
        (void)::syscall(SYS_pidfd_send_signal, live.gui.daemon_pidfd.get(), SIGKILL, nullptr, 0);
        siginfo_t info {};
        while (::waitid(P_PIDFD, static_cast<id_t>(live.gui.daemon_pidfd.get()), &info, WEXITED) < 0 && errno == EINTR) {
        }
        live.gui.daemon_pidfd.reset();
        live.gui.daemon_pid = 0;
    }
    if (live.gui.control) {
        unwatch(live.gui.control.get());
        live.gui.control.reset();
    }
    if (live.gui.bridge_run != 0 && live.agent) {
        auto run = live.runs.find(live.gui.bridge_run);
        if (run != live.runs.end() && run->second.sent)
            live.kills.push_back(live.gui.bridge_run);
        else if (run != live.runs.end())
            live.runs.erase(run);
        send_pending(live);
    }
    live.gui.bridge_run = 0;
}

void Broker::gui_daemon_exited(std::string const& name)
{
    auto found = m_live.find(name);
    if (found == m_live.end())
        return;
    Live& live = found->second;
    siginfo_t info {};
    while (::waitid(P_PIDFD, static_cast<id_t>(live.gui.daemon_pidfd.get()), &info, WEXITED) < 0 && errno == EINTR) {
    }
    unwatch(live.gui.daemon_pidfd.get());
    live.gui.daemon_pidfd.reset();
    live.gui.daemon_pid = 0;
    gui_stop(live); // the control socket and the bridge
    if (info.si_code == CLD_EXITED && info.si_status == guid_misbehaved_status) {
        live.gui.state = "disconnected";
        log(name + ": gui: its display is disconnected (its GUI agent sent what the daemon refused); restart " + name + " to show it again");
        return;
    }
    int64_t const now = sys::monotonic_ms();
    std::erase_if(live.gui.restarts_ms, [&](int64_t at) { return now - at > 60000; });
    if (live.gui.restarts_ms.size() >= max_restarts_per_minute) {
        live.gui.state = "failed";
        log(name + ": gui: its GUI daemon ended " + std::to_string(max_restarts_per_minute) + " times within a minute: not started again");
        return;
    }
    live.gui.state = "restarting";
    live.gui.restart_at_ms = now + restart_delay_ms;
    log(name + ": gui: its GUI daemon ended (" + (info.si_code == CLD_EXITED ? "status " + std::to_string(info.si_status) : "signal " + std::to_string(info.si_status))
        + "): started again in 1 s");
}

void Broker::gui_restart_due(int64_t now_ms)
{
    for (auto& [name, live] : m_live) {
        if (live.gui.restart_at_ms < 0 || live.gui.restart_at_ms > now_ms)
            continue;
        live.gui.restart_at_ms = -1;
        live.gui.restarts_ms.push_back(now_ms);
        gui_spawn(live);
    }
}

std::optional<int64_t> Broker::gui_next_restart() const
{
    std::optional<int64_t> next;
    for (auto const& [name, live] : m_live)
        if (live.gui.restart_at_ms >= 0)
            next = next ? std::min(*next, live.gui.restart_at_ms) : live.gui.restart_at_ms;
    return next;
}

void Broker::gui_control_readable(std::string const& name)
{
    auto found = m_live.find(name);
    if (found == m_live.end() || !found->second.gui.control)
        return;
    Live& live = found->second;
    auto received = sys::receive_record(live.gui.control.get(), gui::max_record, 0);
    if (received.is_error() && received.error().code() == EAGAIN)
        return;
    if (received.is_error() || received.value().end_of_stream) {
        // The daemon is gone or going: its pidfd says how.
        unwatch(live.gui.control.get());
        live.gui.control.reset();
        return;
    }
    auto message = gui::decode_control(received.value().bytes);
    if (message.is_error()) {
        log(name + ": gui: its GUI daemon sent a bad record (" + message.error().message() + "): stopped");
        return gui_stop(live);
    }
    if (auto const* ready = std::get_if<gui::Ready>(&message.value())) {
        live.gui.state = "shown";
        log(name + ": gui: windows shown on " + m_display + " (" + std::to_string(ready->screen_width) + "x" + std::to_string(ready->screen_height) + ")");
        return;
    }
    if (auto const* copy = std::get_if<gui::Copy>(&message.value())) {
        // Ctrl-Shift-C in one of its windows: its clipboard becomes the broker's (never logged).
        if (!record({.kind = "call", .caller = name, .target = "@clipboard", .service = "bulkhead.Clipboard", .arg = "copy", .verdict = "ok",
                .detail = std::to_string(copy->text.size()) + " bytes (Ctrl-Shift-C)"}))
            return;
        m_clipboard.content = copy->text;
        m_clipboard.source = party_of(name);
        ++m_clipboard.serial;
        return;
    }
    if (std::holds_alternative<gui::PasteAsk>(message.value()))
        return gui_paste(live);
    log(name + ": gui: its GUI daemon sent a record meant for it: stopped");
    gui_stop(live);
}

// Ctrl-Shift-V in a window of `live`: the crossing CLIPBOARD-SOURCE -> live, bulkhead.Clipboard+paste.
void Broker::gui_paste(Live& live)
{
    auto refuse = [&](std::string const& reason) {
        (void)sys::send_record(live.gui.control.get(), gui::encode(gui::ControlMessage(gui::PasteRefused {reason})));
    };
    if (m_clipboard.source.name.empty())
        return refuse("the clipboard is empty");
    policy::Request request;
    request.source = m_clipboard.source;
    request.target = party_of(live.name);
    request.target_kind = policy::TargetKind::Compartment;
    request.service = "bulkhead.Clipboard";
    request.arg = "paste";
    auto decision = policy::evaluate(m_policy, request);
    audit::Record entry {.kind = "call", .caller = m_clipboard.source.name, .target = live.name, .service = "bulkhead.Clipboard", .arg = "paste",
        .verdict = std::string(policy::action_name(decision.action)), .rule = policy::decision_where(m_policy, decision)};
    if (decision.action == policy::Action::Ask) {
        entry.verdict = "allow";
        entry.detail = "ask: the Ctrl-Shift-V in its window is the consent";
    }
    bool const recorded = record(entry);
    if (decision.action == policy::Action::Deny)
        return refuse("denied by the policy");
    if (!recorded)
        return refuse("the audit log cannot record it");
    std::string content = std::move(m_clipboard.content);
    m_clipboard.content.clear();
    m_clipboard.source = {};
    ++m_clipboard.serial;
    (void)sys::send_record(live.gui.control.get(), gui::encode(gui::ControlMessage(gui::PasteGive {std::move(content)})));
}

} // namespace bulkhead::broker
