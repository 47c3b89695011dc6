// The audit log across files: rotation with the chain going on, removal of the oldest files with a
// record that says so, reading and verifying through every file, the reserve of free space, and
// what verify_files() reports when files are tampered with, deleted, or renamed.
#include "broker/audit.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <dirent.h>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

using namespace bulkhead;
using namespace bulkhead::audit;

namespace {

using Head = std::optional<std::pair<uint64_t, std::string>>;

std::string slurp(std::string const& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream out;
    out << in.rdbuf();
    return out.str();
}

std::vector<std::string> lines_of(std::string const& path)
{
    std::ifstream in(path);
    std::vector<std::string> out;
    for (std::string line; std::getline(in, line);)
        out.push_back(line);
    return out;
}

void write_lines(std::string const& path, std::vector<std::string> const& lines)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    for (auto const& line : lines)
        out << line << "\n";
}

Record parsed(std::string const& line)
{
    auto record = from_line(line);
    EXPECT_TRUE(record.has_value()) << line;
    return record.has_value() ? record.value() : Record {};
}

class AuditFiles : public ::testing::Test {
protected:
    void SetUp() override
    {
        char dir[] = "/tmp/bulkhead-audit-files-XXXXXX";
        ASSERT_NE(::mkdtemp(dir), nullptr);
        m_dir = dir;
        m_path = m_dir + "/audit.log";
    }
    void TearDown() override { (void)std::system(("rm -rf " + m_dir).c_str()); }

    // Appends `count` call records (about 330 bytes each) through a log with these limits.
    void write(int count, Limits limits)
    {
        auto log = Log::open(m_path, limits);
        ASSERT_TRUE(log.has_value()) << log.error().message();
        for (int i = 0; i < count; ++i) {
            Record record {.kind = "call", .caller = "work", .target = "vault", .service = "my.Sign",
                .arg = std::to_string(log.value().last_seq() + 1), .verdict = "allow", .rule = "/etc/bulkhead/policy.d/a.policy:1"};
            ASSERT_TRUE(log.value().append(record).has_value());
            for (auto const& notice : log.value().take_notices())
                m_notices.push_back(notice);
        }
        m_head = std::pair(log.value().last_seq(), log.value().last_hash());
    }
    // The files of the log, in the directory's order sorted by name (audit.log, audit.log.N ...).
    std::vector<std::string> rotated() const
    {
        std::vector<std::pair<uint64_t, std::string>> found;
        DIR* dir = ::opendir(m_dir.c_str());
        while (dirent* entry = ::readdir(dir)) {
            std::string name = entry->d_name;
            if (name.starts_with("audit.log.") && name.find_first_not_of("0123456789", 10) == std::string::npos)
                found.emplace_back(std::stoull(name.substr(10)), name);
        }
        ::closedir(dir);
        std::sort(found.begin(), found.end());
        std::vector<std::string> out;
        for (auto const& [seq, name] : found)
            out.push_back(name);
        return out;
    }
    std::vector<std::string> problems() const
    {
        auto checked = verify_files(m_path, m_head);
        EXPECT_TRUE(checked.has_value());
        std::vector<std::string> out;
        for (auto const& problem : checked.value().problems)
            out.push_back(problem.file + " line " + std::to_string(problem.line) + " (seq " + std::to_string(problem.seq)
                + "): " + problem.what);
        return out;
    }
    std::string joined(std::vector<std::string> const& lines) const
    {
        std::string out;
        for (auto const& line : lines)
            out += line + "\n";
        return out;
    }

    static Limits small(size_t keep = 100) { return Limits {.file_bytes = 4096, .keep_files = keep, .reserve_bytes = 0}; }

    std::string m_dir;
    std::string m_path;
    Head m_head;
    std::vector<std::string> m_notices;
};

} // namespace

