// Loop devices: a file made into a block device, for a filesystem image to be mounted from.
#pragma once

#include "base/result.hpp"
#include "sys/fd.hpp"

#include <string>

namespace bulkhead::sys {

struct LoopDevice {
    UniqueFd fd;      // keep it open until the filesystem is mounted: the last close detaches
    std::string path; // "/dev/loopN"
};

// Attaches `image_fd` to a free loop device that detaches itself when its last user goes
// (LO_FLAGS_AUTOCLEAR: once the filesystem on it is unmounted and `fd` closed).
Result<LoopDevice> attach_loop(int image_fd);

} // namespace bulkhead::sys
