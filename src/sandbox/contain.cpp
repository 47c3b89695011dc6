// Sequences the kernel concerns of src/sandbox/ into one compartment.
//
// Parent (host side)                          Child (PID 1 of the new namespaces)
//   validate the whole spec
//   runtime dir, cgroup + limits (guards)
//   clone3(NEWUSER|NEWNS|NEWPID|NEWNET|NEWIPC|NEWUTS)
//                                               close every inherited fd it does not need
//   uid/gid maps, join cgroup, send "go" ---->  become root inside, new cgroup namespace
//                                               build the root, pivot, hostname, Landlock rules
//                                               fork the payload:
//                                                 stdio, setsid, rlimits, drop capabilities,
//                                                 identity, no_new_privs, Landlock, seccomp,
//   wait for "ok" or "error: ..."  <------------  send "ok", execve
//                                               PID 1 drops everything too, reaps, forwards
//   Compartment (pidfd)             <------------  signals, sends the payload's wait status, exits
//
// The child may not rely on anything the parent's other threads hold (locks): the engine is meant
// for single-threaded callers, and the child only allocates in the setup phase.
#include "sandbox/compartment.hpp"

#include "sandbox/caps.hpp"
#include "sandbox/landlock.hpp"
#include "sandbox/mounts.hpp"
#include "sandbox/seccomp.hpp"
#include "sandbox/userns.hpp"
#include "sys/link.hpp"
#include "sys/syscalls.hpp"

#include <algorithm>
#include <cstring>
#include <fcntl.h>
#include <grp.h>
#include <linux/sched.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bulkhead::sandbox {

