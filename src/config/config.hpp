// system.toml -> a typed, validated SystemConfig. Pure: never touches the OS (the caller reads the
// file). Every problem is reported with its position as FILE:LINE:COL: error: MESSAGE, all of them
// at once, and a configuration with any error yields no SystemConfig at all.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace bulkhead::config {

struct Position {
    std::string file;
    uint32_t line = 0;
    uint32_t column = 0;
};

struct Diagnostic {
    Position where;
    std::string message;
    // FILE:LINE:COL: error: MESSAGE
    std::string format() const;
};

enum class Label { Red, Orange, Yellow, Green, Gray, Blue, Purple, Black };
enum class Backend { Sandbox, Vm };
enum class TemplateKind { Host, Rootfs };
enum class MountMode { ReadOnly, ReadWrite };

std::string_view label_name(Label label);
std::optional<Label> parse_label(std::string_view text);

struct Template {
    std::string name;
    TemplateKind kind = TemplateKind::Host;
    std::string path; // rootfs: the root filesystem directory (absolute)
    Position where;
};

struct Volume {
    std::string name;
    Position where;
};

// A granted folder of a volume: `volume`/`path` appears at `at` (relative to the home).
struct Mount {
    std::string volume;
    std::string path;
    std::string at;
    MountMode mode = MountMode::ReadOnly;
    Position where;
};

inline constexpr uint64_t default_disk_bytes = 10ULL << 30;
inline constexpr uint64_t min_disk_bytes = 16ULL << 20;

struct Compartment {
    std::string name;
    Label label = Label::Gray;
    std::string template_name = "host";
    Backend backend = Backend::Sandbox;
    std::string network = "none"; // "none" or the name of a compartment with provides_network
    // Limits by default (DESIGN.md): with no `memory`, half of the host's RAM; with no `pids`, 4096
    // tasks. `memory = "none"` / `pids = "none"` lift the limit (memory_none / pids_none).
    uint64_t memory_bytes = 0;    // 0 = the default
    uint64_t pids = 0;            // 0 = the default
    bool memory_none = false;
    bool pids_none = false;
    // What a persistent compartment's home may hold: an ext4 image of this size (sparse: it takes
    // on the host only what is written). 0 = the default, 10G; disk_none: a plain directory, unbounded.
    uint64_t disk_bytes = 0;
    bool disk_none = false;
    uint32_t cpu_millis = 0;      // 0 = no limit; 1000 = one CPU
    std::vector<std::string> tags;
    bool autostart = false;
    bool gui = false; // shows windows on the host display (DESIGN.md "Desktop", docs/desktop.md)
    bool disposable_template = false;
    bool provides_network = false;
    uint32_t preload = 0; // ready disposables kept in a pool (disposable templates only)
    // Live disposables this compartment may have made for it at once (through @disposable calls,
    // including those its disposables make in turn). For a disposable template: the allowance of
    // each disposable the administrator starts from it.
    uint32_t max_disposables = 8;
    std::vector<Mount> mounts;
    std::string uplink = "host"; // providers: "host" (NAT through the host) or a host interface moved inside
    std::string dns;             // providers: their clients' resolver (IPv4); empty: the host's first nameserver
    std::map<std::string, std::vector<std::string>> firewall; // client compartment -> rules
    std::map<std::string, Position> firewall_where;             // client compartment -> its key's position
    Position where;
    Position template_where, network_where; // their keys' values (line 0: not given)
};

struct SystemConfig {
    std::string default_disposable; // empty: no default disposable
    Position default_disposable_where;
    std::string display; // [system] display: the host X display gui compartments show on; "" = the daemon's $DISPLAY
    std::vector<Template> templates;
    std::vector<Volume> volumes;
    std::vector<Compartment> compartments; // in the order of the file

    Compartment const* find_compartment(std::string_view name) const;
    Template const* find_template(std::string_view name) const;
};

struct ParseOutcome {
    std::optional<SystemConfig> config; // set only when `errors` is empty
    std::vector<Diagnostic> errors;
};

// Parses and validates `text`; `file` names it in diagnostics.
ParseOutcome parse_system_config(std::string_view text, std::string_view file);

// What the broker fills in where a compartment leaves a limit to its default.
struct EffectiveDefaults {
    uint64_t memory_bytes = 0; // half the host's RAM
    uint64_t pids = 4096;
};

// `config` as system.toml text with every default filled in (`bulkhead config show`); parsing the
// text gives the same configuration (with the defaults now explicit).
std::string format_system_config(SystemConfig const& config, EffectiveDefaults const& defaults);

// The embedded default system, used when no configuration exists: work, personal, untrusted
// (the default disposable), vault (no network) and sys-net (provides network).
std::string_view default_system_toml();

// Compartment, template, volume, tag names: [a-z0-9][a-z0-9-]*, at most 32 characters.
bool valid_name(std::string_view name);

// Names of disposables (disp-N) are the broker's: no configured compartment may start with this.
inline constexpr std::string_view disposable_prefix = "disp-";

} // namespace bulkhead::config
