// Fuzzes every function of src/base/parse.hpp. Besides "no crash, no sanitizer report", each
// function is held to properties that follow from its contract and its implementation:
//   parse_uint    accepts exactly the digit strings whose value fits in uint64_t, and nothing else
//   parse_size    agrees with parse_uint on plain numbers, applies units exactly, and every size it
//                 returns survives format_size -> parse_size unchanged
//   format_size   uses the largest unit that divides the value exactly, for any uint64_t
//   parse_cpus    stays within 0.01..4096 CPUs and is exact on whole numbers
//   split, trim   partition / shrink the input without copying or losing a byte
#include "base/parse.hpp"

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>

using namespace bulkhead;

namespace {

void check(bool holds, char const* invariant)
{
    if (holds)
        return;
    std::fprintf(stderr, "fuzz_parse: invariant broken: %s\n", invariant);
    std::abort();
}

bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

bool all_digits(std::string_view text)
{
    if (text.empty())
        return false;
    for (char c : text) {
        if (!is_digit(c))
            return false;
    }
    return true;
}

std::string_view without_leading_zeros(std::string_view digits)
{
    while (digits.size() > 1 && digits.front() == '0')
        digits.remove_prefix(1);
    return digits;
}

// For a digit string: does its value exceed UINT64_MAX?
bool exceeds_uint64(std::string_view digits)
{
    std::string_view const max = "18446744073709551615";
    digits = without_leading_zeros(digits);
    return digits.size() > max.size() || (digits.size() == max.size() && digits > max);
}

void check_uint(std::string_view text)
{
    auto value = parse_uint(text);
    if (!value.has_value()) {
        check(!all_digits(text) || exceeds_uint64(text), "parse_uint refuses a digit string that fits");
        check(!value.error().message().empty(), "parse_uint fails without a message");
        return;
    }
    check(all_digits(text), "parse_uint accepts something that is not a digit string");
    check(std::to_string(value.value()) == without_leading_zeros(text), "parse_uint returns another number");
}

void check_size_round_trip(uint64_t bytes, char const* invariant)
{
    auto again = parse_size(format_size(bytes));
    check(again.has_value() && again.value() == bytes, invariant);
}

void check_size(std::string_view text)
{
    auto bytes = parse_size(text);
    if (bytes.has_value())
        check_size_round_trip(bytes.value(), "a parsed size does not survive format_size -> parse_size");
    else
        check(!bytes.error().message().empty(), "parse_size fails without a message");

    auto plain = parse_uint(text);
    if (!plain.has_value())
        return;
    // A plain number is a size in bytes, and every unit multiplies it exactly.
    check(bytes.has_value() && bytes.value() == plain.value(), "parse_size disagrees with parse_uint");
    std::string const number(text);
    auto with_b = parse_size(number + "B");
    check(with_b.has_value() && with_b.value() == plain.value(), "parse_size: NB is not N bytes");
    uint64_t const max = std::numeric_limits<uint64_t>::max();
    struct Unit {
        char const* suffix;
        int shift;
    };
    for (Unit unit : {Unit {"K", 10}, Unit {"k", 10}, Unit {"KiB", 10}, Unit {"M", 20}, Unit {"MB", 20}, Unit {"G", 30},
                      Unit {"gib", 30}, Unit {"T", 40}}) {
        auto scaled = parse_size(number + unit.suffix);
        if (plain.value() > (max >> unit.shift)) {
            check(!scaled.has_value(), "parse_size accepts a size that overflows");
            continue;
        }
        check(scaled.has_value() && scaled.value() == plain.value() << unit.shift, "parse_size applies a unit wrongly");
    }
}

void check_format_size(uint64_t bytes)
{
    std::string const text = format_size(bytes);
    check_size_round_trip(bytes, "format_size output does not parse back to the same size");
    check(!text.empty(), "format_size returns nothing");
    std::string_view number = text;
    int shift = 0;
    switch (text.back()) {
    case 'K': shift = 10; break;
    case 'M': shift = 20; break;
    case 'G': shift = 30; break;
    case 'T': shift = 40; break;
    default: break;
    }
    if (shift == 0) {
        check(bytes == 0 || bytes % 1024 != 0, "format_size spells out a size that has an exact unit");
        check(text == std::to_string(bytes), "format_size returns another number");
        return;
    }
    number.remove_suffix(1);
    auto count = parse_uint(number);
    check(count.has_value() && count.value() != 0, "format_size returns a malformed count");
    check((count.value() << shift) >> shift == count.value() && count.value() << shift == bytes,
          "format_size returns another size");
    check(shift == 40 || count.value() % 1024 != 0, "format_size does not use the largest exact unit");
}

void check_cpus(std::string_view text)
{
    auto millis = parse_cpus(text);
    if (millis.has_value()) {
        check(millis.value() >= 10 && millis.value() <= 4096 * 1000, "parse_cpus returns a value out of range");
        size_t dots = 0;
        for (char c : text) {
            check(is_digit(c) || c == '.', "parse_cpus accepts a character that is not a digit or '.'");
            dots += c == '.';
        }
        check(dots <= 1, "parse_cpus accepts more than one '.'");
    } else {
        check(!millis.error().message().empty(), "parse_cpus fails without a message");
    }
    auto whole = parse_uint(text);
    if (!whole.has_value())
        return;
    if (whole.value() >= 1 && whole.value() <= 4096)
        check(millis.has_value() && millis.value() == whole.value() * 1000, "parse_cpus is not exact on whole CPUs");
    else
        check(!millis.has_value(), "parse_cpus accepts a whole number of CPUs out of range");
}

void check_split(std::string_view text, char separator)
{
    auto parts = split(text, separator);
    size_t separators = 0;
    for (char c : text)
        separators += c == separator;
    check(parts.size() == separators + 1, "split returns a part count other than separators + 1");
    // The parts are views into the input, back to back, one separator apart.
    char const* expected = text.data();
    for (size_t i = 0; i < parts.size(); ++i) {
        auto part = parts[i];
        check(part.data() == expected, "split returns a part that is not where it belongs in the input");
        check(part.find(separator) == std::string_view::npos, "split returns a part holding the separator");
        if (i + 1 < parts.size())
            expected = part.data() + part.size() + 1;
    }
    check(parts.back().data() + parts.back().size() == text.data() + text.size(), "split loses the input's tail");
}

void check_trim(std::string_view text)
{
    auto is_space = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
    auto trimmed = trim(text);
    size_t const front = static_cast<size_t>(trimmed.data() - text.data());
    check(trimmed.empty() || (trimmed.data() >= text.data() && front + trimmed.size() <= text.size()),
          "trim returns a view outside its input");
    if (trimmed.empty()) {
        for (char c : text)
            check(is_space(c), "trim drops a non-space character");
        return;
    }
    check(!is_space(trimmed.front()) && !is_space(trimmed.back()), "trim leaves space at an end");
    for (size_t i = 0; i < front; ++i)
        check(is_space(text[i]), "trim drops a non-space character at the front");
    for (size_t i = front + trimmed.size(); i < text.size(); ++i)
        check(is_space(text[i]), "trim drops a non-space character at the back");
    check(trim(trimmed) == trimmed, "trim is not idempotent");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string_view const text(reinterpret_cast<char const*>(data), size);

    check_uint(text);
    check_size(text);
    check_cpus(text);
    check_trim(text);
    check_split(text, ',');
    check_split(text, ':');
    if (!text.empty())
        check_split(text.substr(1), text.front());

    // format_size is defined for every uint64_t, not only for the sizes that parse: read one from
    // the input's first bytes, and try it and its neighbours at unit boundaries.
    uint64_t raw = 0;
    if (size > 0)
        std::memcpy(&raw, data, size < sizeof raw ? size : sizeof raw);
    for (uint64_t bytes : {raw, raw << 10, raw << 20, raw << 30, raw << 40, raw - 1, raw + 1})
        check_format_size(bytes);
    return 0;
}