TEST_F(AuditFiles, RotatesPastItsSizeAndTheChainGoesOnInTheNextFile)
{
    write(100, small());
    auto files = rotated();
    ASSERT_GE(files.size(), 5U) << joined(m_notices);
    std::string previous_hash(64, '0');
    uint64_t next_seq = 1;
    for (auto const& name : files) {
        auto lines = lines_of(m_dir + "/" + name);
        ASSERT_FALSE(lines.empty());
        // Named by the seq of its first record; a little past the size, never far.
        Record first = parsed(lines.front());
        EXPECT_EQ(name, "audit.log." + std::to_string(first.seq));
        EXPECT_EQ(first.seq, next_seq);
        EXPECT_EQ(first.prev, previous_hash) << name;
        struct stat info {};
        ASSERT_EQ(::stat((m_dir + "/" + name).c_str(), &info), 0);
        EXPECT_GE(info.st_size, 4096);
        EXPECT_LT(info.st_size, 4096 + 1024);
        Record last = parsed(lines.back());
        previous_hash = last.hash;
        next_seq = last.seq + 1;
    }
    // The new file opens with a record of the rotation, chained to the last record of the file before.
    Record opening = parsed(lines_of(m_path).front());
    EXPECT_EQ(opening.seq, next_seq);
    EXPECT_EQ(opening.prev, previous_hash);
    EXPECT_EQ(opening.kind, "admin");
    EXPECT_EQ(opening.service, "audit");
    EXPECT_EQ(opening.arg, "rotate");
    EXPECT_EQ(opening.target, files.back());
    EXPECT_EQ(opening.detail, "seqs " + files.back().substr(10) + " to " + std::to_string(next_seq - 1));
    EXPECT_TRUE(problems().empty()) << joined(problems());
    auto checked = verify_files(m_path, m_head);
    EXPECT_EQ(checked.value().files.size(), files.size() + 1);
    EXPECT_EQ(checked.value().files.back(), "audit.log");
    EXPECT_EQ(checked.value().records, m_head->first);
    EXPECT_TRUE(std::any_of(m_notices.begin(), m_notices.end(), [](auto const& n) { return n.starts_with("audit.log.1 holds seqs 1 to "); }))
        << joined(m_notices);
}

TEST_F(AuditFiles, AReopenedLogGoesOnAcrossFiles)
{
    write(40, small());
    write(40, small());
    EXPECT_EQ(m_head->first, 80U + rotated().size()); // 80 records and one rotation record per file
    EXPECT_TRUE(problems().empty()) << joined(problems());
}

TEST_F(AuditFiles, AMissingOrEmptyCurrentFileGoesOnFromTheNewestRotatedOne)
{
    // A broker stopped between the two renames of a rotation: only audit.log.1 is there.
    write(5, Limits {});
    ASSERT_EQ(::rename(m_path.c_str(), (m_path + ".1").c_str()), 0);
    write(3, Limits {});
    auto current = lines_of(m_path);
    ASSERT_EQ(current.size(), 3U);
    EXPECT_EQ(parsed(current.front()).seq, 6U);
    EXPECT_EQ(parsed(current.front()).prev, parsed(lines_of(m_path + ".1").back()).hash);
    EXPECT_TRUE(problems().empty()) << joined(problems());
    // An empty current file (made, then nothing written): the same.
    ASSERT_EQ(::rename(m_path.c_str(), (m_path + ".6").c_str()), 0);
    write_lines(m_path, {});
    write(1, Limits {});
    EXPECT_EQ(parsed(lines_of(m_path).front()).seq, 9U);
    EXPECT_TRUE(problems().empty()) << joined(problems());
}

TEST_F(AuditFiles, RemovesTheOldestFilesBeyondTheBoundAndRecordsIt)
{
    write(200, small(3));
    auto files = rotated();
    ASSERT_EQ(files.size(), 3U) << joined(m_notices);
    EXPECT_NE(files.front(), "audit.log.1");
    // Every removal is a record: which file, which seqs, the hash the removed records ended with.
    std::vector<Record> removals;
    for (auto const& name : files) {
        for (auto const& line : lines_of(m_dir + "/" + name)) {
            Record record = parsed(line);
            if (record.arg == "prune")
                removals.push_back(record);
        }
    }
    for (auto const& line : lines_of(m_path)) {
        if (parsed(line).arg == "prune")
            removals.push_back(parsed(line));
    }
    ASSERT_FALSE(removals.empty());
    uint64_t const first_kept = parsed(lines_of(m_dir + "/" + files.front()).front()).seq;
    Record const& last_removal = removals.back();
    EXPECT_EQ(last_removal.kind, "admin");
    EXPECT_EQ(last_removal.service, "audit");
    EXPECT_TRUE(last_removal.detail.find(" to " + std::to_string(first_kept - 1) + ", the last with hash "
                    + parsed(lines_of(m_dir + "/" + files.front()).front()).prev)
        != std::string::npos)
        << last_removal.detail;
    // Rotated away by policy is not a problem; verify says what went.
    auto checked = verify_files(m_path, m_head);
    EXPECT_TRUE(checked.value().problems.empty()) << joined(problems());
    ASSERT_EQ(checked.value().notes.size(), 1U);
    EXPECT_TRUE(checked.value().notes[0].find("to " + std::to_string(first_kept - 1) + " were removed by the broker's rotation")
        != std::string::npos)
        << checked.value().notes[0];
    EXPECT_TRUE(std::any_of(m_notices.begin(), m_notices.end(), [](auto const& n) { return n.starts_with("removed audit.log.1 (seqs 1 to "); }))
        << joined(m_notices);
}

