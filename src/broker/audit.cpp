// The audit log's record: see audit.hpp and docs/audit.md. The canonical line is written by hand,
// so that its bytes (and so its hash) are fixed by this file alone; reading is strict: a line is a
// record only if writing the record it parses to gives the same bytes back. Writing and rotation are
// in audit_log.cpp, reading and verifying the files in audit_files.cpp, the chain walk in
// audit_verify.cpp.
#include "broker/audit.hpp"
#include "broker/audit_internal.hpp"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sodium.h>

#include <nlohmann/json.hpp>

namespace bulkhead::audit {

using detail::blake2b;
using detail::Digest;
using detail::hash_bytes;
using detail::is_hash;

namespace {

constexpr size_t max_name = 128;  // kind, caller, target, service, verdict
constexpr size_t max_text = 256;  // arg, detail: what a hostile caller chooses
constexpr size_t max_rule = 1024; // FILE:LINE of the broker's own policy files: a path, not a name

// Valid UTF-8 stays; every invalid byte becomes U+FFFD, so that to_line and from_line round-trip.
std::string clean_utf8(std::string_view text)
{
    std::string out;
    size_t i = 0;
    while (i < text.size()) {
        auto byte = static_cast<unsigned char>(text[i]);
        size_t length = byte < 0x80 ? 1 : (byte >> 5) == 0x6 ? 2 : (byte >> 4) == 0xe ? 3 : (byte >> 3) == 0x1e ? 4 : 0;
        bool valid = length > 0 && i + length <= text.size();
        for (size_t k = 1; valid && k < length; ++k)
            valid = (static_cast<unsigned char>(text[i + k]) >> 6) == 0x2;
        if (valid && length > 1) {
            // No overlong forms, surrogates or code points past U+10FFFF.
            uint32_t cp = byte & (0xff >> (length + 1));
            for (size_t k = 1; k < length; ++k)
                cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3f);
            uint32_t const min[] = {0, 0, 0x80, 0x800, 0x10000};
            valid = cp >= min[length] && cp <= 0x10ffff && (cp < 0xd800 || cp > 0xdfff);
        }
        if (!valid) {
            out += "\xef\xbf\xbd";
            ++i;
            continue;
        }
        out.append(text.substr(i, length));
        i += length;
    }
    return out;
}

// Cut at `limit` bytes on a character boundary, marked with "…" (which counts in the limit).
std::string bounded(std::string const& text, size_t limit)
{
    std::string clean = clean_utf8(text);
    if (clean.size() <= limit)
        return clean;
    size_t cut = limit - 3;
    while (cut > 0 && (static_cast<unsigned char>(clean[cut]) & 0xc0) == 0x80)
        --cut;
    return clean.substr(0, cut) + "\xe2\x80\xa6";
}

void quote(std::string& out, std::string const& text)
{
    out += '"';
    for (char c : text) {
        auto byte = static_cast<unsigned char>(c);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (byte < 0x20 || byte == 0x7f) {
            char escaped[8];
            std::snprintf(escaped, sizeof(escaped), "\\u%04x", byte);
            out += escaped;
        } else {
            out += c;
        }
    }
    out += '"';
}

char const* const field_names[] = {
    "seq", "time", "kind", "caller", "target", "service", "arg", "verdict", "rule", "detail", "prev", "hash"};

} // namespace

