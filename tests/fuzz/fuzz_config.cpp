// Fuzzes system.toml parsing: any input yields either a config or at least one positioned error,
// never both, never a crash.
#include "config/config.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(uint8_t const* data, size_t size)
{
    std::string_view text(reinterpret_cast<char const*>(data), size);
    auto outcome = bulkhead::config::parse_system_config(text, "fuzz.toml");
    if (outcome.config.has_value() == !outcome.errors.empty())
        std::abort();
    for (auto const& error : outcome.errors) {
        if (error.message.empty() || error.format().find("fuzz.toml:") != 0)
            std::abort();
    }
    if (outcome.config) {
        // Every reference of a valid configuration resolves.
        for (auto const& c : outcome.config->compartments) {
            if (outcome.config->find_template(c.template_name) == nullptr)
                std::abort();
            if (c.network != "none" && outcome.config->find_compartment(c.network) == nullptr)
                std::abort();
        }
    }
    return 0;
}