namespace {

using sys::UniqueFd;

constexpr int setup_failed_exit = 125;
constexpr int sync_timeout_ms = 30'000;

// ---- messages on the setup socket (SOCK_SEQPACKET: one message per send) ----

void send_message(int fd, std::string_view message)
{
    // Best effort: if the parent is gone there is nobody to tell.
    (void)::send(fd, message.data(), message.size(), MSG_NOSIGNAL);
}

[[noreturn]] void fail_child(int sync_fd, Error const& error)
{
    std::string message = "error: " + error.message();
    send_message(sync_fd, message);
    ::_exit(setup_failed_exit);
}

Status injected(Spec const& spec, SetupStep step, char const* what)
{
    if (spec.fail_at == step)
        return Error::from_message(std::string("injected failure at ") + what);
    return {};
}

// ---- the payload: the process that execs the spec's command ----

Result<std::string> find_executable(Spec const& spec)
{
    std::string const& command = spec.argv.front();
    if (command.find('/') != std::string::npos)
        return command;
    std::string_view path = "/usr/local/bin:/usr/bin:/bin";
    for (auto const& entry : spec.env) {
        if (entry.starts_with("PATH="))
            path = std::string_view(entry).substr(5);
    }
    size_t start = 0;
    while (start <= path.size()) {
        size_t end = path.find(':', start);
        if (end == std::string_view::npos)
            end = path.size();
        std::string candidate = std::string(path.substr(start, end - start)) + "/" + command;
        if (end > start && ::access(candidate.c_str(), X_OK) == 0)
            return candidate;
        start = end + 1;
    }
    return Error::from_syscall("exec", command, ENOENT);
}

Status setup_stdio(Spec const& spec)
{
    int const wanted[3] = {spec.stdin_fd, spec.stdout_fd, spec.stderr_fd};
    int high[3] = {-1, -1, -1};
    // Move out of the way first so that e.g. stdout_fd == 0 cannot be clobbered by dup2.
    for (int i = 0; i < 3; ++i) {
        int source = wanted[i];
        if (source < 0)
            source = ::open("/dev/null", i == 0 ? O_RDONLY : O_WRONLY | O_CLOEXEC);
        if (source < 0)
            return Error::from_syscall("open /dev/null", errno);
        high[i] = ::fcntl(source, F_DUPFD_CLOEXEC, 10);
        if (high[i] < 0)
            return Error::from_syscall("fcntl(F_DUPFD_CLOEXEC)", errno);
    }
    for (int i = 0; i < 3; ++i) {
        if (::dup2(high[i], i) < 0)
            return Error::from_syscall("dup2", errno);
    }
    return {};
}

Status drop_privileges(Spec const& spec, int landlock_fd, SeccompProgram const& seccomp, RunAs run_as)
{
    TRY(drop_bounding_and_lock());
    gid_t id = run_as == RunAs::User ? inside_user_id : 0;
    TRY(check_syscall(::setresgid(id, id, id), "setresgid"));
    TRY(check_syscall(::setresuid(id, id, id), "setresuid"));
    TRY(clear_capabilities());
    TRY(set_no_new_privs());
    TRY(injected(spec, SetupStep::Landlock, "landlock"));
    TRY(landlock_enforce(landlock_fd));
    TRY(injected(spec, SetupStep::Seccomp, "seccomp"));
    return seccomp.install();
}

[[noreturn]] void run_payload(Spec const& spec, int sync_fd, int landlock_fd, SeccompProgram const& seccomp)
{
    auto fail = [&](Error const& error) { fail_child(sync_fd, error); };
    if (auto status = setup_stdio(spec); status.is_error())
        fail(status.release_error());
    // A new session: no controlling terminal of the host's can be reached through /dev/tty.
    if (::setsid() < 0)
        fail(Error::from_syscall("setsid", errno));
    std::string cwd = spec.cwd.empty() ? (spec.run_as == RunAs::User ? "/home/user" : "/") : spec.cwd;
    auto executable = find_executable(spec);

    std::vector<char*> argv;
    for (auto const& arg : spec.argv)
        argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    std::vector<std::string> env_storage = spec.env.empty() ? default_environment(spec) : spec.env;
    std::vector<char*> envp;
    for (auto const& entry : env_storage)
        envp.push_back(const_cast<char*>(entry.c_str()));
    envp.push_back(nullptr);

    if (auto status = apply_rlimits(spec.limits); status.is_error())
        fail(status.release_error());
    if (auto status = drop_privileges(spec, landlock_fd, seccomp, spec.run_as); status.is_error())
        fail(status.release_error());
    if (::chdir(cwd.c_str()) < 0)
        fail(Error::from_syscall("chdir", cwd, errno));
    int const keep[] = {sync_fd};
    if (auto status = sys::close_fds_except(3, keep); status.is_error())
        fail(status.release_error());
    if (auto status = injected(spec, SetupStep::Exec, "exec"); status.is_error())
        fail(status.release_error());

    send_message(sync_fd, "ok");
    ::close(sync_fd);
    int err = ENOENT;
    if (executable.has_value()) {
        ::execve(executable.value().c_str(), argv.data(), envp.data());
        err = errno;
    }
    std::string message = "bulkhead: " + spec.argv.front() + ": " + std::strerror(err) + "\n";
    (void)::write(2, message.data(), message.size());
    ::_exit(err == ENOENT ? 127 : 126);
}

// ---- PID 1 as the agent ----

[[noreturn]] void exec_agent(Spec const& spec, int sync_fd, int landlock_fd, SeccompProgram const& seccomp)
{
    auto fail = [&](Error error) { fail_child(sync_fd, std::move(error).with_context("starting the agent")); };
    if (auto status = setup_stdio(spec); status.is_error())
        fail(status.release_error());
    if (::setsid() < 0)
        fail(Error::from_syscall("setsid", errno));
    if (::chdir("/") < 0)
        fail(Error::from_syscall("chdir", errno));
    if (auto status = apply_rlimits(spec.limits); status.is_error())
        fail(status.release_error());
    // The agent finds its descriptors at fixed numbers: 3 the setup socket, 4 the Landlock ruleset,
    // 5 its own executable. Moved high first so that no dup2 clobbers another source.
    int const sources[3] = {sync_fd, landlock_fd, spec.agent_fd};
    int high[3] = {-1, -1, -1};
    for (int i = 0; i < 3; ++i) {
        if (sources[i] >= 0 && (high[i] = ::fcntl(sources[i], F_DUPFD_CLOEXEC, 100)) < 0)
            fail(Error::from_syscall("fcntl(F_DUPFD_CLOEXEC)", errno));
    }
    for (int i = 0; i < 3; ++i) {
        // dup2 clears close-on-exec: 3 and 4 are meant to cross the exec.
        if (high[i] >= 0 && ::dup2(high[i], 3 + i) < 0)
            fail(Error::from_syscall("dup2", errno));
    }
    int const keep[] = {3, 4, 5};
    if (auto status = sys::close_fds_except(3, keep); status.is_error())
        fail(status.release_error());
    sync_fd = 3;
    if (auto status = set_no_new_privs(); status.is_error())
        fail(status.release_error());
    if (auto status = injected(spec, SetupStep::Seccomp, "seccomp"); status.is_error())
        fail(status.release_error());
    if (auto status = seccomp.install(); status.is_error())
        fail(status.release_error());
    if (auto status = injected(spec, SetupStep::Exec, "exec"); status.is_error())
        fail(status.release_error());
    char name[] = "bulkhead-agent";
    char* argv[] = {name, nullptr};
    std::string compartment = "BULKHEAD_COMPARTMENT=" + spec.name;
    char* envp[] = {compartment.data(), nullptr};
    ::syscall(SYS_execveat, 5, "", argv, envp, AT_EMPTY_PATH);
    fail(Error::from_syscall("execveat", errno));
    ::_exit(setup_failed_exit);
}

// ---- PID 1 ----

volatile sig_atomic_t g_payload_pid = 0;

void forward_signal(int sig)
{
    if (g_payload_pid > 0)
        ::kill(g_payload_pid, sig);
}

[[noreturn]] void reap_until_payload_exits(pid_t payload, int sync_fd)
{
    g_payload_pid = payload;
    struct sigaction action {};
    action.sa_handler = forward_signal;
    for (int sig : {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH})
        ::sigaction(sig, &action, nullptr);
    int payload_status = 0;
    while (true) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, 0);
        if (pid < 0 && errno == EINTR)
            continue;
        if (pid < 0)
            break;
        if (pid == payload) {
            payload_status = status;
            break;
        }
    }
    // The exact wait status, so the host can tell "exit 137" from "killed by SIGKILL".
    char message[32];
    int length = std::snprintf(message, sizeof(message), "status %d", payload_status);
    send_message(sync_fd, std::string_view(message, static_cast<size_t>(length)));
    if (WIFEXITED(payload_status))
        ::_exit(WEXITSTATUS(payload_status));
    ::_exit(128 + WTERMSIG(payload_status));
}

