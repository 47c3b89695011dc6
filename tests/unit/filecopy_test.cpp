// The file-copy receiver against hostile streams, the sender's refusals, and send -> receive
// round trips. Streams are written by hand (Stream) so that a hostile one can be made.
#include "agent/filecopy.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <cstdlib>
#include <dirent.h>
#include <fcntl.h>
#include <fstream>
#include <grp.h>
#include <map>
#include <sched.h>
#include <sstream>
#include <string>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
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

class Stream {
public:
    Stream() { m_bytes = magic; }
    Stream& file(std::string const& name, std::string const& content, uint32_t mode = 0644)
    {
        raw(encode_header({EntryType::File, name, mode, content.size(), 0}));
        m_bytes.insert(m_bytes.end(), content.begin(), content.end());
        return *this;
    }
    Stream& file_header(std::string const& name, uint64_t size)
    {
        return raw(encode_header({EntryType::File, name, 0644, size, 0}));
    }
    Stream& dir(std::string const& name, uint32_t mode = 0755)
    {
        return raw(encode_header({EntryType::Directory, name, mode, 0, 0}));
    }
    Stream& up() { return raw({4}); }
    Stream& end() { return raw({3}); }
    Stream& raw(std::vector<uint8_t> const& bytes)
    {
        m_bytes.insert(m_bytes.end(), bytes.begin(), bytes.end());
        return *this;
    }
    // A File (type 1, size 0) or Directory (2) header with any name bytes, bypassing encode_header.
    Stream& raw_name(uint8_t type, std::string const& name)
    {
        std::vector<uint8_t> bytes = {type, 0xa4, 0x01, 0, 0};
        if (type == 1)
            bytes.insert(bytes.end(), 8, 0);
        bytes.push_back(static_cast<uint8_t>(name.size()));
        bytes.push_back(static_cast<uint8_t>(name.size() >> 8));
        bytes.insert(bytes.end(), name.begin(), name.end());
        return raw(bytes);
    }
    std::vector<uint8_t> const& bytes() const { return m_bytes; }

private:
    std::vector<uint8_t> m_bytes;
};

struct Node {
    char type = '?'; // f d l o(ther)
    mode_t mode = 0;
    uid_t uid = 0;
    std::string content; // a file's bytes, a link's target
};

