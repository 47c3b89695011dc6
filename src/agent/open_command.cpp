// bulkhead-open-disposable: opens a copy of a file in a new disposable compartment
// (bulkhead.OpenInDisposable; the stream is described in opener.hpp, the use in docs/services.md).
//
// The caller's side trusts nothing that comes back: the answer is decoded strictly, an edited file
// is accepted only up to a bound set by the original's size (and --max-size) and only when the
// caller's filesystem has room for it, is written sparse to a new file beside the original (removed
// if the caller is interrupted meanwhile), and replaces the original only when the answer is
// complete, the command succeeded and the original was not changed meanwhile; otherwise it is kept
// beside as NAME.edited. The original is never left half-written.
#include "agent/open_command.hpp"

#include "agent/call_client.hpp"
#include "agent/filecopy.hpp"
#include "agent/opener.hpp"
#include "base/parse.hpp"

#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

namespace bulkhead::agent {

namespace {

using sys::UniqueFd;

constexpr char const* program = "bulkhead-open-disposable";
constexpr char const* service_name = "bulkhead.OpenInDisposable";

bool same_file(struct stat const& a, struct stat const& b)
{
    return a.st_dev == b.st_dev && a.st_ino == b.st_ino && a.st_size == b.st_size && a.st_mtim.tv_sec == b.st_mtim.tv_sec
        && a.st_mtim.tv_nsec == b.st_mtim.tv_nsec && a.st_ctim.tv_sec == b.st_ctim.tv_sec && a.st_ctim.tv_nsec == b.st_ctim.tv_nsec;
}

// Copies exactly `size` bytes from `in` to `out` (sendfile where it can). False: `in` ended early
// or a write failed; `copied` says how far it got.
bool copy_exactly(int in, int out, uint64_t size, uint64_t& copied)
{
    copied = 0;
    bool by_sendfile = true; // until the kernel says it cannot (e.g. from a socket)
    std::vector<char> buffer;
    while (copied < size) {
        size_t chunk = static_cast<size_t>(std::min<uint64_t>(size - copied, 1 << 20));
        ssize_t n = -1;
        if (by_sendfile) {
            n = ::sendfile(out, in, nullptr, chunk);
            if (n < 0 && (errno == EINVAL || errno == ENOSYS)) {
                by_sendfile = false;
                buffer.resize(1 << 16);
                continue;
            }
        } else {
            n = ::read(in, buffer.data(), std::min(chunk, buffer.size()));
            if (n > 0 && !write_all(out, buffer.data(), static_cast<size_t>(n)))
                return false;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        copied += static_cast<uint64_t>(n);
    }
    return true;
}

// Whether the files at two descriptors hold the same bytes.
bool same_content(int a, int b)
{
    std::vector<char> x(1 << 16), y(1 << 16);
    for (;;) {
        ssize_t n = ::read(a, x.data(), x.size());
        if (n < 0)
            return false;
        size_t got = 0;
        while (got < static_cast<size_t>(n)) {
            ssize_t m = ::read(b, y.data() + got, static_cast<size_t>(n) - got);
            if (m <= 0)
                return false;
            got += static_cast<size_t>(m);
        }
        if (std::memcmp(x.data(), y.data(), static_cast<size_t>(n)) != 0)
            return false;
        if (n == 0)
            return ::read(b, y.data(), 1) == 0;
    }
}

// Where an edited version goes when it does not replace the original: NAME.edited, NAME.edited.1, ...
Result<std::string> keep_beside(std::string const& temporary, std::string const& path)
{
    for (int i = 0; i < 1000; ++i) {
        std::string candidate = path + ".edited" + (i == 0 ? "" : "." + std::to_string(i));
        if (::renameat2(AT_FDCWD, temporary.c_str(), AT_FDCWD, candidate.c_str(), RENAME_NOREPLACE) == 0)
            return candidate;
        if (errno != EEXIST)
            return Error::from_syscall("rename", candidate, errno);
    }
    return Error::from_message("no free name for " + path + ".edited");
}

// The staging file of an edit on its way in. A signal that ends the caller (SIGINT, SIGTERM,
// SIGHUP) removes it first: its name lives where the handler can read it, as a handler can reach
// nothing else. Signals ignored when the command started stay ignored.
char staging_name[PATH_MAX];

void remove_staging_then_die(int signal)
{
    if (staging_name[0] != '\0')
        (void)::unlink(staging_name);
    ::signal(signal, SIG_DFL);
    ::raise(signal); // delivered when the handler returns: the caller ends as the signal says
}

class Staging {
public:
    Staging()
    {
        struct sigaction action {};
        action.sa_handler = remove_staging_then_die;
        sigemptyset(&action.sa_mask);
        for (size_t i = 0; i < std::size(signals); ++i) {
            sigaddset(&action.sa_mask, signals[i]);
            m_installed[i] = ::sigaction(signals[i], nullptr, &m_previous[i]) == 0 && m_previous[i].sa_handler != SIG_IGN;
        }
        for (size_t i = 0; i < std::size(signals); ++i)
            if (m_installed[i])
                (void)::sigaction(signals[i], &action, nullptr);
    }
    ~Staging()
    {
        remove();
        for (size_t i = 0; i < std::size(signals); ++i)
            if (m_installed[i])
                (void)::sigaction(signals[i], &m_previous[i], nullptr);
    }
    Staging(Staging const&) = delete;
    Staging& operator=(Staging const&) = delete;

    // A new file DIRECTORY/.bulkhead-open-XXXXXX, its name known to the handler before a signal
    // can arrive.
    Result<UniqueFd> create(std::string const& directory)
    {
        std::string pattern = directory + "/.bulkhead-open-XXXXXX";
        if (pattern.size() >= sizeof(staging_name))
            return Error::from_syscall("mkstemp", pattern, ENAMETOOLONG);
        sigset_t blocked = blocked_set(), previous;
        ::sigprocmask(SIG_BLOCK, &blocked, &previous);
        int fd = ::mkostemp(pattern.data(), O_CLOEXEC);
        int saved = errno;
        if (fd >= 0) {
            std::memcpy(staging_name, pattern.c_str(), pattern.size() + 1);
            m_path = pattern;
        }
        ::sigprocmask(SIG_SETMASK, &previous, nullptr);
        if (fd < 0)
            return Error::from_syscall("mkstemp", directory, saved);
        return UniqueFd(fd);
    }
    std::string const& path() const { return m_path; }
    // The file is gone, or has another name now: nothing to remove any more.
    void release()
    {
        sigset_t blocked = blocked_set(), previous;
        ::sigprocmask(SIG_BLOCK, &blocked, &previous);
        staging_name[0] = '\0';
        m_path.clear();
        ::sigprocmask(SIG_SETMASK, &previous, nullptr);
    }
    void remove()
    {
        if (!m_path.empty())
            (void)::unlink(m_path.c_str());
        release();
    }

private:
    static constexpr int signals[] = {SIGINT, SIGTERM, SIGHUP};
    static sigset_t blocked_set()
    {
        sigset_t set;
        sigemptyset(&set);
        for (int signal : signals)
            sigaddset(&set, signal);
        return set;
    }
    struct sigaction m_previous[std::size(signals)] {};
    bool m_installed[std::size(signals)] {};
    std::string m_path;
};

struct Options {
    bool view_only = false;
    uint64_t max_size = opener::default_max_edited;
    std::string templ;
    std::string file;
    std::string command;
};

Result<Options> parse_options(std::vector<std::string> const& args)
{
    Options options;
    size_t i = 0;
    for (; i < args.size() && args[i].starts_with("-"); ++i) {
        if (args[i] == "--view-only") {
            options.view_only = true;
        } else if (args[i] == "--template" && i + 1 < args.size()) {
            options.templ = args[++i];
        } else if (args[i] == "--max-size" && i + 1 < args.size()) {
            auto size = parse_size(args[++i]);
            if (size.is_error())
                return Error::from_message("--max-size: " + size.error().message());
            options.max_size = size.value();
        } else if (args[i] == "--") {
            ++i;
            break;
        } else {
            return Error::from_message("unknown option " + args[i]);
        }
    }
    if (i >= args.size())
        return Error::from_message("no FILE");
    options.file = args[i++];
    for (; i < args.size(); ++i)
        options.command += (options.command.empty() ? "" : " ") + args[i];
    return options;
}

// What came back, after the stream ended.
struct Answer {
    bool edited = false; // a complete edited version is in the staging file
    std::string problem; // the answer was malformed or cut short, or the edit could not be saved
};

// Free space an accepted edit leaves in the caller's filesystem, at least.
constexpr uint64_t space_reserve = 16 << 20;

// Why `size` bytes do not fit in the filesystem of `directory` (its free space minus the reserve),
// or nothing when they do.
std::string no_room(std::string const& directory, uint64_t size)
{
    struct statvfs vfs {};
    if (::statvfs(directory.c_str(), &vfs) < 0)
        return {}; // unknown: the writes will tell
    uint64_t available = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
    if (available >= space_reserve && size <= available - space_reserve)
        return {};
    return "an edited file of " + std::to_string(size) + " bytes does not fit in " + directory + " (" + std::to_string(available)
        + " bytes free, of which " + format_size(space_reserve) + " stay free)";
}

Answer receive_answer(Connection& call, bool view_only, std::string const& directory, uint64_t limit, Staging& staging)
{
    Answer answer;
    opener::ReplyParser parser(view_only, limit);
    UniqueFd edited;
    std::optional<opener::SparseWriter> writer;
    bool complete = false;
    std::vector<char> buffer(1 << 16);
    std::vector<opener::Event> events;
    bool output = true, errors = true;
    // What comes from the disposable reaches a terminal only with its control characters defused.
    std::optional<terminal::ControlFilter> to_stdout, to_stderr;
    if (::isatty(1))
        to_stdout.emplace();
    if (::isatty(2))
        to_stderr.emplace();
    auto saving_failed = [&](Error const& error) { answer.problem = "saving the edited file: " + error.message(); };
    while (output || errors) {
        pollfd fds[2] = {{output ? call.stream.get() : -1, POLLIN, 0}, {errors ? call.errors.get() : -1, POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (errors && fds[1].revents) {
            ssize_t n = ::read(call.errors.get(), buffer.data(), buffer.size());
            if (n <= 0 || !write_shown(2, to_stderr, {reinterpret_cast<uint8_t const*>(buffer.data()), static_cast<size_t>(n)}))
                errors = false;
        }
        if (!output || !fds[0].revents)
            continue;
        ssize_t n = ::read(call.stream.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            output = false;
            continue;
        }
        events.clear();
        auto fed = parser.feed({reinterpret_cast<uint8_t const*>(buffer.data()), static_cast<size_t>(n)}, events);
        for (auto const& event : events) {
            if (!answer.problem.empty())
                break;
            switch (event.kind) {
            case opener::Event::Kind::Output:
                (void)write_shown(1, to_stdout, event.data);
                break;
            case opener::Event::Kind::EditedBegin: {
                // Within the limit (the parser checked): now the room for it, before a byte is written.
                answer.problem = no_room(directory, event.size);
                if (!answer.problem.empty())
                    break;
                auto created = staging.create(directory);
                if (created.is_error()) {
                    answer.problem = "the edited file cannot be saved in " + directory + ": " + created.error().message();
                    break;
                }
                edited = created.release_value();
                writer.emplace(edited.get());
                break;
            }
            case opener::Event::Kind::EditedData:
                if (auto written = writer->write(event.data); written.is_error())
                    saving_failed(written.error());
                break;
            case opener::Event::Kind::EditedEnd:
                if (auto finished = writer->finish(); finished.is_error())
                    saving_failed(finished.error());
                else if (::fsync(edited.get()) < 0)
                    saving_failed(Error::from_syscall("fsync", errno));
                edited.reset();
                complete = true;
                break;
            case opener::Event::Kind::End:
                break;
            }
        }
        if (answer.problem.empty() && fed.is_error())
            answer.problem = fed.error().message();
        if (!answer.problem.empty()) {
            // The rest is not read: the disposable is not listened to any more, and one that is
            // still sending finds the stream closed.
            output = false;
            call.stream.reset();
        }
    }
    if (answer.problem.empty())
        if (auto finished = parser.finish(); finished.is_error())
            answer.problem = finished.error().message();
    edited.reset();
    if (!answer.problem.empty() || !complete) {
        staging.remove();
        return answer;
    }
    answer.edited = true;
    return answer;
}

// Puts the edited version in place of `path` (or beside it) and says so; the exit code.
int settle_edit(Options const& options, std::string const& path, struct stat const& sent, Staging& staging, int code)
{
    std::string const temporary = staging.path();
    UniqueFd original(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat now {};
    bool unchanged_here = original && ::fstat(original.get(), &now) == 0 && same_file(now, sent);
    if (unchanged_here) {
        UniqueFd edited(::open(temporary.c_str(), O_RDONLY | O_CLOEXEC));
        if (edited && same_content(original.get(), edited.get())) {
            staging.remove();
            return code;
        }
    }
    (void)::chmod(temporary.c_str(), sent.st_mode & 0777);
    if (unchanged_here && code == 0) {
        if (::rename(temporary.c_str(), path.c_str()) < 0) {
            int saved = errno;
            staging.remove();
            return fail(program, options.file + ": saving the edited version: " + std::strerror(saved));
        }
        staging.release();
        fail(program, options.file + ": replaced by the version edited in the disposable");
        return code;
    }
    auto kept = keep_beside(temporary, path);
    if (kept.is_error()) {
        staging.remove();
        return fail(program, kept.error().message());
    }
    staging.release();
    std::string why = unchanged_here ? "the command failed" : "the file was changed here meanwhile";
    fail(program, options.file + ": " + why + ", so the edited version was kept as " + kept.value());
    return code;
}

} // namespace

int open_disposable_main(std::vector<std::string> const& args)
{
    auto parsed = parse_options(args);
    if (parsed.is_error())
        return fail(program, parsed.error().message() + "\nusage: bulkhead-open-disposable [--view-only] [--template T] [--max-size SIZE] FILE [CMD...]", 2);
    Options const& options = parsed.value();
    char resolved[PATH_MAX];
    if (::realpath(options.file.c_str(), resolved) == nullptr)
        return fail(program, options.file + ": " + std::strerror(errno), 2);
    std::string path = resolved;
    UniqueFd file(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat sent {};
    if (!file || ::fstat(file.get(), &sent) < 0)
        return fail(program, options.file + ": " + std::strerror(errno), 2);
    if (!S_ISREG(sent.st_mode))
        return fail(program, options.file + ": not a regular file", 2);
    std::string directory = path.substr(0, path.rfind('/'));
    if (directory.empty())
        directory = "/";
    opener::Request request {path.substr(path.rfind('/') + 1), options.command, static_cast<uint64_t>(sent.st_size), options.view_only};
    if (auto named = filecopy::check_name(request.name); named.is_error())
        return fail(program, named.error().message(), 2);
    if (request.command.size() > opener::max_command)
        return fail(program, "a command of at most " + std::to_string(opener::max_command) + " bytes", 2);
    if (request.size > opener::max_file_bytes)
        return fail(program, options.file + ": larger than " + std::to_string(opener::max_file_bytes) + " bytes", 2);

    int refused = exit_failed;
    auto call = open_call(options.templ.empty() ? "@disposable" : "@disposable:" + options.templ, service_name, "", refused);
    if (call.is_error())
        return fail(program, call.error().message(), refused);
    auto header = opener::encode_request(request);
    uint64_t copied = 0;
    bool sent_all = write_all(call.value().stream.get(), reinterpret_cast<char const*>(header.data()), header.size())
        && copy_exactly(file.get(), call.value().stream.get(), request.size, copied);
    (void)::shutdown(call.value().stream.get(), SHUT_WR);
    file.reset();
    Staging staging;
    auto answer = receive_answer(call.value(), options.view_only, directory, opener::edited_limit(request.size, options.max_size), staging);
    auto code = read_status(call.value().status.get());
    if (code.is_error())
        return fail(program, call.value().target + ": " + code.error().message());
    if (!sent_all && code.value() == 0)
        return fail(program, options.file + ": could not be sent whole (" + std::to_string(copied) + " of " + std::to_string(request.size) + " bytes)");
    if (!answer.problem.empty())
        return fail(program, answer.problem + "; " + options.file + " is unchanged"); // the answer was refused
    if (answer.edited)
        return settle_edit(options, path, sent, staging, code.value());
    return code.value();
}

namespace {

void send_frame(opener::FrameType type, char const* data, size_t size)
{
    auto header = opener::encode_frame_header(type, size);
    (void)write_all(1, reinterpret_cast<char const*>(header.data()), header.size());
    if (size > 0)
        (void)write_all(1, data, size);
}

// Runs the command (or the viewer) on `path` in `directory`, its stdout framed to ours; its wait status.
Result<int> run_on(std::string const& command, std::string const& directory, std::string const& path)
{
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC) < 0)
        return Error::from_syscall("pipe2", errno);
    UniqueFd reader(pipe_fds[0]), writer(pipe_fds[1]);
    // CMD is a shell command line with the file's path added as its last argument; the viewer is
    // xdg-open where there is a display to show it on, else cat.
    std::string script = command.empty()
        ? std::string("if [ -n \"${DISPLAY:-}${WAYLAND_DISPLAY:-}\" ] && command -v xdg-open >/dev/null 2>&1; then exec xdg-open \"$1\"; fi; exec cat -- \"$1\"")
        : command + " \"$1\"";
    pid_t child = ::fork();
    if (child < 0)
        return Error::from_syscall("fork", errno);
    if (child == 0) {
        int null = ::open("/dev/null", O_RDONLY);
        if (null < 0 || ::dup2(null, 0) < 0 || ::dup2(writer.get(), 1) < 0 || ::chdir(directory.c_str()) < 0)
            ::_exit(exit_failed);
        char const* argv[] = {"/bin/sh", "-c", script.c_str(), "sh", path.c_str(), nullptr};
        ::execv(argv[0], const_cast<char* const*>(argv));
        ::_exit(127);
    }
    writer.reset();
    std::vector<char> buffer(opener::max_output_frame);
    for (;;) {
        ssize_t n = ::read(reader.get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        send_frame(opener::FrameType::Output, buffer.data(), static_cast<size_t>(n));
    }
    int status = 0;
    while (::waitpid(child, &status, 0) < 0)
        if (errno != EINTR)
            return Error::from_syscall("waitpid", errno);
    return status;
}

} // namespace

int open_disposable_service()
{
    constexpr char const* name = "bulkhead.OpenInDisposable";
    std::vector<uint8_t> bytes;
    size_t used = 0;
    opener::Request request;
    for (;;) {
        auto decoded = opener::decode_request(bytes, used);
        if (decoded.has_value()) {
            request = decoded.release_value();
            break;
        }
        if (decoded.error().code() != EAGAIN)
            return fail(name, decoded.error().message(), 2);
        uint8_t chunk[4096];
        ssize_t n = ::read(0, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail(name, "the request ended early", 2);
        bytes.insert(bytes.end(), chunk, chunk + n);
    }
    char const* home = std::getenv("HOME");
    std::string directory = std::string(home ? home : "/tmp") + "/open-XXXXXX";
    if (::mkdtemp(directory.data()) == nullptr)
        return fail(name, "mkdtemp " + directory + ": " + std::strerror(errno));
    std::string path = directory + "/" + request.name;
    UniqueFd file(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, request.view_only ? 0400 : 0600));
    if (!file)
        return fail(name, path + ": " + std::strerror(errno));
    // What arrived with the header, then the rest of the file.
    size_t early = static_cast<size_t>(std::min<uint64_t>(bytes.size() - used, request.size));
    uint64_t copied = 0;
    if (!write_all(file.get(), reinterpret_cast<char const*>(bytes.data() + used), early)
        || !copy_exactly(0, file.get(), request.size - early, copied))
        return fail(name, request.name + ": arrived cut short (" + std::to_string(early + copied) + " of " + std::to_string(request.size) + " bytes)");
    struct stat before {};
    if (::fstat(file.get(), &before) < 0)
        return fail(name, path + ": " + std::strerror(errno));
    file.reset();

    auto status = run_on(request.command, directory, path);
    if (status.is_error())
        return fail(name, status.error().message());
    if (!request.view_only) {
        UniqueFd edited(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
        struct stat after {};
        if (!edited || ::fstat(edited.get(), &after) < 0) {
            fail(name, request.name + " is gone or is no longer a file: nothing to return");
        } else if (!S_ISREG(after.st_mode)) {
            fail(name, request.name + " is no longer a regular file: nothing to return");
        } else if (!same_file(before, after)) {
            // The file as it is now, exactly as long as it was when it was looked at: a file that
            // changes while it is sent ends the answer without End (the caller keeps nothing).
            auto size = static_cast<uint64_t>(after.st_size);
            auto header = opener::encode_frame_header(opener::FrameType::Edited, size);
            uint64_t sent = 0;
            if (!write_all(1, reinterpret_cast<char const*>(header.data()), header.size()) || !copy_exactly(edited.get(), 1, size, sent))
                return fail(name, request.name + ": the edited file could not be sent whole");
        }
    }
    send_frame(opener::FrameType::End, nullptr, 0);
    int wait_status = status.value();
    return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
}

} // namespace bulkhead::agent
