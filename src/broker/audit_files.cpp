// The audit log's files: reading them (lines, the last record, where a seq starts), listing the
// rotated ones, paging records through all of them, and verifying the chain across them (see
// audit.hpp and docs/audit.md; the walk of one file's chain is in audit_verify.cpp).
#include "broker/audit.hpp"
#include "broker/audit_internal.hpp"

#include "sys/syscalls.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

namespace bulkhead::audit {

namespace detail {

Result<size_t> pread_all(int fd, char* buffer, size_t size, off_t offset)
{
    size_t done = 0;
    while (done < size) {
        ssize_t n = ::pread(fd, buffer + done, size - done, offset + static_cast<off_t>(done));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return Error::from_syscall("pread", "audit log", errno);
        if (n == 0)
            break;
        done += static_cast<size_t>(n);
    }
    return done;
}

Result<std::optional<std::string_view>> LineReader::next()
{
    bool too_long = false;
    while (true) {
        size_t end = m_buffer.find('\n', m_start);
        if (end != std::string::npos) {
            std::string_view line(m_buffer.data() + m_start, too_long ? 0 : end - m_start);
            m_start = end + 1;
            return std::optional<std::string_view>(line);
        }
        if (m_buffer.size() - m_start > max_line) {
            too_long = true;
            m_start = m_buffer.size();
        }
        m_buffer.erase(0, m_start);
        m_start = 0;
        size_t had = m_buffer.size();
        m_buffer.resize(had + block);
        size_t got = TRY(pread_all(m_fd, m_buffer.data() + had, block, m_offset));
        m_buffer.resize(had + got);
        m_offset += static_cast<off_t>(got);
        if (got == 0)
            return std::optional<std::string_view>();
    }
}

namespace {

// The start of the first line past `offset` that is a record, and its seq (nullopt if none is found
// within max_line bytes).
Result<std::optional<std::pair<off_t, uint64_t>>> record_after(int fd, off_t offset)
{
    std::string block(max_line, '\0');
    block.resize(TRY(pread_all(fd, block.data(), block.size(), offset)));
    size_t start = block.find('\n');
    while (start != std::string::npos) {
        size_t end = block.find('\n', start + 1);
        if (end == std::string::npos)
            break;
        if (auto record = from_line(std::string_view(block).substr(start + 1, end - start - 1)); record.has_value())
            return std::optional(std::pair(offset + static_cast<off_t>(start + 1), record.value().seq));
        start = end;
    }
    return std::optional<std::pair<off_t, uint64_t>>();
}

} // namespace

Result<off_t> seek_after(int fd, off_t size, uint64_t after)
{
    off_t low = 0, high = size;
    while (high - low > static_cast<off_t>(max_line)) {
        off_t middle = low + (high - low) / 2;
        auto probe = TRY(record_after(fd, middle));
        if (!probe || probe->first >= high)
            break;
        if (probe->second <= after)
            low = probe->first;
        else
            high = middle;
    }
    return low;
}

Result<std::optional<Record>> last_record(int fd, std::string const& name)
{
    struct stat info {};
    if (::fstat(fd, &info) < 0)
        return Error::from_syscall("fstat", name, errno);
    if (info.st_size == 0)
        return std::optional<Record>();
    // Only the end: a record is far shorter than max_line.
    off_t start = std::max<off_t>(0, info.st_size - static_cast<off_t>(max_line));
    std::string tail(static_cast<size_t>(info.st_size - start), '\0');
    if (TRY(pread_all(fd, tail.data(), tail.size(), start)) != tail.size())
        return Error::from_message(name + ": the file shrank while it was read");
    if (tail.back() != '\n')
        return Error::from_message(name + ": the last line is incomplete (no newline: a write was cut short); "
                                          "the broker does not append to it: remove the partial line or move the log "
                                          "aside, then run `bulkhead audit verify`");
    tail.pop_back();
    size_t newline = tail.rfind('\n');
    if (newline == std::string::npos && start > 0)
        return Error::from_message(name + ": the last line is not a record (longer than 64 KiB)");
    auto last = from_line(std::string_view(tail).substr(newline == std::string::npos ? 0 : newline + 1));
    if (last.is_error())
        return Error::from_message(name + ": the last line is not a record (" + last.error().message() + ")");
    return std::optional<Record>(last.release_value());
}

Result<std::optional<Record>> first_record(int fd)
{
    std::string head(max_line, '\0');
    head.resize(TRY(pread_all(fd, head.data(), head.size(), 0)));
    for (size_t start = 0, end; (end = head.find('\n', start)) != std::string::npos; start = end + 1) {
        if (auto record = from_line(std::string_view(head).substr(start, end - start)); record.has_value())
            return std::optional<Record>(record.release_value());
    }
    return std::optional<Record>();
}

std::string rotated_name(std::string const& name, uint64_t first_seq)
{
    return name + "." + std::to_string(first_seq);
}

Result<std::vector<LogFile>> list_files(int dirfd, std::string const& name, bool with_current)
{
    int listing = ::fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
    if (listing < 0)
        return Error::from_syscall("dup", "the audit log's directory", errno);
    DIR* dir = ::fdopendir(listing);
    if (dir == nullptr) {
        ::close(listing);
        return Error::from_syscall("fdopendir", "the audit log's directory", errno);
    }
    ::rewinddir(dir);
    std::vector<LogFile> files;
    bool current = false;
    std::string const prefix = name + ".";
    while (dirent* entry = ::readdir(dir)) {
        std::string_view found = entry->d_name;
        current = current || found == name;
        if (!found.starts_with(prefix))
            continue;
        std::string_view digits = found.substr(prefix.size());
        uint64_t seq = 0;
        auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), seq);
        // The one spelling the broker writes: decimal, no sign, no leading zero, not 0.
        if (error != std::errc() || end != digits.data() + digits.size() || seq == 0 || digits.front() == '0')
            continue;
        files.push_back({std::string(found), seq});
    }
    ::closedir(dir);
    std::sort(files.begin(), files.end(), [](LogFile const& a, LogFile const& b) { return a.first_seq < b.first_seq; });
    if (with_current && current)
        files.push_back({name, 0});
    return files;
}

} // namespace detail

