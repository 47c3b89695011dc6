#include "sys/link.hpp"

#include "sys/fd.hpp"

#include <cerrno>
#include <cstring>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

namespace bulkhead::sys {

Status set_link_up(std::string_view name)
{
    ifreq request{};
    if (name.empty() || name.size() >= sizeof(request.ifr_name))
        return Error::from_message("interface name '" + std::string(name) + "' is empty or too long");
    std::memcpy(request.ifr_name, name.data(), name.size());
    UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!sock)
        return Error::from_syscall("socket(AF_INET)", errno);
    if (::ioctl(sock.get(), SIOCGIFFLAGS, &request) < 0)
        return Error::from_syscall("SIOCGIFFLAGS", name, errno);
    if (request.ifr_flags & IFF_UP)
        return {};
    request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
    if (::ioctl(sock.get(), SIOCSIFFLAGS, &request) < 0)
        return Error::from_syscall("SIOCSIFFLAGS", name, errno);
    return {};
}

} // namespace bulkhead::sys
