// The file-copy stream of bulkhead.Filecopy (bulkhead-copy, bulkhead-move, `bulkhead copy`).
//
// The sender walks the files and directories it is given and writes one stream; the receiver runs
// inside the target compartment and writes what arrives under ~/Incoming/SOURCE/. The receiver
// assumes a hostile sender: every header is decoded strictly and bounded; names are relative, one
// component at a time, without `.`/`..`, `/`, NUL or control characters; only regular files and
// directories exist in the stream (no links, devices, FIFOs or sockets); nothing is ever followed
// or created outside Incoming/SOURCE/ (every open is beneath a directory fd, O_NOFOLLOW /
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS); nothing is overwritten (a name that exists gets a suffix);
// size and count limits hold; and a file that cannot be completed (a limit, a short stream, a full
// disk) is removed, never left half-written.
//
// Stream layout: see filecopy.cpp and docs/services.md.
#pragma once

#include "base/result.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace bulkhead::filecopy {

struct Limits {
    uint64_t max_file_bytes = 64ull << 30;   // one file
    uint64_t max_total_bytes = 256ull << 30; // the whole stream
    uint64_t max_entries = 100000;           // files + directories
    uint32_t max_depth = 64;                 // directory nesting
    uint32_t idle_seconds = 60;              // the receiver gives up on a sender silent this long (a socket)
};

// --- the stream's headers (pure; fuzzed) ---
enum class EntryType : uint8_t { File = 1, Directory = 2, End = 3, Up = 4 }; // Up closes a directory
struct Header {
    EntryType type = EntryType::End;
    std::string name;  // File/Directory: one path component (the parent is the last open directory)
    uint32_t mode = 0; // permission bits only (0777 mask); setuid/setgid/sticky are never kept
                       // (decode_header clears them, and refuses bits beyond 07777)
    uint64_t size = 0; // File: bytes of content that follow the header
    uint32_t depth = 0; // nesting level of the entry (0 = top level); see filecopy.cpp: not carried in the
                        // stream (Directory/Up mark nesting), so decode_header leaves it 0
};
std::vector<uint8_t> encode_header(Header const& header);
// Decodes one header from the front of `bytes`; `used` is set to its length. Needs more bytes:
// an Error whose code() is EAGAIN. Anything malformed or out of bounds: an Error naming it.
Result<Header> decode_header(std::span<uint8_t const> bytes, size_t& used, Limits const& limits);
// Whether `name` may be created by the receiver (one component, no control characters ...).
Status check_name(std::string_view name);

// --- the sender ---
struct SendReport {
    uint64_t files = 0;
    uint64_t directories = 0;
    uint64_t bytes = 0;
};
// Writes every path (files, and directories recursively, entries sorted by name) to `out`, then
// End. Each path is sent under its last component. Everything is checked before the first byte is
// written: symbolic links (never followed) and special files anywhere, names the receiver would
// refuse, and `limits` (the receiver's defaults unless told otherwise) are an Error, and then
// nothing has been written.
Result<SendReport> send(int out, std::vector<std::string> const& paths, Limits const& limits = {});
// send's checks alone (links, special files, names, limits), reading no content: what a copy can
// say before it asks anyone for anything.
Status check_sendable(std::vector<std::string> const& paths, Limits const& limits = {});

// --- the receiver ---
struct ReceiveReport {
    uint64_t files = 0;
    uint64_t directories = 0;
    uint64_t bytes = 0;
    std::vector<std::string> names; // top-level names as created (after any suffix)
};
// Reads one stream from `in` and writes it under HOME/Incoming/SOURCE/, where `home` is an open
// directory fd of the receiving user's home and `source` is the sending compartment's name (as
// the broker passed it in BULKHEAD_SOURCE; checked with check_name). Files received before an error
// are kept; the file being written when it happens is removed. When `in` is a socket, a sender
// that sends nothing for limits.idle_seconds is given up on (an error, as a broken stream).
Result<ReceiveReport> receive(int in, int home, std::string const& source, Limits const& limits);
// The same rules, with what arrives written straight into the open directory `dir` (the host side
// of `bulkhead copy NAME:PATH... HOSTDIR/`).
Result<ReceiveReport> receive_into(int in, int dir, Limits const& limits);

} // namespace bulkhead::filecopy
