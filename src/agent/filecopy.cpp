// The bulkhead.Filecopy stream: see filecopy.hpp.
//
// Layout (integers little-endian):
//   "BHFC" u8 version(1)                                      once, first
//   u8 1 (File)       u32 mode  u64 size  u16 length  name    then `size` bytes of content
//   u8 2 (Directory)  u32 mode            u16 length  name    opens a directory: what follows is inside
//   u8 4 (Up)                                                 closes the innermost open directory
//   u8 3 (End)                                                last; nothing may follow, every directory closed
// Type codes 16-20 (symlink, hard link, device, FIFO, socket) are reserved so that a sender that
// tries them is refused by name.
#include "agent/filecopy.hpp"

#include "sys/fd.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <unistd.h>

namespace bulkhead::filecopy {

namespace {

using sys::UniqueFd;

constexpr char magic[] = {'B', 'H', 'F', 'C', 1};
constexpr size_t max_name = 255;
constexpr uint8_t type_up = 4;
constexpr size_t buffer_size = 1 << 20;
constexpr int max_suffix = 1000;

std::string shown(std::string_view name)
{
    std::string out;
    for (char c : name.substr(0, 64)) {
        auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte == 0x7f) {
            char escaped[8];
            std::snprintf(escaped, sizeof(escaped), "\\x%02x", byte);
            out += escaped;
        } else {
            out += c;
        }
    }
    return "'" + out + (name.size() > 64 ? "...'" : "'");
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

// Buffered reads of the stream.
class Input {
public:
    explicit Input(int fd) : m_fd(fd), m_buffer(buffer_size) {}

    // Makes at least `count` bytes available; false at end of stream.
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
                return Error::from_syscall("read", errno);
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

private:
    int m_fd;
    std::vector<uint8_t> m_buffer;
    size_t m_begin = 0, m_end = 0;
};

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

// Opens (making it if needed) the directory `name` below `parent`, never through a link.
Result<UniqueFd> open_or_make_dir(int parent, std::string const& name)
{
    if (::mkdirat(parent, name.c_str(), 0700) < 0 && errno != EEXIST)
        return Error::from_syscall("mkdir", name, errno);
    int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return Error::from_message(name + " is not a directory (" + std::strerror(errno) + "): refused, nothing received");
    return UniqueFd(fd);
}

// `name`, or `name (1)`, `name (2)` ... : the first that `create` makes without replacing anything.
template<typename Create>
Result<std::string> create_unique(std::string const& name, Create create)
{
    for (int i = 0; i <= max_suffix; ++i) {
        std::string candidate = i == 0 ? name : name + " (" + std::to_string(i) + ")";
        if (candidate.size() > max_name)
            break;
        int rc = create(candidate);
        if (rc == 0)
            return candidate;
        if (errno != EEXIST)
            return Error::from_syscall("create", candidate, errno);
    }
    return Error::from_message(shown(name) + ": too many files of that name already");
}

struct Receiver {
    Input input;
    Limits limits;
    ReceiveReport report;
    uint64_t entries = 0;

    Status content(int file, uint64_t size)
    {
        while (size > 0) {
            if (input.available().empty() && !TRY(input.more()))
                return Error::from_message("the stream ended inside a file");
            auto chunk = input.available();
            size_t take = static_cast<size_t>(std::min<uint64_t>(size, chunk.size()));
            if (auto written = write_all(file, chunk.data(), take); written.is_error()) {
                if (written.error().code() == ENOSPC || written.error().code() == EDQUOT)
                    return Error::from_message("the disk is full");
                return written;
            }
            input.consume(take);
            size -= take;
            report.bytes += take;
        }
        return {};
    }

