// The broker (`bulkhead daemon`): owns every compartment of one root. Single-threaded: one epoll
// loop serves the admin socket, the agent socket of every compartment and the pidfd of every
// PID 1, so that no state is shared between threads and the engine's fork-without-exec child
// never inherits a lock held elsewhere.
//
// Layout (ROOT = --root, or the system paths):
//   STATE = /var/lib/bulkhead | ROOT/state   bulkhead.db, compartments/NAME/home, volumes/NAME
//   RUN   = /run/bulkhead     | ROOT/run     admin.sock, broker.lock, compartments/NAME/ (mount
//                                            points), ipc/NAME/agent.sock (bound at /run/bulkhead)
#pragma once

#include "base/result.hpp"
#include "base/wire.hpp"
#include "broker/audit.hpp"
#include "broker/audit_aggregate.hpp"
#include "broker/state.hpp"
#include "policy/policy.hpp"
#include "config/config.hpp"
#include "sandbox/compartment.hpp"
#include "sys/fd.hpp"

#include <deque>
#include <nlohmann/json_fwd.hpp>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace bulkhead::broker {

// The environment of every command and service: nothing of the caller's crosses (DESIGN.md, CLI).
std::vector<std::string> clean_environment(bool root, std::string const& compartment);

enum WatchKind { AdminListener, AdminClient, RefusedClient, AgentListener, AgentConnection, Pid1, Signals, CallerConnection, GuiDaemon, GuiControl };

struct Options {
    std::string root;        // empty: the system paths
    std::string config_path; // --config: applied at start when it differs from the current generation
    std::string socket_path; // --socket: the admin socket
    int ask_timeout_ms = 60000; // an `ask` with no answer by then is a deny (--ask-timeout, for tests)
    uint32_t slots = 1024;      // compartments that may run at once, 16..1024 (--slots, for tests)
    audit::Limits audit_limits;  // --audit-file-size, --audit-keep-files, --state-reserve
};

struct Paths {
    std::string state;
    std::string run;
    std::string admin_socket;
    static Paths for_options(Options const& options);
};

// A run request waiting for, or being served by, a compartment's agent.
// The limits a compartment runs with: its settings, with the defaults for what they leave out.
inline constexpr uint64_t default_pids = 4096;
uint64_t host_memory_bytes();
// Where a helper executable of the broker's (bulkhead-agent, bulkhead-net) may be, in order.
std::vector<std::string> helper_candidates(std::string const& name);
// A PID namespace: the device and inode of /proc/PID/ns/pid.
using PidNamespace = std::pair<dev_t, ino_t>;
std::optional<PidNamespace> pid_namespace_of(pid_t pid);
// Every process of the host by its PID namespace, in one pass over /proc.
std::map<PidNamespace, std::vector<pid_t>> processes_by_pid_namespace();
// The processes of the compartment whose PID 1 is `pid1` (those in its PID namespace).
std::vector<pid_t> compartment_processes(pid_t pid1);
// CPU time (user + system, seconds) of these processes.
double cpu_seconds_of(std::vector<pid_t> const& processes);
sandbox::Limits limits_of(config::Compartment const& settings);
// "out of memory (limit 2G)", "task limit (4096) reached", both, or "" if no limit bit in between.
std::string limit_message(sandbox::Cgroup::LimitEvents const& before, sandbox::Cgroup::LimitEvents const& after,
                          sandbox::Limits const& limits);

struct PendingRun {
    uint32_t id = 0;
    int client = -1; // admin connection; -1 once it went away
    bool tty = false;
    std::vector<uint8_t> exec_record;   // the encoded wire::Exec
    std::vector<sys::UniqueFd> fds;     // what travels beside it
    bool sent = false;
    bool started = false;
    sandbox::Cgroup::LimitEvents limits_at_start; // to tell at its end whether a limit bit meanwhile
};

enum class LiveState { Starting, Running };

// A volume folder given to a running compartment with `bulkhead grant` (grants.cpp).
struct Grant {
    std::string volume;    // VOLUME or VOLUME/PATH
    std::string at;        // relative to /home/user
    bool read_only = true;
    uint64_t mount_id = 0; // the mount's id (statx STATX_MNT_ID), to find it and its holders again
};

