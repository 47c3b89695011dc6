// Writing the audit log: appending records, the reserve of free space left to the state database,
// rotation with the chain going on into the next file, and removing the oldest files with a record
// that says so (see audit.hpp and docs/audit.md).
#include "broker/audit.hpp"
#include "broker/audit_internal.hpp"

#include "sys/syscalls.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace bulkhead::audit {

using namespace detail;

namespace {

std::string mebibytes(uint64_t bytes)
{
    char text[32];
    std::snprintf(text, sizeof(text), "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
    return text;
}

Record about_the_log(std::string const& file, char const* what, std::string detail)
{
    return Record {.kind = "admin", .caller = "@host", .target = file, .service = "audit", .arg = what, .verdict = "ok",
        .detail = std::move(detail)};
}

} // namespace

uint64_t default_reserve(uint64_t size)
{
    return std::min(Limits::max_reserve_bytes, size / 100);
}

Result<Log> Log::open(std::string const& path, Limits limits)
{
    if (!sodium_ready())
        return Error::from_message("libsodium could not be initialised");
    size_t slash = path.rfind('/');
    Log log;
    log.m_limits = limits;
    log.m_name = slash == std::string::npos ? path : path.substr(slash + 1);
    std::string const dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
    log.m_dir = TRY(sys::open_path(dir, O_RDONLY | O_DIRECTORY));
    log.m_fd = TRY(sys::open_beneath(log.m_dir.get(), log.m_name, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW, 0600));
    // The append-only descriptor cannot read: the end of the log is read through a second one, of
    // the same file (checked, in case the name was swapped in between).
    auto reader = TRY(sys::open_beneath(log.m_dir.get(), log.m_name, O_RDONLY | O_NOFOLLOW));
    struct stat info {}, read_info {};
    if (::fstat(log.m_fd.get(), &info) < 0 || ::fstat(reader.get(), &read_info) < 0)
        return Error::from_syscall("fstat", path, errno);
    if (!S_ISREG(info.st_mode))
        return Error::from_message(path + ": not a regular file");
    if (info.st_dev != read_info.st_dev || info.st_ino != read_info.st_ino)
        return Error::from_message(path + ": the file changed while it was opened");
    log.m_last_hash = zero_hash();
    log.m_size = static_cast<uint64_t>(read_info.st_size);
    auto last = TRY(last_record(reader.get(), path));
    if (last) {
        log.m_last_seq = last->seq;
        log.m_last_hash = last->hash;
        auto first = TRY(first_record(reader.get()));
        log.m_first_seq = first ? first->seq : last->seq;
        return log;
    }
    // Empty: a new log, or the broker stopped right after a rotation. The chain goes on from the
    // newest rotated file.
    auto files = TRY(list_files(log.m_dir.get(), log.m_name, false));
    if (files.empty())
        return log;
    auto newest = TRY(sys::open_beneath(log.m_dir.get(), files.back().name, O_RDONLY | O_NOFOLLOW));
    if (auto before = TRY(last_record(newest.get(), dir + "/" + files.back().name))) {
        log.m_last_seq = before->seq;
        log.m_last_hash = before->hash;
    }
    return log;
}

Status Log::append(Record& record, bool sync)
{
    if (m_size >= m_limits.file_bytes && m_first_seq != 0) {
        if (auto rotated = rotate(); rotated.is_error())
            m_notices.push_back("rotation failed (the records go on in " + m_name + "): " + rotated.error().message());
    }
    return write_record(record, sync);
}

Status Log::write_record(Record& record, bool sync)
{
    if (m_last_seq == std::numeric_limits<uint64_t>::max())
        return Error::from_message("audit log: seq cannot go past 2^64-1");
    record.seq = m_last_seq + 1;
    record.time = current_time();
    bound_fields(record);
    record.prev = m_last_hash;
    record.hash = compute_hash(record);
    std::string const line = to_line(record) + "\n";
    // The state database (on the same filesystem) must never find it full because of the log.
    struct statvfs fs {};
    if (::fstatvfs(m_fd.get(), &fs) < 0)
        return Error::from_syscall("fstatvfs", "audit log", errno);
    uint64_t const free = uint64_t(fs.f_bavail) * fs.f_frsize;
    uint64_t const reserve = m_limits.reserve_bytes.value_or(default_reserve(uint64_t(fs.f_blocks) * fs.f_frsize));
    if (free < reserve + line.size())
        return Error::from_message("audit log: its filesystem has " + mebibytes(free) + " free, and "
            + mebibytes(reserve) + " are kept for the state database (No space left on device)");
    struct stat before {};
    if (::fstat(m_fd.get(), &before) < 0)
        return Error::from_syscall("fstat", "audit log", errno);
    std::string_view rest = line;
    while (!rest.empty()) {
        ssize_t written = ::write(m_fd.get(), rest.data(), rest.size());
        if (written < 0 && errno == EINTR)
            continue;
        if (written <= 0) {
            int err = written < 0 ? errno : EIO;
            // Half a line would make the log impossible to continue: take it back.
            (void)::ftruncate(m_fd.get(), before.st_size);
            return Error::from_syscall("write", "audit log", err);
        }
        rest.remove_prefix(static_cast<size_t>(written));
    }
    // The line is in the file: the next record follows it even if it is not yet on the disk.
    m_last_seq = record.seq;
    m_last_hash = record.hash;
    m_size = static_cast<uint64_t>(before.st_size) + line.size();
    if (m_first_seq == 0)
        m_first_seq = record.seq;
    m_unsynced = true;
    return sync ? this->sync() : Status();
}

Status Log::sync()
{
    if (!m_unsynced)
        return {};
    if (::fdatasync(m_fd.get()) < 0)
        return Error::from_syscall("fdatasync", "audit log", errno);
    m_unsynced = false;
    return {};
}

// NAME becomes NAME.FIRST and a new, empty NAME takes its place, made beside it first so that at any
// moment either the old file or the new one is NAME (a broker stopped in between finds NAME missing
// or empty, and continues from NAME.FIRST: Log::open).
Status Log::rotate()
{
    TRY(sync());
    std::string const rotated = rotated_name(m_name, m_first_seq);
    std::string const fresh = m_name + ".new";
    if (::unlinkat(m_dir.get(), fresh.c_str(), 0) < 0 && errno != ENOENT)
        return Error::from_syscall("unlinkat", fresh, errno);
    auto next = TRY(sys::open_beneath(m_dir.get(), fresh, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW, 0600));
    if (::renameat2(m_dir.get(), m_name.c_str(), m_dir.get(), rotated.c_str(), RENAME_NOREPLACE) < 0) {
        int err = errno;
        (void)::unlinkat(m_dir.get(), fresh.c_str(), 0);
        return Error::from_syscall("renameat2", m_name + " -> " + rotated, err);
    }
    if (::renameat(m_dir.get(), fresh.c_str(), m_dir.get(), m_name.c_str()) < 0) {
        int err = errno;
        (void)::renameat2(m_dir.get(), rotated.c_str(), m_dir.get(), m_name.c_str(), RENAME_NOREPLACE);
        (void)::unlinkat(m_dir.get(), fresh.c_str(), 0);
        return Error::from_syscall("renameat", fresh + " -> " + m_name, err);
    }
    (void)::fsync(m_dir.get());
    uint64_t const first = m_first_seq, last = m_last_seq;
    m_fd = std::move(next);
    m_size = 0;
    m_first_seq = 0;
    m_notices.push_back(rotated + " holds seqs " + std::to_string(first) + " to " + std::to_string(last) + "; " + m_name
        + " goes on from seq " + std::to_string(last + 1));
    // The new file says where the chain came from (its prev already proves it).
    Record said = about_the_log(rotated, rotate_arg, "seqs " + std::to_string(first) + " to " + std::to_string(last));
    if (auto written = write_record(said, false); written.is_error())
        m_notices.push_back("recording the rotation: " + written.error().message());
    prune();
    return {};
}

// Removes the oldest rotated files beyond keep_files. Each removal is recorded first (which seqs,
// and the hash of the last one, so that `verify` can tell it from a file deleted by someone else),
// and on the disk before the file goes.
void Log::prune()
{
    auto files = list_files(m_dir.get(), m_name, false);
    if (files.is_error())
        return m_notices.push_back("listing the rotated files: " + files.error().message());
    auto& rotated = files.value();
    for (size_t i = 0; i + m_limits.keep_files < rotated.size(); ++i) {
        LogFile const& oldest = rotated[i];
        std::optional<Record> end;
        if (auto fd = sys::open_beneath(m_dir.get(), oldest.name, O_RDONLY | O_NOFOLLOW); fd.has_value()) {
            if (auto read = last_record(fd.value().get(), oldest.name); read.has_value())
                end = read.release_value();
        }
        if (!end) {
            // Without its last hash the removal could not be told from a deletion; and removing a
            // newer file instead would leave a gap: nothing is removed (said at every rotation).
            return m_notices.push_back(oldest.name + ": its last record could not be read: no rotated file is removed");
        }
        Record said = about_the_log(oldest.name, prune_arg, removed_detail(oldest.first_seq, end->seq, end->hash));
        if (auto written = write_record(said, false); written.is_error())
            return m_notices.push_back("recording the removal of " + oldest.name + ": " + written.error().message());
        if (auto synced = sync(); synced.is_error())
            return m_notices.push_back("recording the removal of " + oldest.name + ": " + synced.error().message());
        if (::unlinkat(m_dir.get(), oldest.name.c_str(), 0) < 0)
            return m_notices.push_back("removing " + oldest.name + ": " + std::string(std::strerror(errno)));
        m_notices.push_back("removed " + oldest.name + " (seqs " + std::to_string(oldest.first_seq) + " to "
            + std::to_string(end->seq) + "): more than " + std::to_string(m_limits.keep_files) + " rotated files");
    }
    (void)::fsync(m_dir.get());
}

} // namespace bulkhead::audit
