// A hostile stand-in for bulkhead-agent: what an attacker who controls a compartment's PID 1 could
// send the broker. The attack is chosen by the compartment's name (BULKHEAD_COMPARTMENT), so one
// configuration holds one compartment per attack. broker_hostile_agent_test.sh drives it.
#include "base/wire.hpp"
#include "sys/socket.hpp"

#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <string>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <vector>

using namespace bulkhead;

namespace {

void send_raw(int fd, std::vector<uint8_t> const& bytes, std::vector<int> const& fds = {})
{
    (void)sys::send_record(fd, bytes, fds);
}

std::vector<uint8_t> hello(uint32_t version)
{
    return wire::encode(wire::AgentMessage(wire::Hello {version, 0}));
}

[[noreturn]] void wait_forever()
{
    while (true)
        ::pause();
}

} // namespace

int main()
{
    ::prctl(PR_SET_DUMPABLE, 0);
    ::close(4);
    ::close(5);
    (void)::send(3, "ok", 2, MSG_NOSIGNAL);
    ::close(3);
    char const* env = std::getenv("BULKHEAD_COMPARTMENT");
    std::string attack = env ? env : "";
    if (attack == "impostor") {
        // Another process of the compartment pretends to be its agent.
        if (::fork() == 0) {
            auto connection = sys::connect_unix("/run/bulkhead/agent.sock");
            if (connection.has_value())
                send_raw(connection.value().get(), hello(wire::protocol_version));
            wait_forever();
        }
        wait_forever();
    }
    auto connection = sys::connect_unix("/run/bulkhead/agent.sock");
    if (connection.is_error())
        return 1;
    int fd = connection.value().get();
    if (attack == "garbage") {
        send_raw(fd, std::vector<uint8_t>(100, 0xab));
    } else if (attack == "oversize") {
        std::vector<uint8_t> record(2000, 0);
        record[0] = static_cast<uint8_t>(wire::MessageType::Hello);
        send_raw(fd, record);
    } else if (attack == "badversion") {
        send_raw(fd, hello(99));
    } else if (attack == "nohello") {
        send_raw(fd, wire::encode(wire::AgentMessage(wire::Started {1})));
    } else if (attack == "unknownid") {
        send_raw(fd, hello(wire::protocol_version));
        send_raw(fd, wire::encode(wire::AgentMessage(wire::Started {12345})));
    } else if (attack == "fdflood") {
        send_raw(fd, hello(wire::protocol_version));
        send_raw(fd, wire::encode(wire::AgentMessage(wire::Exited {1, 0})), {0, 0, 0, 0, 0, 0, 0, 0});
    } else if (attack == "badstatus") {
        send_raw(fd, hello(wire::protocol_version));
        send_raw(fd, {static_cast<uint8_t>(wire::MessageType::Exited), 1, 0, 0, 0, 0x7f, 0, 0, 0});
    } else if (attack == "notpty") {
        // Answers a --tty run with a pipe where the pty master belongs.
        send_raw(fd, hello(wire::protocol_version));
        auto request = sys::receive_record(fd, wire::max_broker_record, 4);
        if (request.has_value()) {
            auto message = wire::decode_broker_message(request.value().bytes);
            if (message.has_value() && std::holds_alternative<wire::Exec>(message.value())) {
                int pipe_fds[2];
                if (::pipe(pipe_fds) == 0)
                    send_raw(fd, wire::encode(wire::AgentMessage(wire::Started {std::get<wire::Exec>(message.value()).id})), {pipe_fds[0]});
            }
        }
    } else {
        send_raw(fd, hello(wire::protocol_version)); // "quiet": well-behaved, runs nothing
    }
    wait_forever();
}
