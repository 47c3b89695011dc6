// Unix sockets: listening and connecting by path, and records with descriptors beside them
// (SCM_RIGHTS). Every receive is bounded: a record longer than the caller's limit, or more
// descriptors than it expects, is an error, and descriptors that arrive anyway are closed.
#pragma once

#include "base/result.hpp"
#include "sys/fd.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <sys/types.h>
#include <vector>

namespace bulkhead::sys {

// A SOCK_SEQPACKET listening socket at `path` (an existing file there is replaced), mode `mode`.
Result<UniqueFd> listen_unix(std::string const& path, mode_t mode, int backlog = 128);
Result<UniqueFd> connect_unix(std::string const& path);
// A connection from a listening socket, non-blocking and close-on-exec; an empty fd when none waits.
Result<UniqueFd> accept_unix(int listener);

struct PeerCredentials {
    pid_t pid = 0;
    uid_t uid = 0;
    gid_t gid = 0;
};
Result<PeerCredentials> peer_credentials(int socket);

// Sends one record with `fds` beside it (borrowed).
Status send_record(int socket, std::span<uint8_t const> bytes, std::span<int const> fds = {});
Status send_record(int socket, std::string_view text, std::span<int const> fds = {});

struct Record {
    std::vector<uint8_t> bytes;
    std::vector<UniqueFd> fds;
    bool end_of_stream = false; // the peer closed the connection
};

// Receives one record of at most `max_bytes` with at most `max_fds` descriptors. A longer record
// or more descriptors is an error (the extra descriptors are closed). EAGAIN comes back as an
// error with code EAGAIN on non-blocking sockets.
Result<Record> receive_record(int socket, size_t max_bytes, size_t max_fds);

} // namespace bulkhead::sys