TEST_F(AuditFiles, KeepingNoRotatedFileStillVerifies)
{
    write(60, small(0));
    EXPECT_TRUE(rotated().empty());
    EXPECT_TRUE(problems().empty()) << joined(problems());
}

TEST_F(AuditFiles, AnOldFileDeletedOutsideTheBrokerIsReported)
{
    write(200, small(3));
    auto files = rotated();
    ASSERT_EQ(::unlink((m_dir + "/" + files.front()).c_str()), 0);
    auto found = problems();
    ASSERT_EQ(found.size(), 1U) << joined(found);
    uint64_t const first_seq = std::stoull(files[1].substr(10));
    EXPECT_TRUE(found[0].starts_with(files[1] + " line 1 (seq " + std::to_string(first_seq) + "): deleted: seqs "
        + files[0].substr(10) + " to " + std::to_string(first_seq - 1) + " are missing"))
        << found[0];
    EXPECT_TRUE(found[0].find("(from " + files[0] + " on) were removed outside the broker") != std::string::npos) << found[0];
}

TEST_F(AuditFiles, TheFirstFileDeletedWithoutAnyRotationRecordIsReported)
{
    write(60, small());
    ASSERT_EQ(::unlink((m_path + ".1").c_str()), 0);
    auto found = problems();
    ASSERT_EQ(found.size(), 1U) << joined(found);
    EXPECT_TRUE(found[0].find("deleted: seqs 1 to ") != std::string::npos && found[0].find("no record says the broker removed them") != std::string::npos)
        << found[0];
}

TEST_F(AuditFiles, AMiddleFileDeletedIsReportedWhereTheGapIs)
{
    write(100, small());
    auto files = rotated();
    ASSERT_GE(files.size(), 4U);
    ASSERT_EQ(::unlink((m_dir + "/" + files[2]).c_str()), 0);
    auto found = problems();
    ASSERT_EQ(found.size(), 1U) << joined(found);
    EXPECT_TRUE(found[0].starts_with(files[3] + " line 1 (seq " + files[3].substr(10) + "): deleted: seqs " + files[2].substr(10)))
        << found[0];
    EXPECT_TRUE(found[0].find("between " + files[1] + " and " + files[3]) != std::string::npos) << found[0];
}

TEST_F(AuditFiles, TamperingInARotatedFileIsNamedByFileAndLine)
{
    write(100, small());
    auto files = rotated();
    std::string const old = m_dir + "/" + files[1];
    auto lines = lines_of(old);
    lines[2].replace(lines[2].find("\"verdict\":\"allow\""), 17, "\"verdict\":\"deny\"");
    write_lines(old, lines);
    auto found = problems();
    ASSERT_EQ(found.size(), 1U) << joined(found);
    EXPECT_TRUE(found[0].starts_with(files[1] + " line 3 (seq ")) << found[0];
    EXPECT_TRUE(found[0].find("edited: its hash does not match its content") != std::string::npos) << found[0];
}

TEST_F(AuditFiles, TheLastRecordOfARotatedFileReplacedIsFoundThroughTheNextFile)
{
    write(100, small());
    auto files = rotated();
    std::string const old = m_dir + "/" + files[1];
    auto lines = lines_of(old);
    Record forged = parsed(lines.back());
    forged.verdict = "deny";
    forged.hash = compute_hash(forged);
    lines.back() = to_line(forged);
    write_lines(old, lines);
    auto found = problems();
    ASSERT_EQ(found.size(), 1U) << joined(found);
    EXPECT_TRUE(found[0].starts_with(files[1] + " line " + std::to_string(lines.size()) + " ")) << found[0];
    EXPECT_TRUE(found[0].find("replaced: changed, and its hash recomputed: the next record (" + files[2] + " line 1)")
        != std::string::npos)
        << found[0];
}

TEST_F(AuditFiles, ARenamedFileIsReported)
{
    write(100, small());
    auto files = rotated();
    ASSERT_EQ(::rename((m_dir + "/" + files[1]).c_str(), (m_dir + "/audit.log.99999").c_str()), 0);
    auto found = problems();
    ASSERT_FALSE(found.empty());
    EXPECT_TRUE(std::any_of(found.begin(), found.end(), [](auto const& p) {
        return p.starts_with("audit.log.99999 line 1 ") && p.find("renamed: its first record has seq") != std::string::npos;
    })) << joined(found);
}