// The desktop of a `gui = true` compartment (gui.cpp): its X server inside, started by a run of
// bulkhead-gui-agent --start-x before any other command of it; the host-side GUI daemon
// (bulkhead-guid, a child of the broker) and the bridge inside (a run of bulkhead-gui-agent), joined
// by a socket pair the broker made.
struct GuiLink {
    bool enabled = false;      // a display is there: DISPLAY=:0 in its commands' environment
    bool holding = false;      // its other commands wait until its X server accepts connections
    uint32_t xserver_run = 0;  // the run that starts its X server
    uint32_t bridge_run = 0;   // the bridge's run, while one is running
    pid_t daemon_pid = 0;
    sys::UniqueFd daemon_pidfd;
    sys::UniqueFd control;     // the daemon's control socket (Ready, Copy, PasteAsk)
    std::string state = "off"; // for ls: off, starting, shown, restarting, disconnected, no display, failed
    std::vector<int64_t> restarts_ms; // recent restarts of its daemon (at most 5 a minute)
    int64_t restart_at_ms = -1;
};

struct Live {
    std::string name;
    config::Compartment settings; // for disposables: the template's, renamed
    bool disposable = false;
    std::string template_name;    // disposables: the compartment they were made from
    // Disposables belong to whom they were made for: `owner` (a compartment, or "@host" for the
    // administrator) alone may call or run into it; nobody may while it is pooled (owner "").
    // `account`: whose allowance of live disposables it counts against (allowance_of()).
    bool pooled = false;          // a preloaded disposable nobody has taken yet
    std::string owner;
    std::string account;
    // The run it was taken for: when that run ends, the disposable is destroyed with everything in
    // it (0: not taken yet; after a broker restart, the id the agent still reports).
    uint32_t main_run = 0;
    uint32_t slot = 0;
    uid_t id_base = 0;
    std::string net_address; // a client's address, once its link to its provider's firewall is made
    std::optional<sandbox::Compartment> sandbox;
    sys::UniqueFd listener; // RUN/ipc/NAME/agent.sock
    sys::UniqueFd agent;    // the connection from its PID 1
    bool agent_ready = false;
    uint32_t running = 0;   // commands the agent reports running
    std::deque<uint32_t> waiting;         // run ids not yet sent (agent not connected, or its queue full)
    std::deque<uint32_t> kills;           // Kill records not yet sent
    bool agent_blocked = false;           // its connection took no more: waiting for EPOLLOUT
    int64_t busy_logged_ms = -1;          // when "its agent is busy" was last logged
    std::map<uint32_t, PendingRun> runs;  // by id
    // Calls from inside (calls.cpp): open caller connections, and a token bucket, so that one
    // compartment's flood of calls cannot starve the others or grow the broker.
    uint32_t callers = 0;
    bool listener_paused = false;
    double call_tokens = 0;
    int64_t call_tokens_at_ms = -1;
    int64_t throttle_logged_ms = -1; // when "calls throttled" was last logged for it
    std::vector<Grant> grants;        // live grants, kept in RUN/ipc/NAME/grants.json across a broker restart
    GuiLink gui;
};

// A call from inside a compartment, from its connection until it is answered.
struct Caller {
    std::string compartment;
    sys::UniqueFd fd;
    pid_t pid = 0;
    bool answered = false;
};

// The global clipboard (bulkhead.Clipboard): its content (never logged) and the full identity of
// the compartment that copied it, as it was then (a disposable that has since exited is still a
// disposable of its template). `serial` changes with every copy and paste.
struct Clipboard {
    std::string content;
    policy::Party source; // name "" when empty
    uint64_t serial = 0;
};

// A call that an `ask` rule holds until the administrator answers (or the time runs out).
struct PendingAsk {
    uint64_t id = 0;
    int caller = -1; // caller connection
    std::string source;
    wire::Call call;
    policy::Request request;
    policy::Decision decision;
    std::string rule;      // FILE:LINE
    uint64_t clipboard_serial = 0; // a paste: the clipboard it asked about (approve refuses any other)
    int64_t asked_at_ms = 0;
    int64_t deadline_ms = 0;
};

class Broker {
public:
    static Result<std::unique_ptr<Broker>> create(Options const& options);
    ~Broker();
    // Serves until SIGTERM or SIGINT; compartments keep running (they outlive the broker).
    Status serve();

