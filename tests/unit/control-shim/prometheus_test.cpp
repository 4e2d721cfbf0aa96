// Unit tests for control-shim/prometheus.*: exact output text, escaping, value formatting, the
// refused calls, and that every output parses by the text format 0.0.4 rules (checked by a
// small independent line checker below, itself tested on known-bad input).
#include "control-shim/prometheus.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace {

using namespace sagd::shim;

// ---- line checker: exposition_formats.md "Text format details" for counter/gauge/untyped
// families (a sample's family is its name). Returns "" or "line N: what is wrong".

bool valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<uint8_t>(s[i]);
        size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (n == 0 || i + n > s.size())
            return false;
        uint32_t cp = n == 1 ? c : c & (0x7f >> n);
        for (size_t k = 1; k < n; ++k) {
            const auto d = static_cast<uint8_t>(s[i + k]);
            if ((d & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (d & 0x3f);
        }
        static constexpr uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n;
    }
    return true;
}

// [a-zA-Z_:][a-zA-Z0-9_:]* (metric) and [a-zA-Z_][a-zA-Z0-9_]* (label); written out here
// rather than with std::regex, whose GCC 12 headers trip -Wmaybe-uninitialized under -Werror.
bool ascii_digit(char c) {
    return c >= '0' && c <= '9';
}
bool matches_name(const std::string& s, bool colon) {
    const auto first = [&](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':');
    };
    if (s.empty() || !first(s[0]))
        return false;
    for (char c : s)
        if (!first(c) && !ascii_digit(c))
            return false;
    return true;
}

// A value as Go's strconv.ParseFloat (used by the Prometheus parser) takes it: decimal forms
// and the specials.
bool matches_float(std::string s) {
    std::string lower;
    for (char c : s)
        lower += c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    for (const char* special : {"nan", "inf", "+inf", "-inf"})
        if (lower == special)
            return true;
    size_t i = 0, digits = 0;
    if (i < s.size() && (s[i] == '+' || s[i] == '-'))
        ++i;
    for (; i < s.size() && ascii_digit(s[i]); ++i)
        ++digits;
    if (i < s.size() && s[i] == '.')
        for (++i; i < s.size() && ascii_digit(s[i]); ++i)
            ++digits;
    if (digits == 0)
        return false;
    if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
        ++i;
        if (i < s.size() && (s[i] == '+' || s[i] == '-'))
            ++i;
        if (i == s.size())
            return false;
        for (; i < s.size() && ascii_digit(s[i]); ++i) {
        }
    }
    return i == s.size();
}

bool matches_timestamp(const std::string& s) {
    const size_t i = !s.empty() && s[0] == '-' ? 1 : 0;
    return s.size() > i && std::all_of(s.begin() + i, s.end(), ascii_digit);
}

