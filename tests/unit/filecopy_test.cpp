// The file-copy receiver against hostile streams, and send -> receive round trips.
#include "agent/filecopy.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <fcntl.h>
#include <fstream>
#include <sched.h>
#include <sstream>
#include <string>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

using namespace bulkhead;
using namespace bulkhead::filecopy;

namespace {

std::vector<uint8_t> const magic = {'B', 'H', 'F', 'C', 1};

// A receiver that refuses a stream stops reading: its writer gets EPIPE, not a fatal SIGPIPE.
[[maybe_unused]] auto const ignore_sigpipe = ::signal(SIGPIPE, SIG_IGN);

// Builds a stream by hand, so that a hostile one can be made.
class Stream {
public:
    Stream() { m_bytes = magic; }
    Stream& file(std::string const& name, std::string const& content, uint32_t mode = 0644)
    {
        append(encode_header({EntryType::File, name, mode, content.size(), 0}));
        m_bytes.insert(m_bytes.end(), content.begin(), content.end());
        return *this;
    }
    Stream& file_header(std::string const& name, uint64_t size) { return append(encode_header({EntryType::File, name, 0644, size, 0})); }
    Stream& dir(std::string const& name) { return append(encode_header({EntryType::Directory, name, 0755, 0, 0})); }
    Stream& up() { return raw({4}); }
    Stream& end() { return raw({3}); }
    Stream& raw(std::vector<uint8_t> const& bytes)
    {
        m_bytes.insert(m_bytes.end(), bytes.begin(), bytes.end());
        return *this;
    }
    Stream& raw_name(uint8_t type, std::string const& name)
    {
        std::vector<uint8_t> bytes = {type, 0xa4, 0x01, 0, 0};
        if (type == 1)
            bytes.insert(bytes.end(), 8, 0);
        bytes.push_back(static_cast<uint8_t>(name.size()));
        bytes.push_back(0);
        bytes.insert(bytes.end(), name.begin(), name.end());
        return raw(bytes);
    }
    std::vector<uint8_t> const& bytes() const { return m_bytes; }

private:
    Stream& append(std::vector<uint8_t> const& bytes) { return raw(bytes); }
    std::vector<uint8_t> m_bytes;
};

class Receiver : public ::testing::Test {
protected:
    void SetUp() override
    {
        char dir[] = "/tmp/bulkhead-filecopy-test-XXXXXX";
        ASSERT_NE(::mkdtemp(dir), nullptr);
        m_root = dir;
        m_home = m_root + "/home";
        ASSERT_EQ(::mkdir(m_home.c_str(), 0700), 0);
        m_outside = m_root + "/outside";
        ASSERT_EQ(::mkdir(m_outside.c_str(), 0700), 0);
    }
    void TearDown() override { (void)std::system(("rm -rf '" + m_root + "'").c_str()); }

    // Feeds `bytes` through a pipe from a thread and receives them under HOME.
    Result<ReceiveReport> receive_bytes(std::vector<uint8_t> const& bytes, Limits limits = {}, std::string const& source = "work")
    {
        int pipe_fds[2];
        EXPECT_EQ(::pipe(pipe_fds), 0);
        std::thread writer([&] {
            size_t done = 0;
            while (done < bytes.size()) {
                ssize_t n = ::write(pipe_fds[1], bytes.data() + done, bytes.size() - done);
                if (n <= 0)
                    break;
                done += static_cast<size_t>(n);
            }
            ::close(pipe_fds[1]);
        });
        int home = ::open(m_home.c_str(), O_RDONLY | O_DIRECTORY);
        auto result = receive(pipe_fds[0], home, source, limits);
        ::close(home);
        ::close(pipe_fds[0]); // a writer blocked on a full pipe gets EPIPE
        writer.join();
        return result;
    }
    std::string incoming(std::string const& name) const { return m_home + "/Incoming/work/" + name; }
    static std::string read(std::string const& path)
    {
        std::ifstream in(path);
        std::stringstream text;
        text << in.rdbuf();
        return text.str();
    }
    static bool exists(std::string const& path)
    {
        struct stat info {};
        return ::lstat(path.c_str(), &info) == 0;
    }
    // Nothing under Incoming/work but regular files and directories; nothing new outside HOME.
    void expect_contained()
    {
        std::string out;
        FILE* find = ::popen(("find '" + m_home + "/Incoming' ! -type f ! -type d; ls -A '" + m_outside + "'").c_str(), "r");
        char line[512];
        while (find && std::fgets(line, sizeof(line), find))
            out += line;
        if (find)
            ::pclose(find);
        EXPECT_EQ(out, "");
    }

    std::string m_root, m_home, m_outside;
};

} // namespace

