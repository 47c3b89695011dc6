// Fuzzes the file-copy receiver with whole hostile streams: each input is received into a fresh
// temporary home. Besides "no crash, no sanitizer report": afterwards nothing exists outside
// HOME/Incoming/work, and inside it only regular files and directories.
#include "agent/filecopy.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fcntl.h>
#include <ftw.h>
#include <string>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

using namespace bulkhead;
using namespace bulkhead::filecopy;

namespace {

std::string g_incoming;
bool g_bad = false;

int inspect(char const* path, struct stat const* info, int, FTW*)
{
    std::string p = path;
    bool inside = p.rfind(g_incoming, 0) == 0 || g_incoming.rfind(p, 0) == 0;
    if (!inside || !(S_ISREG(info->st_mode) || S_ISDIR(info->st_mode)))
        g_bad = true;
    return 0;
}

int remove_entry(char const* path, struct stat const*, int, FTW*)
{
    return ::remove(path);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    size_t used = 0;
    Limits limits;
    limits.max_file_bytes = 1 << 16;
    limits.max_total_bytes = 1 << 18;
    limits.max_entries = 64;
    limits.max_depth = 8;
    (void)decode_header({data, size}, used, limits);

    char root[] = "/tmp/fuzz-filecopy-XXXXXX";
    if (::mkdtemp(root) == nullptr)
        return 0;
    std::string home = std::string(root) + "/home";
    ::mkdir(home.c_str(), 0700);
    int in = ::memfd_create("stream", 0);
    // The stream starts with the magic, so that the fuzzer explores past it.
    (void)!::write(in, "BHFC\1", 5);
    (void)!::write(in, data, size);
    ::lseek(in, 0, SEEK_SET);
    int home_fd = ::open(home.c_str(), O_RDONLY | O_DIRECTORY);
    (void)receive(in, home_fd, "work", limits);
    ::close(home_fd);
    ::close(in);
    g_incoming = home + "/Incoming/work";
    g_bad = false;
    ::nftw(root, inspect, 16, FTW_PHYS);
    ::nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (g_bad) {
        std::fprintf(stderr, "fuzz_filecopy: something other than a file or directory, or outside Incoming/work\n");
        std::abort();
    }
    return 0;
}
