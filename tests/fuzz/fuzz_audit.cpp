// Fuzzes the audit log's reader and verifier with arbitrary bytes: no crash, no sanitizer report;
// a line that parses is in canonical form (writing it again gives the same bytes) and verify()
// counts it; a record the log would read as a removal says exactly what removed_detail() writes;
// a log made of the parsed records, chained with correct hashes, verifies clean, with and without
// the broker's head, and also when split into two files (the second walked from where the first
// ended); and that log changed in any way (a line deleted, moved, copied, a byte flipped, the end
// cut off) does not verify clean against the head.
#include "broker/audit.hpp"
#include "broker/audit_internal.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

using namespace bulkhead;
using namespace bulkhead::audit;

namespace {

[[noreturn]] void fail(char const* what)
{
    std::fprintf(stderr, "fuzz_audit: %s\n", what);
    std::abort();
}

std::string joined(std::vector<std::string> const& lines)
{
    std::string out;
    for (auto const& line : lines)
        out += line + "\n";
    return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string_view text(reinterpret_cast<char const*>(data), size);
    auto plain = verify(text, std::nullopt);
    (void)verify(text, std::make_pair(uint64_t(3), std::string(64, 'a')));
    (void)verify(text, std::make_pair(uint64_t(0), std::string("not a hash")));

    std::vector<std::string> chain;
    std::string prev(64, '0');
    size_t parsed = 0;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        if (end == std::string_view::npos)
            break; // an incomplete last line: never a record
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        auto record = from_line(line);
        if (record.is_error()) {
            if (record.error().message().empty())
                fail("an error without a message");
            continue;
        }
        ++parsed;
        if (to_line(record.value()) != line)
            fail("a parsed line is not canonical");
        if (auto removed = detail::parse_removed(record.value());
            removed && detail::removed_detail(removed->first, removed->last, removed->hash) != record.value().detail)
            fail("a removal record reads as other seqs or another hash than it says");
        Record chained = record.value();
        chained.seq = chain.size() + 1;
        chained.prev = prev;
        chained.hash = compute_hash(chained);
        prev = chained.hash;
        chain.push_back(to_line(chained));
    }
    if (plain.records != parsed)
        fail("verify() counts another number of records than parse");

    std::string const clean = joined(chain);
    auto head = std::make_pair(uint64_t(chain.size()), chain.empty() ? std::string(64, '0') : prev);
    auto checked = verify(clean, chain.empty() ? std::nullopt : std::optional(head));
    if (!checked.problems.empty() || checked.records != chain.size() || !verify(clean, std::nullopt).problems.empty())
        fail("a correctly chained log does not verify");
    // Any text walked as a later file of a rotated log, from an anchor it may or may not continue.
    (void)detail::verify_part(text, "audit.log", detail::Anchor {3, std::string(64, 'a'), "audit.log.1", 9},
        std::string(64, 'b'), std::make_pair(uint64_t(3), std::string(64, 'a')));
    if (chain.empty())
        return 0;

    // The clean log as two files: the second goes on from where the first ended.
    size_t const split = data[size / 3] % (chain.size() + 1);
    std::vector<std::string> const older(chain.begin(), chain.begin() + static_cast<long>(split));
    std::vector<std::string> const newer(chain.begin() + static_cast<long>(split), chain.end());
    std::optional<std::string> named;
    if (!newer.empty())
        named = from_line(newer.front()).value().prev;
    auto first_file = detail::verify_part(joined(older), "audit.log.1", {}, named, std::nullopt);
    if (!first_file.problems.empty() || !first_file.end)
        fail("the first file of a correctly chained log does not verify");
    auto second_file = detail::verify_part(joined(newer), "audit.log", *first_file.end, std::nullopt, head);
    if (!second_file.problems.empty() || first_file.records + second_file.records != chain.size())
        fail("a correctly chained log split into two files does not verify");

    // One change, chosen by the input's first and last bytes.
    size_t const pick = data[0], where = data[size - 1] % chain.size(), to = data[size / 2] % chain.size();
    std::vector<std::string> lines = chain;
    std::string changed;
    switch (pick % 5) {
    case 0:
        lines.erase(lines.begin() + static_cast<long>(where));
        changed = joined(lines);
        break;
    case 1:
        std::swap(lines[where], lines[to]);
        changed = joined(lines);
        break;
    case 2:
        lines.insert(lines.begin() + static_cast<long>(to), lines[where]);
        changed = joined(lines);
        break;
    case 3:
        changed = clean;
        changed[(size * 131 + pick) % changed.size()] ^= static_cast<char>(1 + (pick >> 3) % 255);
        break;
    default:
        changed = clean.substr(0, clean.size() - 1 - (pick >> 3) % chain.back().size());
        break;
    }
    if (changed != clean && verify(changed, head).problems.empty())
        fail("a changed log verifies clean against the broker's head");
    return 0;
}
