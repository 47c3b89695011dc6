// Shared by audit.cpp (writing, reading) and audit_verify.cpp (verification); not part of the
// library's interface.
#pragma once

#include <array>
#include <cstddef>
#include <string>
#include <string_view>

namespace bulkhead::audit::detail {

constexpr size_t hash_bytes = 32;

using Digest = std::array<unsigned char, hash_bytes>;

bool is_hash(std::string const& text);
// BLAKE2b-256 of `head` followed by `tail`: the canonical line with an empty hash, in two pieces.
Digest blake2b(std::string_view head, std::string_view tail);

} // namespace bulkhead::audit::detail
