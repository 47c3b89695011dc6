// Live grants: `bulkhead grant NAME VOLUME[/PATH] [--ro|--rw] [--at DIR]` puts a volume folder into
// a running compartment now, `bulkhead revoke NAME VOLUME[/PATH]` takes it out; `bulkhead show NAME`
// lists a compartment's volume mounts and grants.
//
// A grant is an idmapped detached mount, made here from the folder walked beneath STATE/volumes
// without following links, and moved into the compartment's mount namespace by a short-lived
// child of the broker that entered it (setns), onto a directory it reached from /home/user without
// following links (made for the compartment's user if missing). A revoke detaches that mount; a
// mount cannot be taken from descriptors already open beneath it, so every process of the
// compartment that still holds one (an open file, its working directory, a mapping) is killed.
#include "broker/broker.hpp"
#include "broker/volumes.hpp"
#include "sandbox/mounts.hpp"
#include "sys/syscalls.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bulkhead::broker {

namespace {

using nlohmann::json;
using sys::UniqueFd;

Result<uint64_t> mount_id_of(int dirfd, char const* path, int flags)
{
    struct statx st {};
    if (::statx(dirfd, path, flags, STATX_MNT_ID, &st) < 0)
        return Error::from_syscall("statx", path, errno);
    if ((st.stx_mask & STATX_MNT_ID) == 0)
        return Error::from_message("the kernel reports no mount ids");
    return static_cast<uint64_t>(st.stx_mnt_id);
}

// Runs `work` in a child that entered the mount namespace of `pid1` (its root and working
// directory are the compartment's root). The child's error message comes back through a pipe.
template <typename Work>
Status in_mount_namespace(int pid1_fd, Work work)
{
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) < 0)
        return Error::from_syscall("pipe", errno);
    UniqueFd read_end(fds[0]), write_end(fds[1]);
    pid_t child = ::fork();
    if (child < 0)
        return Error::from_syscall("fork", errno);
    if (child == 0) {
        read_end.reset();
        Status status = ::setns(pid1_fd, CLONE_NEWNS) < 0 ? Error::from_syscall("setns", errno) : work();
        if (status.is_error()) {
            std::string message = status.error().message();
            (void)!::write(write_end.get(), message.data(), std::min<size_t>(message.size(), 4000));
            ::_exit(1);
        }
        ::_exit(0);
    }
    write_end.reset();
    std::string const message = sys::read_all(read_end.get());
    int status = 0;
    while (::waitpid(child, &status, 0) < 0 && errno == EINTR) {
    }
    if (!message.empty())
        return Error::from_message(message);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return Error::from_message("the helper in the compartment's mount namespace failed");
    return {};
}

// /home/user in the namespace entered; nothing in it is followed.
Result<UniqueFd> open_home()
{
    UniqueFd root = TRY(sys::open_path("/", O_PATH | O_DIRECTORY | O_CLOEXEC));
    return sys::open_beneath(root.get(), "home/user", O_PATH | O_DIRECTORY);
}

// A process's state letter (field 3 of /proc/PID/stat): 'T' stopped, 'Z' a zombie; 0 when gone.
char state_of(pid_t pid)
{
    auto stat = sys::read_file("/proc/" + std::to_string(pid) + "/stat", 4096);
    if (stat.is_error())
        return 0;
    size_t paren = stat.value().rfind(')');
    return paren != std::string::npos && paren + 2 < stat.value().size() ? stat.value()[paren + 2] : 0;
}

struct Frozen {
    std::vector<pid_t> processes;     // every process of the compartment but PID 1
    std::vector<pid_t> stopped_by_us; // those to continue afterwards (not those stopped before)
};

