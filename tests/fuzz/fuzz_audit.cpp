// Fuzzes the audit log's reader and verifier with arbitrary logs: no crash, no sanitizer report;
// a line that parses is in canonical form (writing it again gives the same bytes); and a log
// made of parsed records, re-chained with correct hashes, verifies clean.
#include "broker/audit.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

using namespace bulkhead;
using namespace bulkhead::audit;

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string_view text(reinterpret_cast<char const*>(data), size);
    (void)verify(text, std::nullopt);
    (void)verify(text, std::make_pair(uint64_t(3), std::string(64, 'a')));
    std::string rechained;
    std::string prev(64, '0');
    uint64_t seq = 0;
    size_t start = 0;
    while (start < text.size()) {
        size_t end = text.find('\n', start);
        std::string_view line = text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
        start = end == std::string_view::npos ? text.size() : end + 1;
        auto record = from_line(line);
        if (record.is_error())
            continue;
        if (to_line(record.value()) != line) {
            std::fprintf(stderr, "fuzz_audit: a parsed line is not canonical\n");
            std::abort();
        }
        Record chained = record.value();
        chained.seq = ++seq;
        chained.prev = prev;
        chained.hash = compute_hash(chained);
        prev = chained.hash;
        rechained += to_line(chained) + "\n";
    }
    if (!verify(rechained, std::nullopt).problems.empty()) {
        std::fprintf(stderr, "fuzz_audit: a correctly chained log does not verify\n");
        std::abort();
    }
    return 0;
}
