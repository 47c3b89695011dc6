#include "sys/socket.hpp"

#include <cstring>
#include <memory>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

namespace bulkhead::sys {

namespace {

constexpr size_t max_fds_per_record = 16;

Result<sockaddr_un> unix_address(std::string const& path)
{
    sockaddr_un address {};
    address.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof(address.sun_path))
        return Error::from_message("socket path '" + path + "' is empty or longer than "
            + std::to_string(sizeof(address.sun_path) - 1) + " bytes");
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    return address;
}

} // namespace

Result<UniqueFd> listen_unix(std::string const& path, mode_t mode, int backlog)
{
    sockaddr_un address = TRY(unix_address(path));
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd)
        return Error::from_syscall("socket", errno);
    if (::unlink(path.c_str()) < 0 && errno != ENOENT)
        return Error::from_syscall("unlink", path, errno);
    // Bound with a umask that leaves no window in which the socket has looser permissions.
    mode_t old_mask = ::umask(0777 & ~mode);
    int rc = ::bind(fd.get(), reinterpret_cast<sockaddr const*>(&address), sizeof(address));
    int err = errno;
    ::umask(old_mask);
    if (rc < 0)
        return Error::from_syscall("bind", path, err);
    if (::chmod(path.c_str(), mode) < 0)
        return Error::from_syscall("chmod", path, errno);
    if (::listen(fd.get(), backlog) < 0)
        return Error::from_syscall("listen", path, errno);
    return fd;
}

Result<UniqueFd> connect_unix(std::string const& path)
{
    sockaddr_un address = TRY(unix_address(path));
    UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
    if (!fd)
        return Error::from_syscall("socket", errno);
    if (::connect(fd.get(), reinterpret_cast<sockaddr const*>(&address), sizeof(address)) < 0)
        return Error::from_syscall("connect", path, errno);
    return fd;
}

Result<UniqueFd> accept_unix(int listener)
{
    int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR)
            return UniqueFd();
        return Error::from_syscall("accept4", errno);
    }
    return UniqueFd(fd);
}

Result<PeerCredentials> peer_credentials(int socket)
{
    ucred credentials {};
    socklen_t length = sizeof(credentials);
    if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &credentials, &length) < 0)
        return Error::from_syscall("getsockopt(SO_PEERCRED)", errno);
    return PeerCredentials {credentials.pid, credentials.uid, credentials.gid};
}

Status send_record(int socket, std::span<uint8_t const> bytes, std::span<int const> fds)
{
    if (fds.size() > max_fds_per_record)
        return Error::from_message("too many descriptors for one record");
    iovec iov {const_cast<uint8_t*>(bytes.data()), bytes.size()};
    msghdr message {};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds_per_record)] {};
    if (!fds.empty()) {
        message.msg_control = control;
        message.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(header), fds.data(), sizeof(int) * fds.size());
    }
    while (true) {
        ssize_t sent = ::sendmsg(socket, &message, MSG_NOSIGNAL);
        if (sent >= 0)
            return {};
        if (errno != EINTR)
            return Error::from_syscall("sendmsg", errno);
    }
}

Status send_record(int socket, std::string_view text, std::span<int const> fds)
{
    return send_record(socket, std::span(reinterpret_cast<uint8_t const*>(text.data()), text.size()), fds);
}

Result<Record> receive_record(int socket, size_t max_bytes, size_t max_fds)
{
    Record record;
    // One byte more than allowed, so that an over-long record shows as such rather than as MSG_TRUNC
    // of a record that just fits. Left uninitialised: only the pages the kernel writes are touched
    // (zero-filling a 4 MiB buffer per reply cost the client ~10 ms of page faults).
    auto buffer = std::make_unique_for_overwrite<uint8_t[]>(max_bytes + 1);
    iovec iov {buffer.get(), max_bytes + 1};
    msghdr message {};
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * max_fds_per_record)] {};
    message.msg_control = control;
    message.msg_controllen = sizeof(control);
    ssize_t received;
    do
        received = ::recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    while (received < 0 && errno == EINTR);
    if (received < 0)
        return Error::from_syscall("recvmsg", errno);
    // Take ownership of every descriptor first, so that none leaks on any error below.
    for (cmsghdr* header = CMSG_FIRSTHDR(&message); header != nullptr; header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS)
            continue;
        size_t count = (header->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; ++i) {
            int fd;
            std::memcpy(&fd, CMSG_DATA(header) + i * sizeof(int), sizeof(int));
            record.fds.emplace_back(fd);
        }
    }
    if (message.msg_flags & MSG_CTRUNC)
        return Error::from_message("record came with more descriptors than allowed");
    if (record.fds.size() > max_fds)
        return Error::from_message("record came with " + std::to_string(record.fds.size()) + " descriptors (at most "
            + std::to_string(max_fds) + ")");
    if (static_cast<size_t>(received) > max_bytes || (message.msg_flags & MSG_TRUNC))
        return Error::from_message("record longer than " + std::to_string(max_bytes) + " bytes");
    if (received == 0 && record.fds.empty()) {
        record.end_of_stream = true;
        return record;
    }
    record.bytes.assign(buffer.get(), buffer.get() + received);
    return record;
}

} // namespace bulkhead::sys
