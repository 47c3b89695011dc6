#include "base/parse.hpp"

#include <charconv>
#include <cmath>
#include <limits>

namespace bulkhead {

namespace {

Error parse_error(std::string_view what, std::string_view text)
{
    return Error::from_message("cannot parse '" + std::string(text) + "' as " + std::string(what));
}

} // namespace

Result<uint64_t> parse_uint(std::string_view text)
{
    if (text.empty())
        return parse_error("a number", text);
    uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc::result_out_of_range)
        return Error::from_message("number '" + std::string(text) + "' is too large");
    if (ec != std::errc() || end != text.data() + text.size())
        return parse_error("a number", text);
    return value;
}

Result<uint64_t> parse_size(std::string_view text)
{
    std::string_view const expected = "a size (a number with an optional unit K, M, G or T, e.g. 512M)";
    std::string_view rest = text;
    // Split the numeric part (digits and at most one '.') from the unit.
    size_t digits = 0;
    bool seen_dot = false;
    while (digits < rest.size() && (std::isdigit(static_cast<unsigned char>(rest[digits])) || (rest[digits] == '.' && !seen_dot))) {
        seen_dot |= rest[digits] == '.';
        ++digits;
    }
    std::string_view number = rest.substr(0, digits);
    std::string_view unit = rest.substr(digits);
    if (number.empty() || number == "." || number.front() == '.' || number.back() == '.')
        return parse_error(expected, text);

    uint64_t multiplier = 1;
    if (!unit.empty()) {
        switch (unit.front()) {
        case 'k': case 'K': multiplier = 1ULL << 10; break;
        case 'm': case 'M': multiplier = 1ULL << 20; break;
        case 'g': case 'G': multiplier = 1ULL << 30; break;
        case 't': case 'T': multiplier = 1ULL << 40; break;
        case 'b': case 'B': multiplier = 1; break;
        default: return parse_error(expected, text);
        }
        std::string_view suffix = unit.front() == 'b' || unit.front() == 'B' ? unit.substr(1) : unit.substr(1);
        if (unit.front() != 'b' && unit.front() != 'B' && !suffix.empty() && suffix != "B" && suffix != "iB" && suffix != "ib")
            return parse_error(expected, text);
        if ((unit.front() == 'b' || unit.front() == 'B') && !suffix.empty())
            return parse_error(expected, text);
    }

    if (!seen_dot) {
        uint64_t value = TRY(parse_uint(number));
        if (value > std::numeric_limits<uint64_t>::max() / multiplier)
            return Error::from_message("size '" + std::string(text) + "' is too large");
        return value * multiplier;
    }
    // Fractions: exact enough for "1.5G"; the result is rounded down to whole bytes.
    double value = 0;
    auto [end, ec] = std::from_chars(number.data(), number.data() + number.size(), value);
    if (ec != std::errc() || end != number.data() + number.size() || !std::isfinite(value))
        return parse_error(expected, text);
    double bytes = value * static_cast<double>(multiplier);
    if (bytes >= 18446744073709549568.0)
        return Error::from_message("size '" + std::string(text) + "' is too large");
    return static_cast<uint64_t>(bytes);
}

Result<uint32_t> parse_cpus(std::string_view text)
{
    std::string_view const expected = "a number of CPUs (e.g. 1, 0.5, 2.25)";
    if (text.empty() || text.front() == '.' || text.back() == '.')
        return parse_error(expected, text);
    for (char c : text) {
        if (!std::isdigit(static_cast<unsigned char>(c)) && c != '.')
            return parse_error(expected, text);
    }
    double value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(value))
        return parse_error(expected, text);
    if (value > 4096)
        return Error::from_message("cpus '" + std::string(text) + "' is more than 4096");
    auto millis = static_cast<uint32_t>(std::llround(value * 1000));
    if (millis < 10)
        return Error::from_message("cpus '" + std::string(text) + "' is less than 0.01");
    return millis;
}

std::vector<std::string_view> split(std::string_view text, char separator)
{
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (true) {
        size_t pos = text.find(separator, start);
        if (pos == std::string_view::npos) {
            parts.push_back(text.substr(start));
            return parts;
        }
        parts.push_back(text.substr(start, pos - start));
        start = pos + 1;
    }
}

std::string_view trim(std::string_view text)
{
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.front())))
        text.remove_prefix(1);
    while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
        text.remove_suffix(1);
    return text;
}

std::string format_size(uint64_t bytes)
{
    static constexpr char units[] = {'T', 'G', 'M', 'K'};
    for (int i = 0; i < 4; ++i) {
        uint64_t unit = 1ULL << (10 * (4 - i));
        if (bytes != 0 && bytes % unit == 0)
            return std::to_string(bytes / unit) + units[i];
    }
    return std::to_string(bytes);
}

} // namespace bulkhead
