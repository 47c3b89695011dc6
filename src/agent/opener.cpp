// The bulkhead.OpenInDisposable stream: see opener.hpp for its layout.
#include "agent/opener.hpp"

#include "agent/filecopy.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unistd.h>

namespace bulkhead::opener {

namespace {

constexpr char magic[4] = {'B', 'H', 'O', 'D'};
constexpr uint8_t version = 1;
constexpr size_t fixed_size = 4 + 1 + 1 + 2 + 2 + 8;

void put(std::vector<uint8_t>& out, uint64_t value, int bytes)
{
    for (int i = 0; i < bytes; ++i)
        out.push_back(static_cast<uint8_t>(value >> (8 * i)));
}

uint64_t get(uint8_t const* in, int bytes)
{
    uint64_t value = 0;
    for (int i = bytes - 1; i >= 0; --i)
        value = (value << 8) | in[i];
    return value;
}

Error need_more()
{
    return Error::from_syscall("decode_request", EAGAIN);
}

} // namespace

std::vector<uint8_t> encode_request(Request const& request)
{
    std::vector<uint8_t> out(magic, magic + 4);
    out.push_back(version);
    out.push_back(request.view_only ? flag_view_only : 0);
    put(out, request.name.size(), 2);
    put(out, request.command.size(), 2);
    put(out, request.size, 8);
    out.insert(out.end(), request.name.begin(), request.name.end());
    out.insert(out.end(), request.command.begin(), request.command.end());
    return out;
}

Result<Request> decode_request(std::span<uint8_t const> bytes, size_t& used)
{
    used = 0;
    size_t known = std::min(bytes.size(), sizeof(magic));
    if (known != 0 && std::memcmp(bytes.data(), magic, known) != 0) // an empty span's data() may be null
        return Error::from_message("not a bulkhead.OpenInDisposable request");
    if (bytes.size() < fixed_size)
        return need_more();
    if (bytes[4] != version)
        return Error::from_message("request version " + std::to_string(bytes[4]) + " is not supported (1 is)");
    if ((bytes[5] & ~flag_view_only) != 0)
        return Error::from_message("unknown request flags");
    size_t name_size = get(&bytes[6], 2), command_size = get(&bytes[8], 2);
    Request request;
    request.view_only = (bytes[5] & flag_view_only) != 0;
    request.size = get(&bytes[10], 8);
    if (command_size > max_command)
        return Error::from_message("a command of " + std::to_string(command_size) + " bytes (at most " + std::to_string(max_command) + ")");
    if (request.size > max_file_bytes)
        return Error::from_message("a file of " + std::to_string(request.size) + " bytes (at most " + std::to_string(max_file_bytes) + ")");
    if (bytes.size() < fixed_size + name_size + command_size)
        return need_more();
    request.name.assign(reinterpret_cast<char const*>(&bytes[fixed_size]), name_size);
    request.command.assign(reinterpret_cast<char const*>(&bytes[fixed_size + name_size]), command_size);
    TRY(filecopy::check_name(request.name));
    if (request.command.find('\0') != std::string::npos)
        return Error::from_message("a command with a NUL byte");
    used = fixed_size + name_size + command_size;
    return request;
}

std::vector<uint8_t> encode_frame_header(FrameType type, uint64_t length)
{
    std::vector<uint8_t> out {static_cast<uint8_t>(type)};
    put(out, length, 8);
    return out;
}

Status ReplyParser::feed(std::span<uint8_t const> bytes, std::vector<Event>& events)
{
    auto failed = [this](std::string message) -> Status {
        m_failed = true;
        return Error::from_message("the disposable's answer: " + std::move(message));
    };
    if (m_failed)
        return Error::from_message("the disposable's answer was already malformed");
    while (!bytes.empty()) {
        if (m_ended)
            return failed("bytes after its end");
        if (!m_in_payload) {
            size_t take = std::min(bytes.size(), frame_header_size - m_header_fill);
            std::memcpy(m_header + m_header_fill, bytes.data(), take);
            m_header_fill += take;
            bytes = bytes.subspan(take);
            if (m_header_fill < frame_header_size)
                break;
            m_header_fill = 0;
            uint64_t length = get(m_header + 1, 8);
            switch (m_header[0]) {
            case static_cast<uint8_t>(FrameType::Output):
                if (length == 0 || length > max_output_frame)
                    return failed("an output frame of " + std::to_string(length) + " bytes");
                break;
            case static_cast<uint8_t>(FrameType::Edited):
                if (m_view_only)
                    return failed("an edited file, though the file was opened view-only");
                if (m_edited_seen)
                    return failed("a second edited file");
                if (length > m_max_edited)
                    return failed("an edited file of " + std::to_string(length) + " bytes, more than the "
                        + std::to_string(m_max_edited) + " accepted for this file");
                m_edited_seen = true;
                events.push_back({Event::Kind::EditedBegin, {}, length});
                break;
            case static_cast<uint8_t>(FrameType::End):
                if (length != 0)
                    return failed("an end frame with a length");
                m_ended = true;
                events.push_back({Event::Kind::End, {}, 0});
                continue;
            default:
                return failed("a frame of unknown type " + std::to_string(m_header[0]));
            }
            m_type = static_cast<FrameType>(m_header[0]);
            m_remaining = length;
            m_in_payload = true;
        }
        size_t take = static_cast<size_t>(std::min<uint64_t>(bytes.size(), m_remaining));
        if (take > 0) {
            events.push_back({m_type == FrameType::Output ? Event::Kind::Output : Event::Kind::EditedData, bytes.first(take), 0});
            bytes = bytes.subspan(take);
            m_remaining -= take;
        }
        if (m_remaining == 0) {
            m_in_payload = false;
            if (m_type == FrameType::Edited)
                events.push_back({Event::Kind::EditedEnd, {}, 0});
        }
    }
    return {};
}

Status ReplyParser::finish() const
{
    if (m_failed)
        return Error::from_message("the disposable's answer was malformed");
    if (!m_ended)
        return Error::from_message("the disposable's answer ended early");
    return {};
}

uint64_t edited_limit(uint64_t original, uint64_t cap)
{
    original = std::min(original, max_file_bytes);
    uint64_t relative = std::max(original * 4, original + edited_growth);
    return std::min({relative, std::max(cap, original), max_file_bytes});
}

Status SparseWriter::write(std::span<uint8_t const> bytes)
{
    static constexpr uint8_t zeros[4096] = {};
    while (!bytes.empty()) {
        // Runs of whole or partial blocks: a run of zero pieces is skipped, a run of others written.
        size_t run = 0;
        bool zero = true;
        while (run < bytes.size()) {
            size_t piece = std::min(bytes.size() - run, m_block - static_cast<size_t>((m_offset + run) % m_block));
            bool piece_zero = true;
            for (size_t at = 0; at < piece && piece_zero; at += sizeof(zeros))
                piece_zero = std::memcmp(bytes.data() + run + at, zeros, std::min(sizeof(zeros), piece - at)) == 0;
            if (run == 0)
                zero = piece_zero;
            else if (piece_zero != zero)
                break;
            run += piece;
        }
        if (!zero) {
            size_t written = 0;
            while (written < run) {
                ssize_t n = ::pwrite(m_fd, bytes.data() + written, run - written, static_cast<off_t>(m_offset + written));
                if (n < 0 && errno == EINTR)
                    continue;
                if (n <= 0)
                    return Error::from_syscall("write", n < 0 ? errno : EIO);
                written += static_cast<size_t>(n);
            }
        }
        m_offset += run;
        bytes = bytes.subspan(run);
    }
    return {};
}

Status SparseWriter::finish()
{
    if (::ftruncate(m_fd, static_cast<off_t>(m_offset)) < 0)
        return Error::from_syscall("ftruncate", errno);
    return {};
}

} // namespace bulkhead::opener
