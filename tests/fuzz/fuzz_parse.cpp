// Fuzzes the value parsers of src/base/parse.hpp with invariants that must hold for any input.
#include "base/parse.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

using namespace bulkhead;

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string_view text(reinterpret_cast<char const*>(data), size);

    if (auto bytes = parse_size(text); bytes.has_value()) {
        // Whatever parsed formats back to a size that parses to the same number of bytes.
        auto again = parse_size(format_size(bytes.value()));
        if (!again.has_value() || again.value() != bytes.value())
            std::abort();
    }
    if (auto value = parse_uint(text); value.has_value()) {
        if (std::to_string(value.value()).size() > text.size())
            std::abort(); // more digits out than went in
    }
    if (auto millis = parse_cpus(text); millis.has_value()) {
        if (millis.value() < 10 || millis.value() > 4096 * 1000)
            std::abort(); // outside the documented range
    }
    size_t parts = 0;
    size_t length = 0;
    for (auto part : split(text, ','))
        ++parts, length += part.size();
    if (length + (parts > 0 ? parts - 1 : 0) != text.size() && !text.empty())
        std::abort(); // split must partition the input around its separators
    auto trimmed = trim(text);
    if (trimmed.size() > text.size())
        std::abort();
    return 0;
}