using namespace detail;

namespace {

struct Place {
    std::string dir;
    std::string name;
};
Place split(std::string const& path)
{
    size_t slash = path.rfind('/');
    if (slash == std::string::npos)
        return {".", path};
    return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

Result<std::string> read_whole(int fd, std::string const& name)
{
    struct stat info {};
    if (::fstat(fd, &info) < 0)
        return Error::from_syscall("fstat", name, errno);
    std::string contents(static_cast<size_t>(info.st_size), '\0');
    contents.resize(TRY(pread_all(fd, contents.data(), contents.size(), 0)));
    return contents;
}

} // namespace

Result<std::vector<Record>> read(std::string const& path, uint64_t after, size_t limit)
{
    auto [dir_path, name] = split(path);
    auto dir = TRY(sys::open_path(dir_path, O_RDONLY | O_DIRECTORY));
    auto files = TRY(list_files(dir.get(), name, true));
    if (files.empty())
        return Error::from_syscall("open", path, ENOENT);
    // The newest rotated file that starts at or before the first seq wanted; the current one last.
    size_t first = 0;
    for (size_t i = 0; i < files.size(); ++i) {
        if (files[i].first_seq != 0 && files[i].first_seq <= after + 1)
            first = i;
    }
    std::vector<Record> records;
    for (size_t i = first; i < files.size() && records.size() < limit; ++i) {
        auto fd = sys::open_beneath(dir.get(), files[i].name, O_RDONLY | O_NOFOLLOW);
        if (fd.is_error() && fd.error().code() == ENOENT)
            continue; // removed by the broker's rotation since it was listed
        if (fd.is_error())
            return fd.release_error();
        struct stat info {};
        if (::fstat(fd.value().get(), &info) < 0)
            return Error::from_syscall("fstat", files[i].name, errno);
        LineReader lines(fd.value().get(), after == 0 ? 0 : TRY(seek_after(fd.value().get(), info.st_size, after)));
        while (records.size() < limit) {
            auto line = TRY(lines.next());
            if (!line)
                break;
            auto record = from_line(*line);
            if (record.has_value() && record.value().seq > after)
                records.push_back(record.release_value());
        }
    }
    return records;
}

Result<Verification> verify_files(std::string const& path, std::optional<std::pair<uint64_t, std::string>> expected_last)
{
    auto [dir_path, name] = split(path);
    auto dir = TRY(sys::open_path(dir_path, O_RDONLY | O_DIRECTORY));
    auto files = TRY(list_files(dir.get(), name, true));
    Verification result;
    if (files.empty() || files.back().first_seq != 0)
        files.push_back({name, 0}); // no current file: checked as an empty one (the head says what is missing)
    std::vector<sys::UniqueFd> fds;
    for (auto const& file : files) {
        auto fd = sys::open_beneath(dir.get(), file.name, O_RDONLY | O_NOFOLLOW);
        if (fd.is_error() && fd.error().code() != ENOENT)
            return fd.release_error();
        fds.push_back(fd.is_error() ? sys::UniqueFd() : fd.release_value());
        result.files.push_back(file.name);
    }
    // Where the chain starts: at 64 zeros, or after records the oldest file's first record says
    // came before it (removed by the broker's rotation: a record must say so, checked at the end).
    Anchor anchor;
    std::optional<Record> oldest_first;
    if (fds.front())
        oldest_first = TRY(first_record(fds.front().get()));
    bool const starts_late = oldest_first && oldest_first->seq > 1;
    if (starts_late)
        anchor = Anchor {oldest_first->seq - 1, oldest_first->prev, {}, 0};

    std::vector<std::pair<std::string, std::pair<size_t, Removed>>> removals; // file, (line, what)
    std::vector<std::optional<Record>> firsts(files.size());
    for (size_t i = 1; i < files.size(); ++i) {
        if (fds[i])
            firsts[i] = TRY(first_record(fds[i].get()));
    }
    for (size_t i = 0; i < files.size(); ++i) {
        std::string contents;
        if (fds[i])
            contents = TRY(read_whole(fds[i].get(), files[i].name));
        bool const last = i + 1 == files.size();
        std::optional<std::string> named_by_next;
        if (!last && firsts[i + 1])
            named_by_next = firsts[i + 1]->prev;
        auto part = verify_part(contents, files[i].name, anchor, named_by_next, last ? expected_last : std::nullopt);
        result.records += part.records;
        if (files[i].first_seq != 0 && part.first && part.first->seq != files[i].first_seq)
            result.problems.push_back({files[i].name, 1, part.first->seq, "renamed: its first record has seq "
                + std::to_string(part.first->seq) + ", its name says " + std::to_string(files[i].first_seq)});
        for (auto& problem : part.problems) {
            // Records missing between two files: say where to look.
            if (i > 0 && anchor.line > 0 && part.first && problem.seq == part.first->seq && problem.what.starts_with("deleted:"))
                problem.what += " (between " + files[i - 1].name + " and " + files[i].name + ": a rotated file, or the end of "
                    + files[i - 1].name + ", was removed outside the broker)";
            result.problems.push_back(std::move(problem));
        }
        for (auto const& [line, note] : part.notes) {
            if (auto removed = parse_removed(note))
                removals.push_back({files[i].name, {line, *removed}});
        }
        // The next file continues from the end of this one; from its own first record if the
        // chain's place was lost.
        anchor = part.end ? *part.end : Anchor {};
        if (!part.end && !last && firsts[i + 1] && firsts[i + 1]->seq > 1)
            anchor = Anchor {firsts[i + 1]->seq - 1, firsts[i + 1]->prev, {}, 0};
    }

    if (starts_late) {
        uint64_t const start = oldest_first->seq;
        auto said = std::find_if(removals.begin(), removals.end(), [&](auto const& removal) {
            return removal.second.second.last + 1 == start && removal.second.second.hash == oldest_first->prev;
        });
        if (said != removals.end()) {
            result.notes.push_back("seqs " + std::to_string(said->second.second.first) + " to " + std::to_string(start - 1)
                + " were removed by the broker's rotation (" + said->first + " line " + std::to_string(said->second.first)
                + " says so)" + (said->second.second.first > 1 ? ", older ones before them" : ""));
        } else {
            uint64_t known = 0;
            std::string where;
            for (auto const& [file, removal] : removals) {
                if (removal.second.last < start && removal.second.last > known) {
                    known = removal.second.last;
                    where = file + " line " + std::to_string(removal.first);
                }
            }
            std::string what = start - 1 == known + 1 ? "seq " + std::to_string(known + 1) + " is missing"
                                                      : "seqs " + std::to_string(known + 1) + " to " + std::to_string(start - 1) + " are missing";
            result.problems.insert(result.problems.begin(), Problem {files.front().name, 1, start, "deleted: " + what
                + ": the log starts at seq " + std::to_string(start) + ", and no record says the broker removed them"
                + (known ? " (its rotation removed seqs up to " + std::to_string(known) + ", " + where + ")" : "")
                + ": the files that held them (from " + rotated_name(name, known + 1) + " on) were removed outside the broker"});
        }
    }
    // Oldest file first, in the order of the lines within each.
    std::stable_sort(result.problems.begin(), result.problems.end(), [&](Problem const& a, Problem const& b) {
        auto index = [&](std::string const& file) { return std::find(result.files.begin(), result.files.end(), file) - result.files.begin(); };
        return std::pair(index(a.file), a.line) < std::pair(index(b.file), b.line);
    });
    return result;
}

} // namespace bulkhead::audit
