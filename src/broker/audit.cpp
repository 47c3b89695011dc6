// The audit log: see audit.hpp and docs/audit.md. The canonical line is written by hand, so that
// its bytes (and so its hash) are fixed by this file alone; reading is strict: a line is a record
// only if writing the record it parses to gives the same bytes back. Verification (walking the
// chain) is in audit_verify.cpp.
#include "broker/audit.hpp"
#include "broker/audit_internal.hpp"

#include "sys/syscalls.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fcntl.h>
#include <limits>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utility>

#include <nlohmann/json.hpp>

namespace bulkhead::audit {

using detail::blake2b;
using detail::Digest;
using detail::hash_bytes;
using detail::is_hash;

namespace {

constexpr size_t max_name = 128;  // kind, caller, target, service, verdict
constexpr size_t max_text = 256;  // arg, detail: what a hostile caller chooses
constexpr size_t max_rule = 1024; // FILE:LINE of the broker's own policy files: a path, not a name
// A record is at most ~14 KiB even when every byte of every field is escaped as \u00XX; a line longer
// than this is not a record. It is also how much of the file's end open() reads.
constexpr size_t max_line = 64 * 1024;
std::string const zero_hash(2 * hash_bytes, '0');

bool sodium_ready()
{
    static bool const ready = ::sodium_init() >= 0;
    return ready;
}

// Valid UTF-8 stays; every invalid byte becomes U+FFFD, so that to_line and from_line round-trip.
std::string clean_utf8(std::string_view text)
{
    std::string out;
    size_t i = 0;
    while (i < text.size()) {
        auto byte = static_cast<unsigned char>(text[i]);
        size_t length = byte < 0x80 ? 1 : (byte >> 5) == 0x6 ? 2 : (byte >> 4) == 0xe ? 3 : (byte >> 3) == 0x1e ? 4 : 0;
        bool valid = length > 0 && i + length <= text.size();
        for (size_t k = 1; valid && k < length; ++k)
            valid = (static_cast<unsigned char>(text[i + k]) >> 6) == 0x2;
        if (valid && length > 1) {
            // No overlong forms, surrogates or code points past U+10FFFF.
            uint32_t cp = byte & (0xff >> (length + 1));
            for (size_t k = 1; k < length; ++k)
                cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3f);
            uint32_t const min[] = {0, 0, 0x80, 0x800, 0x10000};
            valid = cp >= min[length] && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
        }
        if (!valid) {
            out += "\xef\xbf\xbd";
            ++i;
            continue;
        }
        out.append(text.substr(i, length));
        i += length;
    }
    return out;
}

// Cut at `limit` bytes on a character boundary, marked with "…" (which counts in the limit).
std::string bounded(std::string const& text, size_t limit)
{
    std::string clean = clean_utf8(text);
    if (clean.size() <= limit)
        return clean;
    size_t cut = limit - 3;
    while (cut > 0 && (static_cast<unsigned char>(clean[cut]) & 0xc0) == 0x80)
        --cut;
    return clean.substr(0, cut) + "\xe2\x80\xa6";
}

void quote(std::string& out, std::string const& text)
{
    out += '"';
    for (char c : text) {
        auto byte = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (byte < 0x20 || byte == 0x7f) {
            char escaped[8];
            std::snprintf(escaped, sizeof(escaped), "\\u%04x", byte);
            out += escaped;
        } else {
            out += c;
        }
    }
    out += '"';
}

std::string hex(unsigned char const* bytes, size_t size)
{
    static char const digits[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < size; ++i) {
        out += digits[bytes[i] >> 4];
        out += digits[bytes[i] & 0xf];
    }
    return out;
}

std::string now_rfc3339()
{
    timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    tm utc {};
    ::gmtime_r(&now.tv_sec, &utc);
    char text[96];
    std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", utc.tm_year + 1900, utc.tm_mon + 1,
        utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, now.tv_nsec / 1000000);
    return text;
}

char const* const field_names[] = {
    "seq", "time", "kind", "caller", "target", "service", "arg", "verdict", "rule", "detail", "prev", "hash"};

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

