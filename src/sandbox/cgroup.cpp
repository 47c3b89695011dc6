// cgroup limits on pure v2 hosts and on hybrid hosts (memory, pids, cpu as v1 hierarchies).
//
// Layout: in every hierarchy that carries one of our controllers,
//   <mount>/<own cgroup>/bulkhead.<instance>/<compartment>
// where <own cgroup> is the cgroup this process runs in (from /proc/self/cgroup), so that a broker
// run under a delegated cgroup (systemd Delegate=yes) stays inside what was delegated to it.
#include "sandbox/cgroup.hpp"

#include "base/parse.hpp"
#include "sys/syscalls.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

namespace bulkhead::sandbox {

namespace {

constexpr std::array<std::string_view, 3> wanted_controllers {"memory", "pids", "cpu"};
constexpr uint64_t cpu_period_us = 100000;

bool valid_name(std::string_view name)
{
    if (name.empty() || name.size() > 64 || name == "." || name == "..")
        return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_'
            || c == '-';
    });
}

bool file_exists(std::string const& path)
{
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
}

// One cgroup hierarchy: where it is mounted, which of our controllers it carries, and the
// directory of the cgroup we run in.
struct Hierarchy {
    std::string own_dir; // <mount>/<own cgroup path>
    std::vector<std::string> controllers;

    bool has(std::string_view controller) const
    {
        return std::find(controllers.begin(), controllers.end(), controller) != controllers.end();
    }
};

struct MountEntry {
    std::string root;        // path of the mount's root inside its hierarchy
    std::string mount_point;
    std::string fs_type;
    std::string super_options;
};

// /proc/self/mountinfo, only cgroup and cgroup2 entries. Octal escapes (\040) are decoded.
std::string unescape_mountinfo(std::string_view field)
{
    auto octal = [&](size_t k) { return k < field.size() && field[k] >= '0' && field[k] <= '7'; };
    std::string out;
    for (size_t i = 0; i < field.size(); ++i) {
        if (field[i] == '\\' && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
            out.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0')));
            i += 3;
            continue;
        }
        out.push_back(field[i]);
    }
    return out;
}

Result<std::vector<MountEntry>> cgroup_mounts()
{
    std::string text = TRY(sys::read_file("/proc/self/mountinfo", 4 << 20));
    std::vector<MountEntry> mounts;
    for (auto line : split(text, '\n')) {
        auto fields = split(line, ' ');
        // id parent major:minor root mount-point options [optional...] - fstype source super-options
        auto dash = std::find(fields.begin(), fields.end(), std::string_view("-"));
        if (fields.size() < 10 || dash == fields.end() || fields.end() - dash < 4)
            continue;
        std::string_view type = *(dash + 1);
        if (type != "cgroup" && type != "cgroup2")
            continue;
        mounts.push_back({unescape_mountinfo(fields[3]), unescape_mountinfo(fields[4]), std::string(type),
                          std::string(*(dash + 3))});
    }
    return mounts;
}

// /proc/self/cgroup: "ID:controller,list:/path"; the v2 line is "0::/path".
struct OwnCgroup {
    std::string controllers;
    std::string path;
};

Result<std::vector<OwnCgroup>> own_cgroups()
{
    std::string text = TRY(sys::read_file("/proc/self/cgroup"));
    std::vector<OwnCgroup> entries;
    for (auto line : split(text, '\n')) {
        size_t first = line.find(':');
        size_t second = first == std::string_view::npos ? first : line.find(':', first + 1);
        if (second == std::string_view::npos)
            continue;
        entries.push_back({std::string(line.substr(first + 1, second - first - 1)), std::string(line.substr(second + 1))});
    }
    return entries;
}

bool list_contains(std::string_view comma_list, std::string_view item)
{
    for (auto part : split(comma_list, ','))
        if (part == item)
            return true;
    return false;
}

// Joins a mount point and a cgroup path, given the mount's own root inside the hierarchy.
Result<std::string> own_dir_in(MountEntry const& mount, std::string const& cgroup_path)
{
    std::string relative = cgroup_path;
    if (mount.root != "/") {
        if (relative.rfind(mount.root, 0) != 0)
            return Error::from_message("own cgroup " + cgroup_path + " is not below the mount of " + mount.mount_point);
        relative = relative.substr(mount.root.size());
    }
    if (relative.find("/..") != std::string::npos)
        return Error::from_message("own cgroup path contains '..': " + cgroup_path);
    std::string dir = mount.mount_point + relative;
    while (dir.size() > 1 && dir.back() == '/')
        dir.pop_back();
    return dir;
}