// Stops every process of the compartment but PID 1 (the agent, which holds nothing of a volume)
// with SIGSTOP, listing again until a listing finds none not yet stopped: a fork under way when its
// parent's SIGSTOP arrives is abandoned by the kernel, so each listing ends with what the last one
// stopped could have made. Then waits (at most 200 ms) until they are stopped indeed.
Frozen freeze(pid_t pid1)
{
    Frozen frozen;
    for (int round = 0; round < 1000; ++round) {
        bool more = false;
        for (pid_t pid : compartment_processes(pid1)) {
            if (pid == pid1 || std::find(frozen.processes.begin(), frozen.processes.end(), pid) != frozen.processes.end())
                continue;
            frozen.processes.push_back(pid);
            if (state_of(pid) != 'T' && ::kill(pid, SIGSTOP) == 0)
                frozen.stopped_by_us.push_back(pid);
            more = true;
        }
        if (!more)
            break;
    }
    for (int wait = 0; wait < 200; ++wait) {
        bool running = std::any_of(frozen.stopped_by_us.begin(), frozen.stopped_by_us.end(), [](pid_t pid) {
            char state = state_of(pid);
            return state != 0 && state != 'T' && state != 'Z' && state != 'X';
        });
        if (!running)
            break;
        ::usleep(1000);
    }
    return frozen;
}

// Whether `pid` holds anything on the mount `mount_id`: a descriptor, its working directory or
// root, or a mapped file.
bool holds(pid_t pid, uint64_t mount_id)
{
    std::string const base = "/proc/" + std::to_string(pid);
    auto on_mount = [&](std::string const& path) {
        auto id = mount_id_of(AT_FDCWD, path.c_str(), 0);
        return !id.is_error() && id.value() == mount_id;
    };
    if (on_mount(base + "/cwd") || on_mount(base + "/root"))
        return true;
    for (char const* dir_name : {"/fd", "/map_files"}) {
        DIR* dir = ::opendir((base + dir_name).c_str());
        if (dir == nullptr)
            continue;
        bool held = false;
        while (dirent const* entry = ::readdir(dir)) {
            if (entry->d_name[0] == '.')
                continue;
            if (on_mount(base + dir_name + "/" + entry->d_name)) {
                held = true;
                break;
            }
        }
        ::closedir(dir);
        if (held)
            return true;
    }
    return false;
}

std::string mode_name(bool read_only)
{
    return read_only ? "ro" : "rw";
}

} // namespace