[[noreturn]] void child_main(Spec const& spec, std::string const& root_dir, int sync_fd, SeccompProgram const& seccomp,
                             std::vector<UniqueFd>& idmapped)
{
    auto fail = [&](Error const& error) { fail_child(sync_fd, error); };
    // The parent's descriptors (other compartments, sockets, databases) must not be reachable from here.
    std::vector<int> keep = {sync_fd, spec.stdin_fd, spec.stdout_fd, spec.stderr_fd, spec.agent_fd};
    for (auto const& tree : idmapped)
        if (tree)
            keep.push_back(tree.get());
    std::sort(keep.begin(), keep.end());
    if (auto status = sys::close_fds_except(3, keep); status.is_error())
        fail(status.release_error());

    // Host objects are opened with the host identity, which may read what root inside may not.
    auto sources = open_host_sources(spec, root_dir, idmapped);
    if (sources.is_error())
        fail(sources.release_error().with_context("opening host paths"));

    char go = 0;
    if (::recv(sync_fd, &go, 1, 0) != 1 || go != 'g')
        ::_exit(setup_failed_exit);

    if (::setresgid(0, 0, 0) < 0 || ::setresuid(0, 0, 0) < 0)
        fail(Error::from_syscall("becoming root inside", errno));
    // Set after the identity change, which would clear it.
    if (spec.die_with_parent)
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    // Re-root the cgroup namespace at the compartment's own cgroup, which the parent just joined.
    if (::unshare(CLONE_NEWCGROUP) < 0)
        fail(Error::from_syscall("unshare(CLONE_NEWCGROUP)", errno));

    auto root = build_root(spec, sources.value());
    if (root.is_error())
        fail(root.release_error().with_context("building the filesystem"));
    if (auto status = injected(spec, SetupStep::Mounts, "mounts"); status.is_error())
        fail(status.release_error());
    if (auto status = pivot_into(root.value()); status.is_error())
        fail(status.release_error());
    root.value().reset();
    if (auto status = injected(spec, SetupStep::PivotRoot, "pivot_root"); status.is_error())
        fail(status.release_error());

    std::string hostname = spec.hostname.empty() ? spec.name : spec.hostname;
    if (::sethostname(hostname.c_str(), hostname.size()) < 0 || ::setdomainname("", 0) < 0)
        fail(Error::from_syscall("sethostname", errno));
    // A new network namespace starts with lo down; every compartment gets a working loopback.
    if (auto status = sys::set_link_up("lo"); status.is_error())
        fail(status.release_error().with_context("bringing up loopback"));
    auto ruleset = landlock_prepare(landlock_paths_for(spec));
    if (ruleset.is_error())
        fail(ruleset.release_error().with_context("landlock"));
    // Not dumpable: nothing inside may open /proc/1/{mem,fd,exe} of this process.
    ::prctl(PR_SET_DUMPABLE, 0);
    if (spec.agent_fd >= 0)
        exec_agent(spec, sync_fd, ruleset.value().get(), seccomp);

    pid_t payload = ::fork();
    if (payload < 0)
        fail(Error::from_syscall("fork", errno));
    if (payload == 0)
        run_payload(spec, sync_fd, ruleset.value().get(), seccomp);

    // PID 1 keeps only the setup socket, and no privilege at all.
    int const ruleset_fd = ruleset.value().release();
    int keep_pid1[] = {std::min(sync_fd, ruleset_fd), std::max(sync_fd, ruleset_fd)};
    (void)sys::close_fds_except(0, keep_pid1);
    if (auto status = drop_privileges(spec, ruleset_fd, seccomp, RunAs::Root); status.is_error()) {
        ::kill(payload, SIGKILL);
        fail_child(sync_fd, status.release_error().with_context("init"));
    }
    if (ruleset_fd >= 0)
        ::close(ruleset_fd);
    reap_until_payload_exits(payload, sync_fd);
}