std::string check_exposition(std::string_view text) {
    static const std::set<std::string> types{"counter", "gauge", "histogram", "summary", "untyped"};
    if (!text.empty() && text.back() != '\n')
        return "the last line does not end in a newline";
    std::set<std::string> helped, typed, finished, series;
    std::string current; // name of the metric whose samples are being read
    size_t line_no = 0;
    const auto bad = [&](const std::string& why) {
        return "line " + std::to_string(line_no) + ": " + why;
    };
    for (size_t pos = 0; pos < text.size();) {
        const size_t nl = text.find('\n', pos);
        const std::string line(text.substr(pos, nl - pos));
        pos = nl + 1;
        ++line_no;
        if (line.empty())
            continue;
        if (line[0] == '#') {
            const bool help = line.starts_with("# HELP "), type = line.starts_with("# TYPE ");
            if (!help && !type)
                continue; // a plain comment
            const std::string rest = line.substr(7);
            const size_t sp = rest.find(' ');
            const std::string name = rest.substr(0, sp);
            const std::string arg = sp == std::string::npos ? "" : rest.substr(sp + 1);
            if (!matches_name(name, true))
                return bad("invalid metric name '" + name + "'");
            if (name != current && current != "")
                finished.insert(current), current = "";
            if (finished.count(name) != 0 || name == current)
                return bad("HELP/TYPE of '" + name + "' after its samples");
            if (help) {
                if (!helped.insert(name).second)
                    return bad("second HELP for '" + name + "'");
                for (size_t i = 0; i < arg.size(); ++i)
                    if (arg[i] == '\\' && (++i == arg.size() || (arg[i] != '\\' && arg[i] != 'n')))
                        return bad("invalid escape in HELP");
                if (!valid_utf8(arg))
                    return bad("HELP is not UTF-8");
            } else {
                if (!typed.insert(name).second)
                    return bad("second TYPE for '" + name + "'");
                if (types.count(arg) == 0)
                    return bad("unknown type '" + arg + "'");
            }
            continue;
        }
        // name [{label="value",...}] value [timestamp]
        size_t i = 0;
        while (i < line.size() && line[i] != '{' && line[i] != ' ')
            ++i;
        const std::string name = line.substr(0, i);
        if (!matches_name(name, true))
            return bad("invalid metric name '" + name + "'");
        if (name != current) {
            if (!current.empty())
                finished.insert(current);
            if (finished.count(name) != 0)
                return bad("samples of '" + name + "' are not contiguous");
            current = name;
        }
        std::map<std::string, std::string> labels;
        if (i < line.size() && line[i] == '{') {
            ++i;
            while (i < line.size() && line[i] != '}') {
                const size_t eq = line.find('=', i);
                if (eq == std::string::npos)
                    return bad("label without '='");
                const std::string lname = line.substr(i, eq - i);
                if (!matches_name(lname, false) || lname.starts_with("__"))
                    return bad("invalid label name '" + lname + "'");
                i = eq + 1;
                if (i >= line.size() || line[i] != '"')
                    return bad("label value not quoted");
                std::string value;
                for (++i;; ++i) {
                    if (i >= line.size())
                        return bad("unterminated label value");
                    if (line[i] == '"')
                        break;
                    if (line[i] == '\\') {
                        if (++i >= line.size())
                            return bad("unterminated escape");
                        if (line[i] == 'n')
                            value += '\n';
                        else if (line[i] == '\\' || line[i] == '"')
                            value += line[i];
                        else
                            return bad("invalid escape in label value");
                    } else {
                        value += line[i];
                    }
                }
                ++i; // closing quote
                if (!valid_utf8(value))
                    return bad("label value is not UTF-8");
                if (!labels.emplace(lname, value).second)
                    return bad("label '" + lname + "' twice");
                if (i < line.size() && line[i] == ',')
                    ++i;
                else if (i < line.size() && line[i] != '}')
                    return bad("expected ',' or '}' after a label");
            }
            if (i >= line.size())
                return bad("unterminated label set");
            ++i; // '}'
        }
        if (i >= line.size() || line[i] != ' ')
            return bad("no space before the value");
        const std::string rest = line.substr(i + 1);
        const size_t sp = rest.find(' ');
        if (!matches_float(rest.substr(0, sp)))
            return bad("invalid value '" + rest.substr(0, sp) + "'");
        if (sp != std::string::npos && !matches_timestamp(rest.substr(sp + 1)))
            return bad("invalid timestamp");
        std::string key = name + "{";
        for (const auto& [k, v] : labels)
            key += k + "=" + v + "\xff"; // 0xff never occurs in valid UTF-8
        if (!series.insert(key).second)
            return bad("series given twice");
    }
    return "";
}

TEST(prometheus_checker, refuses_what_the_format_refuses) {
    EXPECT_EQ(check_exposition(""), "");
    EXPECT_EQ(check_exposition("# HELP a x\n# TYPE a gauge\na 1\na{b=\"c\",} 2 1700000000\n"), "");
    const char* bad[] = {
        "a 1",                              // no final newline
        "a{b=\"c\"d\"} 1\n",                // unescaped quote
        "a{b=\"\\t\"} 1\n",                 // unknown escape
        "# HELP a x\\ty\n",                 // unknown escape in help
        "a 1\nb 1\na 2\n",                  // not contiguous
        "a 1\n# TYPE a gauge\n",            // TYPE after samples
        "# TYPE a gauge\n# TYPE a gauge\n", // TYPE twice
        "# TYPE a meter\n",                 // unknown type
        "a 1,5\n",                          // value
        "a{b=\"c\"} 1\na{b=\"c\"} 2\n",     // same series twice
        "a{b=\"c\",b=\"d\"} 1\n",           // label twice
        "a{1b=\"c\"} 1\n",                  // label name
        "a{__b=\"c\"} 1\n",                 // reserved label name
        "1a 1\n",                           // metric name
        "a{b=\"\xff\"} 1\n",                // not UTF-8
        "a{b=\"c\" 1\n",                    // unterminated label set
    };
    for (const char* t : bad)
        EXPECT_NE(check_exposition(t), "") << "accepted: " << t;
}

// ---- the writer

