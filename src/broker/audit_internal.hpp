// Shared by the files of the audit library (audit.cpp: the record; audit_log.cpp: writing and
// rotation; audit_files.cpp: reading and verifying every file; audit_verify.cpp: the chain walk);
// not part of the library's interface.
#pragma once

#include "broker/audit.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace bulkhead::audit::detail {

constexpr size_t hash_bytes = 32;
// A record is at most ~14 KiB even when every byte of every field is escaped as \u00XX; a line longer
// than this is not a record. It is also how much of a file's end is read to continue it.
constexpr size_t max_line = 64 * 1024;

using Digest = std::array<unsigned char, hash_bytes>;

bool sodium_ready();
std::string const& zero_hash();
bool is_hash(std::string const& text);
// BLAKE2b-256 of `head` followed by `tail`: the canonical line with an empty hash, in two pieces.
Digest blake2b(std::string_view head, std::string_view tail);
std::string hex(Digest const& digest);
// Only for strings is_hash() accepted.
Digest to_digest(std::string const& text);

// Bounds the fields a caller chooses (audit.hpp, Log::append).
void bound_fields(Record& record);

Result<size_t> pread_all(int fd, char* buffer, size_t size, off_t offset);

// Complete lines of a file from an offset on, read in blocks: the log may be far larger than memory.
// A line longer than max_line comes back as one empty line (not a record either way).
class LineReader {
public:
    LineReader(int fd, off_t offset) : m_fd(fd), m_offset(offset) {}
    // The next complete line without its newline; nullopt at the end (an unfinished last line is
    // not returned: it is still being written, or was cut short).
    Result<std::optional<std::string_view>> next();

private:
    static constexpr size_t block = 64 * 1024;
    int m_fd;
    off_t m_offset;
    std::string m_buffer;
    size_t m_start = 0;
};

// Where to start reading for records with seq > after: a binary search over byte offsets, since the
// broker writes seq in increasing order. Returns the start of a line at or before the first such
// record (0 when in doubt, e.g. around lines that are not records).
Result<off_t> seek_after(int fd, off_t size, uint64_t after);

// The last record of an open file (nullopt if it is empty). An Error if its last line has no
// newline or is not a record: a file nobody can continue.
Result<std::optional<Record>> last_record(int fd, std::string const& name);
// The first line of an open file that is a record, within its first max_line bytes.
Result<std::optional<Record>> first_record(int fd);

// The files of a log called `name` in the directory `dirfd`: NAME.N (N, without leading zeros, the
// seq of its first record) in the order of N, then NAME itself (first_seq 0) if `with_current`.
struct LogFile {
    std::string name;
    uint64_t first_seq = 0;
};
Result<std::vector<LogFile>> list_files(int dirfd, std::string const& name, bool with_current);
std::string rotated_name(std::string const& name, uint64_t first_seq);

// Details of the records the log writes about itself (kind admin, caller @host, service audit).
constexpr char const* rotate_arg = "rotate";
constexpr char const* prune_arg = "prune";
std::string removed_detail(uint64_t first, uint64_t last, std::string const& hash);
struct Removed {
    uint64_t first = 0, last = 0;
    std::string hash;
};
std::optional<Removed> parse_removed(Record const& record);

// Where a part of the chain continues from.
struct Anchor {
    uint64_t seq = 0;
    std::string hash = zero_hash();
    std::string file; // the record at the anchor: its file and line (line 0: none, e.g. the start)
    size_t line = 0;
};
struct PartResult {
    uint64_t records = 0;
    std::vector<Problem> problems;
    std::optional<Anchor> end;             // nullopt: the chain's place is lost (a seq of 2^64-1)
    std::optional<Record> first;           // the first line that is a record
    std::vector<std::pair<size_t, Record>> notes; // intact records of the log about itself, by line
};
// Verifies one file's text (named `file` in problems) from `start`. `named_by_next`: the prev of the
// next file's first record (it names a record of this one). `expected_last`: the broker's head, for
// the last file only.
PartResult verify_part(std::string_view contents, std::string const& file, Anchor const& start,
    std::optional<std::string> const& named_by_next, std::optional<std::pair<uint64_t, std::string>> const& expected_last);

} // namespace bulkhead::audit::detail
