// The audit log: see audit.hpp. The canonical line is written by hand, so that its bytes (and so
// its hash) are fixed by this file alone; reading is strict: a line is a record only if writing
// the record it parses to gives the same bytes back.
#include "broker/audit.hpp"

#include "sys/syscalls.hpp"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

namespace bulkhead::audit {

namespace {

constexpr size_t hash_bytes = 32;
constexpr size_t max_name = 128;
constexpr size_t max_text = 256;
constexpr size_t tail_bytes = 64 * 1024;
std::string const zero_hash(2 * hash_bytes, '0');

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

// Cut at `limit` bytes on a character boundary, marked with "…".
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

std::string now_rfc3339()
{
    timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    tm utc {};
    ::gmtime_r(&now.tv_sec, &utc);
    char text[96];
    std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday,
        utc.tm_hour, utc.tm_min, utc.tm_sec, now.tv_nsec / 1000000);
    return text;
}

char const* const field_names[] = {"seq", "time", "kind", "caller", "target", "service", "arg", "verdict", "rule", "detail", "prev", "hash"};

} // namespace

std::string to_line(Record const& record)
{
    std::string out = "{\"seq\":" + std::to_string(record.seq);
    std::string const* strings[] = {&record.time, &record.kind, &record.caller, &record.target, &record.service, &record.arg,
        &record.verdict, &record.rule, &record.detail, &record.prev, &record.hash};
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
    if (::sodium_init() < 0)
        std::abort(); // no hash function: nothing may be recorded unchained
    Record unhashed = record;
    unhashed.hash.clear();
    std::string const line = to_line(unhashed);
    unsigned char digest[hash_bytes];
    crypto_generichash(digest, sizeof(digest), reinterpret_cast<unsigned char const*>(line.data()), line.size(), nullptr, 0);
    return hex(digest, sizeof(digest));
}

Result<Record> from_line(std::string_view line)
{
    auto json = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (json.is_discarded() || !json.is_object() || json.size() != std::size(field_names))
        return Error::from_message("not a record");
    Record record;
    auto const& seq = json["seq"];
    if (!seq.is_number_unsigned() || seq.get<uint64_t>() == 0)
        return Error::from_message("not a record: seq must be a positive integer");
    record.seq = seq.get<uint64_t>();
    std::string* strings[] = {&record.time, &record.kind, &record.caller, &record.target, &record.service, &record.arg,
        &record.verdict, &record.rule, &record.detail, &record.prev, &record.hash};
    for (size_t i = 0; i < std::size(strings); ++i) {
        auto found = json.find(field_names[i + 1]);
        if (found == json.end() || !found->is_string())
            return Error::from_message(std::string("not a record: no string '") + field_names[i + 1] + "'");
        *strings[i] = found->get<std::string>();
    }
    if (!is_hash(record.prev) || !is_hash(record.hash))
        return Error::from_message("not a record: malformed hash");
    if (to_line(record) != line)
        return Error::from_message("not a record: not in canonical form");
    return record;
}

