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
#pragma once

#include "base/result.hpp"
#include "sys/fd.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
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

class Log {
public:
    // Opens (creating, 0600; never through a link) the log at `path` for appending, and reads the
    // last record (from the file's last 64 KiB only) to continue the chain. A last line without its
    // newline (a write cut short) or that is not a record is an Error: the broker refuses to append
    // to a log it cannot continue. An empty file starts the chain at seq 1.
    static Result<Log> open(std::string const& path);
    // Fills in seq, time, prev and hash, bounds the other fields (names 128 bytes, arg and detail
    // 256, rule 1024, cut with "…"; bytes that are not UTF-8 become U+FFFD), then appends the line
    // (one write, then fdatasync). A failed write is taken back (the file is cut to its old size).
    // With `sync` false the line is written (it is in the file, and survives the broker) but not
    // yet flushed to the disk: sync() does that, once for any number of such records.
    Status append(Record& record, bool sync = true);
    Status sync();
    bool unsynced() const { return m_unsynced; }
    uint64_t last_seq() const { return m_last_seq; }
    std::string const& last_hash() const { return m_last_hash; }

private:
    sys::UniqueFd m_fd;
    bool m_unsynced = false;
    uint64_t m_last_seq = 0;
    std::string m_last_hash;
};

// Every record of the log at `path` with seq > after (for `audit` and `audit --follow`), at most
// `limit`. Lines that do not parse are returned as errors by verify(), skipped here. Finds where to
// start by a binary search over the file (seq increases through a log the broker wrote), so that a
// page costs the same at the end of a large log as at its start.
Result<std::vector<Record>> read(std::string const& path, uint64_t after, size_t limit);

struct Problem {
    size_t line = 0;       // 1-based line of the file
    uint64_t seq = 0;      // the record's seq (0 if it did not parse)
    std::string what;      // "KIND: explanation", KIND one of edited, replaced, deleted, inserted,
                           // reordered, truncated, appended; or "not a record (why)", "an incomplete
                           // last line (...)" (docs/audit.md lists them), e.g. "deleted: seq 4 is
                           // missing: 3 is followed by 5"
};
struct Verification {
    uint64_t records = 0;
    std::vector<Problem> problems; // empty: the chain is intact
};
// Checks the whole chain. `expected_last`: (seq, hash) the broker recorded, if known. Problems come
// in the order of their lines; none means the chain is intact.
Verification verify(std::string_view contents, std::optional<std::pair<uint64_t, std::string>> expected_last);

} // namespace bulkhead::audit