// Undoes the host-side setup unless committed.
struct HostSetup {
    std::string runtime_dir;
    std::unique_ptr<Cgroup> cgroup;
    UniqueFd pidfd;
    bool committed = false;

    ~HostSetup()
    {
        if (committed)
            return;
        if (pidfd.valid()) {
            (void)sys::pidfd_send_signal(pidfd.get(), SIGKILL);
            siginfo_t info {};
            ::waitid(P_PIDFD, static_cast<id_t>(pidfd.get()), &info, WEXITED);
        }
        if (cgroup)
            (void)cgroup->remove();
        if (!runtime_dir.empty())
            (void)sys::remove_tree(runtime_dir);
    }
};

// PID 1 starts as a copy-on-write fork of the caller and shows the caller's resident size; when a
// program inside hits the memory limit, the OOM killer must pick that program, not PID 1 (whose
// death ends the compartment). Lowering oom_score_adj needs CAP_SYS_RESOURCE; without it PID 1
// keeps the default and the caller should stay small.
void protect_init_from_oom(pid_t pid)
{
    (void)sys::write_file("/proc/" + std::to_string(pid) + "/oom_score_adj", "-1000");
}

Result<std::string> wait_for_setup(int sync_fd)
{
    pollfd pfd {sync_fd, POLLIN, 0};
    int ready = ::poll(&pfd, 1, sync_timeout_ms);
    if (ready < 0)
        return Error::from_syscall("poll", errno);
    if (ready == 0)
        return Error::from_message("the compartment did not finish setting up within 30 s");
    char buffer[4096];
    ssize_t n = ::recv(sync_fd, buffer, sizeof(buffer), 0);
    if (n < 0)
        return Error::from_syscall("recv", errno);
    return std::string(buffer, static_cast<size_t>(n));
}

} // namespace