    // Decodes and answers one admin request (admin.cpp).
    void handle_admin(int client, std::vector<uint8_t> const& bytes, std::vector<sys::UniqueFd> fds);

private:
    Broker() = default;
    Status open_state(Options const& options);
    Status reattach();
    Status start_from_configuration(Options const& options);
    void fill_in_settings();

    // lifecycle
    Result<Live*> start_compartment(config::Compartment const& settings, bool disposable, std::string const& template_name);
    Result<Live*> start_persistent(std::string const& name);
    Result<Live*> make_disposable(std::string const& template_name, bool pooled);
    // A disposable of `template_name` for `owner` (a compartment, or "@host"): a ready one from
    // the pool, or a new one. Refused when the owner's allowance of live disposables is used up,
    // or when the slots kept for persistent compartments and the administrator would be touched.
    Result<Live*> take_disposable(std::string const& template_name, std::string const& owner);
    // Why take_disposable() would refuse for its limits (the message says which), or nothing.
    Status check_disposable_allowance(std::string const& template_name, std::string const& owner) const;
    // The run a disposable was taken for: its end destroys the disposable.
    void set_main_run(Live& live, uint32_t run_id);
    // Whose allowance of live disposables a disposable made for `owner` uses, and how large it is.
    std::string allowance_of(std::string const& owner) const;
    uint32_t allowance_size(std::string const& account) const;
    // Whether `caller` (a compartment, or "@host") may reach the running compartment `live` by
    // name: always for a persistent one, only for its owner for a disposable.
    static bool reachable_by(Live const& live, std::string const& caller);
    void stop_compartment(std::string const& name, std::string const& why);
    // Cgroups of stopped compartments that could not be removed at once (a task still exiting, a
    // child group): retried from the event loop, never waited for (issue 13, item 12c).
    void drain_cgroups(int64_t now_ms);
    // Persistent homes as images of `disk` size (home_image.cpp).
    std::string home_mount_point(std::string const& name) const;
    Result<std::string> mount_home_image(config::Compartment const& settings, uid_t user);
    void unmount_home_image(std::string const& name);

    // The network (network.cpp): plumbing through bulkhead-net, one ordered request per change.
    std::string net_helper_path() const;
    Result<nlohmann::json> run_net_helper(nlohmann::json const& steps, std::vector<int> const& fds);
    nlohmann::json network_report();
    std::string firewall_netns_path(std::string const& provider) const;
    Result<sys::UniqueFd> netns_of(Live const& live) const;
    nlohmann::json firewall_steps(std::string const& provider) const;
    Status network_prepare(config::Compartment const& settings, std::string const& ipc_dir, sandbox::Spec& spec) const;
    Status network_provider_up(Live& live);
    void network_start_provider(std::string const& provider, std::string const& client);
    Status network_client_up(Live& live);
    void network_stopped(Live const& live);
    void network_adopted(Live& live);
    Status network_update_rules(std::string const& provider);
    std::vector<std::string> const* firewall_rules_of(std::string const& client) const;
    std::string network_state(Live const* live, config::Compartment const& settings) const;
    std::string uplink_link_prefix() const;
    // After a teardown: no runtime directory, socket directory or cgroup of `name` remains.
    Status check_gone(std::string const& name, std::vector<std::string> const& cgroup_dirs);
    void refill_pools();
    size_t pool_size(std::string const& template_name) const;

    // Validates `text`, then (unless dry_run) makes the running system match it, or returns
    // to the previous state. `exit_code` is 2 for an invalid configuration, 125 otherwise.
    // `policy_snapshot` is stored with a new generation (LoadedPolicy::snapshot).
    Result<std::vector<std::string>> apply_config(std::string const& text, std::string const& source, bool dry_run,
        std::optional<int64_t> rollback_to, int& exit_code, std::string const& policy_snapshot = {});

    // event loop
    // Adds fd to the event loop. A descriptor the loop cannot watch is never waited on: each caller
    // decides what that means (the broker does not start; a compartment is stopped; a client is closed).
    [[nodiscard]] Status watch(int fd, std::string const& name, int kind);
    void unwatch(int fd);
    void on_admin_accept();
    void on_admin_readable(int fd);
    void close_client(int fd);
    void on_agent_accept(std::string const& name);
    void on_agent_readable(std::string const& name);
    void on_pid1_exit(std::string const& name);
    void on_agent_writable(std::string const& name);
    Status watch_agent_output(Live& live, bool blocked);
    void send_pending(Live& live);
    void agent_misbehaved(std::string const& name, std::string const& what);
    void reply(int client, std::string const& json, std::vector<int> const& fds = {});
    void reply_error(int client, std::string const& message, int exit_code);
    void log(std::string const& message) const;

