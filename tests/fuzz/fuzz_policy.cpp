// Fuzzes the policy parser with arbitrary files (one include file is served by the reader). Besides
// "no crash, no sanitizer report": what parses, evaluates the same through the index (evaluate)
// and through every rule in order (explain), for a handful of requests; and lint never fails.
#include "policy/policy.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace bulkhead;
using namespace bulkhead::policy;

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string text(reinterpret_cast<char const*>(data), size);
    Reader reader;
    reader.read_file = [](std::string const& path) -> Result<std::string> {
        if (path == "./inc.policy")
            return std::string("bulkhead.Filecopy * @tag:work @any ask\n!include inc.policy\n");
        return Error::from_message("no such file");
    };
    reader.list_dir = [](std::string const&) -> Result<std::vector<std::string>> { return std::vector<std::string> {"inc.policy"}; };
    auto policy = parse(text, "fuzz.policy", reader);
    if (policy.is_error())
        return 0;
    std::vector<Party> parties(4);
    parties[0].name = "work";
    parties[0].tags = {"work"};
    parties[1].name = "vault";
    parties[2].name = "disp-1";
    parties[2].disposable = true;
    parties[2].template_name = "untrusted";
    parties[3].host = true;
    for (int i = 0; i < 64; ++i) { // every service, argument, source and target, with each target kind
        Request request;
        request.service = i % 3 == 0 ? "bulkhead.Filecopy" : i % 3 == 1 ? "my.Service" : "x";
        request.arg = i % 2 ? "" : "work";
        request.source = parties[i % 4];
        request.target = parties[(i / 4) % 4];
        request.target_kind = static_cast<TargetKind>((i / 16) % 4);
        request.disposable_template = "untrusted";
        std::vector<Step> steps;
        auto by_index = evaluate(policy.value(), request);
        auto in_order = explain(policy.value(), request, steps);
        if (by_index.action != in_order.action || by_index.rule != in_order.rule) {
            std::fprintf(stderr, "fuzz_policy: evaluate and explain disagree\n");
            std::abort();
        }
    }
    (void)lint(policy.value(), Known {{"work", "vault"}, {"work"}, {"untrusted"}});
    return 0;
}
