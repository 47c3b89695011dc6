// Fuzzes the admin API's request decoder (src/broker/admin_request.hpp): the bytes of one record on
// the broker's admin socket. Besides "no crash, no sanitizer report", for every input and 0 or 1
// descriptors beside it:
//   a request either decodes or fails with a message that says "malformed request" or names the op;
//   what decodes has a known op, fields within their bounds (audit pages 1..256, rows and cols up
//   to 65535, argv within the wire's list bound and without NUL), and descriptors only for run;
//   encoding what decoded and decoding that again gives the same request (nothing is lost or
//   invented between the CLI's encoding and the broker's decoding).
#include "base/wire.hpp"
#include "broker/admin_request.hpp"

#include <cstdio>
#include <cstdlib>
#include <set>
#include <string>

using namespace bulkhead;
using namespace bulkhead::broker;

namespace {

void check(bool holds, char const* invariant)
{
    if (holds)
        return;
    std::fprintf(stderr, "fuzz_admin: invariant broken: %s\n", invariant);
    std::abort();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    static std::set<std::string> const ops = {"ls", "net", "plan", "apply", "policy_check", "pending", "approve", "deny",
                                              "audit", "audit_verify", "rollback", "start", "stop", "restart", "run", "grant", "revoke", "show", "generations", "config_show", "stop_all"};
    for (size_t descriptors : {0, 1}) {
        auto decoded = decode_admin_request(std::span(data, size), descriptors);
        if (decoded.is_error()) {
            auto const& message = decoded.error().message();
            check(message.starts_with("malformed request: ") || message.starts_with("unknown request '"),
                  "an error says what is wrong");
            continue;
        }
        auto const& request = decoded.value();
        check(ops.contains(request.op), "only known ops decode");
        check(descriptors == 0 || request.op == "run", "descriptors only beside run");
        if (request.op == "audit")
            check(request.limit >= 1 && request.limit <= admin_audit_page, "audit pages are 1..256");
        check(request.rows <= 0xffff && request.cols <= 0xffff, "rows and cols fit a window size");
        check(request.argv.size() <= wire::max_list_items, "argv within the wire's bound");
        for (auto const& word : request.argv)
            check(word.find('\0') == std::string::npos, "argv without NUL");
        std::string encoded = encode_admin_request(request);
        auto again = decode_admin_request(std::span(reinterpret_cast<uint8_t const*>(encoded.data()), encoded.size()),
                                          descriptors);
        check(again.has_value(), "an encoded request decodes");
        check(again.value() == request, "encoding and decoding give the request back");
    }
    return 0;
}