TEST(prometheus, exact_output) {
    prom_writer w;
    w.family("sagd_rx_packets_total", prom_type::counter, "Packets received, by port.");
    w.sample({{"port", "lan0"}}, uint64_t{12});
    w.sample({{"port", "wan0"}}, uint64_t{7});
    w.family("sagd_workers", prom_type::gauge, "Worker lcores.");
    w.sample({}, uint64_t{2});
    w.family("sagd_busy_ratio", prom_type::gauge, "Share of polls that found packets.");
    w.sample({{"worker", "0"}, {"lcore", "1"}}, 0.25);
    const std::string text = w.take();
    EXPECT_EQ(text, "# HELP sagd_rx_packets_total Packets received, by port.\n"
                    "# TYPE sagd_rx_packets_total counter\n"
                    "sagd_rx_packets_total{port=\"lan0\"} 12\n"
                    "sagd_rx_packets_total{port=\"wan0\"} 7\n"
                    "# HELP sagd_workers Worker lcores.\n"
                    "# TYPE sagd_workers gauge\n"
                    "sagd_workers 2\n"
                    "# HELP sagd_busy_ratio Share of polls that found packets.\n"
                    "# TYPE sagd_busy_ratio gauge\n"
                    "sagd_busy_ratio{worker=\"0\",lcore=\"1\"} 0.25\n");
    EXPECT_EQ(check_exposition(text), "");
    EXPECT_EQ(w.rejected(), 0u);
}

TEST(prometheus, family_without_samples_and_without_help) {
    prom_writer w;
    w.family("a_total", prom_type::counter, "");
    w.family("b", prom_type::gauge, "B.");
    const std::string text = w.take();
    EXPECT_EQ(text, "# TYPE a_total counter\n# HELP b B.\n# TYPE b gauge\n");
    EXPECT_EQ(check_exposition(text), "");
}

TEST(prometheus, help_escaping) {
    prom_writer w;
    w.family("m", prom_type::gauge, "back\\slash, new\nline, \"quotes\" stay, tab\tstays");
    const std::string text = w.take();
    EXPECT_EQ(text, "# HELP m back\\\\slash, new\\nline, \"quotes\" stay, tab\tstays\n"
                    "# TYPE m gauge\n");
    EXPECT_EQ(check_exposition(text), "");
}

TEST(prometheus, label_value_escaping) {
    prom_writer w;
    w.family("m", prom_type::gauge, "x");
    w.sample({{"a", "back\\slash"}, {"b", "say \"hi\""}, {"c", "two\nlines"}, {"d", ""}},
             uint64_t{1});
    w.sample({{"a", "\\\"\n\\n"}}, uint64_t{2});
    w.sample({{"a", "{x=\"y\"} 3"}}, uint64_t{3}); // looks like syntax, is a value
    const std::string text = w.take();
    EXPECT_EQ(text, "# HELP m x\n# TYPE m gauge\n"
                    "m{a=\"back\\\\slash\",b=\"say \\\"hi\\\"\",c=\"two\\nlines\",d=\"\"} 1\n"
                    "m{a=\"\\\\\\\"\\n\\\\n\"} 2\n"
                    "m{a=\"{x=\\\"y\\\"} 3\"} 3\n");
    EXPECT_EQ(check_exposition(text), "");
}

TEST(prometheus, utf8_kept_invalid_bytes_replaced) {
    prom_writer w;
    w.family("m", prom_type::gauge, "h\xc3\xbc \xe2\x82\xac \xf0\x9f\x98\x80 \xff");
    w.sample({{"t", "z\xc3\xbcrich"}}, uint64_t{1});
    w.sample({{"t", "\xff"}}, uint64_t{2});             // never valid
    w.sample({{"t", "\xe2\x82"}}, uint64_t{3});         // truncated 3-byte sequence
    w.sample({{"t", "\xc0\xaf/"}}, uint64_t{4});        // overlong '/', then '/'
    w.sample({{"t", "\xed\xa0\x80"}}, uint64_t{5});     // UTF-16 surrogate
    w.sample({{"t", "\xf4\x90\x80\x80"}}, uint64_t{6}); // above U+10FFFF
    const std::string text = w.take();
    const std::string fffd = "\xef\xbf\xbd";
    EXPECT_EQ(text, "# HELP m h\xc3\xbc \xe2\x82\xac \xf0\x9f\x98\x80 " + fffd + "\n" +
                        "# TYPE m gauge\n"
                        "m{t=\"z\xc3\xbcrich\"} 1\n"
                        "m{t=\"" +
                        fffd + "\"} 2\n" + "m{t=\"" + fffd + fffd + "\"} 3\n" + "m{t=\"" + fffd +
                        fffd + "/\"} 4\n" + "m{t=\"" + fffd + fffd + fffd + "\"} 5\n" + "m{t=\"" +
                        fffd + fffd + fffd + fffd + "\"} 6\n");
    EXPECT_EQ(check_exposition(text), "");
}