    Status file(int parent, Header const& header, size_t depth)
    {
        mode_t mode = (header.mode & 0777) | 0600;
        UniqueFd fd;
        auto name = TRY(create_unique(header.name, [&](std::string const& candidate) {
            int opened = ::openat(parent, candidate.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
            if (opened < 0)
                return -1;
            fd.reset(opened);
            return 0;
        }));
        if (auto written = content(fd.get(), header.size); written.is_error()) {
            fd.reset();
            (void)::unlinkat(parent, name.c_str(), 0); // never a half-written file
            return Error::from_message(shown(name) + ": " + written.error().message() + "; the partial file was removed");
        }
        if (::fchmod(fd.get(), header.mode & 0777) < 0 || ::close(fd.release()) < 0) {
            (void)::unlinkat(parent, name.c_str(), 0);
            return Error::from_message(shown(name) + ": " + (errno == ENOSPC ? "the disk is full" : std::strerror(errno)));
        }
        ++report.files;
        if (depth == 0)
            report.names.push_back(name);
        return {};
    }

    Status run(int top)
    {
        if (!TRY(input.fill(sizeof(magic))) || std::memcmp(input.available().data(), magic, sizeof(magic)) != 0)
            return Error::from_message("not a bulkhead file-copy stream (or another version)");
        input.consume(sizeof(magic));
        std::vector<UniqueFd> open; // directories entered below `top`
        while (true) {
            size_t used = 0;
            auto header = decode_header(input.available(), used, limits);
            if (header.is_error() && header.error().code() == EAGAIN) {
                if (!TRY(input.more()))
                    return Error::from_message("the stream ended early (no end marker)");
                continue;
            }
            if (header.is_error())
                return header.release_error();
            input.consume(used);
            int parent = open.empty() ? top : open.back().get();
            Header const& entry = header.value();
            if (entry.type == EntryType::End) {
                if (!open.empty())
                    return Error::from_message("the stream ended inside a directory");
                if (!input.available().empty() || TRY(input.more()))
                    return Error::from_message("data after the end of the stream");
                return {};
            }
            if (entry.type == EntryType::Up) {
                if (open.empty())
                    return Error::from_message("the stream closes a directory it did not open");
                open.pop_back();
                continue;
            }
            if (++entries > limits.max_entries)
                return Error::from_message("more than " + std::to_string(limits.max_entries) + " files and directories");
            if (entry.type == EntryType::File) {
                if (report.bytes + entry.size > limits.max_total_bytes)
                    return Error::from_message(shown(entry.name) + ": the files add up to more than " + std::to_string(limits.max_total_bytes) + " bytes");
                TRY(file(parent, entry, open.size()));
                continue;
            }
            if (open.size() + 1 > limits.max_depth)
                return Error::from_message(shown(entry.name) + ": directories nested deeper than " + std::to_string(limits.max_depth));
            mode_t mode = (entry.mode & 0777) | 0700;
            auto name = TRY(create_unique(entry.name, [&](std::string const& candidate) { return ::mkdirat(parent, candidate.c_str(), mode); }));
            int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0)
                return Error::from_syscall("open", name, errno);
            open.emplace_back(fd);
            ++report.directories;
            if (open.size() == 1)
                report.names.push_back(name);
        }
    }
};

struct Sender {
    int out;
    SendReport report;
    std::vector<char> buffer = std::vector<char>(buffer_size);

    Status header(Header const& entry) { return write_all(out, encode_header(entry).data(), encode_header(entry).size()); }

    Status file(int fd, std::string const& name, struct stat const& info, std::string const& path)
    {
        TRY(header({EntryType::File, name, static_cast<uint32_t>(info.st_mode & 0777), static_cast<uint64_t>(info.st_size), 0}));
        uint64_t left = static_cast<uint64_t>(info.st_size);
        off_t offset = 0;
        while (left > 0) {
            ssize_t n = ::sendfile(out, fd, &offset, static_cast<size_t>(std::min<uint64_t>(left, 1 << 30)));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0)
                return Error::from_syscall("sendfile", path, errno);
            if (n == 0)
                return Error::from_message(path + ": the file shrank while it was sent");
            left -= static_cast<uint64_t>(n);
        }
        report.bytes += static_cast<uint64_t>(info.st_size);
        ++report.files;
        return {};
    }