Result<Compartment> Compartment::create(Engine const& engine, Spec const& spec)
{
    TRY(validate(spec));
    if (engine.cgroups == nullptr || engine.seccomp == nullptr)
        return Error::from_message("engine: cgroups and seccomp are required");

    // Supplementary groups survive into a user namespace and cannot be dropped there (setgroups is
    // denied); host group ids must not ride along, so the caller gives them up first.
    if (::getgroups(0, nullptr) > 0)
        TRY(check_syscall(::setgroups(0, nullptr), "setgroups"));

    HostSetup setup;
    std::string const runtime_dir = spec.runtime_dir + "/" + spec.name;
    if (::mkdir(runtime_dir.c_str(), 0700) < 0) {
        if (errno == EEXIST)
            return Error::from_message("runtime directory " + runtime_dir + " already exists: is a compartment named '"
                + spec.name + "' running?");
        return Error::from_syscall("mkdir", runtime_dir, errno);
    }
    setup.runtime_dir = runtime_dir;
    std::string const root_dir = runtime_dir + "/root";
    TRY(check_syscall(::mkdir(root_dir.c_str(), 0755), "mkdir root"));
    TRY(injected(spec, SetupStep::RuntimeDir, "runtime dir"));

    setup.cgroup = TRY_CTX(engine.cgroups->create(spec.name), "cgroup");
    TRY_CTX(setup.cgroup->apply(spec.limits), "cgroup limits");
    TRY(injected(spec, SetupStep::Cgroup, "cgroup"));

    // Made here, with host root: the compartment's first process could not set an idmap.
    std::vector<UniqueFd> idmapped = TRY_CTX(open_idmapped_binds(spec), "opening host paths");

    int sockets[2];
    TRY(check_syscall(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sockets), "socketpair"));
    UniqueFd parent_sync(sockets[0]);
    UniqueFd child_sync(sockets[1]);

    sys::Clone3Args args;
    args.flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_PIDFD;
    args.pidfd_out = &setup.pidfd;
    if (setup.cgroup->clone_into_fd() >= 0) {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup_fd = setup.cgroup->clone_into_fd();
    }
    pid_t pid = TRY(sys::clone3(args));
    if (pid == 0) {
        parent_sync.reset();
        child_main(spec, root_dir, child_sync.get(), *engine.seccomp, idmapped);
    }
    child_sync.reset();
    TRY(injected(spec, SetupStep::Clone, "clone"));

    TRY_CTX(write_id_maps(pid, spec.host_id_base), "user namespace");
    TRY(injected(spec, SetupStep::IdMap, "id map"));
    if (setup.cgroup->clone_into_fd() < 0)
        TRY_CTX(setup.cgroup->add_process(pid), "joining the cgroup");
    if (::send(parent_sync.get(), "g", 1, MSG_NOSIGNAL) != 1)
        return Error::from_syscall("send", errno).with_context("starting the compartment");

    std::string reply = TRY(wait_for_setup(parent_sync.get()));
    if (reply.starts_with("error: "))
        return Error::from_message(reply.substr(7)).with_context("setting up compartment " + spec.name);
    if (reply != "ok")
        return Error::from_message("setting up compartment " + spec.name + ": it exited during setup");
    // Only now, with the payload already forked: a privileged write also lowers oom_score_adj_min,
    // which fork copies, and the payload must not inherit the right to make itself unkillable.
    // An agent forks every later command itself, so it is never protected; being a small fresh
    // executable, it is not what the OOM killer picks.
    if (spec.agent_fd < 0)
        protect_init_from_oom(pid);

    Compartment compartment;
    compartment.m_pid = pid;
    compartment.m_pidfd = std::move(setup.pidfd);
    compartment.m_cgroup = std::move(setup.cgroup);
    compartment.m_runtime_dir = runtime_dir;
    compartment.m_sync = std::move(parent_sync);
    setup.committed = true;
    return compartment;
}

