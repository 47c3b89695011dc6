// The broker's set-up, event loop, compartment lifecycle and apply. Admin requests are decoded in
// admin.cpp.
#include "broker/broker.hpp"

#include "base/parse.hpp"
#include "base/wire.hpp"
#include "broker/confine.hpp"
#include "broker/volumes.hpp"
#include "broker/plan.hpp"
#include "sandbox/seccomp.hpp"
#include "sys/socket.hpp"
#include "sys/syscalls.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <grp.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/signalfd.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/sysinfo.h>
#include <sys/sysmacros.h>
#include <unistd.h>

namespace bulkhead::broker {

namespace {

using sys::UniqueFd;

// Refused admin connections kept until the peer has read why (closing first would reset it).
constexpr size_t max_refused_clients = 16;

// Each broker owns a block of this many id ranges (65536 ids each).
constexpr uint32_t slots_per_broker = 1024;
constexpr size_t max_admin_request = 256 * 1024;
constexpr size_t max_admin_fds = 4;
constexpr char const* system_config_path = "/etc/bulkhead/system.toml";

std::string dirname_of(std::string const& path)
{
    size_t slash = path.rfind('/');
    return slash == std::string::npos ? "." : path.substr(0, slash);
}

Status make_dir(std::string const& path, mode_t mode)
{
    if (::mkdir(path.c_str(), mode) < 0 && errno != EEXIST)
        return Error::from_syscall("mkdir", path, errno);
    return {};
}

Status make_dirs(std::string const& path, mode_t mode)
{
    for (size_t slash = path.find('/', 1); slash != std::string::npos; slash = path.find('/', slash + 1))
        TRY(make_dir(path.substr(0, slash), 0755));
    return make_dir(path, mode);
}

// A directory beneath STATE that a compartment owns (its home, its volume folders), reached from
// STATE's descriptor without following any link (openat2 with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS):
// a compartment that renames a folder it owns and plants a link in its place (to /etc, say) gets
// the broker's refusal, not a directory made or chowned elsewhere by root. Returns the directory's
// descriptor, which the bind is then made from (no path is looked up again). Made now: 0700 and
// chowned through its descriptor; there already: left as it is.
Result<UniqueFd> owned_dir_beneath(int state_fd, std::string const& relative, uid_t owner)
{
    auto refused = [&](Error const& error) {
        return Error::from_message(relative + " in the state directory is not a directory of its own (a link, or "
                                   "another file, is in its place): " + error.message());
    };
    size_t slash = relative.rfind('/');
    auto parent = sys::walk_dirs_beneath(state_fd, relative.substr(0, slash), {.create = true, .mode = 0700, .owner = std::nullopt});
    if (parent.is_error())
        return refused(parent.error());
    auto dir = sys::walk_dirs_beneath(parent.value().get(), relative.substr(slash + 1), {.create = true, .mode = 0700, .owner = owner});
    if (dir.is_error())
        return refused(dir.error());
    return dir.release_value();
}

uint64_t fnv1a(std::string_view text)
{
    uint64_t hash = 1469598103934665603ULL;
    for (unsigned char c : text)
        hash = (hash ^ c) * 1099511628211ULL;
    return hash;
}

// Field 22 of /proc/PID/stat: when the process started, in clock ticks since boot.
Result<uint64_t> process_start_time(pid_t pid)
{
    std::string stat = TRY(sys::read_file("/proc/" + std::to_string(pid) + "/stat", 4096));
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos)
        return Error::from_message("unreadable /proc/" + std::to_string(pid) + "/stat");
    auto fields = split(std::string_view(stat).substr(paren + 2), ' ');
    if (fields.size() < 20)
        return Error::from_message("short /proc/" + std::to_string(pid) + "/stat");
    return parse_uint(fields[19]); // field 22 overall; fields[0] is field 3
}

Result<UniqueFd> open_agent_executable()
{
    std::vector<std::string> candidates = helper_candidates("bulkhead-agent");
    for (auto const& path : candidates) {
        int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            return UniqueFd(fd);
    }
    return Error::from_message("bulkhead-agent not found (looked in " + candidates.front() + " and " + candidates.back() + ")");
}

// RUN/bin: the agent's executable under the names of the in-compartment commands (it dispatches
// on argv[0]), bound read-only at /run/bulkhead/bin in every compartment. Replaced by rename, so
// that commands running from an older copy keep theirs.
// Copies an executable into RUN/bin under `name`, replacing any older copy by rename.
Status install_executable(int exe, std::string const& bin_dir, std::string const& name)
{
    std::string const temporary = bin_dir + "/." + name + ".new";
    (void)::unlink(temporary.c_str());
    UniqueFd out = TRY(sys::open_path(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0755));
    off_t offset = 0;
    while (true) {
        ssize_t copied = ::sendfile(out.get(), exe, &offset, 1 << 20);
        if (copied < 0)
            return Error::from_syscall("sendfile", temporary, errno);
        if (copied == 0)
            break;
    }
    TRY(check_syscall(::fchmod(out.get(), 0755), "fchmod"));
    out.reset();
    return check_syscall(::rename(temporary.c_str(), (bin_dir + "/" + name).c_str()), "rename");
}

Status install_commands(int agent_exe, std::string const& bin_dir)
{
    TRY(make_dir(bin_dir, 0755));
    TRY(install_executable(agent_exe, bin_dir, "bulkhead-agent"));
    // The GUI agent of gui compartments (dynamic: it links libxcb, which the template provides).
    for (auto const& path : helper_candidates("bulkhead-gui-agent")) {
        UniqueFd gui_agent(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
        if (gui_agent) {
            TRY(install_executable(gui_agent.get(), bin_dir, "bulkhead-gui-agent"));
            break;
        }
    }
    for (auto const* name : {"bulkhead-call", "bulkhead-copy", "bulkhead-move", "bulkhead-clip", "bulkhead-open-disposable", "bulkhead-service"}) {
        std::string const link_temporary = bin_dir + "/." + name + ".new";
        (void)::unlink(link_temporary.c_str());
        TRY(check_syscall(::link((bin_dir + "/bulkhead-agent").c_str(), link_temporary.c_str()), "link"));
        TRY(check_syscall(::rename(link_temporary.c_str(), (bin_dir + "/" + name).c_str()), "rename"));
    }
    return {};
}

} // namespace

std::vector<std::string> helper_candidates(std::string const& name)
{
    std::vector<std::string> candidates;
    char self[4096];
    ssize_t length = ::readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (length > 0) {
        std::string const dir = dirname_of(std::string(self, static_cast<size_t>(length)));
        candidates.push_back(dir + "/" + name);                   // a build tree
        candidates.push_back(dir + "/../lib/bulkhead/" + name);   // an installed or unpacked tree
    }
#ifdef BULKHEAD_HELPER_DIR
    candidates.push_back(std::string(BULKHEAD_HELPER_DIR) + "/" + name);
#endif
    candidates.push_back("/usr/lib/bulkhead/" + name);
    return candidates;
}

std::optional<PidNamespace> pid_namespace_of(pid_t pid)
{
    struct stat ns {};
    if (::stat(("/proc/" + std::to_string(pid) + "/ns/pid").c_str(), &ns) < 0)
        return std::nullopt;
    return PidNamespace {ns.st_dev, ns.st_ino};
}

std::map<PidNamespace, std::vector<pid_t>> processes_by_pid_namespace()
{
    std::map<PidNamespace, std::vector<pid_t>> found;
    DIR* proc = ::opendir("/proc");
    if (proc == nullptr)
        return found;
    while (dirent const* entry = ::readdir(proc)) {
        char* end = nullptr;
        long pid = std::strtol(entry->d_name, &end, 10);
        if (end == entry->d_name || *end != '\0' || pid <= 0)
            continue;
        if (auto ns = pid_namespace_of(static_cast<pid_t>(pid)))
            found[*ns].push_back(static_cast<pid_t>(pid));
    }
    ::closedir(proc);
    return found;
}

std::vector<pid_t> compartment_processes(pid_t pid1)
{
    auto ns = pid_namespace_of(pid1);
    if (!ns)
        return {};
    auto all = processes_by_pid_namespace();
    auto found = all.find(*ns);
    return found == all.end() ? std::vector<pid_t> {} : std::move(found->second);
}

double cpu_seconds_of(std::vector<pid_t> const& processes)
{
    static long const ticks = ::sysconf(_SC_CLK_TCK);
    uint64_t total = 0;
    for (pid_t pid : processes) {
        auto stat = sys::read_file("/proc/" + std::to_string(pid) + "/stat", 4096);
        if (stat.is_error())
            continue;
        size_t paren = stat.value().rfind(')');
        if (paren == std::string::npos)
            continue;
        auto fields = split(std::string_view(stat.value()).substr(paren + 2), ' ');
        if (fields.size() < 13)
            continue;
        auto utime = parse_uint(fields[11]), stime = parse_uint(fields[12]); // fields 14 and 15
        if (!utime.is_error() && !stime.is_error())
            total += utime.value() + stime.value();
    }
    return ticks > 0 ? static_cast<double>(total) / static_cast<double>(ticks) : 0.0;
}

uint64_t host_memory_bytes()
{
    struct sysinfo info {};
    if (::sysinfo(&info) < 0)
        return 0;
    return static_cast<uint64_t>(info.totalram) * info.mem_unit;
}

sandbox::Limits limits_of(config::Compartment const& settings)
{
    sandbox::Limits limits;
    // Limits by default: half the host's RAM, 4096 tasks; "none" lifts them.
    limits.memory_bytes = settings.memory_none ? 0 : settings.memory_bytes != 0 ? settings.memory_bytes : host_memory_bytes() / 2;
    limits.pids = settings.pids_none ? 0 : settings.pids != 0 ? settings.pids : default_pids;
    limits.cpu_millis = settings.cpu_millis;
    return limits;
}

std::string limit_message(sandbox::Cgroup::LimitEvents const& before, sandbox::Cgroup::LimitEvents const& after,
                          sandbox::Limits const& limits)
{
    std::string message;
    if (after.oom_kills > before.oom_kills)
        message = "out of memory (limit " + format_size(limits.memory_bytes) + ")";
    if (after.pids_refused > before.pids_refused)
        message += std::string(message.empty() ? "" : "; ") + "task limit (" + std::to_string(limits.pids) + ") reached";
    return message;
}

Paths Paths::for_options(Options const& options)
{
    Paths paths;
    paths.state = options.root.empty() ? "/var/lib/bulkhead" : options.root + "/state";
    paths.run = options.root.empty() ? "/run/bulkhead" : options.root + "/run";
    paths.admin_socket = options.socket_path.empty() ? paths.run + "/admin.sock" : options.socket_path;
    return paths;
}

Result<std::unique_ptr<Broker>> Broker::create(Options const& options)
{
    std::unique_ptr<Broker> broker(new Broker());
    TRY(broker->open_state(options));
    // Confined before anything of a compartment's is touched: what follows (and every helper and
    // compartment it starts) runs without the capabilities and system calls a broker never needs.
    TRY_CTX(confine_broker(), "confining the broker");
    TRY(broker->reattach());
    TRY(broker->start_from_configuration(options));
    return broker;
}

// Compartments outlive the broker: they are let go, not torn down, and the next broker adopts them.
Broker::~Broker()
{
    for (auto& [name, live] : m_live) {
        if (live.sandbox)
            live.sandbox->detach();
    }
}

void Broker::log(std::string const& message) const
{
    std::fprintf(stderr, "bulkhead daemon: %s\n", message.c_str());
}

Status Broker::open_state(Options const& options)
{
    if (!options.root.empty() && options.root.front() != '/')
        return Error::from_message("--root must be an absolute path");
    m_paths = Paths::for_options(options);
    TRY(make_dirs(m_paths.state, 0700));
    TRY(make_dirs(m_paths.run, 0700));
    for (auto const* sub : {"/compartments", "/volumes"})
        TRY(make_dir(m_paths.state + sub, 0700));
    TRY(make_dir(m_paths.run + "/compartments", 0700));
    TRY(make_dir(m_paths.run + "/ipc", 0755));

    m_lock = TRY(sys::open_path(m_paths.run + "/broker.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (::flock(m_lock.get(), LOCK_EX | LOCK_NB) < 0)
        return Error::from_message("another broker is already running on " + m_paths.run);

    m_state_dir = TRY(sys::open_path(m_paths.state, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    m_volumes_dir = TRY(sys::open_beneath(m_state_dir.get(), "volumes", O_PATH | O_DIRECTORY));
    auto converted = TRY(convert_volumes(m_volumes_dir.get()));
    if (!converted.done_before)
        log("volumes: " + std::to_string(converted.changed) + " entries given to their neutral owner (uid "
            + std::to_string(volume_owner_id) + ")"
            + (converted.too_deep > 0 ? "; " + std::to_string(converted.too_deep) + " folders too deep were left as they were" : ""));
    m_db = TRY_CTX(StateDb::open(m_paths.state + "/bulkhead.db"), "opening the state");
    uint64_t hash = fnv1a(m_paths.state);
    char instance[32];
    std::snprintf(instance, sizeof(instance), "%012llx", static_cast<unsigned long long>(hash & 0xffffffffffffULL));
    m_instance = instance;
    // 16 blocks of 1024 id ranges above 2^30; brokers on different roots usually get different blocks.
    m_id_range_base = (1U << 30) + static_cast<uid_t>((hash >> 48) % 16) * (slots_per_broker << 16);
    m_cgroups = TRY_CTX(sandbox::CgroupRoot::open(m_instance), "cgroups");
    m_seccomp = std::make_unique<sandbox::SeccompProgram>(sandbox::SeccompProgram::prebuilt(sandbox::SeccompProfile::Default));
    m_agent_exe = TRY(open_agent_executable());
    TRY_CTX(install_commands(m_agent_exe.get(), m_paths.run + "/bin"), "installing the in-compartment commands");
    m_ask_timeout_ms = options.ask_timeout_ms;
    m_slots = std::clamp<uint32_t>(options.slots, 16, slots_per_broker);
    m_audit_path = m_paths.state + "/audit.log";
    m_audit.emplace(TRY_CTX(audit::Log::open(m_audit_path, options.audit_limits), "opening the audit log " + m_audit_path));
    // Records removed from the end while no broker ran would otherwise go unnoticed: the chain
    // continues from the new end. Say so, in the log itself.
    if (auto head = m_db->audit_head(); head.has_value() && head.value()
        && (head.value()->first != m_audit->last_seq() || head.value()->second != m_audit->last_hash())) {
        std::string what = "the audit log ends at seq " + std::to_string(m_audit->last_seq()) + "; the broker wrote up to seq "
            + std::to_string(head.value()->first) + ": records were removed or changed while no broker ran";
        log("audit log: " + what);
        (void)record({.kind = "admin", .caller = "@host", .service = "audit", .verdict = "failed", .detail = what});
    }
    // Each compartment costs a few descriptors (listener, agent, pidfd): allow many.
    rlimit files {};
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0) {
        files.rlim_cur = files.rlim_max;
        (void)::setrlimit(RLIMIT_NOFILE, &files);
    }
    if (::getgroups(0, nullptr) > 0)
        TRY(check_syscall(::setgroups(0, nullptr), "setgroups"));

    m_epoll = UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!m_epoll)
        return Error::from_syscall("epoll_create1", errno);
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    ::sigprocmask(SIG_BLOCK, &mask, nullptr);
    ::signal(SIGPIPE, SIG_IGN);
    m_signals = UniqueFd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!m_signals)
        return Error::from_syscall("signalfd", errno);
    TRY_CTX(watch(m_signals.get(), {}, Signals), "watching for signals");
    m_admin = TRY_CTX(sys::listen_unix(m_paths.admin_socket, 0600), "admin socket");
    TRY_CTX(watch(m_admin.get(), {}, AdminListener), "watching the admin socket");
    m_default_config_path = options.config_path;
    if (m_default_config_path.empty() && ::access(system_config_path, R_OK) == 0)
        m_default_config_path = system_config_path;
    uint32_t random_id = 0;
    if (::getentropy(&random_id, sizeof(random_id)) == 0)
        m_next_run_id = (random_id & 0x7fffffff) | 1; // run ids do not repeat across broker restarts
    return {};
}

// Compartments recorded as running outlived the previous broker: take them over, or clean up
// after those whose PID 1 is gone.
Status Broker::reattach()
{
    auto records = TRY(m_db->running());
    for (auto const& record : records) {
        std::string const runtime_dir = m_paths.run + "/compartments/" + record.name;
        sandbox::Engine engine {m_cgroups.get(), m_seccomp.get()};
        auto adopted = sandbox::Compartment::adopt(engine, record.name, record.pid, runtime_dir);
        auto start_time = process_start_time(record.pid);
        bool alive = adopted.has_value() && start_time.has_value() && start_time.value() == record.start_time;
        if (!alive) {
            log(record.name + ": its PID 1 is gone; marked stopped and cleaned up");
            if (auto cgroup = m_cgroups->adopt(record.name); cgroup.has_value())
                (void)cgroup.value()->remove();
            (void)sys::remove_tree(runtime_dir);
            (void)sys::remove_tree(m_paths.run + "/ipc/" + record.name);
            (void)m_db->remove_running(record.name);
            if (record.disposable)
                (void)m_db->free_slot(record.name);
            continue;
        }
        if (record.disposable && record.owner.empty()) {
            // Pooled: nobody could reach it, but it is not worth trusting across a restart (or from
            // an older broker, which let anyone call into pooled disposables). The pool refills.
            log(record.name + ": a pooled disposable from before the restart: destroyed");
            (void)adopted.value().destroy();
            (void)sys::remove_tree(m_paths.run + "/ipc/" + record.name);
            (void)m_db->remove_running(record.name);
            (void)m_db->free_slot(record.name);
            continue;
        }
        Live live;
        live.name = record.name;
        live.disposable = record.disposable;
        live.template_name = record.template_name;
        live.owner = record.owner;
        live.account = record.account;
        live.main_run = record.main_run;
        live.slot = record.slot;
        live.id_base = m_id_range_base + (record.slot << 16);
        live.sandbox.emplace(adopted.release_value());
        auto listener = sys::listen_unix(m_paths.run + "/ipc/" + record.name + "/agent.sock", 0666);
        if (listener.is_error()) {
            log(record.name + ": cannot listen for its agent again (" + listener.error().message() + "); stopping it");
            (void)live.sandbox->destroy();
            (void)m_db->remove_running(record.name);
            continue;
        }
        live.listener = listener.release_value();
        load_grants(live);
        auto [entry, inserted] = m_live.emplace(record.name, std::move(live));
        auto watched = watch(entry->second.listener.get(), record.name, AgentListener);
        if (!watched.is_error())
            watched = watch(entry->second.sandbox->pidfd(), record.name, Pid1);
        if (watched.is_error()) {
            // Unwatched, it could neither be served nor noticed when it ends: stopped instead.
            stop_compartment(record.name, "it could not be watched again (" + watched.error().message() + ")");
            continue;
        }
        log(record.name + ": reattached (PID 1 is host pid " + std::to_string(record.pid) + ")");
    }
    return {};
}

// Reattached compartments learn their settings once a configuration is in force.
void Broker::fill_in_settings()
{
    for (auto& [name, live] : m_live) {
        if (!live.settings.name.empty())
            continue;
        auto const* settings = m_config.find_compartment(live.disposable ? live.template_name : name);
        if (settings == nullptr)
            continue;
        live.settings = *settings;
        live.settings.name = name;
        gui_prepare(live);
        network_adopted(live);
    }
}

Status Broker::start_from_configuration(Options const& options)
{
    // The policy first: a broker that cannot tell what is allowed does not start. It is the one
    // applied with the current generation (policy.d may have been edited since: that takes an
    // apply); a generation from before policies were kept falls back to the directory on disk.
    auto current = TRY(m_db->current_generation());
    std::string policy_dir = policy_dir_for(options.config_path.empty() ? m_default_config_path : options.config_path);
    std::string policy_snapshot;
    if (current && options.config_path.empty() && !current->policy.empty()) {
        auto stored = TRY_CTX(policy_from_snapshot(current->policy), "the policy of generation " + std::to_string(current->id));
        policy_snapshot = stored.snapshot;
        log("policy: " + use_policy(std::move(stored), current->id));
    } else {
        if (options.config_path.empty()) {
            if (auto remembered = sys::read_file(m_paths.state + "/policy-dir", 4096); remembered.has_value())
                policy_dir = remembered.value().empty() || ::access(remembered.value().c_str(), F_OK) == 0 ? remembered.value() : policy_dir;
        }
        auto loaded = TRY_CTX(read_policy(policy_dir), "the policy is invalid");
        policy_snapshot = loaded.snapshot;
        log("policy: " + use_policy(std::move(loaded)));
    }
    std::string text;
    std::string source;
    if (current && options.config_path.empty()) {
        text = current->config;
        source = current->source;
    } else if (!m_default_config_path.empty()) {
        text = TRY_CTX(sys::read_file(m_default_config_path, max_admin_request), "reading the configuration");
        source = m_default_config_path;
    } else {
        text = std::string(config::default_system_toml());
        source = "embedded default";
    }
    if (current && current->config == text) {
        auto parsed = config::parse_system_config(text, source);
        if (!parsed.config) {
            std::string message;
            for (auto const& diagnostic : parsed.errors)
                message += diagnostic.format() + "\n";
            return Error::from_message(message + "the applied generation no longer parses");
        }
        m_config = *parsed.config;
        m_generation = current->id;
        fill_in_settings();
        // Compartments with autostart that are not running (e.g. after a reboot).
        for (auto const& compartment : m_config.compartments) {
            if (compartment.autostart && !m_live.contains(compartment.name)) {
                if (auto started = start_persistent(compartment.name); started.is_error())
                    log(compartment.name + ": autostart failed: " + started.error().message());
            }
        }
        refill_pools();
        return {};
    }
    int exit_code = 0;
    auto applied = apply_config(text, source, false, std::nullopt, exit_code, policy_snapshot);
    if (applied.is_error())
        return applied.release_error();
    for (auto const& line : applied.value())
        log(line);
    fill_in_settings();
    refill_pools();
    return {};
}

// ---- event loop ----

Status Broker::watch(int fd, std::string const& name, int kind)
{
    epoll_event event {};
    event.events = EPOLLIN;
    event.data.fd = fd;
    if (fd < 0 || ::epoll_ctl(m_epoll.get(), EPOLL_CTL_ADD, fd, &event) < 0)
        return Error::from_syscall("epoll_ctl(EPOLL_CTL_ADD)", fd < 0 ? EBADF : errno);
    m_watches[fd] = {name, kind};
    return {};
}

void Broker::unwatch(int fd)
{
    if (fd < 0)
        return;
    (void)::epoll_ctl(m_epoll.get(), EPOLL_CTL_DEL, fd, nullptr);
    m_watches.erase(fd);
}

Status Broker::serve()
{
    log("serving " + m_paths.admin_socket + " (generation " + std::to_string(m_generation) + ")");
    for (auto const& dir : m_cgroups->directories())
        log("cgroups under " + dir);
    epoll_event events[64];
    while (!m_stopping) {
        bool pools_short = false;
        for (auto const& compartment : m_config.compartments) {
            if (compartment.disposable_template && pool_size(compartment.name) < compartment.preload
                && !m_pools_paused.contains(compartment.name))
                pools_short = true;
        }
        // Pools are refilled when nothing is ready and no command waits to start, so that starting a
        // disposable (~10 ms, the loop is blocked meanwhile) never delays a run in flight.
        bool run_in_flight = std::any_of(m_live.begin(), m_live.end(), [](auto const& entry) {
            return std::any_of(entry.second.runs.begin(), entry.second.runs.end(), [](auto const& run) { return !run.second.started; });
        });
        int64_t now = sys::monotonic_ms();
        expire_asks(now);
        drain_cgroups(now);
        gui_restart_due(now);
        int timeout = next_timeout_ms(now);
        if (auto restart = gui_next_restart()) {
            int const wait = static_cast<int>(std::max<int64_t>(*restart - now, 0));
            timeout = timeout < 0 ? wait : std::min(timeout, wait);
        }
        if (!m_draining.empty())
            timeout = timeout < 0 ? 50 : std::min(timeout, 50);
        if (pools_short && !run_in_flight)
            timeout = 0;
        int count = ::epoll_wait(m_epoll.get(), events, 64, timeout);
        if (count < 0 && errno == EINTR)
            continue;
        if (count < 0)
            return Error::from_syscall("epoll_wait", errno);
        if (count == 0) {
            if (pools_short && !run_in_flight)
                refill_pools(); // only when idle: requests come first
            continue;
        }
        for (int i = 0; i < count; ++i) {
            int fd = events[i].data.fd;
            auto found = m_watches.find(fd);
            if (found == m_watches.end())
                continue; // closed by an earlier event of this batch
            Watch watch = found->second;
            switch (watch.kind) {
            case Signals:
                m_stopping = true;
                break;
            case AdminListener:
                on_admin_accept();
                break;
            case AdminClient:
                on_admin_readable(fd);
                break;
            case RefusedClient: {
                // Its request is read and dropped; closed once the peer hangs up.
                auto dropped = sys::receive_record(fd, max_admin_request, max_admin_fds);
                if (dropped.is_error() ? dropped.error().code() != EAGAIN : dropped.value().end_of_stream) {
                    unwatch(fd);
                    m_refused.erase(fd);
                }
                break;
            }
            case AgentListener:
                on_agent_accept(watch.name);
                break;
            case AgentConnection:
                if (events[i].events & EPOLLOUT)
                    on_agent_writable(watch.name);
                // Still watched (the write may have stopped the compartment), and something to read.
                if ((events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && m_watches.contains(fd))
                    on_agent_readable(watch.name);
                break;
            case Pid1:
                on_pid1_exit(watch.name);
                break;
            case CallerConnection:
                on_caller_readable(fd);
                break;
            case GuiDaemon:
                gui_daemon_exited(watch.name);
                break;
            case GuiControl:
                gui_control_readable(watch.name);
                break;
            }
        }
        // The calls of this turn have their records in the log already; now they reach the disk.
        flush_audit();
    }
    flush_audit();
    log("stopping; compartments keep running and are reattached by the next broker");
    if (m_live.empty())
        (void)m_cgroups->remove_if_empty();
    return {};
}

void Broker::on_admin_accept()
{
    while (true) {
        auto accepted = sys::accept_unix(m_admin.get());
        if (accepted.is_error() || !accepted.value())
            return;
        UniqueFd client = accepted.release_value();
        // The file mode already keeps others out; the kernel's word on the peer decides.
        auto peer = sys::peer_credentials(client.get());
        if (peer.is_error() || peer.value().uid != 0) {
            uid_t uid = peer.has_value() ? peer.value().uid : static_cast<uid_t>(-1);
            log("refused an admin connection from uid " + std::to_string(uid));
            (void)sys::send_record(client.get(), R"({"ok":false,"exit":125,"error":"the admin socket serves root only"})");
            if (m_refused.size() < max_refused_clients) {
                int fd = client.get();
                if (watch(fd, {}, RefusedClient).has_value())
                    m_refused.emplace(fd, std::move(client));
            }
            continue;
        }
        int fd = client.get();
        if (auto watched = watch(fd, {}, AdminClient); watched.is_error()) {
            log("an admin connection could not be watched: " + watched.error().message());
            continue; // closed as `client` goes
        }
        m_clients.emplace(fd, std::move(client));
    }
}

void Broker::on_admin_readable(int fd)
{
    auto record = sys::receive_record(fd, max_admin_request, max_admin_fds);
    if (record.is_error()) {
        if (record.error().code() == EAGAIN)
            return;
        reply_error(fd, "bad request: " + record.error().message(), 2);
        close_client(fd);
        return;
    }
    if (record.value().end_of_stream) {
        close_client(fd);
        return;
    }
    handle_admin(fd, record.value().bytes, std::move(record.value().fds));
}

void Broker::close_client(int fd)
{
    if (auto runs = m_client_runs.find(fd); runs != m_client_runs.end()) {
        for (auto const& [name, id] : runs->second) {
            auto live = m_live.find(name);
            if (live == m_live.end())
                continue;
            auto run = live->second.runs.find(id);
            if (run == live->second.runs.end())
                continue;
            run->second.client = -1;
            if (!run->second.sent) {
                live->second.runs.erase(run);
                auto& waiting = live->second.waiting;
                waiting.erase(std::remove(waiting.begin(), waiting.end(), id), waiting.end());
                if (live->second.disposable && live->second.main_run == id)
                    stop_compartment(name, "its command was withdrawn before it started");
            } else if (live->second.agent) {
                // The client went away (Ctrl-C without a tty): its command goes too.
                live->second.kills.push_back(id);
                send_pending(live->second);
            }
        }
        m_client_runs.erase(runs);
    }
    unwatch(fd);
    m_clients.erase(fd);
}

void Broker::reply(int client, std::string const& json, std::vector<int> const& fds)
{
    if (client < 0 || !m_clients.contains(client))
        return;
    if (auto sent = sys::send_record(client, json, fds); sent.is_error()) {
        // The client would wait for ever: it gets the end of the stream instead.
        log("reply to an admin client: " + sent.error().message());
        close_client(client);
    }
}

void Broker::on_agent_accept(std::string const& name)
{
    auto found = m_live.find(name);
    if (found == m_live.end())
        return;
    Live& live = found->second;
    while (true) {
        auto accepted = sys::accept_unix(live.listener.get());
        if (accepted.is_error() || !accepted.value())
            return;
        UniqueFd connection = accepted.release_value();
        // Identity comes from the kernel: only the compartment's PID 1 is its agent; any other
        // process of the compartment is a caller (calls.cpp).
        auto peer = sys::peer_credentials(connection.get());
        if (peer.is_error() || !live.sandbox)
            continue;
        if (peer.value().pid != live.sandbox->pid()) {
            on_caller_accepted(live, std::move(connection), peer.value().pid);
            if (live.listener_paused)
                return;
            continue;
        }
        if (live.agent) {
            unwatch(live.agent.get());
            live.agent.reset();
        }
        live.agent = std::move(connection);
        live.agent_ready = false;
        if (auto watched = watch(live.agent.get(), name, AgentConnection); watched.is_error()) {
            log(name + ": its agent's connection could not be watched: " + watched.error().message());
            live.agent.reset(); // the agent connects again
        }
    }
}

void Broker::agent_misbehaved(std::string const& name, std::string const& what)
{
    log(name + ": agent misbehaved (" + what + "): disconnected and stopping the compartment");
    stop_compartment(name, "its agent misbehaved");
}

// Whether the broker also waits for the agent's connection to take more (EPOLLOUT).
Status Broker::watch_agent_output(Live& live, bool blocked)
{
    live.agent_blocked = blocked;
    epoll_event event {};
    event.events = static_cast<uint32_t>(EPOLLIN) | (blocked ? static_cast<uint32_t>(EPOLLOUT) : 0U);
    event.data.fd = live.agent.get();
    return check_syscall(::epoll_ctl(m_epoll.get(), EPOLL_CTL_MOD, live.agent.get(), &event), "epoll_ctl(EPOLL_CTL_MOD)");
}

void Broker::on_agent_writable(std::string const& name)
{
    auto found = m_live.find(name);
    if (found == m_live.end() || !found->second.agent)
        return;
    if (auto watched = watch_agent_output(found->second, false); watched.is_error())
        return agent_misbehaved(name, "its connection cannot be watched: " + watched.error().message());
    send_pending(found->second);
}

// Sends what waits for the agent: kills first, then commands in order. A connection that takes no
// more now (the agent is busy: its socket's queue is full) is not a misbehaving agent: the rest is
// sent when it can take more (EPOLLOUT), nothing is lost or reordered.
void Broker::send_pending(Live& live)
{
    if (!live.agent || !live.agent_ready || live.agent_blocked)
        return;
    auto full = [&](Error const& error) {
        if (error.code() != EAGAIN && error.code() != ENOBUFS)
            return false;
        if (auto watched = watch_agent_output(live, true); watched.is_error()) {
            agent_misbehaved(live.name, "its connection cannot be watched: " + watched.error().message());
            return true;
        }
        if (int64_t now = sys::monotonic_ms(); live.busy_logged_ms < 0 || now - live.busy_logged_ms >= 10000) {
            live.busy_logged_ms = now;
            log(live.name + ": its agent is busy (its connection is full): " + std::to_string(live.waiting.size())
                + " commands wait to be sent");
        }
        return true;
    };
    while (!live.kills.empty()) {
        auto bytes = wire::encode(wire::BrokerMessage(wire::Kill {live.kills.front()}));
        if (auto sent = sys::send_record(live.agent.get(), bytes); sent.is_error()) {
            if (!full(sent.error()))
                agent_misbehaved(live.name, "sending a kill: " + sent.error().message());
            return;
        }
        live.kills.pop_front();
    }
    while (!live.waiting.empty()) {
        uint32_t id = live.waiting.front();
        auto run = live.runs.find(id);
        if (run == live.runs.end()) {
            live.waiting.pop_front();
            continue;
        }
        // A gui compartment's commands wait for its X server (gui.cpp).
        if (live.gui.holding && id != live.gui.xserver_run)
            return;
        std::vector<int> fds;
        for (auto const& fd : run->second.fds)
            fds.push_back(fd.get());
        if (auto sent = sys::send_record(live.agent.get(), run->second.exec_record, fds); sent.is_error()) {
            if (!full(sent.error()))
                agent_misbehaved(live.name, "sending a command: " + sent.error().message());
            return;
        }
        live.waiting.pop_front();
        run->second.sent = true;
        run->second.fds.clear(); // our copies; the agent holds its own now
        run->second.exec_record.clear();
    }
}

void Broker::on_agent_readable(std::string const& name)
{
    auto found = m_live.find(name);
    if (found == m_live.end())
        return;
    Live& live = found->second;
    auto record = sys::receive_record(live.agent.get(), wire::max_agent_record, 1);
    if (record.is_error()) {
        if (record.error().code() == EAGAIN)
            return;
        return agent_misbehaved(name, record.error().message());
    }
    if (record.value().end_of_stream) {
        log(name + ": its agent closed the connection");
        return stop_compartment(name, "its agent went away");
    }
    auto message = wire::decode_agent_message(record.value().bytes);
    if (message.is_error())
        return agent_misbehaved(name, "bad frame: " + message.error().message());
    auto& fds = record.value().fds;

    if (auto* hello = std::get_if<wire::Hello>(&message.value())) {
        if (live.agent_ready || !fds.empty())
            return agent_misbehaved(name, "unexpected hello");
        live.agent_ready = true;
        live.running = hello->running;
        // (Its command's end, if it came while no broker ran, follows the hello as an Exited.)
        if (live.disposable && !live.owner.empty() && live.running == 0 && live.runs.empty())
            return stop_compartment(name, "its command ended while no broker was running");
        return send_pending(live);
    }
    if (!live.agent_ready)
        return agent_misbehaved(name, "a message before hello");
    if (auto* started = std::get_if<wire::Started>(&message.value())) {
        auto run = live.runs.find(started->id);
        if (run == live.runs.end() || !run->second.sent || run->second.started)
            return agent_misbehaved(name, "started an unknown command");
        if (fds.size() != wire::descriptors_for(message.value(), run->second.tty))
            return agent_misbehaved(name, "wrong number of descriptors");
        if (run->second.tty) {
            // Only a pty master of the compartment's own devpts is handed to the client.
            struct stat info {};
            if (::fstat(fds.front().get(), &info) < 0 || !S_ISCHR(info.st_mode) || major(info.st_rdev) != 5 || minor(info.st_rdev) != 2)
                return agent_misbehaved(name, "the descriptor beside a tty start is not a pty master");
        }
        run->second.started = true;
        if (live.sandbox)
            run->second.limits_at_start = live.sandbox->cgroup().limit_events();
        ++live.running;
        std::vector<int> pass;
        for (auto const& fd : fds)
            pass.push_back(fd.get());
        reply(run->second.client, R"({"ok":true,"started":true,"compartment":")" + name + "\"}", pass);
        return;
    }
    if (auto* exited = std::get_if<wire::Exited>(&message.value())) {
        if (!fds.empty())
            return agent_misbehaved(name, "descriptors beside an exit");
        if (live.running > 0)
            --live.running;
        auto run = live.runs.find(exited->id);
        int client = -1;
        std::string done = R"({"ok":true,"done":true})";
        if (run != live.runs.end()) {
            // A limit that bit while it ran is said, with the limit: "out of memory (limit 2G)".
            if (live.sandbox) {
                auto said = limit_message(run->second.limits_at_start, live.sandbox->cgroup().limit_events(),
                                          limits_of(live.settings));
                if (!said.empty()) {
                    done = nlohmann::json {{"ok", true}, {"done", true}, {"limit", said}}.dump();
                    log(name + ": " + said);
                }
            }
            client = run->second.client;
            if (client >= 0)
                m_client_runs[client].erase({name, exited->id});
            live.runs.erase(run);
        }
        if (exited->id == live.gui.xserver_run && live.gui.xserver_run != 0)
            gui_xserver_ended(live, WIFEXITED(exited->wait_status) && WEXITSTATUS(exited->wait_status) == 0);
        else if (exited->id == live.gui.bridge_run && live.gui.bridge_run != 0)
            live.gui.bridge_run = 0; // its daemon sees the socket close, ends and is started again
        // (An unknown id is a command started before a broker restart.) A disposable ends with the
        // command it was taken for, whatever else still runs in it.
        if (live.disposable && live.main_run != 0 && exited->id == live.main_run) {
            stop_compartment(name, "its command ended");
            reply(client, done);
            return;
        }
        reply(client, done);
        return;
    }
    auto const& failed = std::get<wire::Failed>(message.value());
    auto run = live.runs.find(failed.id);
    if (run == live.runs.end() || !run->second.sent || run->second.started || !fds.empty())
        return agent_misbehaved(name, "failed an unknown command");
    int client = run->second.client;
    if (client >= 0)
        m_client_runs[client].erase({name, failed.id});
    live.runs.erase(run);
    if (failed.id == live.gui.xserver_run && live.gui.xserver_run != 0) {
        log(name + ": gui: " + failed.message);
        gui_xserver_ended(live, false);
    } else if (failed.id == live.gui.bridge_run && live.gui.bridge_run != 0) {
        log(name + ": gui: its bridge could not start: " + failed.message);
        live.gui.bridge_run = 0;
    } else if (client < 0)
        log(name + ": a service could not start: " + failed.message); // a call's: its caller sees no status
    reply_error(client, "starting the command in " + name + ": " + failed.message, 125);
    if (live.disposable && live.main_run != 0 && failed.id == live.main_run)
        stop_compartment(name, "its command could not start");
}

void Broker::on_pid1_exit(std::string const& name)
{
    log(name + ": its PID 1 exited");
    stop_compartment(name, "its PID 1 exited");
}

// ---- lifecycle ----

Result<Live*> Broker::start_compartment(config::Compartment const& settings, bool disposable, std::string const& template_name)
{
    std::string const& name = settings.name;
    if (m_live.contains(name))
        return Error::from_message(name + " is already running");
    if (settings.backend == config::Backend::Vm)
        return Error::from_message(name + ": the vm backend is not available in this version");
    auto const* templ = m_config.find_template(settings.template_name);
    if (templ == nullptr)
        return Error::from_message(name + ": unknown template " + settings.template_name);

    for (auto it = m_draining.begin(); it != m_draining.end(); ++it) {
        if (it->name != name)
            continue;
        if (auto removed = it->cgroup->try_remove(); removed.is_error())
            return Error::from_message(name + ": the cgroup of its previous run is still being removed (" + removed.error().message()
                                       + "); try again");
        m_draining.erase(it);
        break;
    }
    uint32_t slot = TRY(m_db->slot_for(name, m_slots));
    uid_t id_base = m_id_range_base + (slot << 16);
    std::string const ipc_dir = m_paths.run + "/ipc/" + name;
    // Undone unless the compartment comes up.
    struct Undo {
        Broker* broker;
        std::string ipc_dir, name;
        bool disposable;
        bool committed = false;
        ~Undo()
        {
            if (committed)
                return;
            (void)sys::remove_tree(ipc_dir);
            if (disposable)
                (void)broker->m_db->free_slot(name);
            else
                broker->unmount_home_image(name);
        }
    } undo {this, ipc_dir, name, disposable};

    TRY(make_dir(ipc_dir, 0755));
    TRY(make_dir(ipc_dir + "/bin", 0755)); // mount point of RUN/bin
    UniqueFd listener = TRY_CTX(sys::listen_unix(ipc_dir + "/agent.sock", 0666), "agent socket");

    sandbox::Spec spec;
    spec.name = name;
    spec.templ.kind = templ->kind == config::TemplateKind::Host ? sandbox::TemplateKind::Host : sandbox::TemplateKind::Rootfs;
    spec.templ.root = templ->kind == config::TemplateKind::Host ? "/" : templ->path;
    spec.host_id_base = id_base;
    spec.binds.push_back({ipc_dir, "/run/bulkhead", sandbox::AccessMode::ReadOnly});
    spec.binds.push_back({m_paths.run + "/bin", "/run/bulkhead/bin", sandbox::AccessMode::ReadOnly});
    uid_t const user = id_base + sandbox::inside_user_id;
    // Homes and volume folders are written by compartments: made through descriptors here, and walked
    // again without following links when the engine binds them (Bind::beneath).
    // Volume folders belong to the neutral owner, shown to the compartment as its user (idmapped).
    for (auto const& mount : settings.mounts) {
        std::string relative = mount.volume + (mount.path.empty() ? "" : "/" + mount.path);
        TRY_CTX(volume_folder(m_volumes_dir.get(), relative, true), "volume " + mount.volume);
        sandbox::Bind bind {m_paths.state + "/volumes/" + relative, "/home/user/" + mount.at,
            mount.mode == config::MountMode::ReadWrite ? sandbox::AccessMode::ReadWrite : sandbox::AccessMode::ReadOnly};
        bind.beneath = m_paths.state;
        bind.idmap = sandbox::IdMap {volume_owner_id, user};
        spec.binds.push_back(bind);
    }
    if (!disposable && settings.disk_none) {
        std::string relative = "compartments/" + name + "/home";
        TRY_CTX(owned_dir_beneath(m_state_dir.get(), relative, user), "home");
        spec.home_source = m_paths.state + "/" + relative;
        spec.home_beneath = m_paths.state;
    } else if (!disposable) {
        spec.home_source = TRY_CTX(mount_home_image(settings, user), "home");
        spec.home_beneath = m_paths.run + "/homes";
    }
    TRY(network_prepare(settings, ipc_dir, spec));
    spec.limits = limits_of(settings);
    spec.agent_fd = m_agent_exe.get();
    spec.runtime_dir = m_paths.run + "/compartments";
    spec.die_with_parent = false; // compartments outlive a broker restart

    sandbox::Engine engine {m_cgroups.get(), m_seccomp.get()};
    auto created = sandbox::Compartment::create(engine, spec);
    if (created.is_error())
        return created.release_error();
    Live live;
    live.name = name;
    live.settings = settings;
    live.disposable = disposable;
    live.template_name = template_name;
    live.slot = slot;
    live.id_base = id_base;
    live.sandbox.emplace(created.release_value());
    live.listener = std::move(listener);
    // Network links before the first command: a client's after its firewall rules, a provider's (which
    // may itself be a client of another) after that. A client's provider is started with it.
    if (settings.network != "none")
        network_start_provider(settings.network, name);
    Status wired;
    if (settings.network != "none")
        wired = network_client_up(live);
    if (!wired.is_error() && settings.provides_network)
        wired = network_provider_up(live);
    if (wired.is_error()) {
        (void)live.sandbox->destroy();
        network_stopped(live);
        return wired.release_error();
    }
    RunningRecord record {name, live.sandbox->pid(), 0, slot, disposable, template_name, {}, {}, 0};
    if (auto start_time = process_start_time(record.pid); start_time.has_value())
        record.start_time = start_time.value();
    if (auto stored = m_db->put_running(record); stored.is_error()) {
        (void)live.sandbox->destroy();
        return stored.release_error();
    }
    undo.committed = true;
    auto [entry, inserted] = m_live.emplace(name, std::move(live));
    auto watched = watch(entry->second.listener.get(), name, AgentListener);
    if (!watched.is_error())
        watched = watch(entry->second.sandbox->pidfd(), name, Pid1);
    if (watched.is_error()) {
        stop_compartment(name, "it could not be watched");
        return watched.release_error().with_context("watching " + name);
    }
    gui_prepare(entry->second);
    return &entry->second;
}

Result<Live*> Broker::start_persistent(std::string const& name)
{
    auto const* settings = m_config.find_compartment(name);
    if (settings == nullptr)
        return Error::from_message("no compartment named '" + name + "'");
    return start_compartment(*settings, false, {});
}

Result<Live*> Broker::make_disposable(std::string const& template_name, bool pooled)
{
    auto const* templ = m_config.find_compartment(template_name);
    if (templ == nullptr || !templ->disposable_template)
        return Error::from_message("'" + template_name + "' is not a disposable template");
    config::Compartment settings = *templ;
    settings.name = "disp-" + std::to_string(TRY(m_db->next_number("next_disposable")));
    settings.disposable_template = false;
    settings.autostart = false;
    settings.preload = 0;
    Live* live = TRY(start_compartment(settings, true, template_name));
    live->pooled = pooled;
    return live;
}

std::string Broker::allowance_of(std::string const& owner) const
{
    auto found = m_live.find(owner);
    if (found == m_live.end() || !found->second.disposable)
        return owner; // a persistent compartment, or "@host"
    // A disposable's disposables count against whoever made it; one the administrator made has
    // an allowance of its own (its template's), so that chains of disposables stay bounded.
    Live const& maker = found->second;
    return maker.account.empty() || maker.account == "@host" ? maker.name : maker.account;
}

uint32_t Broker::allowance_size(std::string const& account) const
{
    if (account == "@host")
        return m_slots;
    auto found = m_live.find(account);
    if (found != m_live.end() && !found->second.settings.name.empty())
        return found->second.settings.max_disposables;
    if (auto const* settings = m_config.find_compartment(account))
        return settings->max_disposables;
    return config::Compartment().max_disposables;
}

bool Broker::reachable_by(Live const& live, std::string const& caller)
{
    return !live.disposable || (!live.owner.empty() && live.owner == caller);
}

Status Broker::check_disposable_allowance(std::string const& template_name, std::string const& owner) const
{
    std::string const account = allowance_of(owner);
    size_t const held = static_cast<size_t>(std::count_if(m_live.begin(), m_live.end(),
        [&](auto const& entry) { return entry.second.disposable && !entry.second.pooled && entry.second.account == account; }));
    uint32_t const allowance = allowance_size(account);
    if (account != "@host" && held >= allowance)
        return Error::from_message(account + " already has " + std::to_string(held) + " live disposables (max_disposables = "
            + std::to_string(allowance) + ")");
    if (pool_size(template_name) > 0)
        return {};
    // Slots are kept for the configured compartments and, past those, for the administrator: no
    // compartment's disposables can take the last of them.
    size_t const disposables = static_cast<size_t>(std::count_if(m_live.begin(), m_live.end(), [](auto const& entry) { return entry.second.disposable; }));
    // Compartment slots no compartment's disposables may take: the administrator can always start one.
    size_t const reserved_for_administrator = std::min<size_t>(32, m_slots / 8);
    size_t const kept = m_config.compartments.size() + (owner == "@host" ? 0 : reserved_for_administrator);
    if (disposables + kept >= m_slots)
        return Error::from_message("no compartment slot is free for another disposable (" + std::to_string(disposables)
            + " disposables run; " + std::to_string(kept) + " slots are kept for configured compartments"
            + (owner == "@host" ? std::string(")") : " and the administrator)"));
    return {};
}

Result<Live*> Broker::take_disposable(std::string const& template_name, std::string const& owner)
{
    TRY(check_disposable_allowance(template_name, owner));
    std::string const account = allowance_of(owner);
    Live* live = nullptr;
    for (auto& [name, candidate] : m_live) {
        if (candidate.pooled && candidate.template_name == template_name && (live == nullptr || candidate.agent_ready))
            live = &candidate;
    }
    if (live == nullptr)
        live = TRY(make_disposable(template_name, false));
    m_pools_paused.erase(template_name); // a pool an administrator's stop emptied is used again
    live->pooled = false;
    live->owner = owner;
    live->account = account;
    if (auto stored = m_db->set_owner(live->name, owner, account); stored.is_error()) {
        std::string const name = live->name;
        stop_compartment(name, "its owner could not be recorded");
        return stored.release_error();
    }
    return live;
}

void Broker::set_main_run(Live& live, uint32_t run_id)
{
    live.main_run = run_id;
    if (auto stored = m_db->set_main_run(live.name, run_id); stored.is_error())
        log(live.name + ": recording its command: " + stored.error().message());
}

size_t Broker::pool_size(std::string const& template_name) const
{
    return static_cast<size_t>(std::count_if(m_live.begin(), m_live.end(),
        [&](auto const& entry) { return entry.second.pooled && entry.second.template_name == template_name; }));
}

void Broker::refill_pools()
{
    for (auto const& compartment : m_config.compartments) {
        if (!compartment.disposable_template || pool_size(compartment.name) >= compartment.preload
            || m_pools_paused.contains(compartment.name))
            continue;
        if (auto made = make_disposable(compartment.name, true); made.is_error()) {
            log("preloading a disposable of " + compartment.name + ": " + made.error().message());
            return;
        }
        return; // one per idle moment
    }
}

Status Broker::check_gone(std::string const& name, std::vector<std::string> const& cgroup_dirs)
{
    for (auto const& dir : {m_paths.run + "/compartments/" + name, m_paths.run + "/ipc/" + name}) {
        if (::access(dir.c_str(), F_OK) == 0)
            return Error::from_message(dir + " is still there");
    }
    for (auto const& dir : cgroup_dirs) {
        if (::access(dir.c_str(), F_OK) == 0)
            return Error::from_message("cgroup " + dir + " is still there");
    }
    return {};
}

void Broker::stop_compartment(std::string const& name, std::string const& why)
{
    auto found = m_live.find(name);
    if (found == m_live.end())
        return;
    Live& live = found->second;
    unwatch(live.listener.get());
    unwatch(live.agent ? live.agent.get() : -1);
    if (live.sandbox)
        unwatch(live.sandbox->pidfd());
    live.agent.reset();
    live.listener.reset();
    gui_stop(live);
    std::vector<std::string> cgroup_dirs;
    if (live.sandbox) {
        cgroup_dirs = live.sandbox->cgroup_directories();
        // The cgroup is removed here if it can be at once, else from the loop: no compartment's
        // stop makes the others wait.
        auto cgroup = live.sandbox->release_cgroup();
        if (auto destroyed = live.sandbox->destroy(); destroyed.is_error())
            log(name + ": tearing down: " + destroyed.error().message());
        if (cgroup && cgroup->try_remove().is_error()) {
            m_draining.push_back({name, std::move(cgroup), sys::monotonic_ms()});
            cgroup_dirs.clear(); // checked when the loop has removed them
        }
    }
    (void)sys::remove_tree(m_paths.run + "/ipc/" + name);
    network_stopped(live);
    if (!live.disposable)
        unmount_home_image(name);
    if (auto gone = check_gone(name, cgroup_dirs); gone.is_error())
        log(name + ": not fully removed: " + gone.error().message());
    (void)m_db->remove_running(name);
    if (live.disposable)
        (void)m_db->free_slot(name);
    for (auto& [id, run] : live.runs) {
        if (run.client < 0)
            continue;
        m_client_runs[run.client].erase({name, id});
        if (!run.started)
            reply_error(run.client, name + " stopped before the command started: " + why, 125);
        else
            reply(run.client, R"({"ok":true,"done":true})");
    }
    log(name + ": stopped (" + why + ")");
    m_live.erase(found);
}

void Broker::drain_cgroups(int64_t now_ms)
{
    constexpr int64_t give_up_ms = 10 * 60 * 1000;
    for (auto it = m_draining.begin(); it != m_draining.end();) {
        auto removed = it->cgroup->try_remove();
        if (removed.has_value()) {
            log(it->name + ": its cgroup is removed now");
            it = m_draining.erase(it);
        } else if (now_ms - it->since_ms > give_up_ms) {
            log(it->name + ": its cgroup could not be removed in 10 minutes; left: " + removed.error().message());
            it->cgroup->forget();
            it = m_draining.erase(it);
        } else {
            ++it;
        }
    }
}

// ---- apply ----

Result<std::vector<std::string>> Broker::apply_config(std::string const& text, std::string const& source, bool dry_run,
    std::optional<int64_t> rollback_to, int& exit_code, std::string const& policy_snapshot)
{
    exit_code = 2;
    auto parsed = config::parse_system_config(text, source);
    std::vector<config::Diagnostic> errors = parsed.errors;
    if (parsed.config) {
        for (auto const& templ : parsed.config->templates) {
            struct stat info {};
            if (templ.kind == config::TemplateKind::Rootfs && (::stat(templ.path.c_str(), &info) < 0 || !S_ISDIR(info.st_mode)))
                errors.push_back({templ.where, "template '" + templ.name + "': " + templ.path + " is not a directory"});
        }
    }
    if (!errors.empty()) {
        std::string message;
        for (auto const& diagnostic : errors)
            message += (message.empty() ? "" : "\n") + diagnostic.format();
        return Error::from_message(message);
    }
    config::SystemConfig desired = *parsed.config;
    std::set<std::string> running;
    for (auto const& [name, live] : m_live) {
        if (!live.disposable)
            running.insert(name);
    }
    Plan plan = make_plan(m_generation ? &m_config : nullptr, desired, running);
    std::vector<std::string> lines = plan.describe();
    if (dry_run)
        return lines;

    exit_code = 125;
    config::SystemConfig previous = m_config;
    m_config = desired;
    std::vector<std::string> stopped;
    std::vector<std::string> started;
    Error failure = Error::from_message({});
    bool failed = false;
    for (auto const& name : plan.stop) {
        stop_compartment(name, "removed by apply");
        stopped.push_back(name);
    }
    for (auto const& name : plan.restart) {
        stop_compartment(name, "restarted by apply");
        stopped.push_back(name);
        if (auto result = start_persistent(name); result.is_error()) {
            failure = result.release_error().with_context("restarting " + name);
            failed = true;
            break;
        }
        started.push_back(name);
    }
    for (size_t i = 0; !failed && i < plan.start.size(); ++i) {
        if (m_live.contains(plan.start[i]))
            continue; // started already, as the network of a compartment started before it
        if (auto result = start_persistent(plan.start[i]); result.is_error()) {
            failure = result.release_error().with_context("starting " + plan.start[i]);
            failed = true;
            break;
        }
        started.push_back(plan.start[i]);
    }
    if (!failed) {
        int64_t generation = 0;
        if (rollback_to) {
            generation = *rollback_to;
            auto stored = m_db->set_current_generation(generation);
            if (stored.is_error()) {
                failure = stored.release_error();
                failed = true;
            }
        } else if (auto added = m_db->add_generation(source, text, policy_snapshot); added.is_error()) {
            failure = added.release_error();
            failed = true;
        } else {
            generation = added.value();
            if (auto stored = m_db->set_current_generation(generation); stored.is_error()) {
                failure = stored.release_error();
                failed = true;
            }
        }
        if (!failed) {
            m_generation = generation;
            // Firewall lists change in place: a running client keeps running under its new rules.
            for (auto const& compartment : m_config.compartments) {
                auto const* before = previous.find_compartment(compartment.name);
                if (!compartment.provides_network || (before != nullptr && before->firewall == compartment.firewall))
                    continue;
                if (auto updated = network_update_rules(compartment.name); updated.is_error())
                    log(updated.error().message());
                else if (before != nullptr)
                    lines.push_back(compartment.name + ": firewall rules of its running clients updated");
            }
            // Pools follow the configuration in force: pooled disposables of a template that changed,
            // went away or now wants fewer go; the pool refills from the new settings when idle.
            std::set<std::string> changed;
            for (auto const& change : plan.changes)
                if (change.kind != ChangeKind::Add)
                    changed.insert(change.name);
            std::map<std::string, uint32_t> kept;
            std::vector<std::string> stale;
            for (auto const& [name, live] : m_live) {
                if (!live.pooled)
                    continue;
                auto const* templ = m_config.find_compartment(live.template_name);
                if (changed.contains(live.template_name) || templ == nullptr || !templ->disposable_template
                    || kept[live.template_name] >= templ->preload)
                    stale.push_back(name);
                else
                    ++kept[live.template_name];
            }
            for (auto const& name : stale)
                stop_compartment(name, "its pool follows the configuration in force");
            if (!stale.empty())
                lines.push_back(std::to_string(stale.size()) + " pooled disposable(s) of changed templates stopped (pools refill from the new settings)");
            m_pools_paused.clear();
            lines.push_back("generation " + std::to_string(generation) + " applied");
            return lines;
        }
    }
    // Half way: back to what ran before.
    for (auto it = started.rbegin(); it != started.rend(); ++it)
        stop_compartment(*it, "apply rolled back");
    m_config = previous;
    for (auto const& name : stopped) {
        if (auto result = start_persistent(name); result.is_error())
            log(name + ": could not be started again during the rollback: " + result.error().message());
    }
    return Error::from_message(failure.message() + "; nothing was applied, generation " + std::to_string(m_generation)
        + " is still in force");
}

} // namespace bulkhead::broker