TEST_F(AuditFiles, TheHeadMayBeTheLastRecordOfTheFileBefore)
{
    // Rotated, and stopped before anything went into the new file.
    write(10, Limits {});
    ASSERT_EQ(::rename(m_path.c_str(), (m_path + ".1").c_str()), 0);
    write_lines(m_path, {});
    EXPECT_TRUE(problems().empty()) << joined(problems());
    // A head the log does not reach is still found.
    m_head->first += 1;
    auto found = problems();
    ASSERT_EQ(found.size(), 1U) << joined(found);
    EXPECT_TRUE(found[0].find("truncated: the log ends at seq 10, the broker wrote up to seq 11") != std::string::npos) << found[0];
}

TEST_F(AuditFiles, ReadsPagesThroughEveryFile)
{
    write(150, small(3));
    uint64_t const first_kept = std::stoull(rotated().front().substr(10));
    auto all = read(m_path, 0, 100000);
    ASSERT_TRUE(all.has_value());
    ASSERT_EQ(all.value().front().seq, first_kept);
    ASSERT_EQ(all.value().back().seq, m_head->first);
    for (size_t i = 1; i < all.value().size(); ++i)
        ASSERT_EQ(all.value()[i].seq, all.value()[i - 1].seq + 1);
    // Pages of 7 from wherever, across the boundaries of the files.
    std::vector<uint64_t> seen;
    for (uint64_t after = 0;;) {
        auto page = read(m_path, after, 7);
        ASSERT_TRUE(page.has_value());
        if (page.value().empty())
            break;
        EXPECT_LE(page.value().size(), 7U);
        for (auto const& record : page.value())
            seen.push_back(record.seq);
        after = page.value().back().seq;
    }
    ASSERT_EQ(seen.size(), all.value().size());
    EXPECT_EQ(seen.front(), first_kept);
    EXPECT_EQ(seen.back(), m_head->first);
    // A page that starts inside a rotated file.
    auto files = rotated();
    uint64_t const inside = std::stoull(files[1].substr(10)) + 2;
    auto page = read(m_path, inside, 3);
    ASSERT_EQ(page.value().size(), 3U);
    EXPECT_EQ(page.value()[0].seq, inside + 1);
}

TEST_F(AuditFiles, NeverWritesIntoTheReserveOfTheStateDatabase)
{
    write(3, Limits {});
    std::string const before = slurp(m_path);
    auto log = Log::open(m_path, Limits {.reserve_bytes = uint64_t(1) << 62});
    ASSERT_TRUE(log.has_value());
    Record record {.kind = "call", .caller = "work", .verdict = "allow"};
    auto appended = log.value().append(record);
    ASSERT_TRUE(appended.is_error());
    EXPECT_TRUE(appended.error().message().find("are kept for the state database") != std::string::npos)
        << appended.error().message();
    EXPECT_EQ(slurp(m_path), before);
    EXPECT_EQ(log.value().last_seq(), 3U);
    // With the space back, the chain goes on where it was.
    auto again = Log::open(m_path, Limits {});
    ASSERT_TRUE(again.value().append(record).has_value());
    EXPECT_EQ(record.seq, 4U);
    EXPECT_EQ(default_reserve(uint64_t(1) << 40), uint64_t(64) << 20);
    EXPECT_EQ(default_reserve(uint64_t(1000) << 20), uint64_t(10) << 20);
}

TEST_F(AuditFiles, ARotationThatCannotRenameKeepsWritingToTheCurrentFile)
{
    write(5, small());
    // The name the next rotation wants is taken: nothing is overwritten.
    write_lines(m_path + ".1", {"someone else's file"});
    auto log = Log::open(m_path, Limits {.file_bytes = 1024, .keep_files = 100, .reserve_bytes = 0});
    Record record {.kind = "call", .caller = "work", .verdict = "allow"};
    ASSERT_TRUE(log.value().append(record).has_value());
    EXPECT_EQ(lines_of(m_path + ".1"), std::vector<std::string> {"someone else's file"});
    EXPECT_EQ(lines_of(m_path).size(), 6U);
    auto notices = log.value().take_notices();
    ASSERT_EQ(notices.size(), 1U);
    EXPECT_TRUE(notices[0].starts_with("rotation failed (the records go on in audit.log)")) << notices[0];
}