std::string one_value(uint64_t v) {
    prom_writer w;
    w.family("m", prom_type::counter, "");
    w.sample({}, v);
    std::string t = w.take();
    return t.substr(t.find("\nm ") + 3, t.size() - t.find("\nm ") - 4);
}
std::string one_value(double v) {
    prom_writer w;
    w.family("m", prom_type::gauge, "");
    w.sample({}, v);
    std::string t = w.take();
    EXPECT_EQ(check_exposition(t), "");
    return t.substr(t.find("\nm ") + 3, t.size() - t.find("\nm ") - 4);
}

TEST(prometheus, uint64_values_are_exact) {
    EXPECT_EQ(one_value(uint64_t{0}), "0");
    EXPECT_EQ(one_value(uint64_t{1}), "1");
    EXPECT_EQ(one_value(uint64_t{9007199254740993}), "9007199254740993"); // 2^53 + 1
    EXPECT_EQ(one_value(uint64_t{10000000000000000000u}), "10000000000000000000");
    EXPECT_EQ(one_value(std::numeric_limits<uint64_t>::max()), "18446744073709551615");
}

TEST(prometheus, double_values) {
    EXPECT_EQ(one_value(0.0), "0");
    EXPECT_EQ(one_value(-0.0), "-0");
    EXPECT_EQ(one_value(1.0), "1");
    EXPECT_EQ(one_value(0.1), "0.1");
    EXPECT_EQ(one_value(-2.5), "-2.5");
    EXPECT_EQ(one_value(123456789.125), "123456789.125");
    EXPECT_EQ(one_value(1e300), "1e+300");
    EXPECT_EQ(one_value(1.5e-300), "1.5e-300");
    EXPECT_EQ(one_value(std::numeric_limits<double>::infinity()), "+Inf");
    EXPECT_EQ(one_value(-std::numeric_limits<double>::infinity()), "-Inf");
    EXPECT_EQ(one_value(std::numeric_limits<double>::quiet_NaN()), "NaN");
    EXPECT_EQ(one_value(-std::numeric_limits<double>::quiet_NaN()), "NaN");
    // Every finite double reads back as itself.
    std::mt19937_64 rng(42);
    for (int i = 0; i < 2000; ++i) {
        uint64_t bits = rng();
        double d;
        memcpy(&d, &bits, sizeof(d));
        if (!std::isfinite(d))
            continue;
        const std::string s = one_value(d);
        EXPECT_EQ(std::strtod(s.c_str(), nullptr), d) << s;
    }
}

TEST(prometheus, name_rules) {
    for (const char* n : {"a", "_", ":", "sagd_rx_packets_total", "A9_:x", "job:rate5m"})
        EXPECT_TRUE(is_valid_metric_name(n)) << n;
    for (const char* n : {"", "9a", "a-b", "a.b", "a b", "é", "a{"})
        EXPECT_FALSE(is_valid_metric_name(n)) << n;
    for (const char* n : {"a", "_", "port", "_x", "A9_b"})
        EXPECT_TRUE(is_valid_label_name(n)) << n;
    for (const char* n : {"", "9a", "a:b", "a-b", "__name__", "__x", "é"})
        EXPECT_FALSE(is_valid_label_name(n)) << n;
}

TEST(prometheus, refused_calls_are_skipped_and_counted) {
    prom_writer w(invalid_call::skip);
    w.sample({}, uint64_t{1}); // no family yet
    EXPECT_EQ(w.rejected(), 1u);
    EXPECT_EQ(w.first_error(), "sample before any family");
    w.family("bad-name", prom_type::gauge, "x");
    w.sample({}, uint64_t{2}); // goes nowhere
    w.family("ok", prom_type::gauge, "x");
    w.sample({{"1bad", "v"}}, uint64_t{3});
    w.sample({{"__reserved", "v"}}, uint64_t{4});
    w.sample({{"a", "v"}, {"a", "w"}}, uint64_t{5});
    w.sample({{"a", "v"}, {"b", "w"}}, uint64_t{6});
    w.sample({{"b", "w"}, {"a", "v"}}, uint64_t{7}); // same series, other order
    w.family("other", prom_type::gauge, "y");
    w.sample({}, uint64_t{8});
    w.family("ok", prom_type::gauge, "x"); // again: would split the family
    w.sample({{"a", "z"}}, uint64_t{9});
    EXPECT_EQ(w.rejected(), 9u);
    EXPECT_EQ(w.first_error(), "sample before any family");
    const std::string text = w.take();
    EXPECT_EQ(text, "# HELP ok x\n# TYPE ok gauge\nok{a=\"v\",b=\"w\"} 6\n"
                    "# HELP other y\n# TYPE other gauge\nother 8\n");
    EXPECT_EQ(check_exposition(text), "");
    EXPECT_EQ(w.rejected(), 0u); // take() starts over
}