TEST_F(Receiver, ReceivesFilesAndDirectories)
{
    auto report = receive_bytes(Stream().file("a.txt", "alpha").dir("d").file("b", "beta").dir("e").file("c", "").up().up().end().bytes());
    ASSERT_TRUE(report.has_value()) << report.error().message();
    EXPECT_EQ(read(incoming("a.txt")), "alpha");
    EXPECT_EQ(read(incoming("d/b")), "beta");
    EXPECT_TRUE(exists(incoming("d/e/c")));
    EXPECT_EQ(report.value().files, 3U);
    EXPECT_EQ(report.value().directories, 2U);
    EXPECT_EQ(report.value().names, (std::vector<std::string> {"a.txt", "d"}));
    expect_contained();
}

TEST_F(Receiver, RefusesDotDotSlashesAndControlCharacters)
{
    std::vector<std::string> const names = {"..", ".", "../x", "/etc/passwd", "a/../../b", "new\nline", "esc\x1b[31m", "tab\there", std::string("nul\0x", 5)};
    for (auto const& name : names) {
        auto result = receive_bytes(Stream().raw_name(1, name).raw({}).end().bytes());
        EXPECT_TRUE(result.is_error()) << "accepted " << name;
        auto dir_result = receive_bytes(Stream().raw_name(2, name).end().bytes());
        EXPECT_TRUE(dir_result.is_error()) << "accepted directory " << name;
    }
    EXPECT_FALSE(exists(m_root + "/x"));
    EXPECT_FALSE(exists(m_root + "/b"));
    expect_contained();
}

TEST_F(Receiver, RefusesLinksDevicesFifosAndUnknownTypes)
{
    for (uint8_t type : {16, 17, 18, 19, 20, 99}) {
        auto result = receive_bytes(Stream().file("ok", "1").raw({type, 0, 0}).end().bytes());
        ASSERT_TRUE(result.is_error()) << int(type);
    }
    auto result = receive_bytes(Stream().raw({16}).bytes());
    EXPECT_NE(result.error().message().find("symbolic link"), std::string::npos);
    expect_contained();
}

TEST_F(Receiver, NeverOverwritesAndNeverFollowsAPlantedLink)
{
    ASSERT_TRUE(receive_bytes(Stream().file("r", "first").end().bytes()).has_value());
    ASSERT_TRUE(receive_bytes(Stream().file("r", "second").end().bytes()).has_value());
    EXPECT_EQ(read(incoming("r")), "first");
    EXPECT_EQ(read(incoming("r (1)")), "second");
    // A link planted where a file will arrive is neither followed nor replaced.
    ASSERT_EQ(::symlink((m_outside + "/victim").c_str(), incoming("planted").c_str()), 0);
    auto report = receive_bytes(Stream().file("planted", "payload").end().bytes());
    ASSERT_TRUE(report.has_value()) << report.error().message();
    EXPECT_FALSE(exists(m_outside + "/victim"));
    EXPECT_EQ(read(incoming("planted (1)")), "payload");
    // A directory name that is a link.
    ASSERT_EQ(::symlink(m_outside.c_str(), incoming("dirlink").c_str()), 0);
    ASSERT_TRUE(receive_bytes(Stream().dir("dirlink").file("f", "x").up().end().bytes()).has_value());
    EXPECT_EQ(read(incoming("dirlink (1)/f")), "x");
    EXPECT_FALSE(exists(m_outside + "/f"));
}

TEST_F(Receiver, RefusesIncomingThatIsALink)
{
    ASSERT_EQ(::symlink(m_outside.c_str(), (m_home + "/Incoming").c_str()), 0);
    auto result = receive_bytes(Stream().file("a", "x").end().bytes());
    ASSERT_TRUE(result.is_error());
    EXPECT_FALSE(exists(m_outside + "/work"));
}

TEST_F(Receiver, LimitsHold)
{
    Limits limits;
    limits.max_file_bytes = 10;
    auto big = receive_bytes(Stream().file("small", "ok").file("big", std::string(11, 'x')).end().bytes(), limits);
    ASSERT_TRUE(big.is_error());
    EXPECT_NE(big.error().message().find("over the limit"), std::string::npos);
    EXPECT_TRUE(exists(incoming("small")));
    EXPECT_FALSE(exists(incoming("big")));
    limits = {};
    limits.max_entries = 3;
    Stream many;
    for (int i = 0; i < 5; ++i)
        many.file("f" + std::to_string(i), "x");
    auto counted = receive_bytes(many.end().bytes(), limits);
    ASSERT_TRUE(counted.is_error());
    EXPECT_FALSE(exists(incoming("f3")));
    limits = {};
    limits.max_total_bytes = 5;
    EXPECT_TRUE(receive_bytes(Stream().file("t1", "abc").file("t2", "abc").end().bytes(), limits).is_error());
    EXPECT_FALSE(exists(incoming("t2")));
    limits = {};
    limits.max_depth = 2;
    EXPECT_TRUE(receive_bytes(Stream().dir("a").dir("b").dir("c").up().up().up().end().bytes(), limits).is_error());
    EXPECT_FALSE(exists(incoming("a/b/c")));
}

