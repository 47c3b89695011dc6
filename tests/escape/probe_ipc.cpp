// Checks about what compartments share or could share: a neighbour's objects, the network, IPC
// that outlives a compartment, and the limits that keep one compartment from starving the others.
#include "probe.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <mqueue.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

namespace probe {

namespace {

constexpr key_t neighbour_key = 0x4242;
constexpr key_t leftover_key = 0x4343;
constexpr char neighbour_abstract[] = "bulkhead-neighbour";
constexpr char neighbour_path_socket[] = "/tmp/bulkhead-neighbour.sock";
constexpr char neighbour_mq[] = "/bulkhead-neighbour";
constexpr char leftover_mq[] = "/bulkhead-leftover";
constexpr uint16_t neighbour_tcp_port = 4242;

// A unix address: a leading '@' means the abstract namespace.
socklen_t unix_address(std::string const& name, sockaddr_un& address)
{
    address = {};
    address.sun_family = AF_UNIX;
    std::string path = name;
    if (!path.empty() && path[0] == '@')
        path[0] = '\0';
    std::memcpy(address.sun_path, path.data(), std::min(path.size(), sizeof(address.sun_path) - 1));
    return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
}

long connect_unix(std::string const& name)
{
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    sockaddr_un address;
    socklen_t length = unix_address(name, address);
    long rc = ::connect(fd, reinterpret_cast<sockaddr*>(&address), length);
    int err = errno;
    ::close(fd);
    errno = err;
    return rc;
}

// Connects a socket of `type` to an IPv4 or IPv6 address; never waits for a handshake.
// A non-blocking connect by default: anything but an immediate answer means packets went out.
long connect_ip(int type, char const* address, uint16_t port, bool blocking = false)
{
    bool v6 = std::strchr(address, ':') != nullptr;
    int fd = ::socket(v6 ? AF_INET6 : AF_INET, type | SOCK_CLOEXEC | (blocking ? 0 : SOCK_NONBLOCK), 0);
    if (fd < 0)
        return -1;
    long rc;
    if (v6) {
        sockaddr_in6 sa {};
        sa.sin6_family = AF_INET6;
        sa.sin6_port = htons(port);
        ::inet_pton(AF_INET6, address, &sa.sin6_addr);
        rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    } else {
        sockaddr_in sa {};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(port);
        ::inet_pton(AF_INET, address, &sa.sin_addr);
        rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
    }
    int err = errno;
    ::close(fd);
    errno = err;
    return rc;
}

long open_close(std::string const& path)
{
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        ::close(fd);
    return fd;
}

long mq_try(char const* name)
{
    mqd_t queue = ::mq_open(name, O_RDONLY);
    if (queue == static_cast<mqd_t>(-1))
        return -1;
    ::mq_close(queue);
    return 0;
}

void created(Report& report, std::string const& what, long rc)
{
    (rc >= 0 ? report.pass("created " + what) : report.fail("could not create " + what + ": " + errno_name(errno)));
}

void say_ready()
{
    (void)!::write(1, "READY\n", 6);
}

// Touches `bytes` of fresh memory, anonymous or SysV shared; returns the MiB touched.
long touch_memory(uint64_t bytes, bool shared)
{
    char* memory = nullptr;
    if (shared) {
        int id = ::shmget(IPC_PRIVATE, bytes, IPC_CREAT | 0600);
        if (id < 0)
            return -1;
        void* at = ::shmat(id, nullptr, 0);
        int err = errno;
        ::shmctl(id, IPC_RMID, nullptr); // gone with the last detach, whatever happens next
        if (at == reinterpret_cast<void*>(-1)) {
            errno = err;
            return -1;
        }
        memory = static_cast<char*>(at);
    } else {
        void* at = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (at == MAP_FAILED)
            return -1;
        memory = static_cast<char*>(at);
    }
    for (uint64_t offset = 0; offset < bytes; offset += 4096)
        memory[offset] = 1;
    return static_cast<long>(bytes >> 20);
}

} // namespace

// ---- a neighbour compartment's objects ----

int check_serve(Args const&)
{
    Report report("serve");
    created(report, "/tmp/neighbour-secret", [] {
        int fd = ::open("/tmp/neighbour-secret", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd >= 0 && ::write(fd, "neighbour secret\n", 17) == 17)
            return static_cast<long>(::close(fd));
        return -1L;
    }());
    created(report, "/dev/shm/bulkhead-neighbour", [] {
        int fd = ::open("/dev/shm/bulkhead-neighbour", O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
        return fd < 0 ? -1L : static_cast<long>(::close(fd));
    }());
    for (std::string const& name : {std::string("@") + neighbour_abstract, std::string(neighbour_path_socket)}) {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address;
        socklen_t length = unix_address(name, address);
        created(report, "unix socket " + name,
                ::bind(fd, reinterpret_cast<sockaddr*>(&address), length) < 0 ? -1L : ::listen(fd, 8)); // kept open
    }
    int tcp = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in any {};
    any.sin_family = AF_INET;
    any.sin_port = htons(neighbour_tcp_port);
    created(report, "tcp listener on port 4242",
            ::bind(tcp, reinterpret_cast<sockaddr*>(&any), sizeof(any)) < 0 ? -1L : ::listen(tcp, 8));
    created(report, "SysV shm 0x4242", ::shmget(neighbour_key, 4096, IPC_CREAT | 0666));
    created(report, "SysV semaphore 0x4242", ::semget(neighbour_key, 1, IPC_CREAT | 0666));
    created(report, "SysV message queue 0x4242", ::msgget(neighbour_key, IPC_CREAT | 0666));
    mqd_t queue = ::mq_open(neighbour_mq, O_CREAT | O_RDWR, 0666, nullptr);
    created(report, std::string("POSIX message queue ") + neighbour_mq, queue == static_cast<mqd_t>(-1) ? -1L : 0L);
    say_ready();
    wait_for_stdin_eof();
    return report.exit_code();
}

int check_neighbour(Args const& args)
{
    Report report("neighbour");
    struct stat st {};
    expect_refused(report, "stat(/tmp/neighbour-secret)", now(::stat("/tmp/neighbour-secret", &st)), {ENOENT});
    expect_refused(report, "open(/dev/shm/bulkhead-neighbour)", now(open_close("/dev/shm/bulkhead-neighbour")),
                   {ENOENT});
    expect_refused(report, std::string("connect(@") + neighbour_abstract + ")",
                   now(connect_unix(std::string("@") + neighbour_abstract)), {ECONNREFUSED, EPERM});
    expect_refused(report, std::string("connect(") + neighbour_path_socket + ")",
                   now(connect_unix(neighbour_path_socket)), {ENOENT});
    // Loopback works in every compartment, and it is the compartment's own: the neighbour's listener on
    // its loopback is not here (a blocking connect on lo is answered at once, by a reset).
    expect_refused(report, "connect(tcp 127.0.0.1:4242)",
                   now(connect_ip(SOCK_STREAM, "127.0.0.1", neighbour_tcp_port, true)), {ECONNREFUSED});
    expect_refused(report, "shmget(0x4242)", now(::shmget(neighbour_key, 0, 0)), {ENOENT});
    expect_refused(report, "semget(0x4242)", now(::semget(neighbour_key, 0, 0)), {ENOENT});
    expect_refused(report, "msgget(0x4242)", now(::msgget(neighbour_key, 0)), {ENOENT});
    expect_refused(report, std::string("mq_open(") + neighbour_mq + ")", now(mq_try(neighbour_mq)), {ENOENT});
    std::string seen;
    for (pid_t pid : visible_pids()) {
        for (auto const& arg : cmdline_of(pid)) {
            if (arg == "serve")
                seen += " " + std::to_string(pid);
        }
    }
    (seen.empty() ? report.pass("the neighbour's processes are not visible")
                  : report.fail("the neighbour's processes are visible:" + seen));
    // A host abstract socket the harness holds.
    for (auto const& name : args)
        expect_refused(report, "connect(host " + name + ")", now(connect_unix(name)), {ECONNREFUSED, EPERM, ENOENT});
    return report.exit_code();
}

// ---- the network ----

int check_network(Args const& args)
{
    Report report("network");
    bool tcp = true;
    int vsock_port = -1;
    for (size_t i = 0; i < args.size(); ++i) {
        if (args[i] == "--no-tcp")
            tcp = false;
        else if (args[i] == "--vsock-port" && i + 1 < args.size())
            vsock_port = std::atoi(args[++i].c_str());
    }
    std::string dev;
    read_file("/proc/net/dev", dev);
    std::string interfaces;
    bool only_lo = true;
    for (size_t start = 0, line = 0; start < dev.size(); ++line) {
        size_t end = dev.find('\n', start);
        if (end == std::string::npos)
            end = dev.size();
        std::string text = dev.substr(start, end - start);
        start = end + 1;
        size_t colon = text.find(':');
        if (line < 2 || colon == std::string::npos)
            continue;
        std::string name = text.substr(0, colon);
        name.erase(0, name.find_first_not_of(' '));
        interfaces += " " + name;
        only_lo &= name == "lo";
    }
    (only_lo && !interfaces.empty() ? report.pass("interfaces:" + interfaces)
                                    : report.fail("interfaces:" + interfaces + " (expected only lo)"));
    std::string routes;
    read_file("/proc/net/route", routes);
    size_t v4 = 0;
    for (char c : routes)
        v4 += c == '\n';
    (v4 <= 1 ? report.pass("no IPv4 route") : report.fail("IPv4 routes: " + routes));
    // Each routing table lists the kernel's null entry: a reject route on lo; lo, which is up, adds the
    // local route of ::1. Anything on another device is a way out.
    std::string routes6;
    read_file("/proc/net/ipv6_route", routes6);
    size_t rejects = 0;
    std::string usable;
    for (size_t start = 0; start < routes6.size();) {
        size_t end = routes6.find('\n', start);
        if (end == std::string::npos)
            end = routes6.size();
        std::string line = routes6.substr(start, end - start);
        start = end + 1;
        char device[64] = {};
        unsigned long flags = 0;
        bool parsed = std::sscanf(line.c_str(), "%*s %*s %*s %*s %*s %*s %*s %*s %lx %63s", &flags, device) == 2;
        if (parsed && flags & 0x0200 && std::string_view(device) == "lo")
            ++rejects;
        else if (parsed && std::string_view(device) == "lo" && line.rfind("00000000000000000000000000000001 80 ", 0) == 0)
            continue; // ::1/128 on lo
        else if (!line.empty())
            usable += " [" + line + "]";
    }
    (usable.empty() ? report.pass("no IPv6 route (" + std::to_string(rejects) + " reject entries on lo)")
                    : report.fail("IPv6 routes:" + usable));

    expect_refused(report, "udp connect(192.0.2.1:9)", now(connect_ip(SOCK_DGRAM, "192.0.2.1", 9)), {ENETUNREACH});
    expect_refused(report, "udp connect([2001:db8::1]:9)", now(connect_ip(SOCK_DGRAM, "2001:db8::1", 9)),
                   {ENETUNREACH, EADDRNOTAVAIL});
    if (tcp) {
        // A non-blocking connect that is not refused at once has sent a SYN: EINPROGRESS is a FAIL.
        expect_refused(report, "tcp connect(198.51.100.1:9)", now(connect_ip(SOCK_STREAM, "198.51.100.1", 9)),
                       {ENETUNREACH});
    }
    expect_refused(report, "socket(AF_INET, SOCK_RAW)", now([] {
                       int fd = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
                       return fd < 0 ? -1L : static_cast<long>(::close(fd));
                   }()),
                   {EPERM});
    expect_refused(report, "socket(AF_PACKET, SOCK_RAW)", now([] {
                       int fd = ::socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
                       return fd < 0 ? -1L : static_cast<long>(::close(fd));
                   }()),
                   {EPERM});

    // vsock is not confined by the network namespace: it reaches the hypervisor (CID 2) and shares
    // its port space with the host. A compartment with no network must not get such a socket.
    int vsock = ::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (vsock < 0) {
        int err = errno;
        (err == EAFNOSUPPORT || err == EPERM || err == EACCES)
            ? report.pass("socket(AF_VSOCK) refused with " + errno_name(err))
            : report.fail("socket(AF_VSOCK) failed with unexpected " + errno_name(err));
    } else {
        std::string evidence;
        if (vsock_port > 0) {
            sockaddr_vm address {};
            address.svm_family = AF_VSOCK;
            address.svm_cid = VMADDR_CID_ANY;
            address.svm_port = static_cast<unsigned>(vsock_port);
            int rc = ::bind(vsock, reinterpret_cast<sockaddr*>(&address), sizeof(address));
            evidence = rc < 0 && errno == EADDRINUSE ? "; vsock port " + std::to_string(vsock_port)
                    + ", bound on the host, is in use here too: the port space is the host's"
                                                     : "; binding vsock port " + std::to_string(vsock_port) + ": "
                    + (rc == 0 ? "succeeded" : errno_name(errno));
        }
        report.fail(
            "socket(AF_VSOCK) succeeded: the compartment has a channel to the hypervisor outside its network namespace"
            + evidence);
        ::close(vsock);
    }
    return report.exit_code();
}

// ---- IPC must die with its compartment ----

int check_shm_create(Args const&)
{
    Report report("shm-create");
    created(report, "SysV shm 0x4343", ::shmget(leftover_key, 4096, IPC_CREAT | IPC_EXCL | 0600));
    created(report, "SysV semaphore 0x4343", ::semget(leftover_key, 1, IPC_CREAT | IPC_EXCL | 0600));
    created(report, "SysV message queue 0x4343", ::msgget(leftover_key, IPC_CREAT | IPC_EXCL | 0600));
    mqd_t queue = ::mq_open(leftover_mq, O_CREAT | O_EXCL | O_RDWR, 0600, nullptr);
    created(report, std::string("POSIX message queue ") + leftover_mq, queue == static_cast<mqd_t>(-1) ? -1L : 0L);
    return report.exit_code(); // exits without removing anything
}

int check_shm_absent(Args const&)
{
    Report report("shm-absent");
    expect_refused(report, "shmget(0x4343)", now(::shmget(leftover_key, 0, 0)), {ENOENT});
    expect_refused(report, "semget(0x4343)", now(::semget(leftover_key, 0, 0)), {ENOENT});
    expect_refused(report, "msgget(0x4343)", now(::msgget(leftover_key, 0)), {ENOENT});
    expect_refused(report, std::string("mq_open(") + leftover_mq + ")", now(mq_try(leftover_mq)), {ENOENT});
    return report.exit_code();
}

// ---- resource limits ----

int check_forkbomb(Args const& args)
{
    Report report("forkbomb");
    long limit = args.empty() ? 0 : std::atol(args[0].c_str());
    if (limit <= 0) {
        report.fail("usage: forkbomb PIDS_LIMIT");
        return report.exit_code();
    }
    size_t const cap = static_cast<size_t>(std::max(4 * limit, 256L));
    std::vector<pid_t> children;
    int err = 0;
    while (children.size() < cap) {
        pid_t pid = ::fork();
        if (pid < 0) {
            err = errno;
            break;
        }
        if (pid == 0) {
            while (true)
                ::pause();
        }
        children.push_back(pid);
    }
    std::string forked = std::to_string(children.size()) + " children";
    if (err == 0)
        report.fail("no limit: " + forked + " forked without a refusal");
    else if (err != EAGAIN)
        report.fail("fork failed with unexpected " + errno_name(err) + " after " + forked);
    else
        report.pass("fork refused with EAGAIN after " + forked);
    size_t visible = visible_pids().size();
    (visible <= static_cast<size_t>(limit)
         ? report.pass(std::to_string(visible) + " processes at the limit of " + std::to_string(limit))
         : report.fail(std::to_string(visible) + " processes, over the limit of " + std::to_string(limit)));

    say_ready(); // the harness now checks that the host and a neighbour still start processes
    wait_for_stdin_eof();
    pid_t again = ::fork();
    if (again == 0)
        ::_exit(0);
    if (again > 0) {
        ::waitpid(again, nullptr, 0);
        report.fail("a fork succeeded while the compartment should still be at its limit");
    } else {
        (errno == EAGAIN ? report.pass("still at the limit after the neighbours ran")
                         : report.fail("fork at the limit failed with unexpected " + errno_name(errno)));
    }
    for (pid_t pid : children)
        ::kill(pid, SIGKILL);
    size_t reaped = 0;
    for (pid_t pid : children)
        reaped += ::waitpid(pid, nullptr, 0) == pid;
    (reaped == children.size() ? report.pass("all " + forked + " killed and reaped")
                               : report.fail("only " + std::to_string(reaped) + " of " + forked + " reaped"));
    return report.exit_code();
}

int check_memorybomb(Args const& args)
{
    Report report("memorybomb");
    uint64_t bytes = args.empty() ? 0 : std::strtoull(args[0].c_str(), nullptr, 10);
    if (bytes == 0) {
        report.fail("usage: memorybomb BYTES (four times the compartment's memory limit)");
        return report.exit_code();
    }
    std::string size = std::to_string(bytes >> 20) + " MiB";
    for (bool shared : {false, true}) {
        std::string what = std::string(shared ? "SysV shm" : "anonymous") + " bomb of " + size;
        Outcome outcome = in_child([&] { return touch_memory(bytes, shared); });
        if (outcome.signal == SIGKILL)
            report.pass(what + ": the child was killed with SIGKILL (out of memory)");
        else if (outcome.signal != 0)
            report.fail(what + ": the child died of " + signal_name(outcome.signal));
        else if (!outcome.ran)
            report.fail(what + ": could not start the child: " + errno_name(outcome.err));
        else if (outcome.rc < 0 && (outcome.err == ENOMEM || outcome.err == ENOSPC || outcome.err == EINVAL))
            report.pass(what + ": the allocation was refused with " + errno_name(outcome.err));
        else if (outcome.rc < 0)
            report.fail(what + ": failed with unexpected " + errno_name(outcome.err));
        else
            report.fail(what + ": touched all " + std::to_string(outcome.rc) + " MiB");
    }

    // Keep the compartment out of memory while the harness checks its neighbours: a hog is
    // restarted each time it is killed, until stdin closes.
    say_ready();
    int kills = 0;
    std::string other;
    pid_t hog = 0;
    bool closed = false;
    while (!closed || hog > 0) {
        if (hog == 0 && !closed) {
            hog = ::fork();
            if (hog == 0)
                ::_exit(touch_memory(bytes, false) < 0 ? 1 : 0);
            if (hog < 0) {
                other += " fork: " + errno_name(errno);
                hog = 0;
            }
        }
        pollfd in {0, POLLIN, 0};
        if (!closed && ::poll(&in, 1, 10) > 0) {
            char buffer[64];
            closed = ::read(0, buffer, sizeof(buffer)) <= 0;
        }
        int status = 0;
        if (hog > 0 && ::waitpid(hog, &status, closed ? 0 : WNOHANG) == hog) {
            if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
                ++kills;
            else
                other += WIFSIGNALED(status) ? " " + signal_name(WTERMSIG(status))
                                             : " exit " + std::to_string(WEXITSTATUS(status));
            hog = 0;
        }
    }
    (kills > 0 && other.empty()
         ? report.pass("a sustained hog was killed " + std::to_string(kills) + " times, the probe lived on")
         : report.fail("hog kills: " + std::to_string(kills) + ", other ends:" + other));
    return report.exit_code();
}

} // namespace probe
