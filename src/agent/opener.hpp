// The stream of bulkhead.OpenInDisposable (bulkhead-open-disposable FILE [CMD]).
//
// The caller sends one request header, then the file's bytes, and shuts the stream down for
// writing. The service in the new disposable writes the file into a directory of its own, runs CMD
// (or the viewer) on it and answers with frames: the command's output, at most one edited file
// (when the file changed and the caller did not ask for view-only), and End. The disposable is
// the side to distrust: the caller decodes every frame strictly and bounded, accepts an edited file
// only up to a bound set by the original's size (edited_limit), keeps it only when the answer is
// complete, and writes it nowhere but over the file it sent.
//
//   request  "BHOD" u8 version=1, u8 flags (1 = view only), u16 name bytes, u16 command bytes,
//            u64 file bytes (all little-endian), the name, the command; then the file's bytes
//   frame    u8 type, u64 length, then `length` bytes:
//              1 Output  (length 1..max_output_frame): bytes the command wrote to stdout
//              2 Edited  (length <= the caller's limit): the whole edited file; at most once
//              3 End     (length 0): the answer is complete; nothing may follow
#pragma once

#include "base/result.hpp"

#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace bulkhead::opener {

constexpr size_t max_command = 4096;             // bytes of CMD
constexpr uint64_t max_file_bytes = 64ull << 30; // the file, either way (as bulkhead.Filecopy's limit)
constexpr uint64_t max_output_frame = 1 << 16;
constexpr size_t frame_header_size = 9;
constexpr uint8_t flag_view_only = 1;

// How large an edited file may come back: 4 times the original, or the original and 64 MiB more,
// whichever is larger; and no more than `cap` (bulkhead-open-disposable --max-size, default
// default_max_edited) unless the original itself is larger, which an edit may then keep.
constexpr uint64_t default_max_edited = 4ull << 30;
constexpr uint64_t edited_growth = 64ull << 20;
uint64_t edited_limit(uint64_t original, uint64_t cap);

struct Request {
    std::string name;    // one path component (filecopy::check_name)
    std::string command; // a shell command line; empty: the viewer
    uint64_t size = 0;   // bytes of the file that follow the header
    bool view_only = false;
};

std::vector<uint8_t> encode_request(Request const& request);
// Decodes the request header from the front of `bytes`; `used` is set to its length. Needs more
// bytes: an Error whose code() is EAGAIN. Anything malformed or out of bounds: an Error naming it.
Result<Request> decode_request(std::span<uint8_t const> bytes, size_t& used);

enum class FrameType : uint8_t { Output = 1, Edited = 2, End = 3 };
std::vector<uint8_t> encode_frame_header(FrameType type, uint64_t length);

// What the caller makes of the answer, in order.
struct Event {
    enum class Kind { Output, EditedBegin, EditedData, EditedEnd, End } kind;
    std::span<uint8_t const> data; // Output, EditedData: a slice of the bytes fed
    uint64_t size = 0;             // EditedBegin: the edited file's length
};

// Decodes the service's answer incrementally, from bytes as they arrive.
class ReplyParser {
public:
    // `max_edited`: the largest edited file accepted (edited_limit); a larger one is malformed.
    explicit ReplyParser(bool view_only, uint64_t max_edited = max_file_bytes)
        : m_view_only(view_only), m_max_edited(std::min(max_edited, max_file_bytes))
    {
    }

    // Decodes `bytes` and appends what they carry to `events` (slices point into `bytes`). A
    // malformed answer is an Error, and the parser stays failed.
    Status feed(std::span<uint8_t const> bytes, std::vector<Event>& events);
    // The answer ended (end of stream): an Error unless it was complete (End, nothing cut short).
    Status finish() const;
    bool ended() const { return m_ended; }

private:
    bool m_view_only;
    uint64_t m_max_edited;
    uint8_t m_header[frame_header_size] = {};
    size_t m_header_fill = 0;
    FrameType m_type = FrameType::End;
    uint64_t m_remaining = 0;
    bool m_in_payload = false;
    bool m_edited_seen = false;
    bool m_ended = false;
    bool m_failed = false;
};

// Writes a new, empty file front to back from bytes as they arrive, leaving a hole wherever a
// whole block of zeros would go (a sparse file sent back stays sparse: what arrives as zeros costs
// no disk). Skipped zeros read back as zeros, because the file was empty and nothing is written
// behind the current position.
class SparseWriter {
public:
    explicit SparseWriter(int fd, size_t block = 4096) : m_fd(fd), m_block(block) {}

    Status write(std::span<uint8_t const> bytes);
    // Gives the file its full length (a hole at the end, too).
    Status finish();
    uint64_t length() const { return m_offset; }

private:
    int m_fd;
    size_t m_block;
    uint64_t m_offset = 0;
};

} // namespace bulkhead::opener
