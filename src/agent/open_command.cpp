// bulkhead-open-disposable: opens a copy of a file in a new disposable compartment
// (bulkhead.OpenInDisposable; the stream is described in opener.hpp, the use in docs/services.md).
//
// The caller's side trusts nothing that comes back: the answer is decoded strictly, an edited file
// is written to a new file beside the original and replaces it only when the answer is complete,
// the command succeeded and the original was not changed meanwhile; otherwise it is kept beside as
// NAME.edited. The original is never left half-written.
#include "agent/open_command.hpp"

#include "agent/call_client.hpp"
#include "agent/filecopy.hpp"
#include "agent/opener.hpp"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <optional>
#include <poll.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

struct Options {
    bool view_only = false;
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
    std::string temporary; // the edited version, complete, or empty
    std::string problem;   // the answer was malformed or cut short, or the edit could not be saved
};

Answer receive_answer(Connection& call, bool view_only, std::string const& directory)
{
    Answer answer;
    opener::ReplyParser parser(view_only);
    UniqueFd edited;
    std::string temporary;
    std::string save_problem;
    std::vector<char> buffer(1 << 16);
    std::vector<opener::Event> events;
    bool output = true, errors = true;
    // What comes from the disposable reaches a terminal only with its control characters defused.
    std::optional<terminal::ControlFilter> to_stdout, to_stderr;
    if (::isatty(1))
        to_stdout.emplace();
    if (::isatty(2))
        to_stderr.emplace();
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
            switch (event.kind) {
            case opener::Event::Kind::Output:
                (void)write_shown(1, to_stdout, event.data);
                break;
            case opener::Event::Kind::EditedBegin: {
                std::string pattern = directory + "/.bulkhead-open-XXXXXX";
                int fd = ::mkostemp(pattern.data(), O_CLOEXEC);
                if (fd < 0)
                    save_problem = "the edited file cannot be saved in " + directory + ": " + std::strerror(errno);
                else
                    edited = UniqueFd(fd), temporary = pattern;
                break;
            }
            case opener::Event::Kind::EditedData:
                if (edited && !write_all(edited.get(), reinterpret_cast<char const*>(event.data.data()), event.data.size())) {
                    save_problem = "saving the edited file: " + std::string(std::strerror(errno));
                    edited.reset();
                }
                break;
            case opener::Event::Kind::EditedEnd:
                if (edited && ::fsync(edited.get()) < 0)
                    save_problem = "saving the edited file: " + std::string(std::strerror(errno));
                edited.reset();
                break;
            case opener::Event::Kind::End:
                break;
            }
        }
        if (fed.is_error()) {
            answer.problem = fed.error().message();
            output = false; // the rest is not read: the disposable is not listened to any more
        }
    }
    if (answer.problem.empty())
        if (auto finished = parser.finish(); finished.is_error())
            answer.problem = finished.error().message();
    if (answer.problem.empty())
        answer.problem = save_problem;
    if (!answer.problem.empty() || temporary.empty()) {
        if (!temporary.empty())
            (void)::unlink(temporary.c_str());
        return answer;
    }
    answer.temporary = temporary;
    return answer;
}

// Puts the edited version in place of `path` (or beside it) and says so; the exit code.
int settle_edit(Options const& options, std::string const& path, struct stat const& sent, std::string const& temporary, int code)
{
    UniqueFd original(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
    struct stat now {};
    bool unchanged_here = original && ::fstat(original.get(), &now) == 0 && same_file(now, sent);
    if (unchanged_here) {
        UniqueFd edited(::open(temporary.c_str(), O_RDONLY | O_CLOEXEC));
        if (edited && same_content(original.get(), edited.get())) {
            (void)::unlink(temporary.c_str());
            return code;
        }
    }
    (void)::chmod(temporary.c_str(), sent.st_mode & 0777);
    if (unchanged_here && code == 0) {
        if (::rename(temporary.c_str(), path.c_str()) < 0) {
            int saved = errno;
            (void)::unlink(temporary.c_str());
            return fail(program, options.file + ": saving the edited version: " + std::strerror(saved));
        }
        fail(program, options.file + ": replaced by the version edited in the disposable");
        return code;
    }
    auto kept = keep_beside(temporary, path);
    if (kept.is_error()) {
        (void)::unlink(temporary.c_str());
        return fail(program, kept.error().message());
    }
    std::string why = unchanged_here ? "the command failed" : "the file was changed here meanwhile";
    fail(program, options.file + ": " + why + ", so the edited version was kept as " + kept.value());
    return code;
}

} // namespace

int open_disposable_main(std::vector<std::string> const& args)
{
    auto parsed = parse_options(args);
    if (parsed.is_error())
        return fail(program, parsed.error().message() + "\nusage: bulkhead-open-disposable [--view-only] [--template T] FILE [CMD...]", 2);
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
    auto answer = receive_answer(call.value(), options.view_only, directory);
    auto code = read_status(call.value().status.get());
    if (code.is_error()) {
        if (!answer.temporary.empty())
            (void)::unlink(answer.temporary.c_str());
        return fail(program, call.value().target + ": " + code.error().message());
    }
    if (!sent_all && code.value() == 0)
        return fail(program, options.file + ": could not be sent whole (" + std::to_string(copied) + " of " + std::to_string(request.size) + " bytes)");
    if (!answer.problem.empty())
        return fail(program, answer.problem + "; " + options.file + " is unchanged", code.value() == 0 ? exit_failed : code.value());
    if (!answer.temporary.empty())
        return settle_edit(options, path, sent, answer.temporary, code.value());
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
