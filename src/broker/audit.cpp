// The audit log: see audit.hpp and docs/audit.md. The canonical line is written by hand, so that
// its bytes (and so its hash) are fixed by this file alone; reading is strict: a line is a record
// only if writing the record it parses to gives the same bytes back.
#include "broker/audit.hpp"

#include "sys/syscalls.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fcntl.h>
#include <limits>
#include <map>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include <nlohmann/json.hpp>

namespace bulkhead::audit {

namespace {

constexpr size_t hash_bytes = 32;
constexpr size_t max_name = 128;  // kind, caller, target, service, verdict
constexpr size_t max_text = 256;  // arg, detail: what a hostile caller chooses
constexpr size_t max_rule = 1024; // FILE:LINE of the broker's own policy files: a path, not a name
// A record is at most ~14 KiB even when every byte of every field is escaped as \u00XX; a line longer
// than this is not a record. It is also how much of the file's end open() reads.
constexpr size_t max_line = 64 * 1024;
std::string const zero_hash(2 * hash_bytes, '0');

using Digest = std::array<unsigned char, hash_bytes>;

struct DigestHash {
    size_t operator()(Digest const& digest) const
    {
        size_t out = 0;
        for (size_t i = 0; i < sizeof(out); ++i)
            out = (out << 8) | digest[i];
        return out;
    }
};

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

bool is_hash(std::string const& text)
{
    return text.size() == 2 * hash_bytes && text.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// Only for strings is_hash() accepted.
Digest to_digest(std::string const& text)
{
    Digest out {};
    auto nibble = [](char c) { return static_cast<unsigned char>(c <= '9' ? c - '0' : c - 'a' + 10); };
    for (size_t i = 0; i < hash_bytes; ++i)
        out[i] = static_cast<unsigned char>(nibble(text[2 * i]) << 4 | nibble(text[2 * i + 1]));
    return out;
}

// BLAKE2b-256 of `head` followed by `tail`: the canonical line with an empty hash, in two pieces.
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

// ---- verification ----
//
// Every record is judged by three facts against the position the chain has reached (the last record
// accepted into it): does its own hash match its content; does its seq follow; does its prev name the
// hash of the record at the position. docs/audit.md has the table; the cases that need more than the
// record itself look at what comes later in the file (does the next record continue the chain
// without this one; do the missing seqs come later; does any record name this one's hash).

namespace {

struct Entry {
    size_t line = 0;
    uint64_t seq = 0;
    Digest hash {};
    Digest prev {};
    bool intact = false;   // its own hash matches its content
    size_t unreadable = 0; // lines just before it that are not records
};

constexpr uint64_t no_seq = std::numeric_limits<uint64_t>::max();
constexpr size_t none = std::numeric_limits<size_t>::max();
// How far apart (in seqs) a moved record may land and still be told apart from a deletion.
constexpr uint64_t max_reorder = 64;

class ChainWalk {
public:
    ChainWalk(std::vector<Entry> const& entries, std::optional<Digest> head) : m_entries(entries)
    {
        for (size_t i = 0; i < entries.size(); ++i) {
            if (entries[i].intact)
                m_first_with_hash.emplace(entries[i].hash, i);
            m_named.insert(entries[i].prev);
            m_by_seq.emplace_back(entries[i].seq, i);
        }
        if (head)
            m_named.insert(*head);
        std::sort(m_by_seq.begin(), m_by_seq.end());
    }

    void run(std::vector<Problem>& problems)
    {
        m_problems = &problems;
        for (size_t i = 0; i < m_entries.size(); ++i) {
            m_unreadable += m_entries[i].unreadable;
            resolve_pending();
            judge(i);
        }
        resolve_pending();
    }

    uint64_t last_seq() const { return m_at.seq; }
    size_t index_of(uint64_t seq) const
    {
        auto found = m_accepted.find(seq);
        return found == m_accepted.end() ? none : found->second;
    }

private:
    struct Position {
        uint64_t seq = 0;
        Digest hash {};
        size_t index = none; // none: the start of the log
        bool reported = false;
    };

    Entry const& at(size_t i) const { return m_entries[i]; }
    std::string line_of(size_t i) const { return "line " + std::to_string(at(i).line); }
    bool follows(Entry const& entry) const { return m_at.seq != no_seq && entry.seq == m_at.seq + 1; }
    bool continues(size_t i) const { return i < m_entries.size() && follows(at(i)) && at(i).prev == m_at.hash; }
    // Some record (or the broker's head) names its hash: it has a place in the chain.
    bool named(size_t i) const { return m_named.count(at(i).hash) > 0; }
    // Named, or its prev names a record of the seq just before it: a genuine record, out of place.
    bool plausible(size_t i) const
    {
        auto found = m_first_with_hash.find(at(i).prev);
        return named(i) || (found != m_first_with_hash.end() && at(found->second).seq + 1 == at(i).seq);
    }
    // The first record after index `after` with this seq, or none.
    size_t later(uint64_t seq, size_t after) const
    {
        auto it = std::upper_bound(m_by_seq.begin(), m_by_seq.end(), std::pair(seq, after));
        return it != m_by_seq.end() && it->first == seq ? it->second : none;
    }
    // Another intact record with the same seq that takes this one's place: it links the position (and,
    // if asked, the chain goes on from it). Only the first few of a seq are looked at, so that a log
    // full of one seq costs no more than any other.
    size_t rival(size_t i, bool need_named) const
    {
        auto it = std::lower_bound(m_by_seq.begin(), m_by_seq.end(), std::pair(at(i).seq, size_t(0)));
        for (size_t looked = 0; it != m_by_seq.end() && it->first == at(i).seq && looked < 64; ++it, ++looked) {
            Entry const& other = at(it->second);
            if (it->second != i && other.intact && other.hash != at(i).hash && other.prev == m_at.hash
                && (!need_named || named(it->second)))
                return it->second;
        }
        return none;
    }

    void report(size_t i, std::string what) { m_problems->push_back({at(i).line, at(i).seq, std::move(what)}); }
    void accept(size_t i, uint64_t seq, bool reported = false)
    {
        m_at = {seq, at(i).hash, i, reported};
        m_accepted.emplace(seq, i);
        m_unreadable = 0;
    }
    // Records reported as coming too early join the chain once it reaches the place they belong.
    void resolve_pending()
    {
        while (m_at.seq != no_seq) {
            auto found = m_pending.find(m_at.seq + 1);
            if (found == m_pending.end() || at(found->second).prev != m_at.hash)
                return;
            size_t i = found->second;
            m_pending.erase(found);
            accept(i, at(i).seq, true);
        }
    }

    void judge(size_t i)
    {
        Entry const& entry = at(i);
        std::string const seq = std::to_string(entry.seq);
        std::string const here = std::to_string(m_at.seq);
        bool linked = entry.prev == m_at.hash;
        if (!entry.intact) {
            if (continues(i + 1)) {
                report(i, "inserted: its hash does not match its content, and the next record continues the "
                          "chain without it");
                return;
            }
            report(i, "edited: its hash does not match its content");
            // Only its content changed: its successor names the hash it still carries.
            uint64_t place = linked || entry.seq <= m_at.seq ? m_at.seq + 1 : entry.seq;
            accept(i, place == 0 ? no_seq : place, true);
            return;
        }
        if (size_t first = m_first_with_hash.at(entry.hash); first != i) {
            report(i, "inserted: a copy of " + line_of(first));
            return;
        }
        if (follows(entry) && linked) {
            if (size_t other = named(i) ? none : rival(i, true); other != none) {
                report(i, "inserted: the chain continues from the other record with seq " + seq + " ("
                        + line_of(other) + "), not from this one");
                return;
            }
            accept(i, entry.seq);
            return;
        }
        if (follows(entry)) {
            if (size_t other = rival(i, false); other != none) {
                report(i, "inserted: its prev does not name record " + here + "; the record with seq " + seq
                        + " that does is at " + line_of(other));
                return;
            }
            if (m_at.index == none)
                report(i, "edited: the first record's prev is not 64 zeros (changed, and its hash recomputed)");
            else if (!m_at.reported)
                report(m_at.index, "replaced: changed, and its hash recomputed: the next record (" + line_of(i)
                        + ") names a different hash as its prev");
            accept(i, entry.seq);
            return;
        }
        if (entry.seq > m_at.seq)
            jump(i, linked);
        else
            backwards(i);
    }

    // Its seq is past the next one.
    void jump(size_t i, bool linked)
    {
        Entry const& entry = at(i);
        std::string const seq = std::to_string(entry.seq);
        std::string const here = std::to_string(m_at.seq);
        uint64_t const first_missing = m_at.seq + 1, missing = entry.seq - first_missing;
        bool const next_continues = continues(i + 1);
        if (linked) {
            if (next_continues) {
                report(i, "inserted: its prev names record " + here + " but its seq is " + seq
                        + "; the next record continues the chain without it");
                return;
            }
            report(i, "edited: seq " + seq + " does not follow " + here + ", yet its prev names record " + here
                    + " (its seq was changed and its hash recomputed)");
            // It stands where its prev puts it: the records after it are judged from there.
            accept(i, first_missing, true);
            return;
        }
        bool come_later = missing <= max_reorder;
        for (uint64_t s = first_missing; come_later && s < entry.seq; ++s)
            come_later = later(s, i) != none;
        if (come_later || next_continues) {
            if (!plausible(i)) {
                report(i, "inserted: seq " + seq + " does not belong here, and no record names its hash");
                return;
            }
            // Moved: either this record came early, or the missing ones come late. Report whichever
            // explains the file with fewer moved records.
            size_t predecessor = come_later ? later(entry.seq - 1, i) : none;
            size_t first = come_later ? later(first_missing, i) : none;
            if (predecessor != none && at(predecessor).hash == entry.prev && missing < first - i) {
                for (uint64_t s = first_missing; s < entry.seq; ++s)
                    m_deferred.emplace(s, i);
                accept(i, entry.seq);
                return;
            }
            report(i, "reordered: seq " + seq + " comes before seq " + std::to_string(first_missing)
                    + (first != none ? " (" + line_of(first) + ")" : std::string()));
            m_pending.emplace(entry.seq, i);
            return;
        }
        // The lines in between that are not records are the missing ones: already reported.
        if (missing > m_unreadable) {
            std::string what = missing == 1 ? "seq " + std::to_string(first_missing) + " is missing"
                                            : "seqs " + std::to_string(first_missing) + " to "
                                                  + std::to_string(entry.seq - 1) + " are missing";
            report(i, "deleted: " + what + ": "
                    + (m_at.index == none ? "the log starts at seq " + seq : here + " is followed by " + seq));
        }
        accept(i, entry.seq);
    }

    // Its seq is at or before the position.
    void backwards(size_t i)
    {
        Entry const& entry = at(i);
        std::string const seq = std::to_string(entry.seq);
        std::string const here = std::to_string(m_at.seq);
        if (auto found = m_deferred.find(entry.seq); found != m_deferred.end()) {
            report(i, "reordered: seq " + seq + " comes after seq " + here + "; it belongs before "
                    + line_of(found->second) + " (seq " + std::to_string(at(found->second).seq) + ")");
            m_deferred.erase(found);
            return;
        }
        if (auto found = m_accepted.find(entry.seq); found != m_accepted.end()) {
            report(i, "inserted: a second record with seq " + seq + " (the chain runs through "
                    + line_of(found->second) + ")");
            return;
        }
        if (plausible(i))
            report(i, "reordered: seq " + seq + " comes after seq " + here);
        else
            report(i, "inserted: seq " + seq + " does not belong here, and no record names its hash");
    }

    std::vector<Entry> const& m_entries;
    std::unordered_map<Digest, size_t, DigestHash> m_first_with_hash;
    std::unordered_set<Digest, DigestHash> m_named;
    std::vector<std::pair<uint64_t, size_t>> m_by_seq;
    std::unordered_map<uint64_t, size_t> m_accepted;  // seq -> entry, for the records in the chain
    std::map<uint64_t, size_t> m_pending;             // seq -> entry, reported as early, not yet placed
    std::unordered_map<uint64_t, size_t> m_deferred;  // seq expected later -> the entry it belongs before
    std::vector<Problem>* m_problems = nullptr;
    Position m_at;
    size_t m_unreadable = 0;
};

} // namespace

Verification verify(std::string_view contents, std::optional<std::pair<uint64_t, std::string>> expected_last)
{
    Verification result;
    std::vector<Entry> entries;
    size_t line_number = 0, unreadable = 0;
    size_t start = 0;
    while (start < contents.size()) {
        ++line_number;
        size_t end = contents.find('\n', start);
        if (end == std::string_view::npos) {
            result.problems.push_back({line_number, 0, "an incomplete last line (no newline: a write was cut short)"});
            break;
        }
        std::string_view line = contents.substr(start, end - start);
        start = end + 1;
        auto record = from_line(line);
        if (record.is_error()) {
            result.problems.push_back({line_number, 0, "not a record (" + record.error().message() + ")"});
            ++unreadable;
            continue;
        }
        Entry entry {.line = line_number, .seq = record.value().seq, .hash = to_digest(record.value().hash),
            .prev = to_digest(record.value().prev), .unreadable = std::exchange(unreadable, 0)};
        // The line is canonical: it ends in "hash":"<64 hex>"}, and without the 64 hex digits it is
        // exactly what the hash covers.
        entry.intact = blake2b(line.substr(0, line.size() - 2 * hash_bytes - 2), "\"}") == entry.hash;
        entries.push_back(entry);
    }
    result.records = entries.size();

    std::optional<Digest> head;
    if (expected_last && is_hash(expected_last->second))
        head = to_digest(expected_last->second);
    ChainWalk walk(entries, head);
    walk.run(result.problems);

    if (expected_last) {
        // The broker's own note of the last record it wrote: the only way to see records cut off the end.
        auto const& [seq, hash] = *expected_last;
        std::string const wrote = std::to_string(seq);
        size_t index = seq == 0 ? none : walk.index_of(seq);
        if (seq == 0)
            ; // the broker has written nothing yet: every record is past its head
        else if (walk.last_seq() < seq)
            result.problems.push_back({line_number, walk.last_seq(), "truncated: the log ends at seq "
                    + std::to_string(walk.last_seq()) + ", the broker wrote up to seq " + wrote});
        else if (index == none)
            result.problems.push_back({line_number, seq, "deleted: seq " + wrote
                    + ", the last record the broker wrote, is not in the chain"});
        else if (!head || entries[index].hash != *head)
            result.problems.push_back({entries[index].line, seq, "replaced: it is not the record the broker wrote "
                    "last (the broker's database names another hash for seq " + wrote + ")"});
        if (walk.last_seq() > seq) {
            size_t after = walk.index_of(seq + 1);
            result.problems.push_back({after == none ? line_number : entries[after].line, seq + 1,
                "appended: the log goes on past seq " + wrote + ", the last record the broker's database "
                "names (written by someone else, or the broker stopped between the two writes)"});
        }
    }
    std::stable_sort(result.problems.begin(), result.problems.end(),
        [](Problem const& a, Problem const& b) { return a.line < b.line; });
    return result;
}

} // namespace bulkhead::audit