    // the desktop (gui.cpp)
    // A gui compartment's X server is started before anything else of it runs (its commands wait).
    void gui_prepare(Live& live);
    void gui_xserver_ended(Live& live, bool started);
    void gui_spawn(Live& live);
    void gui_stop(Live& live);
    void gui_daemon_exited(std::string const& name);
    void gui_control_readable(std::string const& name);
    void gui_paste(Live& live);
    void gui_restart_due(int64_t now_ms);
    std::optional<int64_t> gui_next_restart() const;
    // The environment of a command in `live`: clean_environment(), and DISPLAY in a gui compartment.
    std::vector<std::string> environment_of(Live const& live, bool root) const;
    // Queues a run of the broker's own in `live` (no client), its streams /dev/null or `input`.
    Result<uint32_t> queue_own_run(Live& live, std::vector<std::string> argv, sys::UniqueFd input);

    // calls (calls.cpp)
    // A policy as read, and everything it was read from (the directory, each file's text and each
    // listing, as JSON), so that a generation keeps the very policy applied with it.
    struct LoadedPolicy {
        policy::Policy policy;
        std::string snapshot;
        std::string dir; // "" for the embedded default policy
    };
    // Reads policy.d (or the embedded default policy when `policy_dir` is empty) from the disk.
    Result<LoadedPolicy> read_policy(std::string const& policy_dir) const;
    // Parses a snapshot again, reading nothing from the disk.
    Result<LoadedPolicy> policy_from_snapshot(std::string const& snapshot) const;
    // Puts a policy in force and remembers its directory (for generations that keep no policy);
    // returns "N rules from WHERE". `generation`: the policy came from that generation's snapshot.
    std::string use_policy(LoadedPolicy loaded, std::optional<int64_t> generation = std::nullopt);
    void remember_policy_dir(std::string const& policy_dir);
    void on_caller_accepted(Live& live, sys::UniqueFd connection, pid_t pid);
    void on_caller_readable(int fd);
    void close_caller(int fd);
    void route_call(int fd, wire::Call const& call);
    void refuse_call(int fd, uint32_t exit_code, std::string const& message);
    // What a caller inside is told: never a policy file, a host path or whether the target exists
    // (DESIGN.md "denials reveal nothing"); the full reason is in the audit log and the broker's log.
    void refuse_denied(int fd);
    void fail_call(int fd, std::string const& source, std::string const& detail);
    void run_call(int fd, std::string const& source, wire::Call const& call, policy::Request const& request,
        policy::Params const& params, std::string const& target_override);
    void clipboard_copy_from(int fd, sys::UniqueFd content);
    void clipboard_paste_to(int fd, std::string const& target);
    void deliver_to_caller(int fd, std::string const& target, std::string const& content);
    policy::Party party_of(std::string const& name) const;
    std::string policy_dir_for(std::string const& config_source) const;
    bool take_call_token(Live& live, int64_t now_ms);
    double call_tokens_at(Live const& live, int64_t now_ms) const;
    static double default_call_rate();
    void pause_listener(Live& live, bool paused);
    void expire_asks(int64_t now_ms);
    int next_timeout_ms(int64_t now_ms) const;
    // Appends to the audit log (broker_audit.cpp). `Later`: the line is written now, before the
    // decision takes effect, and flushed to the disk (with the head stored in SQLite) by
    // flush_audit() at the end of the loop's turn, off the call's critical path and once for every
    // record of that turn. A call's denial repeated within a window is counted, not written
    // (audit::DenialAggregator). False: the record could not be written (no space, below the
    // reserve, an I/O error): what it records must not happen (fail closed).
    enum class Durability { Now, Later };
    [[nodiscard]] bool record(audit::Record record, Durability durability = Durability::Now);
    bool append_audit(audit::Record& record, Durability durability);
    void write_due_denials(int64_t now_ms);
    void flush_audit();
    void admin_policy_check(int client, std::string const& source, std::string const& target, std::string const& service,
        std::string const& arg, bool explain);
    void admin_pending(int client);
    void admin_answer(int client, bool approve, uint64_t id, std::string const& target);
    void admin_audit(int client, uint64_t after, uint32_t limit);
    void admin_audit_verify(int client);