    Status entry(int dir, std::string const& name, std::string const& path)
    {
        TRY_CTX(check_name(name), path);
        int fd = ::openat(dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0)
            return Error::from_message(path + ": " + (errno == ELOOP ? "a symbolic link: links are not copied" : std::strerror(errno)));
        UniqueFd owned(fd);
        struct stat info {};
        if (::fstat(fd, &info) < 0)
            return Error::from_syscall("fstat", path, errno);
        if (S_ISREG(info.st_mode))
            return file(fd, name, info, path);
        if (!S_ISDIR(info.st_mode))
            return Error::from_message(path + ": not a regular file or directory: not copied");
        TRY(header({EntryType::Directory, name, static_cast<uint32_t>(info.st_mode & 0777), 0, 0}));
        ++report.directories;
        DIR* handle = ::fdopendir(::dup(fd));
        if (handle == nullptr)
            return Error::from_syscall("opendir", path, errno);
        std::vector<std::string> names;
        while (dirent* item = ::readdir(handle)) {
            if (std::strcmp(item->d_name, ".") != 0 && std::strcmp(item->d_name, "..") != 0)
                names.push_back(item->d_name);
        }
        ::closedir(handle);
        std::sort(names.begin(), names.end());
        for (auto const& child : names)
            TRY(entry(fd, child, path + "/" + child));
        std::vector<uint8_t> up = {type_up};
        return write_all(out, up.data(), up.size());
    }
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
    case type_up:
        used = 1;
        header.type = static_cast<EntryType>(type);
        return header;
    case static_cast<uint8_t>(EntryType::File):
    case static_cast<uint8_t>(EntryType::Directory):
        break;
    case 16:
        return Error::from_message("a symbolic link in the stream: refused");
    case 17:
        return Error::from_message("a hard link in the stream: refused");
    case 18:
        return Error::from_message("a device node in the stream: refused");
    case 19:
        return Error::from_message("a FIFO in the stream: refused");
    case 20:
        return Error::from_message("a socket in the stream: refused");
    default:
        return Error::from_message("unknown entry type " + std::to_string(type) + " in the stream");
    }
    header.type = static_cast<EntryType>(type);
    bool file = header.type == EntryType::File;
    size_t fixed = 1 + 4 + (file ? 8 : 0) + 2;
    if (bytes.size() < fixed)
        return Error::from_syscall("decode_header", EAGAIN);
    header.mode = static_cast<uint32_t>(little(bytes, 1, 4));
    if (file)
        header.size = little(bytes, 5, 8);
    size_t length = static_cast<size_t>(little(bytes, fixed - 2, 2));
    if (length == 0 || length > max_name)
        return Error::from_message("a name of " + std::to_string(length) + " bytes (1 to 255)");
    if (bytes.size() < fixed + length)
        return Error::from_syscall("decode_header", EAGAIN);
    header.name.assign(reinterpret_cast<char const*>(bytes.data() + fixed), length);
    if ((header.mode & ~0777U) != 0)
        return Error::from_message(shown(header.name) + ": mode " + std::to_string(header.mode) + " has bits beyond the permissions");
    TRY(check_name(header.name));
    if (file && header.size > limits.max_file_bytes)
        return Error::from_message(shown(header.name) + ": " + std::to_string(header.size) + " bytes, over the limit of " + std::to_string(limits.max_file_bytes));
    used = fixed + length;
    return header;
}

Status check_name(std::string_view name)
{
    if (name.empty() || name.size() > max_name)
        return Error::from_message("a name must have 1 to 255 bytes");
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

Result<SendReport> send(int out, std::vector<std::string> const& paths)
{
    // Every top-level path is checked before anything is sent.
    std::vector<std::string> names;
    for (auto const& path : paths) {
        std::string trimmed = path;
        while (trimmed.size() > 1 && trimmed.back() == '/')
            trimmed.pop_back();
        std::string name = trimmed.substr(trimmed.rfind('/') == std::string::npos ? 0 : trimmed.rfind('/') + 1);
        struct stat info {};
        if (::lstat(trimmed.c_str(), &info) < 0)
            return Error::from_syscall("lstat", path, errno);
        if (S_ISLNK(info.st_mode))
            return Error::from_message(path + ": a symbolic link: links are not copied");
        if (!S_ISREG(info.st_mode) && !S_ISDIR(info.st_mode))
            return Error::from_message(path + ": not a regular file or directory: not copied");
        TRY_CTX(check_name(name), path);
        names.push_back(trimmed);
    }
    Sender sender {out};
    TRY(write_all(out, magic, sizeof(magic)));
    for (auto const& path : names) {
        std::string parent = path.rfind('/') == std::string::npos ? "." : path.rfind('/') == 0 ? "/" : path.substr(0, path.rfind('/'));
        UniqueFd dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        if (!dir)
            return Error::from_syscall("open", parent, errno);
        TRY(sender.entry(dir.get(), path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1), path));
    }
    auto end = encode_header({EntryType::End, {}, 0, 0, 0});
    TRY(write_all(out, end.data(), end.size()));
    return sender.report;
}

Result<ReceiveReport> receive(int in, int home, std::string const& source, Limits const& limits)
{
    TRY_CTX(check_name(source), "the source compartment");
    UniqueFd incoming = TRY(open_or_make_dir(home, "Incoming"));
    UniqueFd top = TRY(open_or_make_dir(incoming.get(), source));
    Receiver receiver {Input(in), limits, {}, 0};
    TRY(receiver.run(top.get()));
    return receiver.report;
}

} // namespace bulkhead::filecopy