std::vector<std::string> split_words(std::string_view text)
{
    std::vector<std::string> words;
    for (auto word : split(trim(text), ' '))
        if (!word.empty())
            words.emplace_back(word);
    return words;
}

Status make_dir(std::string const& path)
{
    if (::mkdir(path.c_str(), 0755) < 0 && errno != EEXIST)
        return Error::from_syscall("mkdir", path, errno);
    return {};
}

bool cgroup_empty(std::string const& dir)
{
    auto procs = sys::read_file(dir + "/cgroup.procs");
    return procs.is_error() || trim(procs.value()).empty();
}

// rmdir of a cgroup fails with EBUSY while the last task is still exiting: retry, bounded.
Status remove_dir(std::string const& dir)
{
    for (int attempt = 0; attempt < 200; ++attempt) {
        if (::rmdir(dir.c_str()) == 0 || errno == ENOENT)
            return {};
        if (errno != EBUSY)
            return Error::from_syscall("rmdir", dir, errno);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return Error::from_syscall("rmdir", dir, EBUSY);
}

Status kill_listed(std::string const& dir)
{
    auto procs = sys::read_file(dir + "/cgroup.procs");
    if (procs.is_error())
        return procs.error().code() == ENOENT ? Status {} : Status(procs.release_error());
    for (auto line : split(procs.value(), '\n')) {
        auto pid = parse_uint(trim(line));
        if (pid.has_value() && pid.value() > 1)
            (void)::kill(static_cast<pid_t>(pid.value()), SIGKILL);
    }
    return {};
}

class CgroupImpl final : public Cgroup {
public:
    CgroupImpl(CgroupMode mode, std::vector<std::pair<std::string, Hierarchy const*>> dirs, sys::UniqueFd v2_fd)
        : m_mode(mode), m_dirs(std::move(dirs)), m_v2_fd(std::move(v2_fd))
    {
    }
    ~CgroupImpl() override { (void)remove(); }

    Status apply(Limits const& limits) override
    {
        for (auto const& setting : limit_settings(m_mode, limits)) {
            auto target = std::find_if(m_dirs.begin(), m_dirs.end(),
                                       [&](auto const& entry) { return entry.second->has(setting.controller); });
            if (target == m_dirs.end())
                continue; // open_v2_at on a hierarchy without this controller
            std::string path = target->first + "/" + setting.file;
            if (setting.optional && !file_exists(path))
                continue;
            TRY(sys::write_file(path, setting.value));
        }
        return {};
    }

    Status add_process(pid_t pid) override
    {
        for (auto const& [dir, hierarchy] : m_dirs)
            TRY(sys::write_file(dir + "/cgroup.procs", std::to_string(pid)));
        return {};
    }

    int clone_into_fd() const override { return m_v2_fd.get(); }

    Status kill_all() override
    {
        for (auto const& [dir, hierarchy] : m_dirs) {
            if (m_mode == CgroupMode::V2 && file_exists(dir + "/cgroup.kill")) {
                TRY(sys::write_file(dir + "/cgroup.kill", "1"));
                continue;
            }
            TRY(kill_listed(dir));
        }
        return {};
    }

    Status remove() override
    {
        if (m_removed)
            return {};
        // Processes still inside are killed: a compartment never outlives its cgroup.
        for (int round = 0; round < 100; ++round) {
            bool all_empty = std::all_of(m_dirs.begin(), m_dirs.end(), [](auto const& e) { return cgroup_empty(e.first); });
            if (all_empty)
                break;
            (void)kill_all();
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        m_v2_fd = {};
        for (auto const& [dir, hierarchy] : m_dirs)
            TRY(remove_dir(dir));
        m_removed = true;
        return {};
    }

    Status try_remove() override
    {
        if (m_removed)
            return {};
        bool busy = false;
        for (auto const& [dir, hierarchy] : m_dirs) {
            if (!cgroup_empty(dir)) {
                (void)kill_listed(dir);
                busy = true;
                continue;
            }
            if (::rmdir(dir.c_str()) < 0 && errno != ENOENT) {
                if (errno != EBUSY)
                    return Error::from_syscall("rmdir", dir, errno);
                busy = true;
            }
        }
        if (busy)
            return Error::from_syscall("removing the cgroup", m_dirs.empty() ? "" : m_dirs.front().first, EBUSY);
        m_v2_fd = {};
        m_removed = true;
        return {};
    }

    Result<uint64_t> memory_current() const override
    {
        for (auto const& [dir, hierarchy] : m_dirs) {
            if (!hierarchy->has("memory"))
                continue;
            auto file = m_mode == CgroupMode::V2 ? "/memory.current" : "/memory.usage_in_bytes";
            std::string text = TRY(sys::read_file(dir + file));
            return parse_uint(trim(text));
        }
        return Error::from_message("no memory controller");
    }

    LimitEvents limit_events() const override
    {
        LimitEvents events;
        // "KEY VALUE" lines; a missing file or key counts as none.
        auto value_of = [](std::string const& file, std::string_view key) -> uint64_t {
            auto text = sys::read_file(file);
            if (text.is_error())
                return 0;
            for (auto line : split(text.value(), '\n')) {
                line = trim(line);
                if (line.starts_with(key) && line.size() > key.size() && line[key.size()] == ' ') {
                    auto number = parse_uint(trim(line.substr(key.size())));
                    return number.has_value() ? number.value() : 0;
                }
            }
            return 0;
        };
        for (auto const& [dir, hierarchy] : m_dirs) {
            if (hierarchy->has("memory"))
                events.oom_kills = value_of(dir + (m_mode == CgroupMode::V2 ? "/memory.events" : "/memory.oom_control"), "oom_kill");
            if (hierarchy->has("pids"))
                events.pids_refused = value_of(dir + "/pids.events", "max");
        }
        return events;
    }

    void forget() override { m_removed = true; }

    Result<bool> contains(pid_t pid) const override
    {
        if (m_dirs.empty())
            return false;
        std::string text = TRY(sys::read_file(m_dirs.front().first + "/cgroup.procs"));
        for (auto line : split(text, '\n')) {
            auto member = parse_uint(trim(line));
            if (member.has_value() && member.value() == static_cast<uint64_t>(pid))
                return true;
        }
        return false;
    }

    std::vector<std::string> directories() const override
    {
        std::vector<std::string> dirs;
        for (auto const& entry : m_dirs)
            dirs.push_back(entry.first);
        return dirs;
    }

private:
    CgroupMode m_mode;
    std::vector<std::pair<std::string, Hierarchy const*>> m_dirs;
    sys::UniqueFd m_v2_fd;
    bool m_removed = false;
};

class CgroupRootImpl final : public CgroupRoot {
public:
    CgroupRootImpl(CgroupMode mode, std::vector<Hierarchy> hierarchies, std::string instance)
        : m_mode(mode), m_hierarchies(std::move(hierarchies)), m_instance(std::move(instance))
    {
    }

    CgroupMode mode() const override { return m_mode; }

    Status prepare()
    {
        for (auto const& h : m_hierarchies) {
            if (m_mode == CgroupMode::V2)
                TRY(enable_v2_controllers(h));
            TRY(make_dir(base_of(h)));
            if (m_mode == CgroupMode::V2)
                TRY(enable_controllers(base_of(h), h.controllers));
        }
        return {};
    }

    Result<std::unique_ptr<Cgroup>> create(std::string const& name) override
    {
        if (!valid_name(name))
            return Error::from_message("cgroup name '" + name + "': use 1 to 64 of [A-Za-z0-9._-]");
        std::vector<std::pair<std::string, Hierarchy const*>> dirs;
        auto undo = [&] {
            for (auto const& entry : dirs)
                (void)::rmdir(entry.first.c_str());
        };
        for (auto const& h : m_hierarchies) {
            std::string dir = base_of(h) + "/" + name;
            if (::mkdir(dir.c_str(), 0755) < 0) {
                int err = errno;
                undo();
                if (err == EEXIST)
                    return Error::from_message("cgroup " + dir + " already exists: is a compartment '" + name
                                               + "' already running?");
                return Error::from_syscall("mkdir", dir, err);
            }
            dirs.emplace_back(dir, &h);
        }
        sys::UniqueFd v2_fd;
        if (m_mode == CgroupMode::V2 && !dirs.empty()) {
            auto fd = sys::open_path(dirs.front().first, O_RDONLY | O_DIRECTORY);
            if (fd.is_error()) {
                undo();
                return fd.release_error();
            }
            v2_fd = fd.release_value();
        }
        return std::unique_ptr<Cgroup>(new CgroupImpl(m_mode, std::move(dirs), std::move(v2_fd)));
    }

    Result<std::unique_ptr<Cgroup>> adopt(std::string const& name) override
    {
        if (!valid_name(name))
            return Error::from_message("cgroup name '" + name + "': use 1 to 64 of [A-Za-z0-9._-]");
        std::vector<std::pair<std::string, Hierarchy const*>> dirs;
        for (auto const& h : m_hierarchies) {
            std::string dir = base_of(h) + "/" + name;
            if (!file_exists(dir + "/cgroup.procs"))
                return Error::from_message("cgroup " + dir + " does not exist");
            dirs.emplace_back(dir, &h);
        }
        sys::UniqueFd v2_fd;
        if (m_mode == CgroupMode::V2 && !dirs.empty())
            v2_fd = TRY(sys::open_path(dirs.front().first, O_RDONLY | O_DIRECTORY));
        return std::unique_ptr<Cgroup>(new CgroupImpl(m_mode, std::move(dirs), std::move(v2_fd)));
    }

    std::vector<std::string> directories() const override
    {
        std::vector<std::string> dirs;
        for (auto const& h : m_hierarchies)
            dirs.push_back(base_of(h));
        return dirs;
    }

    Status remove_if_empty() override
    {
        for (auto const& h : m_hierarchies) {
            if (::rmdir(base_of(h).c_str()) < 0 && errno != ENOENT && errno != ENOTEMPTY && errno != EBUSY)
                return Error::from_syscall("rmdir", base_of(h), errno);
        }
        return {};
    }

private:
    std::string base_of(Hierarchy const& h) const { return h.own_dir + "/bulkhead." + m_instance; }

    static Status enable_controllers(std::string const& dir, std::vector<std::string> const& controllers)
    {
        std::string enable;
        for (auto const& c : controllers)
            enable += (enable.empty() ? "+" : " +") + c;
        if (enable.empty())
            return {};
        return sys::write_file(dir + "/cgroup.subtree_control", enable);
    }

    // v2's "no internal processes" rule: our own cgroup can only hand controllers down while no
    // process sits in it. A broker alone in its delegated cgroup moves itself into a leaf; one that
    // shares its cgroup with other processes gets a clear error instead of moving them.
    Status enable_v2_controllers(Hierarchy const& h) const
    {
        auto enabled = enable_controllers(h.own_dir, h.controllers);
        if (!enabled.is_error() || enabled.error().code() != EBUSY)
            return enabled;
        std::string procs = TRY(sys::read_file(h.own_dir + "/cgroup.procs"));
        size_t processes = 0;
        for (auto line : split(trim(procs), '\n'))
            processes += trim(line).empty() ? 0 : 1;
        if (processes > 1)
            return Error::from_message("cgroup " + h.own_dir
                                       + " holds other processes, so it cannot delegate controllers; run bulkhead in a "
                                         "cgroup of its own (systemd: Delegate=yes)");
        std::string leaf = h.own_dir + "/bulkhead." + m_instance + ".self";
        TRY(make_dir(leaf));
        TRY(sys::write_file(leaf + "/cgroup.procs", std::to_string(::getpid())));
        return enable_controllers(h.own_dir, h.controllers);
    }

    CgroupMode m_mode;
    std::vector<Hierarchy> m_hierarchies;
    std::string m_instance;
};

Result<std::unique_ptr<CgroupRoot>> finish(CgroupMode mode, std::vector<Hierarchy> hierarchies,
                                           std::string const& instance)
{
    auto root = std::make_unique<CgroupRootImpl>(mode, std::move(hierarchies), instance);
    TRY_CTX(root->prepare(), "preparing cgroups");
    return std::unique_ptr<CgroupRoot>(std::move(root));
}

Result<Hierarchy> v2_hierarchy(MountEntry const& mount, std::vector<OwnCgroup> const& own)
{
    auto entry = std::find_if(own.begin(), own.end(), [](auto const& o) { return o.controllers.empty(); });
    if (entry == own.end())
        return Error::from_message("/proc/self/cgroup has no cgroup v2 entry");
    Hierarchy h;
    h.own_dir = TRY(own_dir_in(mount, entry->path));
    std::string available = TRY(sys::read_file(h.own_dir + "/cgroup.controllers"));
    for (auto const& controller : split_words(available))
        if (std::find(wanted_controllers.begin(), wanted_controllers.end(), controller) != wanted_controllers.end())
            h.controllers.push_back(controller);
    return h;
}

} // namespace

std::vector<CgroupSetting> limit_settings(CgroupMode mode, Limits const& limits)
{
    std::vector<CgroupSetting> settings;
    std::string const memory = std::to_string(limits.memory_bytes);
    uint64_t const quota_us = uint64_t(limits.cpu_millis) * cpu_period_us / 1000;
    if (mode == CgroupMode::V2) {
        if (limits.memory_bytes != 0) {
            settings.push_back({"memory", "memory.max", memory});
            settings.push_back({"memory", "memory.swap.max", "0", true});
        }
        if (limits.pids != 0)
            settings.push_back({"pids", "pids.max", std::to_string(limits.pids)});
        if (limits.cpu_millis != 0)
            settings.push_back({"cpu", "cpu.max", std::to_string(quota_us) + " " + std::to_string(cpu_period_us)});
        return settings;
    }
    if (limits.memory_bytes != 0) {
        settings.push_back({"memory", "memory.limit_in_bytes", memory});
        // With swap accounting, memory+swap gets the same limit: no swapping past the limit.
        settings.push_back({"memory", "memory.memsw.limit_in_bytes", memory, true});
    }
    if (limits.pids != 0)
        settings.push_back({"pids", "pids.max", std::to_string(limits.pids)});
    if (limits.cpu_millis != 0) {
        settings.push_back({"cpu", "cpu.cfs_period_us", std::to_string(cpu_period_us)});
        settings.push_back({"cpu", "cpu.cfs_quota_us", std::to_string(quota_us)});
    }
    return settings;
}

Result<std::unique_ptr<CgroupRoot>> CgroupRoot::open(std::string const& instance)
{
    if (!valid_name(instance))
        return Error::from_message("cgroup instance '" + instance + "': use 1 to 64 of [A-Za-z0-9._-]");
    auto mounts = TRY_CTX(cgroup_mounts(), "reading /proc/self/mountinfo");
    auto own = TRY_CTX(own_cgroups(), "reading /proc/self/cgroup");

    // Pure v2 (or v2 carrying all three controllers): one hierarchy.
    for (auto const& mount : mounts) {
        if (mount.fs_type != "cgroup2")
            continue;
        auto h = v2_hierarchy(mount, own);
        if (h.has_value() && h.value().controllers.size() == wanted_controllers.size())
            return finish(CgroupMode::V2, {h.release_value()}, instance);
    }

    // Hybrid: each controller from the v1 hierarchy that carries it.
    std::vector<Hierarchy> hierarchies;
    for (auto controller : wanted_controllers) {
        auto mount = std::find_if(mounts.begin(), mounts.end(), [&](MountEntry const& m) {
            return m.fs_type == "cgroup" && list_contains(m.super_options, controller);
        });
        if (mount == mounts.end())
            return Error::from_message("no cgroup hierarchy carries the " + std::string(controller)
                                       + " controller (neither v2 nor v1)");
        auto entry = std::find_if(own.begin(), own.end(),
                                  [&](OwnCgroup const& o) { return list_contains(o.controllers, controller); });
        if (entry == own.end())
            return Error::from_message("/proc/self/cgroup has no entry for " + std::string(controller));
        std::string dir = TRY(own_dir_in(*mount, entry->path));
        auto same = std::find_if(hierarchies.begin(), hierarchies.end(), [&](auto const& h) { return h.own_dir == dir; });
        if (same != hierarchies.end()) {
            same->controllers.emplace_back(controller);
            continue;
        }
        hierarchies.push_back({dir, {std::string(controller)}});
    }
    return finish(CgroupMode::Hybrid, std::move(hierarchies), instance);
}

Result<std::unique_ptr<CgroupRoot>> CgroupRoot::open_v2_at(std::string const& v2_mount, std::string const& instance)
{
    if (!valid_name(instance))
        return Error::from_message("cgroup instance '" + instance + "': use 1 to 64 of [A-Za-z0-9._-]");
    auto mounts = TRY_CTX(cgroup_mounts(), "reading /proc/self/mountinfo");
    auto own = TRY_CTX(own_cgroups(), "reading /proc/self/cgroup");
    auto mount = std::find_if(mounts.begin(), mounts.end(),
                              [&](MountEntry const& m) { return m.fs_type == "cgroup2" && m.mount_point == v2_mount; });
    if (mount == mounts.end())
        return Error::from_message(v2_mount + " is not a cgroup2 mount");
    Hierarchy h = TRY(v2_hierarchy(*mount, own));
    return finish(CgroupMode::V2, {std::move(h)}, instance);
}

} // namespace bulkhead::sandbox