Result<Compartment> Compartment::adopt(Engine const& engine, std::string const& name, pid_t pid, std::string const& runtime_dir)
{
    if (engine.cgroups == nullptr)
        return Error::from_message("engine: cgroups are required");
    UniqueFd pidfd = TRY_CTX(sys::pidfd_open(pid), "compartment " + name);
    auto cgroup = TRY_CTX(engine.cgroups->adopt(name), "compartment " + name);
    // Checked after the pidfd is held: if `pid` is in the cgroup now, the pidfd is that process.
    if (!TRY(cgroup->contains(pid)))
        return Error::from_message("compartment " + name + ": process " + std::to_string(pid) + " is not in its cgroup");
    Compartment compartment;
    compartment.m_pid = pid;
    compartment.m_pidfd = std::move(pidfd);
    compartment.m_cgroup = std::move(cgroup);
    compartment.m_runtime_dir = runtime_dir;
    return compartment;
}

Compartment::Compartment(Compartment&&) noexcept = default;

Compartment& Compartment::operator=(Compartment&& other) noexcept
{
    if (this != &other) {
        (void)destroy();
        m_pidfd = std::move(other.m_pidfd);
        m_pid = std::exchange(other.m_pid, -1);
        m_reaped = other.m_reaped;
        m_status = other.m_status;
        m_cgroup = std::move(other.m_cgroup);
        m_runtime_dir = std::move(other.m_runtime_dir);
        m_sync = std::move(other.m_sync);
    }
    return *this;
}

Compartment::~Compartment()
{
    (void)destroy();
}

Result<ExitStatus> Compartment::wait()
{
    if (m_reaped)
        return m_status;
    if (!m_pidfd.valid())
        return Error::from_message("compartment has no process");
    siginfo_t info {};
    while (::waitid(P_PIDFD, static_cast<id_t>(m_pidfd.get()), &info, WEXITED) < 0) {
        if (errno == ECHILD) {
            // Adopted: not our child, so only its end can be observed (its parent reaps it).
            pollfd pfd {m_pidfd.get(), POLLIN, 0};
            while (::poll(&pfd, 1, -1) < 0 && errno == EINTR) {
            }
            m_reaped = true;
            m_status = {128 + SIGKILL, true, SIGKILL};
            return m_status;
        }
        if (errno != EINTR)
            return Error::from_syscall("waitid", errno);
    }
    m_reaped = true;
    // PID 1 reports the payload's own wait status just before it exits.
    char buffer[64];
    ssize_t n = ::recv(m_sync.get(), buffer, sizeof(buffer) - 1, MSG_DONTWAIT);
    int status = 0;
    if (n > 0 && (buffer[n] = '\0', std::sscanf(buffer, "status %d", &status) == 1)) {
        m_status.signaled = WIFSIGNALED(status);
        m_status.signal = m_status.signaled ? WTERMSIG(status) : 0;
        m_status.code = m_status.signaled ? 128 + m_status.signal : WEXITSTATUS(status);
    } else if (info.si_code == CLD_EXITED) {
        m_status.code = info.si_status;
    } else {
        m_status.signaled = true;
        m_status.signal = info.si_status;
        m_status.code = 128 + info.si_status;
    }
    return m_status;
}

Status Compartment::signal(int sig)
{
    if (m_reaped || !m_pidfd.valid())
        return Error::from_message("compartment is not running");
    return sys::pidfd_send_signal(m_pidfd.get(), sig);
}

void Compartment::detach()
{
    if (m_cgroup)
        m_cgroup->forget();
    m_cgroup.reset();
    m_pidfd.reset();
    m_sync.reset();
    m_runtime_dir.clear();
}

Status Compartment::destroy()
{
    Status result;
    if (m_pidfd.valid() && !m_reaped) {
        // PID 1 dying takes every process of the namespace with it.
        (void)sys::pidfd_send_signal(m_pidfd.get(), SIGKILL);
        if (auto waited = wait(); waited.is_error())
            result = waited.release_error();
    }
    m_pidfd.reset();
    m_sync.reset();
    if (m_cgroup) {
        if (auto status = m_cgroup->remove(); status.is_error() && !result.is_error())
            result = status.release_error();
        m_cgroup.reset();
    }
    if (!m_runtime_dir.empty()) {
        if (auto status = sys::remove_tree(m_runtime_dir); status.is_error() && !result.is_error())
            result = status.release_error();
        m_runtime_dir.clear();
    }
    return result;
}

} // namespace bulkhead::sandbox
