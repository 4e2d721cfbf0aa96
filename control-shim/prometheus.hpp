// Prometheus text exposition format 0.0.4 (prometheus.io/docs/instrumenting/exposition_formats),
// the body of GET /metrics. Plain C++, no DPDK: the API thread fills a prom_writer from a
// counter snapshot and sends take().
//
//   prom_writer w;
//   w.family("sagd_rx_packets_total", prom_type::counter, "Packets received, by port.");
//   w.sample({{"port", "lan0"}}, uint64_t{12});
//   w.sample({{"port", "wan0"}}, uint64_t{7});
//   w.family("sagd_workers", prom_type::gauge, "Worker lcores.");
//   w.sample({}, uint64_t{2});
//   std::string body = w.take();
//
// Conventions (documented, not enforced): names start with "sagd_"; counters end in "_total"
// and never go down; units are base units with the unit in the name (_bytes, _seconds); no ':'
// in names (valid, but reserved for recording rules).
//
// Rules the writer does enforce (the format's, exposition_formats.md "Text format details"):
//   - one family at a time: family() opens a family and closes the previous one, sample() goes
//     to the open family, so the samples of a family are contiguous and its HELP and TYPE lines
//     come once, before them; opening a family name a second time before take() is refused;
//   - metric names match [a-zA-Z_:][a-zA-Z0-9_:]*, label names [a-zA-Z_][a-zA-Z0-9_]* and do
//     not start with "__" (reserved), no label name twice in a sample, no series (label set)
//     twice in a family.
// Breaking one of these is a bug in the caller, not bad input: by default it asserts in debug
// builds; in release builds (and with invalid_call::skip) the call is skipped, counted in
// rejected() and described in first_error(); after a refused family() its samples are skipped
// too. The output stays valid either way.
//
// Escaping: help text \ and newline; label values \, " and newline. Invalid UTF-8 in help text
// or label values (the format requires UTF-8) is replaced by U+FFFD (so two label values that
// differ only in invalid bytes may become one series: the second is refused as a repeat).
// Values: uint64_t exactly as an integer (cast other integer types: the overloads are ambiguous
// on purpose); double in the shortest form that reads back as the same value (std::to_chars);
// +Inf, -Inf and NaN as Prometheus spells them. No timestamps.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>
#include <utility>

namespace sagd::shim {

enum class prom_type : uint8_t { counter, gauge };
const char* to_string(prom_type t) noexcept;

// What a misuse of the writer does (see above).
enum class invalid_call : uint8_t {
    assert_in_debug, // assert() in debug builds; skip and count in release builds
    skip,            // always skip and count (tests, callers that check rejected())
};

bool is_valid_metric_name(std::string_view name) noexcept;
bool is_valid_label_name(std::string_view name) noexcept; // "__" prefixes are refused

class prom_writer {
  public:
    using label = std::pair<std::string_view, std::string_view>; // name, value

    explicit prom_writer(invalid_call on_invalid = invalid_call::assert_in_debug)
        : on_invalid_(on_invalid) {}

    // Opens family `name` (emits its HELP, unless help is empty, and TYPE lines); closes the
    // family that was open.
    void family(std::string_view name, prom_type type, std::string_view help);
    // One sample of the open family (sample name = family name).
    void sample(std::initializer_list<label> labels, uint64_t value);
    void sample(std::initializer_list<label> labels, double value);

    // The text so far (every line ends in '\n'); the writer is empty and reusable afterwards
    // (families may be opened again, rejected() and first_error() start over: read them
    // before take()).
    std::string take();

    size_t rejected() const noexcept { return rejected_; }
    const std::string& first_error() const noexcept { return first_error_; }

  private:
    void reject(std::string message);
    void sample_line(std::initializer_list<label> labels, std::string_view value);

    invalid_call on_invalid_;
    std::string out_;
    std::string open_;              // name of the open family; empty: none (or refused)
    std::set<std::string> emitted_; // families opened since the last take()
    std::set<std::string> series_;  // label sets of the open family, as written
    size_t rejected_ = 0;
    std::string first_error_;
};

} // namespace sagd::shim