    // admin requests
    void admin_ls(int client);
    void admin_apply(int client, std::string const& op, std::string const& text, std::string const& file, std::string const& policy_dir);
    void admin_rollback(int client);
    void admin_lifecycle(int client, std::string const& op, std::string const& name);
    void admin_run(int client, std::string const& name, std::string const& disposable_template, bool disposable,
        std::vector<std::string> argv, std::string const& user, bool tty, uint32_t rows, uint32_t cols, std::string const& term,
        std::vector<sys::UniqueFd> fds, std::string const& copy);
    // Live grants (volumes.cpp, grants.cpp): a volume folder put into / taken out of a running compartment.
    void admin_grant(int client, std::string const& name, std::string const& volume, std::string const& at, bool read_only);
    void admin_revoke(int client, std::string const& name, std::string const& volume);
    void admin_show(int client, std::string const& name);
    void admin_generations(int client);
    void admin_stop_all(int client);
    Status save_grants(Live const& live) const;
    void load_grants(Live& live);
    nlohmann::json mounts_of(config::Compartment const& settings, Live const* live) const;

    Paths m_paths;
    std::string m_instance;
    uid_t m_id_range_base = 0;
    std::optional<StateDb> m_db;
    config::SystemConfig m_config;
    int64_t m_generation = 0;
    std::string m_default_config_path;
    std::unique_ptr<sandbox::CgroupRoot> m_cgroups;
    std::unique_ptr<sandbox::SeccompProgram> m_seccomp;
    sys::UniqueFd m_agent_exe;
    sys::UniqueFd m_state_dir; // STATE, where compartment-owned folders are reached from (O_PATH)
    sys::UniqueFd m_volumes_dir; // STATE/volumes (O_PATH)
    // Disposable templates whose pool the administrator emptied with `stop`: not refilled until a
    // disposable of it is taken again or a configuration is applied.
    std::set<std::string> m_pools_paused;
    struct Draining {
        std::string name;
        std::unique_ptr<sandbox::Cgroup> cgroup;
        int64_t since_ms = 0;
    };
    std::vector<Draining> m_draining;
    sys::UniqueFd m_lock;
    sys::UniqueFd m_epoll;
    sys::UniqueFd m_signals;
    sys::UniqueFd m_admin;
    struct Watch {
        std::string name;
        int kind = 0;
    };
    std::unordered_map<int, Watch> m_watches;
    std::map<int, sys::UniqueFd> m_clients;          // admin connections
    std::map<int, sys::UniqueFd> m_refused;          // refused, until they read why
    std::map<int, std::set<std::pair<std::string, uint32_t>>> m_client_runs; // client -> (compartment, run id)
    std::map<std::string, Live> m_live;
    uint32_t m_next_run_id = 1;
    std::map<int, Caller> m_callers;     // caller connection -> caller
    std::map<uint64_t, PendingAsk> m_asks;
    Clipboard m_clipboard;
    policy::Policy m_policy;
    std::string m_policy_dir, m_policy_snapshot; // what the policy in force was read from, and all of it
    std::string m_policy_source;         // the policy.d directory, or "embedded default policy"
    std::optional<audit::Log> m_audit;
    uint64_t m_audit_head_stored = 0; // the last seq whose head is in SQLite (flush_audit)
    std::string m_audit_path;
    audit::DenialAggregator m_denials;   // repeated denials, counted per caller and window
    struct AuditTrouble {                // records that could not be written, until one can again
        uint64_t lost = 0;
        std::string since;               // the time of the first
        std::string error;               // why the last could not
        int64_t logged_ms = -1;          // said in the broker's log at most once a minute
    } m_audit_trouble;
    int m_ask_timeout_ms = 60000;
    uint32_t m_slots = 1024;
    bool m_throttled = false;            // some listener is paused until tokens refill
    double m_call_rate = default_call_rate(); // calls per second and compartment, past the burst (calls.cpp)
    bool m_stopping = false;
    // The host display gui compartments show on ([system] display, else the daemon's $DISPLAY) and
    // its screen's size (asked once, by bulkhead-guid --probe), which their X servers take.
    std::string m_display;
    uint32_t m_screen_width = 0, m_screen_height = 0;
    bool m_display_said = false; // "no display" logged once
};

} // namespace bulkhead::broker
