// Fuzzes the file-copy stream: decode_header on the raw input, and receive() of the whole input
// (after the magic) into a fresh temporary home per input, through a memfd. Checks:
//  - a decoded header is within bounds (a valid one-component name, permission bits only, a size
//    within the limit, `used` within the input) and re-encodes to a header that decodes the same;
//  - after receive(), whatever it returned: nothing exists outside HOME/Incoming/work but what was
//    there before; inside it only regular files and directories, no setuid/setgid/sticky bit, and
//    the planted link `a` (to a directory outside) and file `b` are still there, unchanged.
#include "agent/filecopy.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <ftw.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace bulkhead;
using namespace bulkhead::filecopy;

namespace {

std::string g_root, g_incoming;
char const* g_bad = nullptr;

void fail(char const* what)
{
    std::fprintf(stderr, "fuzz_filecopy: %s\n", what);
    std::abort();
}

int inspect(char const* path, struct stat const* info, int, FTW*)
{
    std::string p = path;
    bool inside = p.rfind(g_incoming + "/", 0) == 0;
    bool known = p == g_root || p == g_root + "/home" || p == g_root + "/home/Incoming" || p == g_incoming
        || p == g_root + "/outside" || p == g_incoming + "/a" || p == g_incoming + "/b";
    if (!inside && !known)
        g_bad = "something was created outside Incoming/work";
    else if (inside && !known && !S_ISREG(info->st_mode) && !S_ISDIR(info->st_mode))
        g_bad = "something other than a regular file or directory in Incoming/work";
    else if (inside && (info->st_mode & (S_ISUID | S_ISGID | S_ISVTX)) != 0)
        g_bad = "a setuid, setgid or sticky bit in Incoming/work";
    if (S_ISDIR(info->st_mode))
        (void)::chmod(path, 0700); // a directory the stream made read-only can still be removed
    return 0;
}

int remove_entry(char const* path, struct stat const*, int, FTW*)
{
    return ::remove(path);
}

void check_header(uint8_t const* data, size_t size, Limits const& limits)
{
    size_t used = 0;
    auto header = decode_header({data, size}, used, limits);
    if (header.is_error()) {
        if (header.error().message().empty())
            fail("an error without a message");
        return;
    }
    Header const& value = header.value();
    if (used == 0 || used > size)
        fail("used outside the input");
    bool named = value.type == EntryType::File || value.type == EntryType::Directory;
    if (named && check_name(value.name).is_error())
        fail("a decoded name that check_name refuses");
    if ((value.mode & ~0777U) != 0 || value.size > limits.max_file_bytes || value.depth != 0)
        fail("a decoded mode, size or depth out of bounds");
    auto again_bytes = encode_header(value);
    size_t again_used = 0;
    auto again = decode_header(again_bytes, again_used, limits);
    if (again.is_error() || again_used != again_bytes.size() || again.value().type != value.type
        || again.value().name != value.name || again.value().mode != value.mode || again.value().size != value.size)
        fail("a decoded header does not re-encode to the same header");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    Limits limits;
    limits.max_file_bytes = 1 << 16;
    limits.max_total_bytes = 1 << 18;
    limits.max_entries = 64;
    limits.max_depth = 8;
    check_header(data, size, limits);

    // tmpfs when there is one: the file system work dominates each run.
    char root[] = "/dev/shm/fuzz-filecopy-XXXXXX";
    if (::access("/dev/shm", W_OK) != 0)
        std::memcpy(root, "/tmp/fuzz-filecopy-XXXXXX", sizeof("/tmp/fuzz-filecopy-XXXXXX"));
    if (::mkdtemp(root) == nullptr)
        fail("mkdtemp");
    g_root = root;
    g_incoming = g_root + "/home/Incoming/work";
    for (auto const& dir : {"/home", "/home/Incoming", "/home/Incoming/work", "/outside"}) {
        if (::mkdir((g_root + dir).c_str(), 0700) < 0)
            fail("mkdir");
    }
    int planted = ::open((g_incoming + "/b").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (::symlink("../../../outside", (g_incoming + "/a").c_str()) < 0 || planted < 0
        || ::write(planted, "mine", 4) != 4)
        fail("planting");
    ::close(planted);

    // The stream starts with the magic, so that the fuzzer explores past it.
    int in = ::memfd_create("stream", MFD_CLOEXEC);
    if (in < 0 || ::write(in, "BHFC\1", 5) != 5 || (size > 0 && ::write(in, data, size) != static_cast<ssize_t>(size))
        || ::lseek(in, 0, SEEK_SET) != 0)
        fail("memfd");
    int home = ::open((g_root + "/home").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    auto received = receive(in, home, "work", limits);
    ::close(home);
    ::close(in);
    if (received.is_error() && received.error().message().empty())
        fail("an error without a message");

    g_bad = nullptr;
    ::nftw(root, inspect, 16, FTW_PHYS);
    char target[64] = {};
    if (::readlink((g_incoming + "/a").c_str(), target, sizeof(target) - 1) < 0
        || std::strcmp(target, "../../../outside") != 0)
        g_bad = "the planted link was replaced";
    int kept = ::open((g_incoming + "/b").c_str(), O_RDONLY | O_NOFOLLOW);
    char content[8] = {};
    if (kept < 0 || ::read(kept, content, sizeof(content)) != 4 || std::memcmp(content, "mine", 4) != 0)
        g_bad = "the planted file was changed";
    if (kept >= 0)
        ::close(kept);
    ::nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (g_bad != nullptr)
        fail(g_bad);
    return 0;
}
