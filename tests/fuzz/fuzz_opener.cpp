// Fuzzes the bulkhead.OpenInDisposable stream. The first byte picks view-only, a chunk size and,
// when its bit 6 is set, a small limit on the edited file (from edited_limit); the rest is decoded
// twice: as a request header (decode_request) and as the disposable's answer (ReplyParser), fed in
// chunks. Checks:
//  - a decoded request is within bounds (a valid name, a bounded command without NUL, a size
//    within the limit, `used` within the input) and re-encodes to exactly the bytes it used;
//  - the answer's events are well-formed: EditedBegin/EditedEnd pair up at most once (never when
//    view-only, never over the limit), the edited bytes add up to the announced length, output
//    slices are non-empty and lie inside the chunk fed, nothing follows End, and finish() succeeds
//    exactly when End was seen and no feed failed.
#include "agent/filecopy.hpp"
#include "agent/opener.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

using namespace bulkhead;
using namespace bulkhead::opener;

namespace {

void check(bool condition, char const* what)
{
    if (!condition) {
        std::fprintf(stderr, "fuzz_opener: %s\n", what);
        std::abort();
    }
}

void fuzz_request(std::span<uint8_t const> input)
{
    size_t used = 0;
    auto decoded = decode_request(input, used);
    if (decoded.is_error()) {
        check(used == 0, "a refused request reports bytes used");
        return;
    }
    auto const& request = decoded.value();
    check(used <= input.size(), "used beyond the input");
    check(filecopy::check_name(request.name).has_value(), "an invalid name decoded");
    check(request.command.size() <= max_command, "a command over the limit decoded");
    check(request.command.find('\0') == std::string::npos, "a command with NUL decoded");
    check(request.size <= max_file_bytes, "a size over the limit decoded");
    auto again = encode_request(request);
    check(again.size() == used && std::memcmp(again.data(), input.data(), used) == 0, "re-encoding differs from the input");
}

void fuzz_answer(std::span<uint8_t const> input, bool view_only, size_t chunk, uint64_t limit)
{
    ReplyParser parser(view_only, limit);
    bool failed = false, ended = false, editing = false;
    int edits = 0;
    uint64_t announced = 0, edited = 0;
    for (size_t at = 0; at < input.size() && !failed; at += chunk) {
        auto piece = input.subspan(at, std::min(chunk, input.size() - at));
        std::vector<Event> events;
        failed = parser.feed(piece, events).is_error();
        for (auto const& event : events) {
            check(!ended, "an event after End");
            if (!event.data.empty())
                check(event.data.data() >= piece.data() && event.data.data() + event.data.size() <= piece.data() + piece.size(),
                    "a slice outside the bytes fed");
            switch (event.kind) {
            case Event::Kind::Output:
                check(!event.data.empty() && event.data.size() <= max_output_frame, "an output slice out of bounds");
                check(!editing, "output inside an edited file");
                break;
            case Event::Kind::EditedBegin:
                check(!view_only, "an edit of a view-only file");
                check(!editing && ++edits == 1, "a second edited file");
                check(event.size <= max_file_bytes && event.size <= limit, "an edited file over the limit");
                editing = true, announced = event.size, edited = 0;
                break;
            case Event::Kind::EditedData:
                check(editing && !event.data.empty(), "edited bytes outside an edit");
                edited += event.data.size();
                check(edited <= announced, "more edited bytes than announced");
                break;
            case Event::Kind::EditedEnd:
                check(editing && edited == announced, "an edit ended at the wrong length");
                editing = false;
                break;
            case Event::Kind::End:
                check(!editing, "End inside an edited file");
                ended = true;
                break;
            }
        }
    }
    check(parser.finish().has_value() == (ended && !failed), "finish() disagrees with what was decoded");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    if (size == 0)
        return 0;
    bool view_only = (data[0] & 0x80) != 0;
    size_t chunk = (data[0] & 0x7f) + 1;
    uint64_t limit = (data[0] & 0x40) != 0 ? edited_limit(data[0] & 0x3f, (data[0] & 0x3fu) * 2) : max_file_bytes;
    std::span<uint8_t const> input(data + 1, size - 1);
    fuzz_request(input);
    fuzz_answer(input, view_only, chunk, limit);
    return 0;
}