// Shared with the other files of the library (audit_internal.hpp).
namespace detail {

bool sodium_ready()
{
    static bool const ready = ::sodium_init() >= 0;
    return ready;
}

std::string const& zero_hash()
{
    static std::string const zeros(2 * hash_bytes, '0');
    return zeros;
}

bool is_hash(std::string const& text)
{
    return text.size() == 2 * hash_bytes && text.find_first_not_of("0123456789abcdef") == std::string::npos;
}

Digest blake2b(std::string_view head, std::string_view tail)
{
    if (!sodium_ready())
        std::abort(); // no hash function: nothing may be recorded or checked unchained
    crypto_generichash_state state;
    crypto_generichash_init(&state, nullptr, 0, hash_bytes);
    crypto_generichash_update(&state, reinterpret_cast<unsigned char const*>(head.data()), head.size());
    crypto_generichash_update(&state, reinterpret_cast<unsigned char const*>(tail.data()), tail.size());
    Digest out;
    crypto_generichash_final(&state, out.data(), out.size());
    return out;
}

std::string hex(Digest const& digest)
{
    static char const digits[] = "0123456789abcdef";
    std::string out;
    for (unsigned char byte : digest) {
        out += digits[byte >> 4];
        out += digits[byte & 0xf];
    }
    return out;
}

Digest to_digest(std::string const& text)
{
    Digest out {};
    auto nibble = [](char c) { return static_cast<unsigned char>(c <= '9' ? c - '0' : c - 'a' + 10); };
    for (size_t i = 0; i < hash_bytes; ++i)
        out[i] = static_cast<unsigned char>(nibble(text[2 * i]) << 4 | nibble(text[2 * i + 1]));
    return out;
}

void bound_fields(Record& record)
{
    for (auto* name : {&record.kind, &record.caller, &record.target, &record.service, &record.verdict})
        *name = bounded(*name, max_name);
    record.arg = bounded(record.arg, max_text);
    record.detail = bounded(record.detail, max_text);
    record.rule = bounded(record.rule, max_rule);
}

std::string removed_detail(uint64_t first, uint64_t last, std::string const& hash)
{
    return "seqs " + std::to_string(first) + " to " + std::to_string(last) + ", the last with hash " + hash;
}

// The inverse of removed_detail() on a record of the log about itself; nullopt for any other.
std::optional<Removed> parse_removed(Record const& record)
{
    if (record.kind != "admin" || record.caller != "@host" || record.service != "audit" || record.arg != prune_arg)
        return std::nullopt;
    unsigned long long first = 0, last = 0;
    char hash[2 * hash_bytes + 1] = {};
    int used = 0;
    if (std::sscanf(record.detail.c_str(), "seqs %llu to %llu, the last with hash %64[0-9a-f]%n", &first, &last, hash, &used) != 3
        || static_cast<size_t>(used) != record.detail.size() || first == 0 || last < first || !is_hash(hash))
        return std::nullopt;
    Removed removed {first, last, hash};
    if (removed_detail(first, last, removed.hash) != record.detail)
        return std::nullopt;
    return removed;
}

} // namespace detail

std::string current_time()
{
    timespec now {};
    ::clock_gettime(CLOCK_REALTIME, &now);
    tm utc {};
    ::gmtime_r(&now.tv_sec, &utc);
    char text[96];
    std::snprintf(text, sizeof(text), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", utc.tm_year + 1900, utc.tm_mon + 1,
        utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, now.tv_nsec / 1000000);
    return text;
}

std::string to_line(Record const& record)
{
    std::string out = "{\"seq\":" + std::to_string(record.seq);
    std::string const* strings[] = {&record.time, &record.kind, &record.caller, &record.target, &record.service,
        &record.arg, &record.verdict, &record.rule, &record.detail, &record.prev, &record.hash};
    for (size_t i = 0; i < std::size(strings); ++i) {
        out += ",\"";
        out += field_names[i + 1];
        out += "\":";
        quote(out, *strings[i]);
    }
    out += '}';
    return out;
}

std::string compute_hash(Record const& record)
{
    Record unhashed = record;
    unhashed.hash.clear();
    return detail::hex(blake2b(to_line(unhashed), {}));
}

Result<Record> from_line(std::string_view line)
{
    auto json = nlohmann::json::parse(line.begin(), line.end(), nullptr, false);
    if (json.is_discarded() || !json.is_object())
        return Error::from_message("not JSON");
    if (json.size() != std::size(field_names))
        return Error::from_message("not the fields of a record");
    Record record;
    auto seq = json.find("seq");
    if (seq == json.end() || !seq->is_number_unsigned() || seq->get<uint64_t>() == 0)
        return Error::from_message("seq is not a positive integer");
    record.seq = seq->get<uint64_t>();
    std::string* strings[] = {&record.time, &record.kind, &record.caller, &record.target, &record.service,
        &record.arg, &record.verdict, &record.rule, &record.detail, &record.prev, &record.hash};
    for (size_t i = 0; i < std::size(strings); ++i) {
        auto found = json.find(field_names[i + 1]);
        if (found == json.end() || !found->is_string())
            return Error::from_message(std::string("no string '") + field_names[i + 1] + "'");
        *strings[i] = found->get<std::string>();
    }
    if (!is_hash(record.prev) || !is_hash(record.hash))
        return Error::from_message("a hash is not 64 lowercase hex digits");
    // Key order, spacing, escapes, number forms: only the one canonical spelling is a record.
    if (to_line(record) != line)
        return Error::from_message("not in canonical form");
    return record;
}

} // namespace bulkhead::audit
