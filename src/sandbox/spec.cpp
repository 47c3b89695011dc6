#include "sandbox/spec.hpp"
#include "base/parse.hpp"

#include <sys/stat.h>

namespace bulkhead::sandbox {

namespace {

Error field_error(std::string_view field, std::string message)
{
    return Error::from_message(std::string(field) + ": " + message);
}

bool valid_name(std::string_view name)
{
    if (name.empty() || name.size() > 64 || name.front() == '-')
        return false;
    for (char c : name) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

bool valid_hostname(std::string_view name)
{
    if (name.empty() || name.size() > 63 || name.front() == '-' || name.back() == '-')
        return false;
    for (char c : name) {
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
            return false;
    }
    return true;
}

// An absolute, normalised path: no "." or ".." components, no empty components, no trailing slash.
bool clean_absolute(std::string_view path)
{
    if (path.empty() || path.front() != '/' || path.find('\0') != std::string_view::npos)
        return false;
    if (path == "/")
        return true;
    if (path.back() == '/')
        return false;
    size_t start = 1;
    while (start <= path.size()) {
        size_t end = path.find('/', start);
        if (end == std::string_view::npos)
            end = path.size();
        std::string_view component = path.substr(start, end - start);
        if (component.empty() || component == "." || component == "..")
            return false;
        start = end + 1;
    }
    return true;
}

Status expect_directory(std::string_view field, std::string const& path)
{
    struct stat st {};
    if (::stat(path.c_str(), &st) < 0)
        return field_error(field, "'" + path + "' does not exist");
    if (!S_ISDIR(st.st_mode))
        return field_error(field, "'" + path + "' is not a directory");
    return {};
}

// Paths the engine itself builds; a bind may not replace them.
bool reserved_target(std::string_view target)
{
    static constexpr std::string_view reserved[] = {"/", "/proc", "/dev", "/etc", "/usr", "/tmp", "/home", "/home/user", "/run"};
    for (auto r : reserved) {
        if (target == r)
            return true;
    }
    return target.starts_with("/proc/") || target.starts_with("/dev/") || target.starts_with("/usr/");
}

} // namespace

Status validate(Spec const& spec)
{
    if (!valid_name(spec.name))
        return field_error("name", "'" + spec.name + "' must be 1 to 64 characters of a-z, 0-9 and '-', not starting with '-'");
    if (!spec.hostname.empty() && !valid_hostname(spec.hostname))
        return field_error("hostname", "'" + spec.hostname + "' is not a valid host name");

    if (spec.templ.kind == TemplateKind::Host && spec.templ.root != "/")
        return field_error("template.root", "a host template always uses '/'");
    if (!clean_absolute(spec.templ.root))
        return field_error("template.root", "'" + spec.templ.root + "' must be an absolute path without '.' or '..'");
    TRY_CTX(expect_directory("template.root", spec.templ.root), "template");
    if (spec.templ.kind == TemplateKind::Rootfs) {
        TRY_CTX(expect_directory("template.root", spec.templ.root + "/usr"), "a rootfs template needs /usr");
    }

    if (spec.host_id_base == 0)
        return field_error("host_id_base", "0 would map root inside to root outside; use an unprivileged range");
    if (spec.host_id_base % id_range_size != 0)
        return field_error("host_id_base", std::to_string(spec.host_id_base) + " is not a multiple of 65536");
    if (static_cast<uint64_t>(spec.host_id_base) + id_range_size > 0xFFFFFFFFULL)
        return field_error("host_id_base", std::to_string(spec.host_id_base) + " leaves no room for 65536 ids");

    for (size_t i = 0; i < spec.binds.size(); ++i) {
        auto const& bind = spec.binds[i];
        std::string field = "binds[" + std::to_string(i) + "]";
        if (!clean_absolute(bind.source))
            return field_error(field + ".source", "'" + bind.source + "' must be an absolute path without '.' or '..'");
        if (!bind.beneath.empty() && !bind.source.starts_with(bind.beneath + "/"))
            return field_error(field + ".beneath", "'" + bind.source + "' is not beneath '" + bind.beneath + "'");
        struct stat st {};
        if (::stat(bind.source.c_str(), &st) < 0)
            return field_error(field + ".source", "'" + bind.source + "' does not exist");
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
            return field_error(field + ".source", "'" + bind.source + "' is neither a directory nor a regular file");
        if (!clean_absolute(bind.target) || bind.target == "/")
            return field_error(field + ".target", "'" + bind.target + "' must be an absolute path below / without '.' or '..'");
        if (reserved_target(bind.target))
            return field_error(field + ".target", "'" + bind.target + "' is managed by bulkhead and cannot be bound over");
    }
    if (spec.home_source) {
        if (!clean_absolute(*spec.home_source))
            return field_error("home", "'" + *spec.home_source + "' must be an absolute path without '.' or '..'");
        if (!spec.home_beneath.empty() && !spec.home_source->starts_with(spec.home_beneath + "/"))
            return field_error("home_beneath", "'" + *spec.home_source + "' is not beneath '" + spec.home_beneath + "'");
        TRY(expect_directory("home", *spec.home_source));
    }

    if (spec.limits.memory_bytes != 0 && spec.limits.memory_bytes < min_memory_bytes)
        return field_error("limits.memory", "at least " + format_size(min_memory_bytes) + " is needed to start a compartment");
    if (spec.limits.pids != 0 && spec.limits.pids < 2)
        return field_error("limits.pids", "at least 2 are needed (init and the command)");
    if (spec.limits.cpu_millis != 0 && spec.limits.cpu_millis < 10)
        return field_error("limits.cpus", "at least 0.01 CPU is needed");
    if (spec.limits.tmp_bytes < (1ULL << 20))
        return field_error("limits.tmp", "at least 1M is needed for /tmp");
    if (spec.limits.open_files < 16 || spec.limits.open_files > (1ULL << 20))
        return field_error("limits.open_files", "must be between 16 and 1048576");

    if (spec.agent_fd < 0 && (spec.argv.empty() || spec.argv.front().empty()))
        return field_error("argv", "no command given");
    for (auto const& arg : spec.argv) {
        if (arg.find('\0') != std::string::npos)
            return field_error("argv", "an argument contains a NUL byte");
    }
    for (auto const& entry : spec.env) {
        if (entry.find('=') == std::string::npos || entry.front() == '=' || entry.find('\0') != std::string::npos)
            return field_error("env", "'" + entry + "' is not KEY=VALUE");
    }
    if (!spec.cwd.empty() && !clean_absolute(spec.cwd))
        return field_error("cwd", "'" + spec.cwd + "' must be an absolute path without '.' or '..'");

    if (!clean_absolute(spec.runtime_dir) || spec.runtime_dir == "/")
        return field_error("runtime_dir", "'" + spec.runtime_dir + "' must be an absolute path below /");
    TRY(expect_directory("runtime_dir", spec.runtime_dir));
    return {};
}

std::vector<std::string> default_environment(Spec const& spec)
{
    bool root = spec.run_as == RunAs::Root;
    return {
        std::string("HOME=") + (root ? "/root" : "/home/user"),
        std::string("USER=") + (root ? "root" : "user"),
        "PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin",
        "LANG=C.UTF-8",
        "BULKHEAD_COMPARTMENT=" + spec.name,
    };
}

} // namespace bulkhead::sandbox