// Complete lines of a file from an offset on, read in blocks: the log may be far larger than memory.
// A line longer than max_line comes back as one empty line (not a record either way).
class LineReader {
public:
    LineReader(int fd, off_t offset) : m_fd(fd), m_offset(offset) {}

    // The next complete line without its newline; nullopt at the end (an unfinished last line is
    // not returned: it is still being written, or was cut short).
    Result<std::optional<std::string_view>> next()
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

private:
    static constexpr size_t block = 64 * 1024;
    int m_fd;
    off_t m_offset;
    std::string m_buffer;
    size_t m_start = 0;
};

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

// Where to start reading for records with seq > after: a binary search over byte offsets, since the
// broker writes seq in increasing order. Returns the start of a line at or before the first such
// record (0 when in doubt, e.g. around lines that are not records).
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

} // namespace

// Shared with audit_verify.cpp (audit_internal.hpp).
namespace detail {

bool is_hash(std::string const& text)
{
    return text.size() == 2 * hash_bytes && text.find_first_not_of("0123456789abcdef") == std::string::npos;
}

Digest blake2b(std::string_view head, std::string_view tail)
{
    if (!sodium_ready())
        std::abort(); // no hash function: nothing may be recorded or checked unchained
    crypto_generichash_state state;
    crypto_generichash_init(&state, nullptr, 0, hash_bytes);
    crypto_generichash_update(&state, reinterpret_cast<unsigned char const*>(head.data()), head.size());
    crypto_generichash_update(&state, reinterpret_cast<unsigned char const*>(tail.data()), tail.size());
    Digest out;
    crypto_generichash_final(&state, out.data(), out.size());
    return out;
}

} // namespace detail

std::string to_line(Record const& record)
{
    std::string out = "{\"seq\":" + std::to_string(record.seq);
    std::string const* strings[] = {&record.time, &record.kind, &record.caller, &record.target, &record.service,
        &record.arg, &record.verdict, &record.rule, &record.detail, &record.prev, &record.hash};
    for (size_t i = 0; i < std::size(strings); ++i) {
        out += ",\"";
        out += field_names[i + 1];
        out += "\":";
        quote(out, *strings[i]);
    }
    out += '}';
    return out;
}

std::string compute_hash(Record const& record)
{
    Record unhashed = record;
    unhashed.hash.clear();
    Digest digest = blake2b(to_line(unhashed), {});
    return hex(digest.data(), digest.size());
}

Result<Record> from_line(std::string_view line)
{
    auto json = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (json.is_discarded() || !json.is_object())
        return Error::from_message("not JSON");
    if (json.size() != std::size(field_names))
        return Error::from_message("not the fields of a record");
    Record record;
    auto seq = json.find("seq");
    if (seq == json.end() || !seq->is_number_unsigned() || seq->get<uint64_t>() == 0)
        return Error::from_message("seq is not a positive integer");
    record.seq = seq->get<uint64_t>();
    std::string* strings[] = {&record.time, &record.kind, &record.caller, &record.target, &record.service,
        &record.arg, &record.verdict, &record.rule, &record.detail, &record.prev, &record.hash};
    for (size_t i = 0; i < std::size(strings); ++i) {
        auto found = json.find(field_names[i + 1]);
        if (found == json.end() || !found->is_string())
            return Error::from_message(std::string("no string '") + field_names[i + 1] + "'");
        *strings[i] = found->get<std::string>();
    }
    if (!is_hash(record.prev) || !is_hash(record.hash))
        return Error::from_message("a hash is not 64 lowercase hex digits");
    // Key order, spacing, escapes, number forms: only the one canonical spelling is a record.
    if (to_line(record) != line)
        return Error::from_message("not in canonical form");
    return record;
}

