#include "sandbox/mounts.hpp"

#include "sandbox/userns.hpp"
#include "sys/syscalls.hpp"

#include <algorithm>
#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

namespace bulkhead::sandbox {

namespace {

using sys::UniqueFd;

constexpr uint64_t attr_nosuid_nodev = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;

// Top-level entries of a host template: merged-/usr distributions keep all of these as links into /usr.
constexpr std::string_view host_template_entries[] = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32"};

// Entries of a rootfs template that bulkhead builds itself instead of taking from the template.
constexpr std::string_view rootfs_generated_entries[]
    = {"etc", "dev", "proc", "sys", "tmp", "home", "run", "root", "mnt", "media", "boot", "lost+found"};

// Files of the template's /etc that programs need and that hold no secrets. Never shadow, keys,
// machine-id, ssh or sudo configuration.
constexpr std::string_view etc_passthrough[] = {
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl/certs", "ssl/openssl.cnf", "ca-certificates",
    "ca-certificates.conf", "localtime", "timezone", "protocols", "services", "mime.types", "debian_version",
    "os-release", "locale.alias", "bash.bashrc", "profile", "inputrc", "terminfo", "magic", "gai.conf", "python3",
    "bulkhead/services", // the template's services (docs/services.md)
};

// /proc files that give away host memory, kernel addresses or host-wide control: replaced by /dev/null.
constexpr std::string_view proc_masked_files[] = {
    "kcore", "kallsyms", "sysrq-trigger", "timer_list", "sched_debug", "keys", "key-users", "latency_stats",
    "kpagecount", "kpageflags", "kpagecgroup", "vmallocinfo", "slabinfo", "config.gz", "kmsg", "buddyinfo",
    "pagetypeinfo", "zoneinfo", "iomem", "ioports", "modules",
};
// /proc directories that stay readable but become read-only (host-wide writable knobs live there).
constexpr std::string_view proc_readonly_dirs[] = {"sys", "bus", "fs", "irq", "sysvipc", "pressure"};
// /proc directories hidden behind an empty read-only tmpfs.
constexpr std::string_view proc_hidden_dirs[] = {"acpi", "scsi", "driver", "tty", "asound", "dynamic_debug"};

constexpr std::string_view dev_nodes[] = {"null", "zero", "full", "random", "urandom", "tty"};

Result<UniqueFd> make_tmpfs(char const* size, char const* mode, uint64_t attrs, char const* uid = nullptr)
{
    UniqueFd fs = TRY(sys::fsopen("tmpfs"));
    TRY(sys::fsconfig_string(fs.get(), "size", size));
    TRY(sys::fsconfig_string(fs.get(), "mode", mode));
    if (uid != nullptr) {
        TRY(sys::fsconfig_string(fs.get(), "uid", uid));
        TRY(sys::fsconfig_string(fs.get(), "gid", uid));
    }
    TRY(sys::fsconfig_create(fs.get()));
    return sys::fsmount(fs.get(), attrs);
}

enum class MountPointKind { Directory, File };

// Creates the mount point (and its parents) strictly below `root`; returns an O_PATH fd of it.
Result<UniqueFd> make_mount_point(int root, std::string_view path, MountPointKind kind)
{
    if (kind == MountPointKind::Directory)
        return sys::make_dirs_beneath(root, path, 0755);
    size_t slash = path.rfind('/');
    std::string_view parent = slash == std::string_view::npos ? std::string_view {} : path.substr(0, slash);
    std::string_view leaf = slash == std::string_view::npos ? path : path.substr(slash + 1);
    UniqueFd dir = TRY(sys::make_dirs_beneath(root, parent, 0755));
    std::string name(leaf);
    // O_PATH dirs cannot create files; reopen the parent for real, still beneath the root.
    UniqueFd real_dir = TRY(sys::open_beneath(dir.get(), ".", O_RDONLY | O_DIRECTORY));
    int fd = ::openat(real_dir.get(), name.c_str(), O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0 && errno != EEXIST)
        return Error::from_syscall("create mount point", path, errno);
    if (fd >= 0)
        ::close(fd);
    return sys::open_beneath(real_dir.get(), name, O_PATH);
}

Status attach(UniqueFd const& mount, int root, std::string_view path, MountPointKind kind)
{
    UniqueFd target = TRY(make_mount_point(root, path, kind));
    return sys::move_mount_fd(mount.get(), target.get());
}

std::string join(std::string const& dir, std::string_view name)
{
    return dir == "/" ? "/" + std::string(name) : dir + "/" + std::string(name);
}

// A detached copy of the host mount tree at `source`, with `attrs` set on every mount in it. With
// `beneath` (Bind::beneath), the part of `source` below it is walked from it without following any
// link: a link a compartment planted there makes this fail instead of binding what it points at.
Result<HostEntry> open_host_tree(std::string const& source, std::string target, uint64_t attrs,
                                 std::string const& beneath = {}, int idmap_userns = -1)
{
    sys::UniqueFd walked;
    if (!beneath.empty()) {
        auto root = TRY(sys::open_path(beneath, O_PATH | O_DIRECTORY | O_NOFOLLOW));
        auto found = sys::open_beneath(root.get(), source.substr(beneath.size() + 1), O_PATH | O_NOFOLLOW);
        if (found.is_error())
            return Error::from_message(source + " is not a directory of its own (a link, or another file, is in its "
                                       "place): " + found.error().message());
        walked = found.release_value();
    }
    struct stat st {};
    if ((walked ? ::fstat(walked.get(), &st) : ::stat(source.c_str(), &st)) < 0)
        return Error::from_syscall("stat", source, errno);
    HostEntry entry;
    entry.target = std::move(target);
    entry.directory = S_ISDIR(st.st_mode);
    entry.tree = TRY(walked ? sys::clone_tree(walked.get(), "") : sys::clone_tree(AT_FDCWD, source));
    // The mapping is set on the top mount only: an idmap is refused on mounts below it.
    if (idmap_userns >= 0)
        TRY_CTX(sys::mount_setattr_idmap(entry.tree.get(), idmap_userns, sys::Recursive::No), source);
    TRY_CTX(sys::mount_setattr_fd(entry.tree.get(), attrs, 0, sys::Recursive::Yes), source);
    return entry;
}

// A template object: a symlink is replicated, a directory or file becomes a read-only bind.
// Returns nothing for objects that do not exist or are neither.
Result<std::optional<HostEntry>> open_template_object(std::string const& source, std::string target)
{
    struct stat st {};
    if (::lstat(source.c_str(), &st) < 0) {
        if (errno == ENOENT)
            return std::optional<HostEntry> {};
        return Error::from_syscall("lstat", source, errno);
    }
    if (S_ISLNK(st.st_mode)) {
        char link[4096];
        ssize_t n = ::readlink(source.c_str(), link, sizeof(link) - 1);
        if (n < 0)
            return Error::from_syscall("readlink", source, errno);
        HostEntry entry;
        entry.target = std::move(target);
        entry.link.assign(link, static_cast<size_t>(n));
        return std::optional<HostEntry>(std::move(entry));
    }
    if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
        return std::optional<HostEntry> {};
    return std::optional<HostEntry>(TRY(open_host_tree(source, std::move(target), MOUNT_ATTR_RDONLY | attr_nosuid_nodev)));
}

Status add_template_object(std::vector<HostEntry>& entries, std::string const& source, std::string target)
{
    auto entry = TRY(open_template_object(source, std::move(target)));
    if (entry)
        entries.push_back(std::move(*entry));
    return {};
}

Status open_template(Template const& templ, std::vector<HostEntry>& entries)
{
    if (templ.kind == TemplateKind::Host) {
        for (auto name : host_template_entries)
            TRY(add_template_object(entries, join(templ.root, name), std::string(name)));
        return {};
    }
    DIR* dir = ::opendir(templ.root.c_str());
    if (dir == nullptr)
        return Error::from_syscall("opendir", templ.root, errno);
    Status status;
    while (dirent* entry = ::readdir(dir)) {
        std::string_view name = entry->d_name;
        if (name == "." || name == "..")
            continue;
        bool generated = false;
        for (auto skip : rootfs_generated_entries)
            generated |= name == skip;
        if (generated)
            continue;
        status = add_template_object(entries, join(templ.root, name), std::string(name));
        if (status.is_error())
            break;
    }
    ::closedir(dir);
    return status;
}

// Attaches (or links) each entry below `root`, in order.
Status place_entries(std::vector<HostEntry>& entries, int root)
{
    for (auto& entry : entries) {
        if (!entry.link.empty()) {
            size_t slash = entry.target.rfind('/');
            std::string parent = slash == std::string::npos ? "" : entry.target.substr(0, slash);
            std::string leaf = slash == std::string::npos ? entry.target : entry.target.substr(slash + 1);
            UniqueFd parent_path = TRY(sys::make_dirs_beneath(root, parent, 0755));
            UniqueFd parent_dir = TRY(sys::open_beneath(parent_path.get(), ".", O_RDONLY | O_DIRECTORY));
            if (::symlinkat(entry.link.c_str(), parent_dir.get(), leaf.c_str()) < 0 && errno != EEXIST)
                return Error::from_syscall("symlinkat", entry.target, errno);
            continue;
        }
        TRY_CTX(attach(entry.tree, root, entry.target, entry.directory ? MountPointKind::Directory : MountPointKind::File),
            entry.target);
        entry.tree.reset();
    }
    return {};
}

Status build_etc(Spec const& spec, int root)
{
    UniqueFd etc_path = TRY(sys::make_dirs_beneath(root, "etc", 0755));
    UniqueFd etc = TRY(sys::open_beneath(etc_path.get(), ".", O_RDONLY | O_DIRECTORY));
    std::string hostname = spec.hostname.empty() ? spec.name : spec.hostname;
    TRY(sys::write_file_beneath(etc.get(), "passwd", generated_passwd(), 0644));
    TRY(sys::write_file_beneath(etc.get(), "group", generated_group(), 0644));
    TRY(sys::write_file_beneath(etc.get(), "hostname", hostname + "\n", 0644));
    TRY(sys::write_file_beneath(etc.get(), "hosts", generated_hosts(hostname), 0644));
    // A login shell's /etc/profile sets PATH anew; this puts the in-compartment commands back.
    TRY(sys::make_dirs_beneath(etc.get(), "profile.d", 0755));
    TRY(sys::write_file_beneath(etc.get(), "profile.d/bulkhead.sh",
        "# bulkhead: the commands that reach other compartments (bulkhead-call, bulkhead-copy ...)\n"
        "case \":$PATH:\" in *:/run/bulkhead/bin:*) ;; *) PATH=\"$PATH:/run/bulkhead/bin\"; export PATH ;; esac\n", 0644));
    TRY(sys::write_file_beneath(etc.get(), "resolv.conf", "# this compartment has no network\n", 0644));
    TRY(sys::write_file_beneath(etc.get(), "nsswitch.conf",
        "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\n"
        "services: files\n",
        0644));

    return {};
}

Status build_dev(HostSources& sources, int root)
{
    UniqueFd dev = TRY(make_tmpfs("1M", "0755", MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC));
    TRY(attach(dev, root, "dev", MountPointKind::Directory));
    UniqueFd dev_dir = TRY(sys::open_beneath(root, "dev", O_RDONLY | O_DIRECTORY));
    TRY(place_entries(sources.dev_entries, root));

    // A private devpts instance: the compartment sees only its own terminals.
    UniqueFd fs = TRY(sys::fsopen("devpts"));
    TRY(sys::fsconfig_flag(fs.get(), "newinstance"));
    TRY(sys::fsconfig_string(fs.get(), "ptmxmode", "0666"));
    TRY(sys::fsconfig_string(fs.get(), "mode", "0620"));
    TRY(sys::fsconfig_string(fs.get(), "gid", "5"));
    TRY(sys::fsconfig_create(fs.get()));
    UniqueFd pts = TRY(sys::fsmount(fs.get(), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC));
    TRY(attach(pts, root, "dev/pts", MountPointKind::Directory));

    UniqueFd shm = TRY(make_tmpfs("64M", "1777", attr_nosuid_nodev));
    TRY(attach(shm, root, "dev/shm", MountPointKind::Directory));

    // The compartment's own IPC namespace's POSIX message queues. Mounted so that Landlock has a
    // path to grant: mq_open() creates files on this same filesystem.
    UniqueFd mq_fs = TRY(sys::fsopen("mqueue"));
    TRY(sys::fsconfig_create(mq_fs.get()));
    UniqueFd mqueue = TRY(sys::fsmount(mq_fs.get(), attr_nosuid_nodev | MOUNT_ATTR_NOEXEC));
    TRY(attach(mqueue, root, "dev/mqueue", MountPointKind::Directory));

    struct Link {
        char const* name;
        char const* target;
    };
    static constexpr Link links[] = {
        {"ptmx", "pts/ptmx"}, {"fd", "/proc/self/fd"}, {"stdin", "/proc/self/fd/0"},
        {"stdout", "/proc/self/fd/1"}, {"stderr", "/proc/self/fd/2"},
    };
    for (auto const& link : links) {
        if (::symlinkat(link.target, dev_dir.get(), link.name) < 0)
            return Error::from_syscall("symlinkat", link.name, errno);
    }
    // Nothing more may be created in /dev.
    UniqueFd dev_mount = TRY(sys::open_beneath(root, "dev", O_PATH | O_DIRECTORY));
    return sys::mount_setattr_fd(dev_mount.get(), MOUNT_ATTR_RDONLY, 0, sys::Recursive::No);
}

Status build_proc(int root)
{
    UniqueFd fs = TRY(sys::fsopen("proc"));
    // Only processes the viewer may ptrace are listed. PID 1 is a non-dumpable copy of the process
    // that made the compartment: hidden, its command line (the broker's) cannot be read.
    TRY(sys::fsconfig_string(fs.get(), "hidepid", "ptraceable"));
    TRY(sys::fsconfig_create(fs.get()));
    UniqueFd proc = TRY(sys::fsmount(fs.get(), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC));
    TRY(attach(proc, root, "proc", MountPointKind::Directory));
    UniqueFd proc_dir = TRY(sys::open_beneath(root, "proc", O_PATH | O_DIRECTORY));

    for (auto name : proc_masked_files) {
        auto target = sys::open_beneath(proc_dir.get(), name, O_PATH);
        if (target.is_error())
            continue; // not on this kernel
        UniqueFd null_tree = TRY(sys::clone_tree(root, "dev/null"));
        TRY(sys::mount_setattr_fd(null_tree.get(), MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, 0, sys::Recursive::Yes));
        TRY_CTX(sys::move_mount_fd(null_tree.get(), target.value().get()), "masking /proc/" + std::string(name));
    }
    for (auto name : proc_readonly_dirs) {
        auto target = sys::open_beneath(proc_dir.get(), name, O_PATH | O_DIRECTORY);
        if (target.is_error())
            continue;
        UniqueFd tree = TRY(sys::clone_tree(target.value().get(), ""));
        TRY(sys::mount_setattr_fd(tree.get(), MOUNT_ATTR_RDONLY, 0, sys::Recursive::Yes));
        TRY_CTX(sys::move_mount_fd(tree.get(), target.value().get()), "making /proc/" + std::string(name) + " read-only");
    }
    for (auto name : proc_hidden_dirs) {
        auto target = sys::open_beneath(proc_dir.get(), name, O_PATH | O_DIRECTORY);
        if (target.is_error())
            continue;
        UniqueFd empty = TRY(make_tmpfs("4k", "0555", MOUNT_ATTR_RDONLY | attr_nosuid_nodev | MOUNT_ATTR_NOEXEC));
        TRY_CTX(sys::move_mount_fd(empty.get(), target.value().get()), "hiding /proc/" + std::string(name));
    }
    return {};
}

Status build_writable(Spec const& spec, HostSources& sources, int root)
{
    std::string const tmp_size = std::to_string(spec.limits.tmp_bytes);
    UniqueFd tmp = TRY(make_tmpfs(tmp_size.c_str(), "1777", attr_nosuid_nodev));
    TRY(attach(tmp, root, "tmp", MountPointKind::Directory));
    UniqueFd run = TRY(make_tmpfs("8M", "0755", attr_nosuid_nodev | MOUNT_ATTR_NOEXEC));
    TRY(attach(run, root, "run", MountPointKind::Directory));
    // root's home: writable scratch, so that a payload run as root inside has a usable $HOME.
    UniqueFd root_home = TRY(make_tmpfs(tmp_size.c_str(), "0700", attr_nosuid_nodev));
    TRY(attach(root_home, root, "root", MountPointKind::Directory));

    if (sources.home)
        return attach(sources.home->tree, root, "home/user", MountPointKind::Directory);
    std::string const user = std::to_string(inside_user_id);
    UniqueFd home = TRY(make_tmpfs(tmp_size.c_str(), "0700", attr_nosuid_nodev, user.c_str()));
    return attach(home, root, "home/user", MountPointKind::Directory);
}

uint64_t bind_attrs(AccessMode mode)
{
    return attr_nosuid_nodev | (mode == AccessMode::ReadOnly ? MOUNT_ATTR_RDONLY : 0);
}

} // namespace

std::string generated_passwd()
{
    return "root:x:0:0:root:/root:/bin/sh\n"
           "user:x:1000:1000:user:/home/user:/bin/bash\n"
           "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
}

std::string generated_group()
{
    return "root:x:0:\ntty:x:5:\nuser:x:1000:\nnogroup:x:65534:\n";
}

std::string generated_hosts(std::string const& hostname)
{
    return "127.0.0.1\tlocalhost\n127.0.1.1\t" + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n";
}

Result<UniqueFd> open_idmapped_tree_of(int dir_fd, IdMap const& map, AccessMode mode)
{
    UniqueFd userns = TRY(idmap_userns(map));
    UniqueFd tree = TRY(sys::clone_tree(dir_fd, ""));
    TRY(sys::mount_setattr_idmap(tree.get(), userns.get(), sys::Recursive::No));
    TRY(sys::mount_setattr_fd(tree.get(), bind_attrs(mode), 0, sys::Recursive::Yes));
    return tree;
}

Result<std::vector<UniqueFd>> open_idmapped_binds(Spec const& spec)
{
    std::vector<UniqueFd> trees(spec.binds.size());
    // One user namespace per mapping (a compartment's volumes all share one), not one per bind.
    std::vector<std::pair<IdMap, UniqueFd>> namespaces;
    for (size_t i = 0; i < spec.binds.size(); ++i) {
        auto const& b = spec.binds[i];
        if (!b.idmap)
            continue;
        auto same = std::find_if(namespaces.begin(), namespaces.end(),
            [&](auto const& entry) { return entry.first.on_disk == b.idmap->on_disk && entry.first.host == b.idmap->host; });
        if (same == namespaces.end()) {
            namespaces.emplace_back(*b.idmap, TRY(idmap_userns(*b.idmap)));
            same = std::prev(namespaces.end());
        }
        std::string const field = "binds[" + std::to_string(i) + "]";
        HostEntry entry = TRY_CTX(open_host_tree(b.source, {}, bind_attrs(b.mode), b.beneath, same->second.get()), field);
        if (!entry.directory)
            return Error::from_message(field + ": " + b.source + " is not a directory");
        trees[i] = std::move(entry.tree);
    }
    return trees;
}

Result<HostSources> open_host_sources(Spec const& spec, std::string const& mountpoint, std::vector<UniqueFd>& idmapped)
{
    HostSources sources;
    sources.mountpoint = TRY(sys::open_path(mountpoint, O_PATH | O_DIRECTORY | O_NOFOLLOW));
    TRY_CTX(open_template(spec.templ, sources.template_entries), "template");
    std::string const templ_etc = join(spec.templ.root, "etc");
    for (auto name : etc_passthrough)
        TRY_CTX(add_template_object(sources.etc_entries, templ_etc + "/" + std::string(name), "etc/" + std::string(name)), "etc");
    for (auto node : dev_nodes) {
        sources.dev_entries.push_back(
            TRY_CTX(open_host_tree("/dev/" + std::string(node), "dev/" + std::string(node), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC), "dev"));
    }
    for (size_t i = 0; i < spec.binds.size(); ++i) {
        auto const& b = spec.binds[i];
        if (i < idmapped.size() && idmapped[i]) {
            HostEntry entry;
            entry.target = b.target.substr(1);
            entry.tree = std::move(idmapped[i]);
            sources.binds.push_back(std::move(entry));
            continue;
        }
        sources.binds.push_back(TRY_CTX(open_host_tree(b.source, b.target.substr(1), bind_attrs(b.mode), b.beneath),
                                        "binds[" + std::to_string(i) + "]"));
    }
    if (spec.home_source)
        sources.home = TRY_CTX(open_host_tree(*spec.home_source, "home/user", attr_nosuid_nodev, spec.home_beneath), "home");
    return sources;
}

Result<UniqueFd> build_root(Spec const& spec, HostSources& sources)
{
    // Nothing made here may propagate back to the host.
    TRY(check_syscall(::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr), "mount(MS_PRIVATE) /"));

