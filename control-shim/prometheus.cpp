// Prometheus text format 0.0.4 writer: see prometheus.hpp for the rules it keeps.
#include "control-shim/prometheus.hpp"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <vector>

namespace sagd::shim {

namespace {

bool is_name_start(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}
bool is_digit(char c) noexcept {
    return c >= '0' && c <= '9';
}

// Length of the valid UTF-8 sequence at s[i], or 0 (RFC 3629 section 4: no overlong forms, no
// surrogates, nothing above U+10FFFF).
size_t utf8_sequence(std::string_view s, size_t i) noexcept {
    const auto b = [&](size_t k) { return static_cast<uint8_t>(s[i + k]); };
    const auto cont = [&](size_t k) { return i + k < s.size() && (b(k) & 0xc0) == 0x80; };
    const uint8_t c = b(0);
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        return cont(1) ? 2 : 0;
    if (c >= 0xe0 && c <= 0xef) {
        if (!cont(1) || !cont(2))
            return 0;
        if ((c == 0xe0 && b(1) < 0xa0) || (c == 0xed && b(1) > 0x9f))
            return 0; // overlong / surrogate
        return 3;
    }
    if (c >= 0xf0 && c <= 0xf4) {
        if (!cont(1) || !cont(2) || !cont(3))
            return 0;
        if ((c == 0xf0 && b(1) < 0x90) || (c == 0xf4 && b(1) > 0x8f))
            return 0; // overlong / above U+10FFFF
        return 4;
    }
    return 0;
}

// Appends `text` escaped: '\' and newline always, '"' when in a label value; invalid UTF-8
// becomes U+FFFD.
void append_escaped(std::string& out, std::string_view text, bool label_value) {
    for (size_t i = 0; i < text.size();) {
        const char c = text[i];
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '"' && label_value) {
            out += "\\\"";
        } else {
            const size_t n = utf8_sequence(text, i);
            if (n == 0) {
                out += "\xef\xbf\xbd";
                ++i;
                continue;
            }
            out.append(text.substr(i, n));
            i += n;
            continue;
        }
        ++i;
    }
}

} // namespace

const char* to_string(prom_type t) noexcept {
    switch (t) {
    case prom_type::counter:
        return "counter";
    case prom_type::gauge:
        return "gauge";
    }
    return "untyped";
}

bool is_valid_metric_name(std::string_view name) noexcept {
    if (name.empty() || !(is_name_start(name[0]) || name[0] == ':'))
        return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return is_name_start(c) || is_digit(c) || c == ':'; });
}

bool is_valid_label_name(std::string_view name) noexcept {
    if (name.empty() || !is_name_start(name[0]) || name.starts_with("__"))
        return false;
    return std::all_of(name.begin(), name.end(),
                       [](char c) { return is_name_start(c) || is_digit(c); });
}

void prom_writer::reject(std::string message) {
    if (on_invalid_ == invalid_call::assert_in_debug) {
#ifndef NDEBUG
        fprintf(stderr, "prom_writer: %s\n", message.c_str());
        assert(false && "prom_writer: invalid call (see the message above)");
#endif
    }
    if (rejected_++ == 0)
        first_error_ = std::move(message);
}

void prom_writer::family(std::string_view name, prom_type type, std::string_view help) {
    open_.clear();
    series_.clear();
    if (!is_valid_metric_name(name)) {
        reject("invalid metric name '" + std::string(name) + "'");
        return;
    }
    if (!emitted_.emplace(name).second) {
        reject("family '" + std::string(name) + "' opened twice (its samples must be contiguous)");
        return;
    }
    open_ = name;
    if (!help.empty()) {
        out_ += "# HELP ";
        out_ += name;
        out_ += ' ';
        append_escaped(out_, help, false);
        out_ += '\n';
    }
    out_ += "# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += to_string(type);
    out_ += '\n';
}

void prom_writer::sample_line(std::initializer_list<label> labels, std::string_view value) {
    if (open_.empty()) {
        reject(emitted_.empty() ? "sample before any family" : "sample of a refused family");
        return;
    }
    for (const auto& [n, v] : labels) {
        if (!is_valid_label_name(n)) {
            reject("family '" + open_ + "': invalid label name '" + std::string(n) + "'");
            return;
        }
    }
    // Labels as written (name="escaped value"), sorted: equal label sets give equal keys
    // whatever their order, and a repeated name shows up as two neighbours.
    std::vector<std::string> pairs;
    pairs.reserve(labels.size());
    for (const auto& [n, v] : labels) {
        std::string p(n);
        p += "=\"";
        append_escaped(p, v, true);
        p += '"';
        pairs.push_back(std::move(p));
    }
    std::vector<std::string> sorted = pairs;
    std::sort(sorted.begin(), sorted.end());
    std::string key;
    for (size_t i = 0; i < sorted.size(); ++i) {
        const auto name_of = [](const std::string& p) { return p.substr(0, p.find('=')); };
        if (i > 0 && name_of(sorted[i]) == name_of(sorted[i - 1])) {
            reject("family '" + open_ + "': label '" + name_of(sorted[i]) + "' given twice");
            return;
        }
        key += sorted[i];
        key += ',';
    }
    if (!series_.insert(key).second) {
        reject("family '" + open_ + "': series {" + key + "} given twice");
        return;
    }
    out_ += open_;
    if (!pairs.empty()) {
        out_ += '{';
        for (size_t i = 0; i < pairs.size(); ++i) {
            if (i > 0)
                out_ += ',';
            out_ += pairs[i];
        }
        out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
}

void prom_writer::sample(std::initializer_list<label> labels, uint64_t value) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof(buf), value);
    sample_line(labels, std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
}

void prom_writer::sample(std::initializer_list<label> labels, double value) {
    if (std::isnan(value)) {
        sample_line(labels, "NaN");
        return;
    }
    if (std::isinf(value)) {
        sample_line(labels, value > 0 ? "+Inf" : "-Inf");
        return;
    }
    // Shortest text that reads back as the same double; at most 24 characters
    // ("-2.2250738585072014e-308").
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof(buf), value);
    sample_line(labels, std::string_view(buf, static_cast<size_t>(r.ptr - buf)));
}

std::string prom_writer::take() {
    std::string text = std::move(out_);
    out_.clear();
    open_.clear();
    emitted_.clear();
    series_.clear();
    rejected_ = 0;
    first_error_.clear();
    return text;
}

} // namespace sagd::shim