Result<Log> Log::open(std::string const& path)
{
    if (!sodium_ready())
        return Error::from_message("libsodium could not be initialised");
    Log log;
    log.m_fd = TRY(sys::open_path(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    // The append-only descriptor cannot read: the end of the log is read through a second one, of
    // the same file (checked, in case the path was swapped in between).
    auto reader = TRY(sys::open_path(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    struct stat info {}, read_info {};
    if (::fstat(log.m_fd.get(), &info) < 0 || ::fstat(reader.get(), &read_info) < 0)
        return Error::from_syscall("fstat", path, errno);
    if (!S_ISREG(info.st_mode))
        return Error::from_message(path + ": not a regular file");
    if (info.st_dev != read_info.st_dev || info.st_ino != read_info.st_ino)
        return Error::from_message(path + ": the file changed while it was opened");
    log.m_last_hash = zero_hash;
    if (read_info.st_size == 0)
        return log;
    // Only the end: the log grows forever, and a record is far shorter than max_line.
    off_t start = std::max<off_t>(0, read_info.st_size - static_cast<off_t>(max_line));
    std::string tail(static_cast<size_t>(read_info.st_size - start), '\0');
    if (TRY(pread_all(reader.get(), tail.data(), tail.size(), start)) != tail.size())
        return Error::from_message(path + ": the file shrank while it was read");
    if (tail.back() != '\n')
        return Error::from_message(path + ": the last line is incomplete (no newline: a write was cut short); "
                                          "the broker does not append to it: remove the partial line or move the log "
                                          "aside, then run `bulkhead audit verify`");
    tail.pop_back();
    size_t newline = tail.rfind('\n');
    if (newline == std::string::npos && start > 0)
        return Error::from_message(path + ": the last line is not a record (longer than 64 KiB)");
    auto last = from_line(std::string_view(tail).substr(newline == std::string::npos ? 0 : newline + 1));
    if (last.is_error())
        return Error::from_message(path + ": the last line is not a record (" + last.error().message() + ")");
    log.m_last_seq = last.value().seq;
    log.m_last_hash = last.value().hash;
    return log;
}

Status Log::append(Record& record, bool sync)
{
    if (m_last_seq == std::numeric_limits<uint64_t>::max())
        return Error::from_message("audit log: seq cannot go past 2^64-1");
    record.seq = m_last_seq + 1;
    record.time = now_rfc3339();
    for (auto* name : {&record.kind, &record.caller, &record.target, &record.service, &record.verdict})
        *name = bounded(*name, max_name);
    record.arg = bounded(record.arg, max_text);
    record.detail = bounded(record.detail, max_text);
    record.rule = bounded(record.rule, max_rule);
    record.prev = m_last_hash;
    record.hash = compute_hash(record);
    std::string const line = to_line(record) + "\n";
    struct stat before {};
    if (::fstat(m_fd.get(), &before) < 0)
        return Error::from_syscall("fstat", "audit log", errno);
    std::string_view rest = line;
    while (!rest.empty()) {
        ssize_t written = ::write(m_fd.get(), rest.data(), rest.size());
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0) {
            int err = written < 0 ? errno : EIO;
            // Half a line would make the log impossible to continue: take it back.
            (void)::ftruncate(m_fd.get(), before.st_size);
            return Error::from_syscall("write", "audit log", err);
        }
        rest.remove_prefix(static_cast<size_t>(written));
    }
    // The line is in the file: the next record follows it even if it is not yet on the disk.
    m_last_seq = record.seq;
    m_last_hash = record.hash;
    m_unsynced = true;
    return sync ? this->sync() : Status();
}

Status Log::sync()
{
    if (!m_unsynced)
        return {};
    if (::fdatasync(m_fd.get()) < 0)
        return Error::from_syscall("fdatasync", "audit log", errno);
    m_unsynced = false;
    return {};
}

Result<std::vector<Record>> read(std::string const& path, uint64_t after, size_t limit)
{
    auto fd = TRY(sys::open_path(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    struct stat info {};
    if (::fstat(fd.get(), &info) < 0)
        return Error::from_syscall("fstat", path, errno);
    LineReader lines(fd.get(), after == 0 ? 0 : TRY(seek_after(fd.get(), info.st_size, after)));
    std::vector<Record> records;
    while (records.size() < limit) {
        auto line = TRY(lines.next());
        if (!line)
            break;
        auto record = from_line(*line);
        if (record.has_value() && record.value().seq > after)
            records.push_back(record.release_value());
    }
    return records;
}

} // namespace bulkhead::audit