std::string read(std::string const& path)
{
    std::ifstream in(path, std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// Everything below `root` by relative path, links not followed.
void snapshot(std::string const& root, std::string const& prefix, std::map<std::string, Node>& out)
{
    DIR* dir = ::opendir(root.c_str());
    ASSERT_NE(dir, nullptr) << root;
    while (dirent* item = ::readdir(dir)) {
        std::string name = item->d_name;
        if (name == "." || name == "..")
            continue;
        std::string path = root + "/" + name;
        struct stat info {};
        ASSERT_EQ(::lstat(path.c_str(), &info), 0);
        Node node;
        node.mode = info.st_mode & 07777;
        node.uid = info.st_uid;
        if (S_ISREG(info.st_mode)) {
            node.type = 'f';
            node.content = read(path);
        } else if (S_ISDIR(info.st_mode)) {
            node.type = 'd';
        } else if (S_ISLNK(info.st_mode)) {
            node.type = 'l';
            char target[4096];
            ssize_t n = ::readlink(path.c_str(), target, sizeof(target));
            node.content.assign(target, n > 0 ? static_cast<size_t>(n) : 0);
        } else {
            node.type = 'o';
        }
        out[prefix + name] = node;
        if (node.type == 'd')
            snapshot(path, prefix + name + "/", out);
    }
    ::closedir(dir);
}

std::map<std::string, Node> snapshot(std::string const& root)
{
    std::map<std::string, Node> out;
    snapshot(root, "", out);
    return out;
}

bool exists(std::string const& path)
{
    struct stat info {};
    return ::lstat(path.c_str(), &info) == 0;
}

mode_t mode_of(std::string const& path)
{
    struct stat info {};
    EXPECT_EQ(::lstat(path.c_str(), &info), 0) << path;
    return info.st_mode & 07777;
}

bool contains(std::string const& text, std::string const& part)
{
    return text.find(part) != std::string::npos;
}

class Filecopy : public ::testing::Test {
protected:
    void SetUp() override
    {
        char dir[] = "/tmp/bulkhead-filecopy-test-XXXXXX";
        ASSERT_NE(::mkdtemp(dir), nullptr);
        m_root = dir;
        m_home = m_root + "/home";
        m_outside = m_root + "/outside";
        ASSERT_EQ(::mkdir(m_home.c_str(), 0700), 0);
        ASSERT_EQ(::mkdir(m_outside.c_str(), 0700), 0);
    }
    void TearDown() override
    {
        (void)std::system(("chmod -R u+rwx '" + m_root + "' 2>/dev/null; rm -rf '" + m_root + "'").c_str());
    }

    // Feeds `bytes` through a pipe from a thread, `chunk` bytes per write, and receives them.
    Result<ReceiveReport> receive_bytes(std::vector<uint8_t> const& bytes, Limits limits = {},
                                        std::string const& source = "work", size_t chunk = 1 << 20)
    {
        int pipe_fds[2];
        EXPECT_EQ(::pipe(pipe_fds), 0);
        std::thread writer([&] {
            size_t done = 0;
            while (done < bytes.size()) {
                ssize_t n = ::write(pipe_fds[1], bytes.data() + done, std::min(chunk, bytes.size() - done));
                if (n <= 0)
                    break;
                done += static_cast<size_t>(n);
            }
            ::close(pipe_fds[1]);
        });
        auto result = receive_from(pipe_fds[0], limits, source);
        ::close(pipe_fds[0]); // a writer blocked on a full pipe gets EPIPE
        writer.join();
        return result;
    }
    Result<ReceiveReport> receive_from(int in, Limits limits = {}, std::string const& source = "work")
    {
        int home = ::open(m_home.c_str(), O_RDONLY | O_DIRECTORY);
        auto result = receive(in, home, source, limits);
        ::close(home);
        return result;
    }
    std::string incoming(std::string const& name = {}) const
    {
        return m_home + "/Incoming/work" + (name.empty() ? "" : "/" + name);
    }
    // Nothing under Incoming but regular files and directories; nothing in `outside`.
    void expect_contained()
    {
        for (auto const& [path, node] : snapshot(m_home))
            EXPECT_TRUE(node.type == 'f' || node.type == 'd') << path << " is " << node.type;
        EXPECT_TRUE(snapshot(m_outside).empty());
    }
    std::string message_of(Result<ReceiveReport> const& result)
    {
        return result.is_error() ? result.error().message() : "(no error)";
    }

    std::string m_root, m_home, m_outside;
};

} // namespace

TEST_F(Filecopy, ReceivesFilesAndDirectoriesWithTheirPermissions)
{
    auto report = receive_bytes(Stream()
                                    .file("a.txt", "alpha", 0640)
                                    .dir("d", 0750)
                                    .file("run.sh", "#!/bin/sh", 0755)
                                    .dir("e", 0500)
                                    .file("c", "")
                                    .up()
                                    .up()
                                    .end()
                                    .bytes());
    ASSERT_TRUE(report.has_value()) << report.error().message();
    auto tree = snapshot(incoming());
    ASSERT_EQ(tree.size(), 5U);
    EXPECT_EQ(tree["a.txt"].content, "alpha");
    EXPECT_EQ(tree["a.txt"].mode, 0640U);
    EXPECT_EQ(tree["d"].mode, 0750U);
    EXPECT_EQ(tree["d/run.sh"].mode, 0755U);
    EXPECT_EQ(tree["d/e"].mode, 0500U); // set when closed: the stream could still fill it
    EXPECT_EQ(tree["d/e/c"].type, 'f');
    EXPECT_EQ(tree["d/e/c"].content, "");
    EXPECT_EQ(report.value().files, 3U);
    EXPECT_EQ(report.value().directories, 2U);
    EXPECT_EQ(report.value().bytes, 14U);
    EXPECT_EQ(report.value().names, (std::vector<std::string> {"a.txt", "d"}));
    expect_contained();
}

TEST_F(Filecopy, CreatesIncomingAndTheSourceDirectory)
{
    ASSERT_FALSE(exists(m_home + "/Incoming"));
    ASSERT_TRUE(receive_bytes(Stream().file("x", "1").end().bytes()).has_value());
    ASSERT_TRUE(receive_bytes(Stream().file("y", "2").end().bytes(), {}, "personal").has_value());
    EXPECT_EQ(mode_of(m_home + "/Incoming"), 0700U);
    EXPECT_EQ(read(incoming("x")), "1");
    EXPECT_EQ(read(m_home + "/Incoming/personal/y"), "2");
    for (std::string bad : std::vector<std::string> {"", "..", "a/b", "../evil", "new\nline"})
        EXPECT_TRUE(receive_bytes(Stream().end().bytes(), {}, bad).is_error()) << bad;
    EXPECT_EQ(snapshot(m_home + "/Incoming").size(), 4U);
}

TEST_F(Filecopy, RefusesIncomingThatIsALink)
{
    ASSERT_EQ(::symlink(m_outside.c_str(), (m_home + "/Incoming").c_str()), 0);
    auto result = receive_bytes(Stream().file("a", "x").end().bytes());
    EXPECT_TRUE(contains(message_of(result), "Incoming is a symbolic link")) << message_of(result);
    EXPECT_TRUE(snapshot(m_outside).empty());
}

TEST_F(Filecopy, RefusesASourceDirectoryThatIsALink)
{
    ASSERT_EQ(::mkdir((m_home + "/Incoming").c_str(), 0700), 0);
    ASSERT_EQ(::symlink(m_outside.c_str(), incoming().c_str()), 0);
    auto result = receive_bytes(Stream().file("a", "x").end().bytes());
    EXPECT_TRUE(contains(message_of(result), "work is a symbolic link")) << message_of(result);
    EXPECT_TRUE(snapshot(m_outside).empty());
}

TEST_F(Filecopy, RefusesBadNamesAndNamesThem)
{
    std::vector<std::pair<std::string, std::string>> const names = {
        {"..", "'..'"},
        {".", "'.'"},
        {"../x", "'../x'"},
        {"/etc/passwd", "'/etc/passwd'"},
        {"a/../../b", "'a/../../b'"},
        {"new\nline", "'new\\x0aline'"},
        {"esc\x1b[31m", "'esc\\x1b[31m'"},
        {"del\x7f", "'del\\x7f'"},
        {std::string("nul\0x", 5), "'nul\\x00x'"},
        {"", "0 bytes"},
        {std::string(256, 'n'), "256 bytes"},
    };
    for (auto const& [name, shown] : names) {
        for (uint8_t type : {1, 2}) {
            auto result = receive_bytes(Stream().file("kept", "1").raw_name(type, name).end().bytes());
            EXPECT_TRUE(contains(message_of(result), shown)) << int(type) << ": " << message_of(result);
            EXPECT_EQ(read(incoming("kept")), "1");
            ASSERT_EQ(::unlink(incoming("kept").c_str()), 0);
        }
    }
    // Inside a directory the message says where.
    auto nested = receive_bytes(Stream().dir("d").raw_name(1, "..").up().end().bytes());
    EXPECT_TRUE(contains(message_of(nested), "in 'd': '..'")) << message_of(nested);
    ASSERT_TRUE(receive_bytes(Stream().raw_name(1, std::string(255, 'n')).end().bytes()).has_value());
    EXPECT_EQ(snapshot(incoming()).size(), 2U); // the 255-byte name and the directory d
    EXPECT_FALSE(exists(m_root + "/x"));
    EXPECT_FALSE(exists(m_root + "/b"));
    expect_contained();
}

TEST_F(Filecopy, RefusesLinksDevicesFifosSocketsAndUnknownTypes)
{
    std::vector<std::pair<uint8_t, std::string>> const types = {
        {16, "a symbolic link"},
        {17, "a hard link"},
        {18, "a device node"},
        {19, "a FIFO"},
        {20, "a socket"},
        {0, "unknown entry type 0"},
        {5, "unknown entry type 5"},
        {255, "unknown entry type 255"},
    };
    for (auto const& [type, words] : types) {
        // A plausible link header: type, length 1, name "l", target.
        auto result = receive_bytes(Stream()
                                        .file("ok" + std::to_string(type), "1")
                                        .dir("d")
                                        .raw({type, 1, 0, 'l', '/', 'e', 't', 'c'})
                                        .up()
                                        .end()
                                        .bytes());
        EXPECT_TRUE(contains(message_of(result), words)) << message_of(result);
        EXPECT_TRUE(exists(incoming("ok" + std::to_string(type))));
    }
    EXPECT_EQ(snapshot(incoming()).size(), 2 * types.size()); // each ok file and each empty d
    expect_contained();
}

TEST_F(Filecopy, ClearsSetuidSetgidAndSticky)
{
    auto report = receive_bytes(Stream().file("suid", "x", 06755).dir("sticky", 01777).up().end().bytes());
    ASSERT_TRUE(report.has_value()) << report.error().message();
    EXPECT_EQ(mode_of(incoming("suid")), 0755U);
    EXPECT_EQ(mode_of(incoming("sticky")), 0777U);
    auto beyond = receive_bytes(Stream().file("typed", "x", 0100644).end().bytes());
    EXPECT_TRUE(contains(message_of(beyond), "bits beyond the permissions")) << message_of(beyond);
    EXPECT_FALSE(exists(incoming("typed")));
}

TEST_F(Filecopy, NeverOverwrites)
{
    ASSERT_TRUE(receive_bytes(Stream().file("r", "first").end().bytes()).has_value());
    ASSERT_TRUE(receive_bytes(Stream().file("r", "second").end().bytes()).has_value());
    auto third = receive_bytes(Stream().file("r", "third").end().bytes());
    ASSERT_TRUE(third.has_value());
    EXPECT_EQ(third.value().names, std::vector<std::string> {"r (2)"});
    EXPECT_EQ(read(incoming("r")), "first");
    EXPECT_EQ(read(incoming("r (1)")), "second");
    EXPECT_EQ(read(incoming("r (2)")), "third");
    // A directory that exists is not entered: the stream's one gets a suffix.
    ASSERT_EQ(::mkdir(incoming("d").c_str(), 0700), 0);
    std::ofstream(incoming("d/inside")) << "mine";
    ASSERT_TRUE(receive_bytes(Stream().dir("d").file("inside", "theirs").up().end().bytes()).has_value());
    EXPECT_EQ(read(incoming("d/inside")), "mine");
    EXPECT_EQ(read(incoming("d (1)/inside")), "theirs");
    // Nor does a stream overwrite what it wrote itself.
    ASSERT_TRUE(
        receive_bytes(Stream().dir("e").file("x", "1").file("x", "2").dir("x").up().up().end().bytes()).has_value());
    EXPECT_EQ(read(incoming("e/x")), "1");
    EXPECT_EQ(read(incoming("e/x (1)")), "2");
    EXPECT_TRUE(exists(incoming("e/x (2)")));
}

TEST_F(Filecopy, NeverFollowsNorReplacesAPlantedLink)
{
    ASSERT_EQ(::mkdir((m_home + "/Incoming").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir(incoming().c_str(), 0700), 0);
    std::string victim = m_outside + "/victim";
    std::ofstream(victim) << "precious";
    ASSERT_EQ(::symlink(victim.c_str(), incoming("planted").c_str()), 0);
    ASSERT_EQ(::symlink((m_outside + "/dangling").c_str(), incoming("dangling").c_str()), 0);
    ASSERT_EQ(::symlink(m_outside.c_str(), incoming("dirlink").c_str()), 0);
    auto report = receive_bytes(Stream()
                                    .file("planted", "payload")
                                    .file("dangling", "payload")
                                    .dir("dirlink")
                                    .file("f", "x")
                                    .up()
                                    .end()
                                    .bytes());
    ASSERT_TRUE(report.has_value()) << report.error().message();
    auto tree = snapshot(incoming());
    EXPECT_EQ(tree["planted"].type, 'l');
    EXPECT_EQ(tree["planted"].content, victim);
    EXPECT_EQ(tree["dangling"].type, 'l');
    EXPECT_EQ(tree["dirlink"].type, 'l');
    EXPECT_EQ(tree["planted (1)"].content, "payload");
    EXPECT_EQ(tree["dangling (1)"].content, "payload");
    EXPECT_EQ(tree["dirlink (1)/f"].content, "x");
    EXPECT_EQ(read(victim), "precious");
    EXPECT_EQ(snapshot(m_outside).size(), 1U);
}

TEST_F(Filecopy, GivesUpAfterAThousandSuffixes)
{
    ASSERT_TRUE(receive_bytes(Stream().file("f", "0").end().bytes()).has_value());
    for (int i = 1; i <= 1000; ++i)
        std::ofstream(incoming("f (" + std::to_string(i) + ")")) << i;
    auto result = receive_bytes(Stream().file("f", "new").end().bytes());
    EXPECT_TRUE(contains(message_of(result), "'f': 1000 names like it exist already")) << message_of(result);
    EXPECT_EQ(read(incoming("f (1000)")), "1000");
    // A 255-byte name has no room for a suffix.
    std::string longest(255, 'L');
    ASSERT_TRUE(receive_bytes(Stream().file(longest, "1").end().bytes()).has_value());
    EXPECT_TRUE(receive_bytes(Stream().file(longest, "2").end().bytes()).is_error());
    EXPECT_EQ(read(incoming(longest)), "1");
}

TEST_F(Filecopy, RefusesAFileOverTheLimitFromItsHeader)
{
    Limits limits;
    limits.max_file_bytes = 10;
    // No content and no end follow: the header alone is refused (not "the stream ended").
    auto big = receive_bytes(Stream().file("small", "ok").file_header("big", 11).bytes(), limits);
    EXPECT_TRUE(contains(message_of(big), "'big': 11 bytes, over the limit of 10")) << message_of(big);
    EXPECT_TRUE(exists(incoming("small")));
    EXPECT_FALSE(exists(incoming("big")));
    auto huge = receive_bytes(Stream().file_header("huge", 1ull << 40).bytes());
    EXPECT_TRUE(contains(message_of(huge), "over the limit")) << message_of(huge);
    EXPECT_FALSE(exists(incoming("huge")));
}

TEST_F(Filecopy, RefusesMoreThanTheTotalEntriesOrDepth)
{
    Limits limits;
    limits.max_total_bytes = 5;
    auto total = receive_bytes(Stream().file("t1", "abc").file("t2", "abc").end().bytes(), limits);
    EXPECT_TRUE(contains(message_of(total), "'t2': the files add up to more than 5 bytes")) << message_of(total);
    EXPECT_TRUE(exists(incoming("t1")));
    EXPECT_FALSE(exists(incoming("t2")));

    limits = {};
    limits.max_entries = 3;
    auto counted
        = receive_bytes(Stream().dir("d").file("f1", "x").file("f2", "x").file("f3", "x").up().end().bytes(), limits);
    EXPECT_TRUE(contains(message_of(counted), "'d/f3': more than 3 files and directories")) << message_of(counted);
    EXPECT_TRUE(exists(incoming("d/f2")));
    EXPECT_FALSE(exists(incoming("d/f3")));

    limits = {};
    limits.max_depth = 2;
    ASSERT_TRUE(receive_bytes(Stream().dir("a").dir("b").up().up().end().bytes(), limits).has_value());
    auto deep = receive_bytes(Stream().dir("p").dir("q").dir("r").up().up().up().end().bytes(), limits);
    EXPECT_TRUE(contains(message_of(deep), "'p/q/r': directories nested deeper than 2")) << message_of(deep);
    EXPECT_TRUE(exists(incoming("p/q")));
    EXPECT_FALSE(exists(incoming("p/q/r")));
}

TEST_F(Filecopy, AShortStreamLeavesNoPartialFile)
{
    auto cut = receive_bytes(
        Stream().file("done", "1").dir("d").file_header("cut", 1000).raw(std::vector<uint8_t>(10, 'x')).bytes());
    EXPECT_TRUE(contains(message_of(cut),
                         "'d/cut': the stream ended inside the file (10 of 1000 bytes); the partial file was removed"))
        << message_of(cut);
    EXPECT_EQ(read(incoming("done")), "1");
    EXPECT_FALSE(exists(incoming("d/cut")));
    std::vector<std::pair<std::vector<uint8_t>, std::string>> const broken = {
        {Stream().file("noend", "1").bytes(), "ended early"},
        {Stream().end().raw({1, 2, 3}).bytes(), "data after the end"},
        {Stream().dir("open").end().bytes(), "ended inside the directory 'open'"},
        {Stream().up().end().bytes(), "closes a directory it did not open"},
        {{'X', 'X', 'X', 'X', 1}, "not a bulkhead file-copy stream"},
        {{'B', 'H', 'F', 'C', 2, 3}, "not a bulkhead file-copy stream"},
        {{}, "not a bulkhead file-copy stream"},
    };
    for (auto const& [bytes, words] : broken) {
        auto result = receive_bytes(bytes);
        EXPECT_TRUE(contains(message_of(result), words)) << words << ": " << message_of(result);
    }
    EXPECT_EQ(read(incoming("noend")), "1"); // complete before the stream broke: kept
}

TEST_F(Filecopy, ReadsAStreamInAnyPieces)
{
    std::string content(5000, '\0');
    for (size_t i = 0; i < content.size(); ++i)
        content[i] = static_cast<char>(i * 31);
    auto bytes = Stream().dir("d").file("f", content).file("g", "gg").up().end().bytes();
    auto report = receive_bytes(bytes, {}, "work", 1);
    ASSERT_TRUE(report.has_value()) << report.error().message();
    EXPECT_EQ(read(incoming("d/f")), content);
    EXPECT_EQ(read(incoming("d/g")), "gg");
    // From a file (a memfd) instead of a pipe, and from a socket.
    int memfd = ::memfd_create("stream", MFD_CLOEXEC);
    ASSERT_EQ(::write(memfd, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    ASSERT_EQ(::lseek(memfd, 0, SEEK_SET), 0);
    ASSERT_TRUE(receive_from(memfd).has_value());
    ::close(memfd);
    EXPECT_EQ(read(incoming("d (1)/f")), content);
    int sockets[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM, 0, sockets), 0);
    std::thread writer([&] {
        EXPECT_EQ(::write(sockets[0], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
        ::shutdown(sockets[0], SHUT_WR);
    });
    auto from_socket = receive_from(sockets[1]);
    writer.join();
    ::close(sockets[0]);
    ::close(sockets[1]);
    ASSERT_TRUE(from_socket.has_value()) << from_socket.error().message();
    EXPECT_EQ(read(incoming("d (2)/f")), content);
}

// A sender that goes silent is given up on after limits.idle_seconds (the socket's receive
// timeout): inside a file, the partial file is removed; between files, what came is kept.
TEST_F(Filecopy, GivesUpOnASilentSender)
{
    Limits limits;
    limits.idle_seconds = 1;
    for (bool inside : {true, false}) {
        int sockets[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets), 0);
        Stream stream;
        stream.file(inside ? "before1" : "before2", "1");
        if (inside)
            stream.file_header("stalled", 1000).raw(std::vector<uint8_t>(10, 'x'));
        auto bytes = stream.bytes();
        ASSERT_EQ(::write(sockets[0], bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
        auto result = receive_from(sockets[1], limits); // sockets[0] stays open, silent
        ::close(sockets[0]);
        ::close(sockets[1]);
        std::string const expected = inside ? "'stalled': the sender sent nothing for 1 s inside the file (10 of 1000 bytes); "
                                              "the partial file was removed"
                                            : "the sender sent nothing for 1 s: gave up";
        EXPECT_TRUE(contains(message_of(result), expected)) << message_of(result);
        EXPECT_EQ(read(incoming(inside ? "before1" : "before2")), "1");
        EXPECT_FALSE(exists(incoming("stalled")));
    }
}

TEST_F(Filecopy, AFullDiskLeavesNoPartialFile)
{
    // A 64 KiB tmpfs as HOME, in a private mount namespace of a child process.
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        if (::unshare(CLONE_NEWNS) < 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) < 0
            || ::mount("tmpfs", m_home.c_str(), "tmpfs", 0, "size=64k") < 0)
            ::_exit(77);
        auto result = receive_bytes(
            Stream().file("fits", "small").dir("d").file("huge", std::string(256 * 1024, 'x')).up().end().bytes());
        bool ok = contains(message_of(result), "'d/huge': the disk is full; the partial file was removed")
            && read(incoming("fits")) == "small" && exists(incoming("d")) && !exists(incoming("d/huge"));
        if (!ok)
            std::fprintf(stderr, "%s\n", message_of(result).c_str());
        ::_exit(ok ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        GTEST_SKIP() << "cannot mount a tmpfs here (needs root)";
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    EXPECT_FALSE(contains(read("/proc/self/mountinfo"), m_home)); // the host's namespace is untouched
    EXPECT_FALSE(exists(incoming()));
}

TEST_F(Filecopy, EverythingBelongsToTheReceivingUser)
{
    if (::geteuid() != 0)
        GTEST_SKIP() << "needs root to become uid 1000";
    ASSERT_EQ(::chown(m_home.c_str(), 1000, 1000), 0);
    auto bytes = Stream().file("f", "x", 04755).dir("d").file("g", "y").up().end().bytes();
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        int home = ::open(m_home.c_str(), O_RDONLY | O_DIRECTORY);
        if (home < 0 || ::setgroups(0, nullptr) < 0 || ::setresgid(1000, 1000, 1000) < 0
            || ::setresuid(1000, 1000, 1000) < 0)
            ::_exit(2);
        int memfd = ::memfd_create("stream", 0);
        if (::write(memfd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size())
            || ::lseek(memfd, 0, SEEK_SET) != 0)
            ::_exit(3);
        ::_exit(receive(memfd, home, "work", {}).has_value() ? 0 : 1);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
    auto tree = snapshot(m_home);
    EXPECT_EQ(tree.size(), 5U);
    for (auto const& [path, node] : tree)
        EXPECT_EQ(node.uid, 1000U) << path;
    EXPECT_EQ(tree["Incoming/work/f"].mode, 0755U);
}

TEST_F(Filecopy, SendReceiveRoundTrip)
{
    std::string src = m_root + "/src";
    ASSERT_EQ(::mkdir(src.c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((src + "/tree").c_str(), 0750), 0);
    ASSERT_EQ(::mkdir((src + "/tree/sub dir").c_str(), 0700), 0);
    ASSERT_EQ(::mkdir((src + "/tree/sub dir/deeper").c_str(), 0755), 0);
    ASSERT_EQ(::mkdir((src + "/tree/empty dir").c_str(), 0755), 0);
    std::ofstream(src + "/tree/sub dir/héllo wörld ✓.txt") << "unicode";
    std::ofstream(src + "/tree/sub dir/deeper/z") << "deep";
    std::ofstream(src + "/tree/empty");
    ASSERT_EQ(::chmod((src + "/tree/empty").c_str(), 0600), 0);
    std::ofstream(src + "/tree/script") << "#!/bin/sh\n";
    ASSERT_EQ(::chmod((src + "/tree/script").c_str(), 0755), 0);
    std::string big(10 << 20, '\0');
    for (size_t i = 0; i < big.size(); ++i)
        big[i] = static_cast<char>(i * 7 + i / 4096);
    std::ofstream(src + "/big file.bin", std::ios::binary) << big;
    int sockets[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sockets), 0);
    Result<SendReport> sent = Error::from_message("not run");
    std::thread sender([&] {
        sent = send(sockets[0], {src + "/tree/", src + "/big file.bin"});
        ::shutdown(sockets[0], SHUT_WR);
    });
    auto received = receive_from(sockets[1]);
    sender.join();
    ::close(sockets[0]);
    ::close(sockets[1]);
    ASSERT_TRUE(sent.has_value()) << sent.error().message();
    ASSERT_TRUE(received.has_value()) << received.error().message();
    auto original = snapshot(src);
    auto copy = snapshot(incoming());
    ASSERT_EQ(copy.size(), original.size());
    for (auto const& [path, node] : original) {
        ASSERT_TRUE(copy.contains(path)) << path;
        EXPECT_EQ(copy[path].type, node.type) << path;
        EXPECT_EQ(copy[path].mode, node.mode) << path;
        EXPECT_TRUE(copy[path].content == node.content) << path;
        EXPECT_EQ(copy[path].uid, ::geteuid()) << path;
    }
    EXPECT_EQ(sent.value().files, 5U);
    EXPECT_EQ(sent.value().directories, 4U);
    EXPECT_EQ(sent.value().bytes, big.size() + 7 + 4 + 10);
    EXPECT_EQ(received.value().files, 5U);
    EXPECT_EQ(received.value().directories, 4U);
    EXPECT_EQ(received.value().bytes, sent.value().bytes);
    EXPECT_EQ(received.value().names, (std::vector<std::string> {"tree", "big file.bin"}));
}

// The headers of a whole stream, in order.
std::vector<Header> headers_of(std::vector<uint8_t> const& stream)
{
    std::vector<Header> out;
    size_t at = magic.size();
    while (at < stream.size()) {
        size_t used = 0;
        auto header = decode_header(std::span(stream).subspan(at), used, {});
        EXPECT_TRUE(header.has_value()) << at;
        if (header.is_error())
            break;
        out.push_back(header.value());
        at += used + header.value().size;
    }
    return out;
}

TEST_F(Filecopy, SenderSortsAndIsReproducible)
{
    std::string dir = m_root + "/d";
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    for (std::string name : {"c", "a", "B", "b b"})
        std::ofstream(dir + "/" + name) << name;
    ASSERT_EQ(::mkdir((dir + "/sub").c_str(), 0755), 0);
    std::ofstream(dir + "/sub/x") << "x";
    std::vector<uint8_t> streams[2];
    for (auto& stream : streams) {
        int memfd = ::memfd_create("stream", MFD_CLOEXEC);
        auto sent = send(memfd, {dir});
        ASSERT_TRUE(sent.has_value()) << sent.error().message();
        off_t size = ::lseek(memfd, 0, SEEK_END);
        stream.resize(static_cast<size_t>(size));
        ASSERT_EQ(::pread(memfd, stream.data(), stream.size(), 0), size);
        ::close(memfd);
    }
    EXPECT_EQ(streams[0], streams[1]);
    std::vector<std::string> order;
    for (auto const& header : headers_of(streams[0]))
        order.push_back(std::to_string(static_cast<int>(header.type)) + header.name);
    EXPECT_EQ(order, (std::vector<std::string> {"2d", "1B", "1a", "1b b", "1c", "2sub", "1x", "4", "4", "3"}));
}

TEST_F(Filecopy, SenderRefusesLinksAndSpecialFilesBeforeWritingAnything)
{
    std::string link = m_root + "/link";
    ASSERT_EQ(::symlink("/etc/passwd", link.c_str()), 0);
    std::string fifo = m_root + "/fifo";
    ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
    std::string socket_path = m_root + "/sock";
    int listener = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address {};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", socket_path.c_str());
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    std::string deep = m_root + "/tree/a/b";
    ASSERT_EQ(std::system(("mkdir -p '" + deep + "'").c_str()), 0);
    std::ofstream(m_root + "/tree/first") << "1";
    ASSERT_EQ(::symlink("/etc", (deep + "/l").c_str()), 0);
    std::ofstream(m_root + "/plain") << "p";
    std::string bad_name = m_root + "/names";
    ASSERT_EQ(::mkdir(bad_name.c_str(), 0755), 0);
    std::ofstream(bad_name + "/new\nline") << "n";

    std::vector<std::pair<std::vector<std::string>, std::string>> const refused = {
        {{link}, link + ": a symbolic link: links are not copied"},
        {{m_root + "/plain", link}, link + ": a symbolic link"},
        {{m_root + "/link/"}, "a symbolic link"},
        {{fifo}, fifo + ": a FIFO"},
        {{"/dev/null"}, "/dev/null: a device node"},
        {{socket_path}, socket_path + ": a socket"},
        {{m_root + "/tree"}, m_root + "/tree/a/b/l: a symbolic link"},
        {{bad_name}, "'new\\x0aline': a name may not contain control characters"},
        {{m_root + "/missing"}, "No such file"},
        {{"/"}, "1 to 255 bytes"},
        {{m_root + "/tree/.."}, "'..': '.' and '..' are not names"},
    };
    for (auto const& [paths, words] : refused) {
        int memfd = ::memfd_create("stream", MFD_CLOEXEC);
        auto sent = send(memfd, paths);
        EXPECT_TRUE(sent.is_error() && contains(sent.error().message(), words))
            << words << ": " << (sent.is_error() ? sent.error().message() : "sent");
        EXPECT_EQ(::lseek(memfd, 0, SEEK_END), 0) << words; // nothing written
        ::close(memfd);
    }
    ::close(listener);
}

TEST_F(Filecopy, SenderChecksTheReceiversLimitsFirst)
{
    std::string dir = m_root + "/d";
    ASSERT_EQ(std::system(("mkdir -p '" + dir + "/a/b/c'").c_str()), 0);
    std::ofstream(dir + "/ten") << "0123456789";
    std::ofstream(dir + "/five") << "01234";
    Limits limits;
    limits.max_file_bytes = 9;
    std::vector<std::pair<Limits, std::string>> cases;
    cases.push_back({limits, "/d/ten: 10 bytes, over the limit of 9 (a limit of the receiver)"});
    limits = {};
    limits.max_total_bytes = 12;
    cases.push_back({limits, "/d/ten: the files add up to more than 12 bytes"});
    limits = {};
    limits.max_entries = 5;
    cases.push_back({limits, "more than 5 files and directories"});
    limits = {};
    limits.max_depth = 3;
    cases.push_back({limits, "/d/a/b/c: directories nested deeper than 3"});
    for (auto const& [limit, words] : cases) {
        int memfd = ::memfd_create("stream", MFD_CLOEXEC);
        auto sent = send(memfd, {dir}, limit);
        EXPECT_TRUE(sent.is_error() && contains(sent.error().message(), words))
            << words << ": " << (sent.is_error() ? sent.error().message() : "sent");
        EXPECT_EQ(::lseek(memfd, 0, SEEK_END), 0);
        ::close(memfd);
    }
    int memfd = ::memfd_create("stream", MFD_CLOEXEC);
    limits = {};
    limits.max_entries = 6;
    limits.max_depth = 4;
    limits.max_total_bytes = 15;
    limits.max_file_bytes = 10;
    EXPECT_TRUE(send(memfd, {dir}, limits).has_value()); // exactly at every limit
    ::close(memfd);
}

TEST(FilecopyHeader, DecodesWhatIsEncodedAndAsksForMore)
{
    for (auto const& header :
         {Header {EntryType::File, "name", 0644, 5, 0}, Header {EntryType::Directory, "dir", 0700, 0, 0},
          Header {EntryType::Up, {}, 0, 0, 0}, Header {EntryType::End, {}, 0, 0, 0}}) {
        auto encoded = encode_header(header);
        size_t used = 0;
        for (size_t cut = 0; cut < encoded.size(); ++cut) {
            auto partial = decode_header(std::span(encoded).first(cut), used, {});
            ASSERT_TRUE(partial.is_error());
            EXPECT_EQ(partial.error().code(), EAGAIN) << cut;
        }
        encoded.push_back(0xff); // what follows is not part of the header
        auto decoded = decode_header(encoded, used, {});
        ASSERT_TRUE(decoded.has_value()) << decoded.error().message();
        EXPECT_EQ(used, encoded.size() - 1);
        EXPECT_EQ(decoded.value().type, header.type);
        EXPECT_EQ(decoded.value().name, header.name);
        EXPECT_EQ(decoded.value().mode, header.mode);
        EXPECT_EQ(decoded.value().size, header.size);
    }
    EXPECT_EQ(encode_header({EntryType::File, "n", 0644, 0x0102030405060708, 0}),
              (std::vector<uint8_t> {1, 0xa4, 0x01, 0, 0, 8, 7, 6, 5, 4, 3, 2, 1, 1, 0, 'n'}));
}

TEST(FilecopyHeader, RefusesWhatIsOutOfBounds)
{
    size_t used = 99;
    auto decode = [&](std::vector<uint8_t> const& bytes, Limits limits = {}) {
        auto result = decode_header(bytes, used, limits);
        EXPECT_TRUE(result.is_error());
        EXPECT_NE(result.error().code(), EAGAIN);
        return result.error().message();
    };
    EXPECT_TRUE(contains(decode({2, 0, 0, 0, 0, 0, 0}), "a name of 0 bytes"));
    EXPECT_TRUE(contains(decode({2, 0, 0, 0, 0, 0, 1}), "a name of 256 bytes")); // refused before the name arrives
    EXPECT_TRUE(contains(decode(encode_header({EntryType::File, "s", 0x1000, 0, 0})), "bits beyond the permissions"));
    Limits limits;
    limits.max_file_bytes = 4;
    EXPECT_TRUE(contains(decode(encode_header({EntryType::File, "big", 0644, 5, 0}), limits),
                         "'big': 5 bytes, over the limit of 4"));
    EXPECT_TRUE(contains(decode({16}), "symbolic link"));
    EXPECT_TRUE(contains(decode({21}), "unknown entry type 21"));
    EXPECT_EQ(used, 99U); // untouched by a refusal
    auto setuid = decode_header(encode_header({EntryType::File, "s", 07755, 0, 0}), used, {});
    ASSERT_TRUE(setuid.has_value());
    EXPECT_EQ(setuid.value().mode, 0755U);
}

TEST(FilecopyName, OneComponentWithoutControlCharacters)
{
    for (std::string good : std::vector<std::string> {"a", "report.pdf", "with space", "héllo ✓", "...", ".hidden",
                                                      "a\\b", std::string(255, 'x')})
        EXPECT_TRUE(check_name(good).has_value()) << good;
    for (std::string bad : std::vector<std::string> {"", ".", "..", "a/b", "/", "tab\t", "cr\r", "\x1b", "\x7f",
                                                     std::string(256, 'x'), std::string("\0", 1)})
        EXPECT_TRUE(check_name(bad).is_error()) << bad;
}

// What bulkhead-copy and `bulkhead copy` say before a call is placed (nobody is asked about a copy
// that would be refused): the sender's checks, reading no content.
TEST_F(Filecopy, CheckSendableRefusesWhatSendWouldAndAcceptsTheRest)
{
    std::string link = m_root + "/link";
    ASSERT_EQ(::symlink("/etc/passwd", link.c_str()), 0);
    std::string deep = m_root + "/tree/a";
    ASSERT_EQ(std::system(("mkdir -p '" + deep + "'").c_str()), 0);
    std::ofstream(deep + "/file") << "content";
    std::ofstream(m_root + "/plain") << "p";
    EXPECT_TRUE(check_sendable({m_root + "/plain", m_root + "/tree"}).has_value());
    auto refused = check_sendable({m_root + "/plain", link});
    ASSERT_FALSE(refused.has_value());
    EXPECT_NE(refused.error().message().find("a symbolic link"), std::string::npos);
    ASSERT_EQ(::symlink("/etc", (deep + "/l").c_str()), 0);
    EXPECT_FALSE(check_sendable({m_root + "/tree"}).has_value());
    Limits small;
    small.max_file_bytes = 3;
    EXPECT_FALSE(check_sendable({m_root + "/plain", deep + "/file"}, small).has_value());
}
