// The bulkhead.Filecopy stream: see filecopy.hpp and docs/services.md.
//
// Layout (integers little-endian):
//   "BHFC" u8 version(1)                                      once, first
//   u8 1 (File)       u32 mode  u64 size  u16 length  name    then `size` bytes of content
//   u8 2 (Directory)  u32 mode            u16 length  name    opens a directory: what follows is inside
//   u8 4 (Up)                                                 closes the innermost open directory
//   u8 3 (End)                                                last; nothing may follow, every directory closed
// Type codes 16-20 (symlink, hard link, device, FIFO, socket) are reserved so that a sender that
// tries them is refused by name.
//
// Nesting is carried by Directory/Up, not by a number in each header, so that a sender cannot
// claim a level it did not open: Header::depth is not in the stream (encode_header ignores it,
// decode_header leaves it 0); the receiver counts the directories it has open.
#include "agent/filecopy.hpp"

#include "sys/fd.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

namespace bulkhead::filecopy {

namespace {

using sys::UniqueFd;

constexpr uint8_t magic[] = {'B', 'H', 'F', 'C', 1};
constexpr size_t max_name = 255;
constexpr size_t buffer_size = 1 << 20;
constexpr int max_suffix = 1000;
// Type codes 16, 17 ... : what a sender may try, refused by name.
constexpr uint8_t first_refused_type = 16;
constexpr char const* refused_types[] = {"a symbolic link", "a hard link", "a device node", "a FIFO", "a socket"};
// Bits of a mode the stream may carry; setuid, setgid and sticky are accepted and cleared.
constexpr uint32_t mode_bits = 07777;

// `text` with control characters and backslashes as \xNN, safe to print on a terminal.
std::string escaped(std::string_view text)
{
    std::string out;
    for (char c : text) {
        auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte == 0x7f || c == '\\') {
            char hex[8];
            std::snprintf(hex, sizeof(hex), "\\x%02x", byte);
            out += hex;
        } else {
            out += c;
        }
    }
    return out;
}

// A name from the stream for a message: escaped, quoted, cut at 64 bytes.
std::string shown(std::string_view name)
{
    return "'" + escaped(name.substr(0, 64)) + (name.size() > 64 ? "...'" : "'");
}

bool disk_full(int err)
{
    return err == ENOSPC || err == EDQUOT;
}

std::string reason(int err)
{
    return disk_full(err) ? "the disk is full" : std::strerror(err);
}

Status write_all(int fd, void const* data, size_t size)
{
    auto const* bytes = static_cast<char const*>(data);
    while (size > 0) {
        ssize_t n = ::write(fd, bytes, size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return Error::from_syscall("write", n < 0 ? errno : EIO);
        bytes += n;
        size -= static_cast<size_t>(n);
    }
    return {};
}

uint64_t little(std::span<uint8_t const> bytes, size_t offset, size_t size)
{
    uint64_t value = 0;
    for (size_t i = 0; i < size; ++i)
        value |= static_cast<uint64_t>(bytes[offset + i]) << (8 * i);
    return value;
}

void put(std::vector<uint8_t>& out, uint64_t value, size_t size)
{
    for (size_t i = 0; i < size; ++i)
        out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

// The stream as the receiver reads it: headers through a buffer, content either from the buffer
// or, once that is drained, with splice(2) straight from the stream into the file.
// A blocking read of the socket that fails with EAGAIN ran into its SO_RCVTIMEO (receive): the
// sender went silent. Said as ETIMEDOUT.
int silent(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK ? ETIMEDOUT : err;
}

class Input {
public:
    explicit Input(int fd) : m_fd(fd), m_buffer(buffer_size) {}

    // Makes at least `count` bytes available (count <= buffer_size); false at end of stream.
    Result<bool> fill(size_t count)
    {
        if (m_end - m_begin >= count)
            return true;
        if (m_begin > 0) {
            std::memmove(m_buffer.data(), m_buffer.data() + m_begin, m_end - m_begin);
            m_end -= m_begin;
            m_begin = 0;
        }
        while (m_end < count) {
            ssize_t n = ::read(m_fd, m_buffer.data() + m_end, m_buffer.size() - m_end);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return Error::from_syscall("read", silent(errno));
            if (n == 0)
                return false;
            m_end += static_cast<size_t>(n);
        }
        return true;
    }
    std::span<uint8_t const> available() const { return {m_buffer.data() + m_begin, m_end - m_begin}; }
    void consume(size_t count) { m_begin += count; }
    // Reads more (at least one byte); false at end of stream.
    Result<bool> more() { return fill(m_end - m_begin + 1); }

    // Moves the next `size` bytes of the stream into `file`; `copied` counts them as they go. A
    // failed write keeps its errno in the Error's code(); the end of the stream is ENODATA.
    Status copy_to(int file, uint64_t size, uint64_t& copied)
    {
        while (size > 0) {
            if (m_begin == m_end && m_splice) {
                TRY(splice_to(file, size, copied)); // all of it, or splicing is off from here on
                continue;
            }
            if (m_begin == m_end && !TRY(more()))
                return Error::from_syscall("read", ENODATA);
            size_t take = static_cast<size_t>(std::min<uint64_t>(size, m_end - m_begin));
            TRY(write_all(file, m_buffer.data() + m_begin, take));
            consume(take);
            size -= take;
            copied += take;
        }
        return {};
    }

private:
    // stream -> pipe -> file without a copy through user space. Returns with `size` left over
    // (and m_splice cleared) when the kernel cannot splice this stream or this file.
    Status splice_to(int file, uint64_t& size, uint64_t& copied)
    {
        if (!m_pipe_out) {
            int fds[2];
            if (::pipe2(fds, O_CLOEXEC) < 0) {
                m_splice = false;
                return {};
            }
            m_pipe_in.reset(fds[0]);
            m_pipe_out.reset(fds[1]);
            // More per call if allowed; a smaller pipe works too.
            (void)::fcntl(fds[1], F_SETPIPE_SZ, static_cast<int>(buffer_size));
            int capacity = ::fcntl(fds[1], F_GETPIPE_SZ);
            m_pipe_size = capacity > 0 ? static_cast<size_t>(capacity) : 65536;
        }
        while (size > 0) {
            ssize_t in
                = ::splice(m_fd, nullptr, m_pipe_out.get(), nullptr,
                           static_cast<size_t>(std::min<uint64_t>(size, m_pipe_size)), SPLICE_F_MOVE | SPLICE_F_MORE);
            if (in < 0 && errno == EINTR)
                continue;
            if (in < 0 && (errno == EINVAL || errno == ENOSYS || errno == EPERM)) {
                m_splice = false; // read/write from here on
                return {};
            }
            if (in < 0)
                return Error::from_syscall("splice", silent(errno));
            if (in == 0)
                return Error::from_syscall("read", ENODATA);
            TRY(drain_pipe(file, static_cast<size_t>(in)));
            size -= static_cast<uint64_t>(in);
            copied += static_cast<uint64_t>(in);
        }
        return {};
    }

    Status drain_pipe(int file, size_t pending)
    {
        while (pending > 0) {
            ssize_t out = ::splice(m_pipe_in.get(), nullptr, file, nullptr, pending, SPLICE_F_MOVE);
            if (out < 0 && errno == EINTR)
                continue;
            if (out < 0 && errno == EINVAL)
                return drain_by_copy(file, pending); // a file system that cannot splice into files
            if (out <= 0)
                return Error::from_syscall("write", out < 0 ? errno : EIO);
            pending -= static_cast<size_t>(out);
        }
        return {};
    }

    Status drain_by_copy(int file, size_t pending)
    {
        m_splice = false;
        m_begin = m_end = 0; // the buffer is empty while content is spliced
        while (pending > 0) {
            ssize_t n = ::read(m_pipe_in.get(), m_buffer.data(), std::min(pending, m_buffer.size()));
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return Error::from_syscall("read", n < 0 ? errno : EIO);
            TRY(write_all(file, m_buffer.data(), static_cast<size_t>(n)));
            pending -= static_cast<size_t>(n);
        }
        return {};
    }

    int m_fd;
    std::vector<uint8_t> m_buffer;
    size_t m_begin = 0, m_end = 0;
    bool m_splice = true;
    UniqueFd m_pipe_in, m_pipe_out;
    size_t m_pipe_size = 0;
};

// Opens (making it if needed) the directory `name` below `parent`, never through a link.
Result<UniqueFd> open_or_make_dir(int parent, std::string const& name)
{
    if (::mkdirat(parent, name.c_str(), 0700) < 0 && errno != EEXIST)
        return Error::from_message(name + ": " + reason(errno) + ": nothing received");
    int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        return UniqueFd(fd);
    int err = errno;
    struct stat info {};
    if (::fstatat(parent, name.c_str(), &info, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(info.st_mode))
        return Error::from_message(name + " is a symbolic link: refused (links are never followed), nothing received");
    return Error::from_message(name + " is not a usable directory (" + std::strerror(err) + "): nothing received");
}

// `name`, or `name (1)`, `name (2)` ... : the first that `create` makes without replacing
// anything. `create` returns 0, or -1 with errno (EEXIST: try the next).
template<typename Create>
Result<std::string> create_unique(std::string const& name, std::string const& shown_path, Create create)
{
    for (int i = 0; i <= max_suffix; ++i) {
        std::string candidate = i == 0 ? name : name + " (" + std::to_string(i) + ")";
        if (candidate.size() > max_name)
            return Error::from_message(shown_path + ": exists, and a suffix would make the name longer than 255 bytes");
        if (create(candidate) == 0)
            return candidate;
        if (errno != EEXIST)
            return Error::from_message(shown_path + ": " + reason(errno));
    }
    return Error::from_message(shown_path + ": " + std::to_string(max_suffix) + " names like it exist already");
}

// The limits as a transfer goes: the sender checks them all before sending, the receiver as each
// entry arrives (a file's size before the file is created). `path` is as it should be shown.
struct Budget {
    Limits limits;
    uint64_t entries = 0, bytes = 0;

    Status entry(std::string const& path)
    {
        if (++entries > limits.max_entries)
            return over(path, "more than " + std::to_string(limits.max_entries) + " files and directories");
        return {};
    }
    Status file(std::string const& path, uint64_t size)
    {
        if (size > limits.max_file_bytes)
            return over(path,
                        std::to_string(size) + " bytes, over the limit of " + std::to_string(limits.max_file_bytes));
        if (size > limits.max_total_bytes - bytes)
            return over(path, "the files add up to more than " + std::to_string(limits.max_total_bytes) + " bytes");
        bytes += size;
        return {};
    }
    Status directory(std::string const& path, size_t depth)
    {
        if (depth > limits.max_depth)
            return over(path, "directories nested deeper than " + std::to_string(limits.max_depth));
        return {};
    }
    static Error over(std::string const& path, std::string const& what)
    {
        return Error::from_message(path + ": " + what + " (a limit of the receiver)");
    }
};

struct OpenDirectory {
    UniqueFd fd;
    std::string name; // as created
    uint32_t mode = 0;
};

class Receiver {
public:
    Receiver(int in, Limits const& limits) : m_input(in), m_budget {limits} {}

    Status run(int top)
    {
        if (!TRY(m_input.fill(sizeof(magic))) || std::memcmp(m_input.available().data(), magic, sizeof(magic)) != 0)
            return Error::from_message("not a bulkhead file-copy stream (or another version)");
        m_input.consume(sizeof(magic));
        while (true) {
            size_t used = 0;
            auto decoded = decode_header(m_input.available(), used, m_budget.limits);
            if (decoded.is_error() && decoded.error().code() == EAGAIN) {
                if (!TRY(m_input.more()))
                    return Error::from_message("the stream ended early (no end marker)");
                continue;
            }
            if (decoded.is_error())
                return Error::from_message(where() + decoded.error().message());
            m_input.consume(used);
            Header const& entry = decoded.value();
            int parent = m_open.empty() ? top : m_open.back().fd.get();
            switch (entry.type) {
            case EntryType::End:
                if (!m_open.empty())
                    return Error::from_message("the stream ended inside the directory " + shown(path_of({})));
                if (!m_input.available().empty() || TRY(m_input.more()))
                    return Error::from_message("data after the end of the stream");
                return {};
            case EntryType::Up:
                if (m_open.empty())
                    return Error::from_message("the stream closes a directory it did not open");
                // Set last, so that a directory without write permission could still be filled.
                if (::fchmod(m_open.back().fd.get(), m_open.back().mode) < 0)
                    return Error::from_message(shown(path_of({})) + ": chmod: " + std::strerror(errno));
                m_open.pop_back();
                continue;
            case EntryType::File:
            case EntryType::Directory: break;
            }
            TRY(m_budget.entry(shown(path_of(entry.name))));
            if (entry.type == EntryType::File)
                TRY(file(parent, entry));
            else
                TRY(directory(parent, entry));
        }
    }

    ReceiveReport const& report() const { return m_report; }

private:
    // The path of `name` below Incoming/SOURCE as created so far, for messages.
    std::string path_of(std::string const& name) const
    {
        std::string path;
        for (auto const& level : m_open)
            path += (path.empty() ? "" : "/") + level.name;
        if (!name.empty())
            path += (path.empty() ? "" : "/") + name;
        return path;
    }
    std::string where() const { return m_open.empty() ? "" : "in " + shown(path_of({})) + ": "; }

    Status file(int parent, Header const& entry)
    {
        std::string path = shown(path_of(entry.name));
        TRY(m_budget.file(path, entry.size));
        UniqueFd fd;
        auto name = TRY(create_unique(entry.name, path, [&](std::string const& candidate) {
            int opened
                = ::openat(parent, candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
            fd.reset(opened);
            return opened < 0 ? -1 : 0;
        }));
        path = shown(path_of(name));
        uint64_t copied = 0;
        auto copy = m_input.copy_to(fd.get(), entry.size, copied);
        m_report.bytes += copied;
        int err = 0;
        if (copy.is_error())
            err = copy.error().code();
        else if (::fchmod(fd.get(), entry.mode) < 0 || ::close(fd.release()) < 0)
            err = errno;
        if (err == 0) {
            ++m_report.files;
            if (m_open.empty())
                m_report.names.push_back(name);
            return {};
        }
        fd.reset();
        (void)::unlinkat(parent, name.c_str(), 0); // never a half-written file
        std::string why = err == ENODATA ? "the stream ended inside the file (" + std::to_string(copied) + " of "
                + std::to_string(entry.size) + " bytes)"
            : err == ETIMEDOUT ? "the sender sent nothing for " + std::to_string(m_budget.limits.idle_seconds)
                + " s inside the file (" + std::to_string(copied) + " of " + std::to_string(entry.size) + " bytes)"
            : disk_full(err)  ? "the disk is full"
            : copy.is_error() ? copy.error().message()
                              : std::string(std::strerror(err));
        return Error::from_message(path + ": " + why + "; the partial file was removed");
    }

    Status directory(int parent, Header const& entry)
    {
        std::string path = shown(path_of(entry.name));
        TRY(m_budget.directory(path, m_open.size() + 1));
        auto name = TRY(create_unique(entry.name, path, [&](std::string const& candidate) {
            return ::mkdirat(parent, candidate.c_str(), 0700);
        }));
        int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return Error::from_message(shown(path_of(name)) + ": " + std::strerror(errno));
        m_open.push_back({UniqueFd(fd), name, entry.mode});
        ++m_report.directories;
        if (m_open.size() == 1)
            m_report.names.push_back(name);
        return {};
    }

    Input m_input;
    Budget m_budget;
    ReceiveReport m_report;
    std::vector<OpenDirectory> m_open; // directories entered below Incoming/SOURCE
};

// --- the sender ---

struct Opened {
    UniqueFd fd;
    struct stat info {};
};

// Opens `name` below `dir` if it is a regular file or a directory. The type is read without
// following anything and before opening, so that a FIFO or device is never opened; the open
// itself does not follow a link either, and must find the same inode.
Result<Opened> open_entry(int dir, std::string const& name, std::string const& path)
{
    struct stat before {};
    if (::fstatat(dir, name.c_str(), &before, AT_SYMLINK_NOFOLLOW) < 0)
        return Error::from_message(escaped(path) + ": " + std::strerror(errno));
    if (S_ISLNK(before.st_mode))
        return Error::from_message(escaped(path) + ": a symbolic link: links are not copied (nor followed)");
    if (!S_ISREG(before.st_mode) && !S_ISDIR(before.st_mode)) {
        char const* kind = S_ISFIFO(before.st_mode) ? "a FIFO"
            : S_ISSOCK(before.st_mode)              ? "a socket"
                                                    : "a device node";
        return Error::from_message(escaped(path) + ": " + kind + ": only regular files and directories are copied");
    }
    Opened opened;
    opened.fd.reset(::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    if (!opened.fd)
        return Error::from_message(escaped(path) + ": " + std::strerror(errno));
    if (::fstat(opened.fd.get(), &opened.info) < 0)
        return Error::from_syscall("fstat", escaped(path), errno);
    if (opened.info.st_dev != before.st_dev || opened.info.st_ino != before.st_ino
        || (opened.info.st_mode & S_IFMT) != (before.st_mode & S_IFMT))
        return Error::from_message(escaped(path) + ": changed while it was read: not copied");
    return opened;
}

// The names in a directory (without . and ..), sorted so that a stream is reproducible.
Result<std::vector<std::string>> sorted_names(int fd, std::string const& path)
{
    int copy = ::dup(fd); // closedir closes it; `fd` stays ours
    if (copy < 0)
        return Error::from_syscall("dup", escaped(path), errno);
    DIR* handle = ::fdopendir(copy);
    if (handle == nullptr) {
        ::close(copy);
        return Error::from_syscall("opendir", escaped(path), errno);
    }
    ::rewinddir(handle); // the first pass may have moved the shared offset
    std::vector<std::string> names;
    errno = 0;
    while (dirent* item = ::readdir(handle)) {
        if (std::strcmp(item->d_name, ".") != 0 && std::strcmp(item->d_name, "..") != 0)
            names.push_back(item->d_name);
        errno = 0;
    }
    int err = errno;
    ::closedir(handle);
    if (err != 0)
        return Error::from_syscall("readdir", escaped(path), err);
    std::sort(names.begin(), names.end());
    return names;
}

class Sender {
public:
    Sender(int out, Limits const& limits) : m_out(out), m_budget {limits} {}

    // The first pass: everything is checked (types, names, the receiver's limits) before a byte
    // is sent, so that a refusal does not leave half a transfer in the target.
    Status check(int dir, std::string const& name, std::string const& path, uint32_t depth)
    {
        TRY_CTX(check_name(name), escaped(path));
        auto opened = TRY(open_entry(dir, name, path));
        TRY(m_budget.entry(escaped(path)));
        if (S_ISREG(opened.info.st_mode))
            return m_budget.file(escaped(path), static_cast<uint64_t>(opened.info.st_size));
        TRY(m_budget.directory(escaped(path), depth + 1));
        auto children = TRY(sorted_names(opened.fd.get(), path));
        for (auto const& child : children)
            TRY(check(opened.fd.get(), child, path + "/" + child, depth + 1));
        return {};
    }

    Status send(int dir, std::string const& name, std::string const& path)
    {
        auto opened = TRY(open_entry(dir, name, path));
        auto mode = static_cast<uint32_t>(opened.info.st_mode & 0777);
        if (S_ISREG(opened.info.st_mode)) {
            auto size = static_cast<uint64_t>(opened.info.st_size);
            TRY(header({EntryType::File, name, mode, size, 0}));
            TRY(content(opened.fd.get(), size, path));
            m_report.bytes += size;
            ++m_report.files;
            return {};
        }
        TRY(header({EntryType::Directory, name, mode, 0, 0}));
        ++m_report.directories;
        auto children = TRY(sorted_names(opened.fd.get(), path));
        for (auto const& child : children) {
            TRY_CTX(check_name(child), escaped(path + "/" + child)); // a name that appeared after the check
            TRY(send(opened.fd.get(), child, path + "/" + child));
        }
        return header({EntryType::Up, {}, 0, 0, 0});
    }

    Status header(Header const& entry)
    {
        auto bytes = encode_header(entry);
        return write_all(m_out, bytes.data(), bytes.size());
    }

    SendReport const& report() const { return m_report; }

private:
    // sendfile(2): the page cache straight into the socket. The size is the one in the header:
    // a file that grew is cut there; one that shrank cannot keep the header's promise.
    Status content(int file, uint64_t size, std::string const& path)
    {
        off_t offset = 0;
        while (size > 0) {
            ssize_t n = ::sendfile(m_out, file, &offset, static_cast<size_t>(std::min<uint64_t>(size, 1 << 30)));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return Error::from_syscall("sendfile", escaped(path), errno);
            if (n == 0)
                return Error::from_message(escaped(path) + ": the file shrank while it was sent");
            size -= static_cast<uint64_t>(n);
        }
        return {};
    }

    int m_out;
    Budget m_budget; // the first pass
    SendReport m_report;
};

} // namespace

std::vector<uint8_t> encode_header(Header const& header)
{
    std::vector<uint8_t> out;
    out.push_back(static_cast<uint8_t>(header.type));
    if (header.type == EntryType::File || header.type == EntryType::Directory) {
        put(out, header.mode, 4);
        if (header.type == EntryType::File)
            put(out, header.size, 8);
        put(out, header.name.size(), 2);
        out.insert(out.end(), header.name.begin(), header.name.end());
    }
    return out;
}

Result<Header> decode_header(std::span<uint8_t const> bytes, size_t& used, Limits const& limits)
{
    if (bytes.empty())
        return Error::from_syscall("decode_header", EAGAIN);
    Header header;
    uint8_t type = bytes[0];
    switch (type) {
    case static_cast<uint8_t>(EntryType::End):
    case static_cast<uint8_t>(EntryType::Up):
        used = 1;
        header.type = static_cast<EntryType>(type);
        return header;
    case static_cast<uint8_t>(EntryType::File):
    case static_cast<uint8_t>(EntryType::Directory): break;
    default:
        if (type >= first_refused_type && size_t(type - first_refused_type) < std::size(refused_types))
            return Error::from_message(std::string(refused_types[type - first_refused_type])
                                       + " in the stream: refused");
        return Error::from_message("unknown entry type " + std::to_string(type) + " in the stream: refused");
    }
    header.type = static_cast<EntryType>(type);
    bool file = header.type == EntryType::File;
    size_t fixed = 1 + 4 + (file ? 8 : 0) + 2;
    if (bytes.size() < fixed)
        return Error::from_syscall("decode_header", EAGAIN);
    auto mode = static_cast<uint32_t>(little(bytes, 1, 4));
    if (file)
        header.size = little(bytes, 5, 8);
    auto length = static_cast<size_t>(little(bytes, fixed - 2, 2));
    if (length == 0 || length > max_name)
        return Error::from_message("a name of " + std::to_string(length) + " bytes (1 to 255)");
    if (bytes.size() < fixed + length)
        return Error::from_syscall("decode_header", EAGAIN);
    header.name.assign(reinterpret_cast<char const*>(bytes.data() + fixed), length);
    TRY(check_name(header.name));
    if ((mode & ~mode_bits) != 0)
        return Error::from_message(shown(header.name) + ": mode " + std::to_string(mode)
                                   + " has bits beyond the permissions");
    header.mode = mode & 0777;
    if (file)
        TRY(Budget {limits}.file(shown(header.name), header.size)); // the total is the receiver's to count
    used = fixed + length;
    return header;
}

Status check_name(std::string_view name)
{
    if (name.empty() || name.size() > max_name)
        return Error::from_message("a name must have 1 to 255 bytes, not " + std::to_string(name.size()));
    if (name == "." || name == "..")
        return Error::from_message(shown(name) + ": '.' and '..' are not names");
    for (char c : name) {
        auto byte = static_cast<unsigned char>(c);
        if (c == '/')
            return Error::from_message(shown(name) + ": a name may not contain '/'");
        if (byte < 0x20 || byte == 0x7f)
            return Error::from_message(shown(name) + ": a name may not contain control characters");
    }
    return {};
}

Result<SendReport> send(int out, std::vector<std::string> const& paths, Limits const& limits)
{
    struct Top {
        std::string parent, name, path;
    };
    // The directories on the way are the user's own way of naming the file (and are opened again
    // for the second pass rather than held: there may be thousands of paths); only the entries
    // sent are never links.
    auto open_parent = [](Top const& top) -> Result<UniqueFd> {
        UniqueFd dir(::open(top.parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dir)
            return Error::from_message(escaped(top.path) + ": " + std::strerror(errno));
        return dir;
    };
    std::vector<Top> tops;
    Sender sender(out, limits);
    // First pass: everything is checked; nothing is written unless all of it can be sent.
    for (auto const& path : paths) {
        std::string trimmed = path;
        while (trimmed.size() > 1 && trimmed.back() == '/')
            trimmed.pop_back();
        size_t slash = trimmed.rfind('/');
        Top top {slash == std::string::npos ? "."
                     : slash == 0           ? "/"
                                            : trimmed.substr(0, slash),
                 slash == std::string::npos ? trimmed : trimmed.substr(slash + 1), path};
        TRY_CTX(check_name(top.name), escaped(path));
        UniqueFd parent = TRY(open_parent(top));
        TRY(sender.check(parent.get(), top.name, path, 0));
        tops.push_back(std::move(top));
    }
    if (out < 0)
        return sender.report(); // check_sendable: the first pass only
    TRY(write_all(out, magic, sizeof(magic)));
    for (auto const& top : tops) {
        UniqueFd parent = TRY(open_parent(top));
        TRY(sender.send(parent.get(), top.name, top.path));
    }
    TRY(sender.header({EntryType::End, {}, 0, 0, 0}));
    return sender.report();
}

Status check_sendable(std::vector<std::string> const& paths, Limits const& limits)
{
    TRY(send(-1, paths, limits));
    return {};
}

Result<ReceiveReport> receive(int in, int home, std::string const& source, Limits const& limits)
{
    TRY_CTX(check_name(source), "the source compartment");
    UniqueFd incoming = TRY(open_or_make_dir(home, "Incoming"));
    UniqueFd top = TRY_CTX(open_or_make_dir(incoming.get(), source), "Incoming");
    return receive_into(in, top.get(), limits);
}

Result<ReceiveReport> receive_into(int in, int dir, Limits const& limits)
{
    UniqueFd top(::fcntl(dir, F_DUPFD_CLOEXEC, 3));
    if (!top)
        return Error::from_syscall("dup", errno);
    // A stalled sender must not hold the receiver (and its half-written file) forever.
    timeval idle {static_cast<time_t>(limits.idle_seconds), 0};
    if (limits.idle_seconds > 0 && ::setsockopt(in, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof(idle)) < 0 && errno != ENOTSOCK)
        return Error::from_syscall("setsockopt SO_RCVTIMEO", errno);
    Receiver receiver(in, limits);
    if (auto ran = receiver.run(top.get()); ran.is_error()) {
        if (ran.error().code() == ETIMEDOUT) // between files (inside one, run says where)
            return Error::from_message("the sender sent nothing for " + std::to_string(limits.idle_seconds) + " s: gave up");
        return ran.release_error();
    }
    return receiver.report();
}

} // namespace bulkhead::filecopy
