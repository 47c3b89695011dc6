// The admin API's request decoder: every op with its fields, defaults, and what is refused.
#include "broker/admin_request.hpp"

#include <gtest/gtest.h>

using namespace bulkhead::broker;

namespace {

bulkhead::Result<AdminRequest> decode(std::string const& text, size_t descriptors = 0)
{
    return decode_admin_request(std::span(reinterpret_cast<uint8_t const*>(text.data()), text.size()), descriptors);
}

std::string error_of(std::string const& text, size_t descriptors = 0)
{
    auto decoded = decode(text, descriptors);
    return decoded.is_error() ? decoded.error().message() : "(decoded)";
}

} // namespace

TEST(AdminRequest, FieldsAndDefaults)
{
    auto run = decode(R"({"op":"run","name":"work","argv":["sh","-c","x"],"tty":true,"rows":24,"cols":80,"term":"xterm"})", 3);
    ASSERT_TRUE(run.has_value()) << run.error().message();
    EXPECT_EQ(run.value().user, "user");
    EXPECT_EQ(run.value().argv, (std::vector<std::string> {"sh", "-c", "x"}));
    EXPECT_EQ(run.value().rows, 24u);
    auto audit = decode(R"({"op":"audit"})");
    ASSERT_TRUE(audit.has_value());
    EXPECT_EQ(audit.value().limit, admin_audit_page);
    auto approve = decode(R"({"op":"approve","id":12,"target":"@dispvm"})");
    ASSERT_TRUE(approve.has_value());
    EXPECT_EQ(approve.value().id, 12u);
    EXPECT_EQ(approve.value().target, "@dispvm");
    // What the CLI sends decodes to what it meant.
    EXPECT_EQ(decode(encode_admin_request(run.value()), 3).value(), run.value());
}

TEST(AdminRequest, RefusesWhatIsNotARequest)
{
    EXPECT_EQ(error_of("[]"), "malformed request: not a JSON object");
    EXPECT_EQ(error_of("{\"op\":"), "malformed request: not a JSON object");
    EXPECT_EQ(error_of("{}"), "malformed request: missing field 'op'");
    EXPECT_EQ(error_of(R"({"op":7})"), "malformed request: field 'op' must be a string");
    EXPECT_EQ(error_of(R"({"op":"frobnicate"})"), "unknown request 'frobnicate'");
    EXPECT_EQ(error_of(R"({"op":"ls"})", 1), "malformed request: descriptors beside 'ls'");
    EXPECT_EQ(error_of(R"({"op":"stop"})"), "malformed request: missing field 'name'");
    EXPECT_EQ(error_of(R"({"op":"deny"})"), "malformed request: 'id' must be a number");
    EXPECT_EQ(error_of(R"({"op":"deny","id":-1})"), "malformed request: field 'id' must be a number up to 18446744073709551615");
    EXPECT_EQ(error_of(R"({"op":"audit","limit":257})"), "malformed request: field 'limit' must be a number up to 256");
    EXPECT_EQ(error_of(R"({"op":"run","rows":70000})"), "malformed request: field 'rows' must be a number up to 65535");
    EXPECT_EQ(error_of(R"({"op":"run","argv":["a\u0000b"]})"), "malformed request: field 'argv' must be a list of strings without NUL");
    EXPECT_EQ(error_of(R"({"op":"run","tty":"yes"})"), "malformed request: field 'tty' must be true or false");
    EXPECT_EQ(error_of(R"({"op":"policy_check","source":"a","target":"b"})"), "malformed request: missing field 'service'");
}

TEST(AdminRequest, GrantsAndHostCopies)
{
    auto grant = decode(R"({"op":"grant","name":"work","volume":"documents/work","at":"Docs","mode":"rw"})");
    ASSERT_TRUE(grant.has_value()) << grant.error().message();
    EXPECT_EQ(grant.value().volume, "documents/work");
    EXPECT_EQ(grant.value().at, "Docs");
    EXPECT_EQ(grant.value().mode, "rw");
    EXPECT_EQ(decode(encode_admin_request(grant.value())).value(), grant.value());
    auto revoke = decode(R"({"op":"revoke","name":"work","volume":"music"})");
    ASSERT_TRUE(revoke.has_value());
    EXPECT_EQ(decode(encode_admin_request(revoke.value())).value(), revoke.value());
    auto copy = decode(R"({"op":"run","name":"work","copy":"out","argv":["a.txt"]})", 4);
    ASSERT_TRUE(copy.has_value());
    EXPECT_EQ(copy.value().copy, "out");
    EXPECT_EQ(decode(encode_admin_request(copy.value()), 4).value(), copy.value());
    EXPECT_EQ(error_of(R"({"op":"grant","name":"work"})"), "malformed request: missing field 'volume'");
    EXPECT_EQ(error_of(R"({"op":"grant","name":"work","volume":"v","mode":"rwx"})"), "malformed request: 'mode' is \"ro\" or \"rw\"");
    EXPECT_EQ(error_of(R"({"op":"run","name":"work","copy":"sideways"})", 4), "malformed request: 'copy' is \"in\" or \"out\"");
    EXPECT_EQ(error_of(R"({"op":"show"})"), "malformed request: missing field 'name'");
}