TEST_F(Receiver, AShortStreamLeavesNoPartialFile)
{
    auto result = receive_bytes(Stream().file("done", "1").file_header("cut", 1000).raw(std::vector<uint8_t>(10, 'x')).bytes());
    ASSERT_TRUE(result.is_error());
    EXPECT_NE(result.error().message().find("partial file was removed"), std::string::npos);
    EXPECT_TRUE(exists(incoming("done")));
    EXPECT_FALSE(exists(incoming("cut")));
    EXPECT_TRUE(receive_bytes(Stream().file("noend", "1").bytes()).is_error());
    EXPECT_TRUE(receive_bytes(Stream().end().raw({1, 2, 3}).bytes()).is_error());
    EXPECT_TRUE(receive_bytes(Stream().dir("open").end().bytes()).is_error());
    EXPECT_TRUE(receive_bytes(Stream().up().end().bytes()).is_error());
    EXPECT_TRUE(receive_bytes({'X', 'X', 'X', 'X', 1}).is_error());
    EXPECT_TRUE(receive_bytes(Stream().end().bytes(), {}, "../evil").is_error());
}

TEST_F(Receiver, AFullDiskLeavesNoPartialFile)
{
    // In a private mount namespace: a 64 KiB tmpfs as HOME.
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        if (::unshare(CLONE_NEWNS) < 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0
            || ::mount("tmpfs", m_home.c_str(), "tmpfs", 0, "size=64k") < 0)
            ::_exit(77);
        auto result = receive_bytes(Stream().file("fits", "small").file("huge", std::string(256 * 1024, 'x')).end().bytes());
        bool ok = result.is_error() && result.error().message().find("the disk is full") != std::string::npos && exists(incoming("fits"))
            && !exists(incoming("huge"));
        ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

TEST_F(Receiver, SendReceiveRoundTrip)
{
    std::string src = m_root + "/src";
    ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((src + "/tree").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((src + "/tree/sub dir").c_str(), 0700), 0);
    std::ofstream(src + "/tree/sub dir/héllo.txt") << "unicode";
    std::ofstream(src + "/tree/empty");
    std::string big(10 << 20, '\0');
    for (size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>(i * 7 + i / 4096);
    std::ofstream(src + "/big.bin", std::ios::binary) << big;
    int sockets[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sockets), 0);
    Result<SendReport> sent = Error::from_message("not run");
    std::thread sender([&] {
        sent = send(sockets[0], {src + "/tree/", src + "/big.bin"});
        ::close(sockets[0]);
    });
    int home = ::open(m_home.c_str(), O_RDONLY | O_DIRECTORY);
    auto received = receive(sockets[1], home, "work", {});
    ::close(home);
    ::close(sockets[1]);
    sender.join();
    ASSERT_TRUE(sent.has_value()) << sent.error().message();
    ASSERT_TRUE(received.has_value()) << received.error().message();
    EXPECT_EQ(read(incoming("tree/sub dir/héllo.txt")), "unicode");
    EXPECT_TRUE(exists(incoming("tree/empty")));
    EXPECT_EQ(read(incoming("big.bin")), big);
    EXPECT_EQ(sent.value().files, 3U);
    EXPECT_EQ(received.value().bytes, big.size() + 7);
}

TEST_F(Receiver, SenderRefusesLinksAndSpecialFiles)
{
    std::string link = m_root + "/link";
    ASSERT_EQ(::symlink("/etc/passwd", link.c_str()), 0);
    int sink = ::open("/dev/null", O_WRONLY);
    auto refused = send(sink, {link});
    ASSERT_TRUE(refused.is_error());
    EXPECT_NE(refused.error().message().find("symbolic link"), std::string::npos);
    std::string fifo = m_root + "/fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    EXPECT_TRUE(send(sink, {fifo}).is_error());
    std::string dir = m_root + "/withlink";
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    ASSERT_EQ(::symlink("/etc", (dir + "/l").c_str()), 0);
    EXPECT_TRUE(send(sink, {dir}).is_error());
    ::close(sink);
}

TEST(FilecopyHeader, DecodeNeedsMoreAndBounds)
{
    size_t used = 0;
    auto encoded = encode_header({EntryType::File, "name", 0644, 5, 0});
    for (size_t cut = 0; cut < encoded.size(); ++cut) {
        auto partial = decode_header(std::span(encoded).first(cut), used, {});
        ASSERT_TRUE(partial.is_error());
        EXPECT_EQ(partial.error().code(), EAGAIN) << cut;
    }
    auto whole = decode_header(encoded, used, {});
    ASSERT_TRUE(whole.has_value()) << whole.error().message();
    EXPECT_EQ(used, encoded.size());
    EXPECT_EQ(whole.value().name, "name");
    EXPECT_EQ(whole.value().size, 5U);
    auto setuid = encode_header({EntryType::File, "s", 04755, 0, 0});
    EXPECT_TRUE(decode_header(setuid, used, {}).is_error());
    std::vector<uint8_t> empty_name = {2, 0, 0, 0, 0, 0, 0};
    auto refused = decode_header(empty_name, used, {});
    ASSERT_TRUE(refused.is_error());
    EXPECT_NE(refused.error().code(), EAGAIN);
}
