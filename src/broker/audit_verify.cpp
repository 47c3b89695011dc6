// Verification of the audit log's chain through one file (see audit.hpp and docs/audit.md; across
// files: audit_files.cpp, which starts each file's walk where the one before ended).
//
// Every record is judged by three facts against the position the chain has reached (the last record
// accepted into it): does its own hash match its content; does its seq follow; does its prev name the
// hash of the record at the position. docs/audit.md has the table; the cases that need more than the
// record itself look at what comes later in the file (does the next record continue the chain
// without this one; do the missing seqs come later; does any record name this one's hash).
#include "broker/audit.hpp"
#include "broker/audit_internal.hpp"

#include <algorithm>
#include <limits>
#include <map>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace bulkhead::audit {

using detail::Anchor;
using detail::blake2b;
using detail::Digest;
using detail::hash_bytes;
using detail::is_hash;
using detail::to_digest;

namespace {

struct DigestHash {
    size_t operator()(Digest const& digest) const
    {
        size_t out = 0;
        for (size_t i = 0; i < sizeof(out); ++i)
            out = (out << 8) | digest[i];
        return out;
    }
};

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
    // `named`: hashes named from outside the file (the broker's head, the next file's first prev).
    ChainWalk(std::vector<Entry> const& entries, std::vector<Digest> const& named, Anchor const& start, std::string file)
        : m_entries(entries), m_file(std::move(file)), m_start(start)
    {
        m_at.seq = start.seq;
        m_at.hash = to_digest(start.hash);
        for (size_t i = 0; i < entries.size(); ++i) {
            if (entries[i].intact)
                m_first_with_hash.emplace(entries[i].hash, i);
            m_named.insert(entries[i].prev);
            m_by_seq.emplace_back(entries[i].seq, i);
        }
        m_named.insert(named.begin(), named.end());
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
    // Where the chain stands at the end: the record last accepted, or the start if none was.
    std::optional<Anchor> end() const
    {
        if (m_at.seq == no_seq)
            return std::nullopt;
        if (m_at.index == none)
            return m_start;
        return Anchor {m_at.seq, detail::hex(m_at.hash), m_file, at(m_at.index).line};
    }
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
    // The position's record is in an earlier file (the chain continues from it).
    bool carried() const { return m_at.index == none && m_start.line > 0; }
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

    void report(size_t i, std::string what) { m_problems->push_back({m_file, at(i).line, at(i).seq, std::move(what)}); }
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
            if (carried())
                m_problems->push_back({m_start.file, m_start.line, m_start.seq, "replaced: changed, and its hash recomputed: "
                    "the next record (" + (m_file.empty() ? std::string() : m_file + " ") + line_of(i) + ") names a different hash as its prev"});
            else if (m_at.index == none)
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
                    + (m_at.index == none && !carried() ? "the log starts at seq " + seq : here + " is followed by " + seq));
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
    std::string m_file;
    Anchor m_start;
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

namespace detail {

PartResult verify_part(std::string_view contents, std::string const& file, Anchor const& start,
    std::optional<std::string> const& named_by_next, std::optional<std::pair<uint64_t, std::string>> const& expected_last)
{
    PartResult result;
    std::vector<Entry> entries;
    size_t line_number = 0, unreadable = 0;
    size_t begin = 0;
    while (begin < contents.size()) {
        ++line_number;
        size_t end = contents.find('\n', begin);
        if (end == std::string_view::npos) {
            result.problems.push_back({file, line_number, 0, "an incomplete last line (no newline: a write was cut short)"});
            break;
        }
        std::string_view line = contents.substr(begin, end - begin);
        begin = end + 1;
        auto record = from_line(line);
        if (record.is_error()) {
            result.problems.push_back({file, line_number, 0, "not a record (" + record.error().message() + ")"});
            ++unreadable;
            continue;
        }
        Entry entry {.line = line_number, .seq = record.value().seq, .hash = to_digest(record.value().hash),
            .prev = to_digest(record.value().prev), .unreadable = std::exchange(unreadable, 0)};
        // The line is canonical: it ends in "hash":"<64 hex>"}, and without the 64 hex digits it is
        // exactly what the hash covers.
        entry.intact = blake2b(line.substr(0, line.size() - 2 * hash_bytes - 2), "\"}") == entry.hash;
        entries.push_back(entry);
        if (!result.first)
            result.first = record.value();
        // What the log says about itself (its rotation): only from records whose hash holds.
        Record const& said = record.value();
        if (entry.intact && said.kind == "admin" && said.caller == "@host" && said.service == "audit")
            result.notes.emplace_back(line_number, record.release_value());
    }
    result.records = entries.size();

    std::vector<Digest> named;
    std::optional<Digest> head;
    if (expected_last && is_hash(expected_last->second))
        named.push_back(*(head = to_digest(expected_last->second)));
    if (named_by_next && is_hash(*named_by_next))
        named.push_back(to_digest(*named_by_next));
    ChainWalk walk(entries, named, start, file);
    walk.run(result.problems);
    result.end = walk.end();

    if (expected_last) {
        // The broker's own note of the last record it wrote: the only way to see records cut off the end.
        auto const& [seq, hash] = *expected_last;
        std::string const wrote = std::to_string(seq);
        size_t index = seq == 0 ? none : walk.index_of(seq);
        // The head may be the record this file continues from (the file before ends with it).
        bool const at_start = seq != 0 && seq == start.seq && start.line > 0;
        if (seq == 0)
            ; // the broker has written nothing yet: every record is past its head
        else if (walk.last_seq() < seq)
            result.problems.push_back({file, line_number, walk.last_seq(), "truncated: the log ends at seq "
                    + std::to_string(walk.last_seq()) + ", the broker wrote up to seq " + wrote});
        else if (at_start && head && to_digest(start.hash) == *head)
            ;
        else if (at_start)
            result.problems.push_back({start.file, start.line, seq, "replaced: it is not the record the broker wrote "
                    "last (the broker's database names another hash for seq " + wrote + ")"});
        else if (index == none)
            result.problems.push_back({file, line_number, seq, "deleted: seq " + wrote
                    + ", the last record the broker wrote, is not in the chain"});
        else if (!head || entries[index].hash != *head)
            result.problems.push_back({file, entries[index].line, seq, "replaced: it is not the record the broker wrote "
                    "last (the broker's database names another hash for seq " + wrote + ")"});
        if (walk.last_seq() > seq) {
            size_t after = walk.index_of(seq + 1);
            result.problems.push_back({file, after == none ? line_number : entries[after].line, seq + 1,
                "appended: the log goes on past seq " + wrote + ", the last record the broker's database "
                "names (written by someone else, or the broker stopped between the two writes)"});
        }
    }
    std::stable_sort(result.problems.begin(), result.problems.end(), [&](Problem const& a, Problem const& b) {
        // A problem found at the record an earlier file ends with comes first.
        return std::pair(a.file == file, a.line) < std::pair(b.file == file, b.line);
    });
    return result;
}

} // namespace detail

Verification verify(std::string_view contents, std::optional<std::pair<uint64_t, std::string>> expected_last)
{
    auto part = detail::verify_part(contents, {}, Anchor {}, std::nullopt, expected_last);
    return Verification {.records = part.records, .files = {}, .notes = {}, .problems = std::move(part.problems)};
}

} // namespace bulkhead::audit
