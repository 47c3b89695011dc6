// Policy evaluation at scale: a policy of 10,000 rules (500 services, names, tags, disposables and
// `*` rules mixed in), decisions per second on one core for calls that match early, late, or not
// at all; and the time to parse the 10,000-rule text. Run: build/bench/bulkhead_policy_bench.
#include "policy/policy.hpp"

#include <benchmark/benchmark.h>

#include <string>
#include <vector>

using namespace bulkhead;
using namespace bulkhead::policy;

namespace {

std::string policy_text(int rules)
{
    std::string text;
    for (int i = 0; i < rules; ++i) {
        std::string service = "svc" + std::to_string(i % 500) + ".Call";
        std::string source = i % 7 == 0 ? "@tag:t" + std::to_string(i % 13) : "c" + std::to_string(i % 300);
        std::string target = i % 11 == 0 ? "@disposable:tpl" + std::to_string(i % 5) : "c" + std::to_string((i * 7) % 300);
        std::string arg = i % 3 == 0 ? "*" : "+a" + std::to_string(i % 4);
        if (i % 997 == 0)
            service = "*"; // a few rules for every service
        text += service + " " + arg + " " + source + " " + target + (i % 2 ? " allow" : " ask") + "\n";
    }
    text += "* * @any @any deny\n";
    return text;
}

Policy const& big_policy()
{
    static Policy policy = parse(policy_text(10000), "bench.policy", {}).release_value();
    return policy;
}

Party compartment(int i)
{
    Party party;
    party.name = "c" + std::to_string(i % 300);
    party.tags = {"t" + std::to_string(i % 13)};
    return party;
}

void evaluate_mix(benchmark::State& state)
{
    Policy const& policy = big_policy();
    std::vector<Request> requests;
    for (int i = 0; i < 1024; ++i) {
        Request request;
        request.service = i % 5 == 0 ? "unknown.Service" : "svc" + std::to_string((i * 31) % 500) + ".Call";
        request.arg = i % 2 ? "" : "a" + std::to_string(i % 4);
        request.source = compartment(i * 17);
        request.target = compartment(i * 29);
        requests.push_back(request);
    }
    size_t i = 0;
    for (auto _ : state) {
        auto decision = evaluate(policy, requests[i++ & 1023]);
        benchmark::DoNotOptimize(decision);
    }
    state.counters["decisions/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(evaluate_mix);

void parse_10000_rules(benchmark::State& state)
{
    std::string text = policy_text(10000);
    for (auto _ : state) {
        auto policy = parse(text, "bench.policy", {});
        benchmark::DoNotOptimize(policy);
    }
}
BENCHMARK(parse_10000_rules)->Unit(benchmark::kMillisecond);

} // namespace

BENCHMARK_MAIN();