Status Broker::save_grants(Live const& live) const
{
    json list = json::array();
    for (auto const& grant : live.grants)
        list.push_back({{"volume", grant.volume}, {"at", grant.at}, {"mode", mode_name(grant.read_only)}, {"mount_id", grant.mount_id}});
    UniqueFd dir = TRY(sys::open_path(m_paths.run + "/ipc/" + live.name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    TRY(sys::write_file_beneath(dir.get(), "grants.json.new", list.dump() + "\n", 0644));
    return check_syscall(::renameat(dir.get(), "grants.json.new", dir.get(), "grants.json"), "rename grants.json");
}

void Broker::load_grants(Live& live)
{
    auto text = sys::read_file(m_paths.run + "/ipc/" + live.name + "/grants.json", 1 << 20);
    if (text.is_error())
        return;
    json list = json::parse(text.value(), nullptr, false);
    if (!list.is_array())
        return;
    for (auto const& item : list) {
        if (!item.is_object() || !item.value("volume", json()).is_string() || !item.value("at", json()).is_string()
            || !item.value("mount_id", json()).is_number_unsigned())
            continue;
        live.grants.push_back({item["volume"].get<std::string>(), item["at"].get<std::string>(), item.value("mode", "ro") != "rw",
            item["mount_id"].get<uint64_t>()});
    }
}

void Broker::admin_grant(int client, std::string const& name, std::string const& volume, std::string const& at_in, bool read_only)
{
    auto found = m_live.find(name);
    if (found == m_live.end() || !found->second.agent_ready)
        return reply_error(client, name + " is not running: a grant goes into a running compartment (for every start, add it to "
                                   "its mounts in system.toml)", 2);
    Live& live = found->second;
    if (live.pooled)
        return reply_error(client, name + " is in the pool of " + live.template_name + " (not taken yet): it takes no grants", 2);
    if (auto problem = volume_path_problem(volume); !problem.empty())
        return reply_error(client, "'" + volume + "' " + problem + " (VOLUME or VOLUME/PATH)", 2);
    std::string const volume_name = volume.substr(0, volume.find('/'));
    bool known = false;
    for (auto const& v : m_config.volumes)
        known = known || v.name == volume_name;
    if (!known)
        return reply_error(client, "no volume named '" + volume_name + "' in the configuration in force", 2);
    std::string const at = at_in.empty() ? volume.substr(volume.rfind('/') + 1) : at_in;
    if (auto problem = volume_path_problem(at); !problem.empty())
        return reply_error(client, "--at '" + at + "' " + problem + " (a folder relative to the home)", 2);
    for (auto const& grant : live.grants) {
        if (grant.volume == volume)
            return reply_error(client, name + " already has " + volume + " (at ~/" + grant.at + "); revoke it first", 2);
        if (grant.at == at || grant.at.starts_with(at + "/") || at.starts_with(grant.at + "/"))
            return reply_error(client, "~/" + at + " in " + name + " is taken by the grant of " + grant.volume, 2);
    }
    for (auto const& mount : live.settings.mounts)
        if (mount.at == at || mount.at.starts_with(at + "/") || at.starts_with(mount.at + "/"))
            return reply_error(client, "~/" + at + " in " + name + " is taken by its mount of " + mount.volume, 2);

    // A configured volume's own folder is made when first needed; a folder inside it must exist.
    auto folder = volume_folder(m_volumes_dir.get(), volume, volume == volume_name);
    if (folder.is_error())
        return reply_error(client, "volume " + volume + ": " + folder.error().message(), 2);
    uid_t const user = live.id_base + sandbox::inside_user_id;
    auto tree = sandbox::open_idmapped_tree_of(folder.value().get(), {volume_owner_id, user},
        read_only ? sandbox::AccessMode::ReadOnly : sandbox::AccessMode::ReadWrite);
    if (tree.is_error())
        return reply_error(client, "granting " + volume + ": " + tree.error().message(), 125);
    auto mount_id = mount_id_of(tree.value().get(), "", AT_EMPTY_PATH);
    if (mount_id.is_error())
        return reply_error(client, "granting " + volume + ": " + mount_id.error().message(), 125);
    int const tree_fd = tree.value().get();
    auto placed = in_mount_namespace(live.sandbox->pidfd(), [&]() -> Status {
        UniqueFd home = TRY(open_home());
        // ~/AT, made for the compartment's user where missing; never through a link it planted.
        UniqueFd target = TRY_CTX(sys::walk_dirs_beneath(home.get(), at, {.create = true, .mode = 0755, .owner = user}), "~/" + at);
        return sys::move_mount_fd(tree_fd, target.get());
    });
    if (placed.is_error())
        return reply_error(client, "granting " + volume + " to " + name + ": " + placed.error().message(), 125);
    live.grants.push_back({volume, at, read_only, mount_id.value()});
    if (auto saved = save_grants(live); saved.is_error())
        log(name + ": its grants could not be saved for a broker restart: " + saved.error().message());
    (void)record({.kind = "admin", .caller = "@host", .target = name, .service = "grant", .arg = volume, .verdict = "ok",
        .detail = mode_name(read_only) + " at ~/" + at});
    log(name + ": granted " + volume + " " + mode_name(read_only) + " at ~/" + at);
    reply(client, json {{"ok", true}, {"at", "/home/user/" + at}, {"mode", mode_name(read_only)}}.dump());
}

void Broker::admin_revoke(int client, std::string const& name, std::string const& volume)
{
    auto found = m_live.find(name);
    if (found == m_live.end())
        return reply_error(client, name + " is not running: grants end with the compartment", 2);
    Live& live = found->second;
    auto grant = std::find_if(live.grants.begin(), live.grants.end(), [&](Grant const& g) { return g.volume == volume; });
    if (grant == live.grants.end()) {
        std::string granted;
        for (auto const& g : live.grants)
            granted += (granted.empty() ? "" : ", ") + g.volume;
        return reply_error(client, name + " has no grant of " + volume + (granted.empty() ? " (it has none)" : " (it has: " + granted + ")"), 2);
    }
    uint64_t const mount_id = grant->mount_id;
    std::string const at = grant->at;
    auto removed = in_mount_namespace(live.sandbox->pidfd(), [&]() -> Status {
        UniqueFd home = TRY(open_home());
        size_t slash = at.rfind('/');
        UniqueFd parent = slash == std::string::npos ? TRY(sys::open_beneath(home.get(), ".", O_PATH | O_DIRECTORY))
                                                     : TRY(sys::open_beneath(home.get(), at.substr(0, slash), O_PATH | O_DIRECTORY));
        std::string const leaf = at.substr(slash + 1);
        // A mount point cannot be renamed or removed, and nothing inside can mount: the top mount on
        // `leaf` below this directory is the grant; checked by its id all the same.
        auto id = mount_id_of(parent.get(), leaf.c_str(), AT_SYMLINK_NOFOLLOW);
        if (id.is_error() || id.value() != mount_id)
            return Error::from_message("~/" + at + " no longer holds the grant's mount");
        TRY(check_syscall(::fchdir(parent.get()), "fchdir"));
        return check_syscall(::umount2(leaf.c_str(), MNT_DETACH | UMOUNT_NOFOLLOW), "umount ~/" + at);
    });
    if (removed.is_error())
        return reply_error(client, "revoking " + volume + " from " + name + ": " + removed.error().message(), 125);
    live.grants.erase(grant);
    // What was opened before the revoke still reaches the folder: its holders go. The compartment
    // is held still meanwhile, so that nothing in it forks or hands a descriptor on while it is
    // looked at.
    pid_t const pid1 = live.sandbox->pid();
    Frozen frozen = freeze(pid1);
    std::vector<pid_t> killed;
    for (pid_t pid : frozen.processes) {
        if (holds(pid, mount_id)) {
            ::kill(pid, SIGKILL);
            killed.push_back(pid);
        }
    }
    for (pid_t pid : frozen.stopped_by_us)
        if (std::find(killed.begin(), killed.end(), pid) == killed.end())
            ::kill(pid, SIGCONT);
    if (auto saved = save_grants(live); saved.is_error())
        log(name + ": its grants could not be saved for a broker restart: " + saved.error().message());
    std::string detail = "from ~/" + at;
    if (!killed.empty())
        detail += ", " + std::to_string(killed.size()) + " processes that held it open killed";
    (void)record({.kind = "admin", .caller = "@host", .target = name, .service = "revoke", .arg = volume, .verdict = "ok", .detail = detail});
    log(name + ": revoked " + volume + " " + detail);
    reply(client, json {{"ok", true}, {"killed", killed}}.dump());
}

json Broker::mounts_of(config::Compartment const& settings, Live const* live) const
{
    json list = json::array();
    for (auto const& mount : settings.mounts)
        list.push_back({{"volume", mount.volume + (mount.path.empty() ? "" : "/" + mount.path)}, {"at", mount.at},
            {"mode", mode_name(mount.mode != config::MountMode::ReadWrite)}, {"granted", false}});
    if (live != nullptr)
        for (auto const& grant : live->grants)
            list.push_back({{"volume", grant.volume}, {"at", grant.at}, {"mode", mode_name(grant.read_only)}, {"granted", true}});
    return list;
}

void Broker::admin_show(int client, std::string const& name)
{
    auto const* settings = m_config.find_compartment(name);
    auto found = m_live.find(name);
    Live const* live = found == m_live.end() ? nullptr : &found->second;
    if (settings == nullptr && live == nullptr)
        return reply_error(client, "no compartment named '" + name + "'", 2);
    config::Compartment const& effective = live != nullptr ? live->settings : *settings;
    json object = {{"ok", true}, {"name", name}, {"state", live ? (live->agent_ready ? "running" : "starting") : "stopped"},
        {"label", std::string(config::label_name(effective.label))}, {"template", effective.template_name},
        {"network", effective.network}, {"mounts", mounts_of(effective, live)}};
    reply(client, object.dump(-1, ' ', false, json::error_handler_t::replace));
}

} // namespace bulkhead::broker