TEST(prometheus, refusal_messages_name_the_problem) {
    const auto first_error = [](auto&& calls) {
        prom_writer w(invalid_call::skip);
        calls(w);
        return w.first_error();
    };
    EXPECT_EQ(first_error([](prom_writer& w) { w.family("a b", prom_type::gauge, ""); }),
              "invalid metric name 'a b'");
    EXPECT_EQ(first_error([](prom_writer& w) {
                  w.family("m", prom_type::gauge, "");
                  w.sample({{"x-y", "1"}}, 1.0);
              }),
              "family 'm': invalid label name 'x-y'");
    EXPECT_EQ(first_error([](prom_writer& w) {
                  w.family("m", prom_type::gauge, "");
                  w.sample({{"x", "1"}, {"x", "2"}}, 1.0);
              }),
              "family 'm': label 'x' given twice");
    EXPECT_EQ(first_error([](prom_writer& w) {
                  w.family("m", prom_type::gauge, "");
                  w.sample({{"x", "1"}}, 1.0);
                  w.sample({{"x", "1"}}, 2.0);
              }),
              "family 'm': series {x=\"1\",} given twice");
    EXPECT_EQ(first_error([](prom_writer& w) {
                  w.family("m", prom_type::gauge, "");
                  w.family("m", prom_type::gauge, "");
              }),
              "family 'm' opened twice (its samples must be contiguous)");
    EXPECT_EQ(first_error([](prom_writer& w) {
                  w.family("1m", prom_type::gauge, "");
                  w.sample({}, 1.0);
              }),
              "invalid metric name '1m'");
}

// The default policy: a misuse is a bug, so debug builds stop on it; release builds skip it.
TEST(prometheus_death, default_policy_asserts_in_debug_builds) {
    GTEST_FLAG_SET(death_test_style, "threadsafe");
    prom_writer w;
    EXPECT_DEBUG_DEATH(w.family("bad name", prom_type::gauge, ""), "invalid metric name");
#ifdef NDEBUG
    EXPECT_EQ(w.rejected(), 1u);
    EXPECT_EQ(w.take(), "");
#endif
}

TEST(prometheus, take_resets_the_writer) {
    prom_writer w;
    w.family("m", prom_type::counter, "x");
    w.sample({}, uint64_t{1});
    EXPECT_EQ(w.take(), "# HELP m x\n# TYPE m counter\nm 1\n");
    w.family("m", prom_type::counter, "x"); // a new scrape
    w.sample({}, uint64_t{2});
    EXPECT_EQ(w.take(), "# HELP m x\n# TYPE m counter\nm 2\n");
    EXPECT_EQ(w.take(), "");
    EXPECT_EQ(w.rejected(), 0u);
}

// Whatever names, label values and values a caller throws at it, the output parses.
TEST(prometheus, random_calls_always_give_valid_text) {
    std::mt19937 rng(7);
    const auto pick = [&](std::initializer_list<const char*> v) {
        return std::string(v.begin()[rng() % v.size()]);
    };
    const auto random_bytes = [&] {
        std::string s(rng() % 8, '\0');
        for (auto& c : s)
            c = static_cast<char>(pick({"a", "\\", "\"", "\n", "{", "}", "=", ",", " "})[0] +
                                  (rng() % 8 == 0 ? 0x80 : 0)); // sometimes a stray high byte
        return s;
    };
    for (int round = 0; round < 200; ++round) {
        prom_writer w(invalid_call::skip);
        for (int call = 0; call < 30; ++call) {
            if (rng() % 4 == 0) {
                w.family(pick({"m1", "m2", "m3", "m_total", "bad name", "9x", ""}),
                         rng() % 2 ? prom_type::counter : prom_type::gauge, random_bytes());
                continue;
            }
            const std::string l1 = pick({"a", "b", "__x", "a-b"}), l2 = pick({"a", "c"});
            const std::string v1 = random_bytes(), v2 = random_bytes();
            if (rng() % 2)
                w.sample({{l1, v1}, {l2, v2}}, static_cast<uint64_t>(rng()));
            else
                w.sample({{l1, v1}},
                         std::ldexp(static_cast<double>(rng()), int(rng() % 200) - 100));
        }
        const std::string text = w.take();
        ASSERT_EQ(check_exposition(text), "") << text;
    }
}

} // namespace
