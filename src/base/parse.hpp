// Parsing of the small textual values that configuration and command lines carry.
// Pure functions: no syscalls, every failure is a message that says what was expected.
#pragma once

#include "base/result.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bulkhead {

// "512", "64K", "1M", "1.5G", "2T" (binary units, optional trailing "iB"/"B") -> bytes.
Result<uint64_t> parse_size(std::string_view text);
// A decimal unsigned integer that fits in uint64_t, no sign, no spaces.
Result<uint64_t> parse_uint(std::string_view text);
// A positive decimal number of CPUs, e.g. "1", "0.5", "2.25" -> millicpus (1000 = one CPU).
Result<uint32_t> parse_cpus(std::string_view text);

std::vector<std::string_view> split(std::string_view text, char separator);
std::string_view trim(std::string_view text);

// Formats bytes with the largest exact binary unit: 1048576 -> "1M".
std::string format_size(uint64_t bytes);

} // namespace bulkhead
