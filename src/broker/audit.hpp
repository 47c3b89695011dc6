// The audit log: every policy decision and every admin action, appended as one JSON line, never
// any content. Records are hash-chained: each carries the BLAKE2b-256 (libsodium
// crypto_generichash) of the previous record's line, and its own hash over its canonical form, so
// that `bulkhead audit verify` finds a record that was edited, deleted, inserted or reordered.
//
// File: STATE/audit.log, opened O_APPEND; each record is one write(2) of one line:
//   {"seq":N,"time":"2026-11-23T10:00:00.123Z","kind":"call","caller":"work","target":"vault",
//    "service":"my.GpgSign","arg":"work","verdict":"allow","rule":"/etc/bulkhead/policy.d/a.policy:3",
//    "detail":"","prev":"<64 hex>","hash":"<64 hex>"}
// The first record's prev is 64 zeros. The broker keeps the last (seq, hash) in its database too,
// so that cutting records off the end is found as well.
//
// Rotation: past Limits::file_bytes the file is renamed audit.log.FIRST (FIRST: the seq of its first
// record) and a new audit.log continues the chain (seq goes on, the first prev names the last record
// of the file before). Past Limits::keep_files rotated files, the oldest is removed, after a record
// saying which seqs went and the hash they ended with: `verify` tells that from a file deleted by
// someone else. docs/audit.md has the whole story.
#pragma once

#include "base/result.hpp"
#include "sys/fd.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace bulkhead::audit {

struct Record {
    uint64_t seq = 0;       // 1, 2, 3 ... (filled in by append)
    std::string time;       // UTC, RFC 3339 with milliseconds (filled in by append)
    std::string kind;       // "call", "ask", "admin"
    std::string caller;     // compartment name, "@host" for the administrator
    std::string target;
    std::string service;    // call: the service; admin: the action ("apply", "start", "approve" ...)
    std::string arg;
    std::string verdict;    // "allow", "deny", "ask", "approved", "denied", "timeout", "ok", "failed"
    std::string rule;       // FILE:LINE of the deciding rule, or "" / "no matching rule"
    std::string detail;     // short free text (a generation number, an error); never content
    std::string prev;       // hex hash of the previous record (filled in by append)
    std::string hash;       // hex hash of this record (filled in by append)
};

// The canonical line of a record (without the trailing newline), hash included.
std::string to_line(Record const& record);
// Strict: exactly the fields above, in that order, with the right types; anything else is an Error.
Result<Record> from_line(std::string_view line);
// The hash a record must carry: BLAKE2b-256 over its canonical line with "hash":"" (hex, 64 chars).
std::string compute_hash(Record const& record);
// Now, as a record's time is written (UTC, RFC 3339 with milliseconds).
std::string current_time();

// How large the log may grow, and how much of its filesystem it leaves to the state database.
struct Limits {
    static constexpr uint64_t default_file_bytes = uint64_t(16) << 20;
    static constexpr size_t default_keep_files = 32;
    static constexpr uint64_t max_reserve_bytes = uint64_t(64) << 20;
    uint64_t file_bytes = default_file_bytes; // audit.log is rotated once it is this large
    size_t keep_files = default_keep_files;   // rotated files kept; the oldest beyond are removed
    // Free space an append must leave on the log's filesystem (the state database's). Unset:
    // default_reserve() of the filesystem's size.
    std::optional<uint64_t> reserve_bytes;
};
// 64 MiB, or 1 % of a filesystem of `size` bytes if that is less.
uint64_t default_reserve(uint64_t size);

class Log {
public:
    // Opens (creating, 0600; never through a link) the log at `path` for appending, and reads the
    // last record (from the file's last 64 KiB only) to continue the chain; an empty or missing
    // file continues the chain of the newest rotated file (PATH.N) if there is one. A last line
    // without its newline (a write cut short) or that is not a record is an Error: the broker
    // refuses to append to a log it cannot continue. No file at all starts the chain at seq 1.
    static Result<Log> open(std::string const& path, Limits limits = {});
    // Fills in seq, time, prev and hash, bounds the other fields (names 128 bytes, arg and detail
    // 256, rule 1024, cut with "…"; bytes that are not UTF-8 become U+FFFD), then appends the line
    // (one write, then fdatasync). A failed write is taken back (the file is cut to its old size).
    // With `sync` false the line is written (it is in the file, and survives the broker) but not
    // yet flushed to the disk: sync() does that, once for any number of such records.
    // An Error, and nothing written, when the line would leave less than the reserve free.
    // Rotates first if the file has reached its size (a failed rotation is a notice, not an
    // Error: the record is still written, to the file as it is).
    Status append(Record& record, bool sync = true);
    Status sync();
    bool unsynced() const { return m_unsynced; }
    uint64_t last_seq() const { return m_last_seq; }
    std::string const& last_hash() const { return m_last_hash; }
    // What rotation did or failed to do since the last call, for the broker's own log.
    std::vector<std::string> take_notices() { return std::exchange(m_notices, {}); }

private:
    Status write_record(Record& record, bool sync);
    Status rotate();
    void prune();

    sys::UniqueFd m_dir;
    std::string m_name;
    Limits m_limits;
    sys::UniqueFd m_fd;
    uint64_t m_size = 0;      // bytes in the current file
    uint64_t m_first_seq = 0; // seq of the current file's first record (0: none yet)
    bool m_unsynced = false;
    uint64_t m_last_seq = 0;
    std::string m_last_hash;
    std::vector<std::string> m_notices;
};

// Every record of the log at `path` with seq > after (for `audit` and `audit --follow`), at most
// `limit`, read through the rotated files (PATH.N) and then PATH. Lines that do not parse are
// returned as errors by verify(), skipped here. Finds where to start by the files' names and a
// binary search in the file (seq increases through a log the broker wrote), so that a page costs
// the same at the end of a large log as at its start.
Result<std::vector<Record>> read(std::string const& path, uint64_t after, size_t limit);

struct Problem {
    std::string file;      // the file's name (verify_files), "" for verify() of one text
    size_t line = 0;       // 1-based line of the file
    uint64_t seq = 0;      // the record's seq (0 if it did not parse)
    std::string what;      // "KIND: explanation", KIND one of edited, replaced, deleted, inserted,
                           // reordered, truncated, appended, renamed; or "not a record (why)", "an
                           // incomplete last line (...)" (docs/audit.md lists them), e.g. "deleted:
                           // seq 4 is missing: 3 is followed by 5"
};
struct Verification {
    uint64_t records = 0;
    std::vector<std::string> files;  // verify_files: the files checked, oldest first
    std::vector<std::string> notes;  // verify_files: what is not a problem but worth knowing
                                     // ("seqs 1 to 900 were removed by the broker's rotation ...")
    std::vector<Problem> problems;   // empty: the chain is intact
};
// Checks the whole chain of one text. `expected_last`: (seq, hash) the broker recorded, if known.
// Problems come in the order of their lines; none means the chain is intact.
Verification verify(std::string_view contents, std::optional<std::pair<uint64_t, std::string>> expected_last);
// Checks the chain through every file of the log at `path` (PATH.N oldest first, then PATH), one
// file in memory at a time: across files as within one, and records missing before the oldest file
// are a problem unless a record of the broker's says it removed them.
Result<Verification> verify_files(std::string const& path, std::optional<std::pair<uint64_t, std::string>> expected_last);

} // namespace bulkhead::audit