Result<Log> Log::open(std::string const& path)
{
    if (::sodium_init() < 0)
        return Error::from_message("libsodium could not be initialised");
    Log log;
    log.m_fd = TRY(sys::open_path(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    log.m_last_hash = zero_hash;
    struct stat info {};
    if (::fstat(log.m_fd.get(), &info) < 0)
        return Error::from_syscall("fstat", path, errno);
    if (info.st_size == 0)
        return log;
    // Only the tail: the log grows forever.
    off_t start = info.st_size > static_cast<off_t>(tail_bytes) ? info.st_size - static_cast<off_t>(tail_bytes) : 0;
    std::string tail(static_cast<size_t>(info.st_size - start), '\0');
    if (::pread(log.m_fd.get(), tail.data(), tail.size(), start) != static_cast<ssize_t>(tail.size()))
        return Error::from_syscall("pread", path, errno);
    if (tail.back() != '\n')
        return Error::from_message(path + ": the last record is incomplete (a write was cut short); move the log aside or repair it");
    tail.pop_back();
    size_t begin = tail.rfind('\n');
    std::string_view last = begin == std::string::npos ? std::string_view(tail) : std::string_view(tail).substr(begin + 1);
    auto record = from_line(last);
    if (record.is_error())
        return Error::from_message(path + ": the last line is not a record (" + record.error().message() + ")");
    log.m_last_seq = record.value().seq;
    log.m_last_hash = record.value().hash;
    return log;
}

Status Log::append(Record& record)
{
    record.seq = m_last_seq + 1;
    record.time = now_rfc3339();
    record.kind = bounded(record.kind, max_name);
    record.caller = bounded(record.caller, max_name);
    record.target = bounded(record.target, max_name);
    record.service = bounded(record.service, max_name);
    record.verdict = bounded(record.verdict, max_name);
    record.arg = bounded(record.arg, max_text);
    record.rule = bounded(record.rule, max_text * 4);
    record.detail = bounded(record.detail, max_text);
    record.prev = m_last_hash;
    record.hash = compute_hash(record);
    std::string line = to_line(record) + "\n";
    std::string_view rest = line;
    while (!rest.empty()) {
        ssize_t written = ::write(m_fd.get(), rest.data(), rest.size());
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0)
            return Error::from_syscall("write", "audit log", written < 0 ? errno : EIO);
        rest.remove_prefix(static_cast<size_t>(written));
    }
    if (::fdatasync(m_fd.get()) < 0)
        return Error::from_syscall("fdatasync", "audit log", errno);
    m_last_seq = record.seq;
    m_last_hash = record.hash;
    return {};
}

Result<std::vector<Record>> read(std::string const& path, uint64_t after, size_t limit)
{
    auto contents = TRY(sys::read_file(path, size_t(1) << 34));
    std::vector<Record> records;
    size_t start = 0;
    while (start < contents.size() && records.size() < limit) {
        size_t end = contents.find('\n', start);
        if (end == std::string::npos)
            break;
        auto record = from_line(std::string_view(contents).substr(start, end - start));
        start = end + 1;
        if (record.has_value() && record.value().seq > after)
            records.push_back(record.release_value());
    }
    return records;
}

// Each record is judged by three facts: does its own hash match its content; does its seq follow
// the previous record's; does its prev name the previous record's hash. Then:
//   hash wrong                              -> edited
//   seq and link right                      -> fine
//   seq jumps forward, link broken          -> deleted (the records in between are missing)
//   seq repeats or goes backwards           -> reordered if it is a seq seen before that is out of
//                                              place, inserted if it duplicates one
//   seq follows but the link is broken      -> inserted or replaced before it (a forged record
//                                              with a correct hash of its own, or an edit whose
//                                              hash was recomputed: the chain breaks right there)
Verification verify(std::string_view contents, std::optional<std::pair<uint64_t, std::string>> expected_last)
{
    Verification result;
    uint64_t last_seq = 0;
    std::string last_hash = zero_hash;
    std::vector<uint64_t> seen;
    size_t line_number = 0;
    size_t start = 0;
    auto problem = [&](uint64_t seq, std::string what) { result.problems.push_back({line_number, seq, std::move(what)}); };
    while (start < contents.size()) {
        ++line_number;
        size_t end = contents.find('\n', start);
        bool complete = end != std::string_view::npos;
        std::string_view line = contents.substr(start, complete ? end - start : std::string_view::npos);
        start = complete ? end + 1 : contents.size();
        auto parsed = from_line(line);
        if (parsed.is_error()) {
            problem(0, complete ? "not a record (" + parsed.error().message() + ")" : "an incomplete last line");
            continue;
        }
        Record const& record = parsed.value();
        ++result.records;
        bool own_hash = compute_hash(record) == record.hash;
        bool follows = record.seq == last_seq + 1;
        bool linked = record.prev == last_hash;
        bool repeated = std::find(seen.begin(), seen.end(), record.seq) != seen.end();
        if (!own_hash)
            problem(record.seq, "edited: its hash does not match its content");
        else if (repeated)
            problem(record.seq, "inserted: a second record with seq " + std::to_string(record.seq));
        else if (record.seq <= last_seq)
            problem(record.seq, "reordered: seq " + std::to_string(record.seq) + " comes after " + std::to_string(last_seq));
        else if (!follows)
            problem(record.seq, "deleted: seq " + std::to_string(last_seq + 1)
                    + (record.seq - last_seq > 2 ? " to " + std::to_string(record.seq - 1) : std::string()) + " missing ("
                    + std::to_string(last_seq) + " is followed by " + std::to_string(record.seq) + ")");
        else if (!linked)
            problem(record.seq, "inserted or replaced: its prev does not name the hash of record " + std::to_string(last_seq));
        seen.push_back(record.seq);
        if (record.seq > last_seq || !own_hash) {
            last_seq = std::max(last_seq, record.seq);
            last_hash = record.hash;
        }
    }
    if (expected_last) {
        auto const& [seq, hash] = *expected_last;
        if (last_seq < seq)
            result.problems.push_back({line_number, last_seq, "truncated: the log ends at seq " + std::to_string(last_seq)
                + ", the broker wrote up to " + std::to_string(seq)});
        else if (last_seq == seq && last_hash != hash)
            result.problems.push_back({line_number, last_seq, "edited: the last record is not the one the broker wrote"});
    }
    return result;
}

} // namespace bulkhead::audit
