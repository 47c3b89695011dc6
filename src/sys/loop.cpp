#include "sys/loop.hpp"

#include <cerrno>
#include <fcntl.h>
#include <linux/loop.h>
#include <sys/ioctl.h>

namespace bulkhead::sys {

Result<LoopDevice> attach_loop(int image_fd)
{
    UniqueFd control(::open("/dev/loop-control", O_RDWR | O_CLOEXEC));
    if (!control)
        return Error::from_syscall("open", "/dev/loop-control", errno);
    // Another process may take the free device between the two calls: then ask again.
    for (int attempt = 0; attempt < 16; ++attempt) {
        int number = ::ioctl(control.get(), LOOP_CTL_GET_FREE);
        if (number < 0)
            return Error::from_syscall("LOOP_CTL_GET_FREE", errno);
        std::string path = "/dev/loop" + std::to_string(number);
        UniqueFd device(::open(path.c_str(), O_RDWR | O_CLOEXEC));
        if (!device)
            return Error::from_syscall("open", path, errno);
        loop_config config {};
        config.fd = static_cast<uint32_t>(image_fd);
        config.info.lo_flags = LO_FLAGS_AUTOCLEAR;
        if (::ioctl(device.get(), LOOP_CONFIGURE, &config) == 0)
            return LoopDevice {std::move(device), path};
        if (errno != EBUSY)
            return Error::from_syscall("LOOP_CONFIGURE", path, errno);
    }
    return Error::from_message("no free loop device after 16 attempts");
}

} // namespace bulkhead::sys