    UniqueFd root = TRY_CTX(make_tmpfs("4M", "0755", attr_nosuid_nodev), "root tmpfs");
    TRY_CTX(sys::move_mount_fd(root.get(), sources.mountpoint.get()), "attaching the root");

    TRY_CTX(place_entries(sources.template_entries, root.get()), "building the root");
    TRY_CTX(build_etc(spec, root.get()), "building /etc");
    TRY_CTX(place_entries(sources.etc_entries, root.get()), "building /etc");
    TRY_CTX(build_dev(sources, root.get()), "building /dev");
    TRY_CTX(build_proc(root.get()), "mounting /proc");
    TRY_CTX(build_writable(spec, sources, root.get()), "mounting /tmp, /run and the home");
    TRY_CTX(place_entries(sources.binds, root.get()), "binding");

    // The root itself is read-only from now on; only the mounts above are writable.
    TRY_CTX(sys::mount_setattr_fd(root.get(), MOUNT_ATTR_RDONLY, 0, sys::Recursive::No), "sealing the root");
    return root;
}

Status pivot_into(UniqueFd const& root)
{
    TRY(check_syscall(::fchdir(root.get()), "fchdir new root"));
    TRY_CTX(sys::pivot_root_here(), "pivot_root");
    return {};
}

} // namespace bulkhead::sandbox
