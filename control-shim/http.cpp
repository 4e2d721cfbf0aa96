// HTTP/1.1 transport for the runtime API (see http.hpp). Every index into a buffer is checked
// against its size before use; the parser keeps offsets into one std::string, never pointers.
#include "control-shim/http.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <system_error>

namespace sagd::shim {

namespace {

// ---- character classes (RFC 9110 5.6.2, RFC 3986 2-3)

constexpr bool is_digit(unsigned char c) noexcept {
    return c >= '0' && c <= '9';
}
constexpr bool is_alpha(unsigned char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
constexpr int hex_value(unsigned char c) noexcept {
    if (is_digit(c))
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}
constexpr bool is_tchar(unsigned char c) noexcept {
    return is_alpha(c) || is_digit(c) ||
           (std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) !=
            std::string_view::npos);
}
bool is_token(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
        return is_tchar(static_cast<unsigned char>(c));
    });
}
// pchar (unreserved, sub-delims, ':', '@', pct-encoded) and '/': an origin-form path.
constexpr bool is_path_char(unsigned char c) noexcept {
    // unreserved "-._~", sub-delims "!$&'()*+,;=", then ":@/%"
    return is_alpha(c) || is_digit(c) ||
           (std::string_view("-._~!$&'()*+,;=:@/%").find(static_cast<char>(c)) !=
            std::string_view::npos);
}
constexpr bool is_query_char(unsigned char c) noexcept {
    return is_path_char(c) || c == '?';
}
// field-value: VCHAR, obs-text, SP, HTAB (RFC 9110 5.5).
constexpr bool is_field_value_char(unsigned char c) noexcept {
    return c == '\t' || c == ' ' || (c > 0x20 && c != 0x7f);
}
constexpr char to_lower(char c) noexcept {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
}
bool iequals(std::string_view a, std::string_view b) noexcept {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return to_lower(x) == to_lower(y);
           });
}
std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), to_lower);
    return out;
}
std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

// RFC 3986 2.1. False on a '%' not followed by two hex digits.
bool percent_decode(std::string_view in, bool plus_is_space, std::string& out) {
    out.clear();
    out.reserve(in.size());
    for (size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '%') {
            if (in.size() - i < 3)
                return false;
            const int hi = hex_value(static_cast<unsigned char>(in[i + 1]));
            const int lo = hex_value(static_cast<unsigned char>(in[i + 2]));
            if (hi < 0 || lo < 0)
                return false;
            out.push_back(static_cast<char>(hi * 16 + lo));
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out.push_back(' ');
        } else {
            out.push_back(c);
        }
    }
    return true;
}

void append_number(std::string& out, uint64_t v) {
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, r.ptr);
}

std::string errno_text(int err) {
    return std::error_code(err, std::generic_category()).message();
}

// "<prefix>: <what>: <errno text>" without operator+ chains (GCC 12 -Wrestrict noise).
fwd::error sys_error(std::string_view prefix, std::string_view what, int err,
                     fwd::errc code = fwd::errc::invalid_argument) {
    std::string m(prefix);
    m.append(": ").append(what);
    if (err != 0)
        m.append(": ").append(errno_text(err));
    return fwd::error(code, std::move(m));
}

// The time depends only on expected.size(), never on where the first difference is.
bool constant_time_equal(std::string_view given, std::string_view expected) noexcept {
    unsigned acc = given.size() == expected.size() ? 0u : 1u;
    for (size_t i = 0; i < expected.size(); ++i) {
        const unsigned g = i < given.size() ? static_cast<unsigned char>(given[i]) : 0u;
        acc |= g ^ static_cast<unsigned char>(expected[i]);
        asm volatile("" : "+r"(acc)); // keep the compiler from ending the loop early
    }
    return acc == 0;
}

// IMF-fixdate (RFC 9110 5.6.7), independent of the locale.
std::string http_date(std::time_t t) {
    static constexpr const char* days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                             "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%s, %02d %s %04d %02d:%02d:%02d GMT", days[tm.tm_wday % 7],
                  tm.tm_mday, months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min,
                  tm.tm_sec);
    return buf;
}

} // namespace

// ---- http_request

std::optional<std::string_view> http_request::header(std::string_view name) const {
    for (const auto& [n, v] : headers)
        if (iequals(n, name))
            return std::string_view(v);
    return std::nullopt;
}

std::optional<std::string_view> http_request::query_value(std::string_view name) const {
    for (const auto& [n, v] : query)
        if (n == name)
            return std::string_view(v);
    return std::nullopt;
}

// ---- http_request_parser

void http_request_parser::fail(int status, std::string message) {
    state_ = state::failed;
    error_ = http_error{status, std::move(message)};
    std::string().swap(buf_);
    pos_ = scan_ = line_start_ = body_start_ = body_len_ = 0;
    pending_ = http_request{};
    continue_ = false;
}

void http_request_parser::reset_request() {
    state_ = state::head;
    scan_ = line_start_ = body_start_ = pos_;
    body_len_ = 0;
    have_request_line_ = false;
    expect_continue_ = false;
    continue_ = false;
    pending_ = http_request{};
}

void http_request_parser::feed(std::string_view bytes) {
    if (state_ == state::failed)
        return;
    if (pos_ > 0) { // drop the requests already handed out
        buf_.erase(0, pos_);
        scan_ -= pos_;
        line_start_ -= pos_;
        body_start_ -= pos_;
        pos_ = 0;
    }
    buf_.append(bytes);
}

std::optional<http_request> http_request_parser::next() {
    while (state_ == state::head) {
        // The head's last '\n' must lie before `limit`; searching no further keeps the result
        // independent of chunking and the work linear in the bytes fed.
        const size_t limit = pos_ + http_max_head_size;
        const size_t end = std::min(buf_.size(), limit);
        const void* nl =
            scan_ < end ? std::memchr(buf_.data() + scan_, '\n', end - scan_) : nullptr;
        if (nl == nullptr) {
            scan_ = std::max(scan_, end);
            if (buf_.size() >= limit)
                fail(431, "request head (request line and header fields) exceeds 16384 bytes");
            return std::nullopt;
        }
        const size_t nl_pos = static_cast<size_t>(static_cast<const char*>(nl) - buf_.data());
        scan_ = nl_pos + 1;
        if (nl_pos == line_start_ || buf_[nl_pos - 1] != '\r') {
            fail(400, "bare LF in request head: lines end with CRLF (RFC 9112 2.2)");
            return std::nullopt;
        }
        const std::string_view line(buf_.data() + line_start_, nl_pos - 1 - line_start_);
        line_start_ = scan_;
        if (!on_head_line(line))
            return std::nullopt; // failed
    }
    if (state_ != state::body || buf_.size() - body_start_ < body_len_)
        return std::nullopt;
    pending_.body.assign(buf_, body_start_, body_len_);
    pos_ = body_start_ + body_len_;
    http_request done = std::move(pending_);
    reset_request();
    return done;
}

bool http_request_parser::on_head_line(std::string_view line) {
    if (line.find('\r') != std::string_view::npos) {
        fail(400, "bare CR in request head (RFC 9112 2.2)");
        return false;
    }
    if (!have_request_line_) {
        if (line.empty())
            return true; // RFC 9112 2.2: ignore empty lines before the request line
        return on_request_line(line);
    }
    if (line.empty())
        return on_head_end();
    return on_header_line(line);
}

bool http_request_parser::on_request_line(std::string_view line) {
    // RFC 9112 3: method SP request-target SP HTTP-version, single spaces.
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos) {
        fail(400, "malformed request line: expected 'METHOD /path HTTP/1.1'");
        return false;
    }
    const std::string_view method = line.substr(0, sp1);
    const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    const std::string_view version = line.substr(sp2 + 1);
    if (!is_token(method)) {
        fail(400, "malformed request line: the method is not a token");
        return false;
    }
    if (version == "HTTP/1.1") {
        pending_.version_minor = 1;
    } else if (version == "HTTP/1.0") {
        pending_.version_minor = 0;
    } else if (version.size() == 8 && version.starts_with("HTTP/") && is_digit(version[5]) &&
               version[6] == '.' && is_digit(version[7])) {
        std::string m("HTTP version ");
        m.append(version.substr(5)).append(" is not supported (HTTP/1.1 and HTTP/1.0 are)");
        fail(505, std::move(m));
        return false;
    } else {
        fail(400, "malformed request line: bad HTTP version");
        return false;
    }
    // Origin-form only (RFC 9112 3.2.1): no absolute-form, authority-form or '*'.
    if (target.empty() || target.front() != '/') {
        fail(400, "request target must be an absolute path such as /v1/status");
        return false;
    }
    const size_t qmark = target.find('?');
    const std::string_view raw_path = target.substr(0, qmark);
    const std::string_view raw_query =
        qmark == std::string_view::npos ? std::string_view() : target.substr(qmark + 1);
    auto bad_char = [](std::string_view s, bool (*ok)(unsigned char) noexcept) {
        return std::any_of(s.begin(), s.end(),
                           [ok](char c) { return !ok(static_cast<unsigned char>(c)); });
    };
    if (bad_char(raw_path, is_path_char) || bad_char(raw_query, is_query_char)) {
        fail(400, "request target has a character that must be percent-encoded");
        return false;
    }
    // An encoded '/' would make a segment boundary invisible after decoding.
    for (size_t i = 0; i + 2 < raw_path.size(); ++i)
        if (raw_path[i] == '%' && raw_path[i + 1] == '2' && to_lower(raw_path[i + 2]) == 'f') {
            fail(400, "request path has an encoded '/' (%2F)");
            return false;
        }
    if (!percent_decode(raw_path, false, pending_.path)) {
        fail(400, "request path has a malformed percent-encoding");
        return false;
    }
    if (pending_.path.find('\0') != std::string::npos) {
        fail(400, "request path has an encoded NUL");
        return false;
    }
    std::string_view rest = raw_query;
    while (!rest.empty()) {
        const size_t amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
        if (pair.empty())
            continue;
        const size_t eq = pair.find('=');
        std::string name, value;
        const bool ok =
            percent_decode(pair.substr(0, eq), true, name) &&
            (eq == std::string_view::npos || percent_decode(pair.substr(eq + 1), true, value));
        if (!ok) {
            fail(400, "request query has a malformed percent-encoding");
            return false;
        }
        if (name.find('\0') != std::string::npos || value.find('\0') != std::string::npos) {
            fail(400, "request query has an encoded NUL");
            return false;
        }
        pending_.query.emplace_back(std::move(name), std::move(value));
    }
    pending_.method.assign(method);
    have_request_line_ = true;
    return true;
}

bool http_request_parser::on_header_line(std::string_view line) {
    if (pending_.headers.size() >= http_max_header_count) {
        fail(431, "more than 100 header fields");
        return false;
    }
    if (line.front() == ' ' || line.front() == '\t') {
        fail(400, "obsolete line folding in a header field (RFC 9112 5.2)");
        return false;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) {
        fail(400, "header line without ':'");
        return false;
    }
    const std::string_view name = line.substr(0, colon);
    if (!is_token(name)) {
        const bool ws = !name.empty() && (name.back() == ' ' || name.back() == '\t');
        fail(400, ws ? "whitespace between a header name and ':' (RFC 9112 5.1)"
                     : "header name is not a token");
        return false;
    }
    const std::string_view value = trim_ows(line.substr(colon + 1));
    if (!std::all_of(value.begin(), value.end(),
                     [](char c) { return is_field_value_char(static_cast<unsigned char>(c)); })) {
        std::string m("control character in header field '");
        m.append(name).append("'");
        fail(400, std::move(m));
        return false;
    }
    pending_.headers.emplace_back(lower(name), std::string(value));
    return true;
}

bool http_request_parser::on_head_end() {
    size_t content_lengths = 0, hosts = 0, authorizations = 0, content_types = 0;
    bool transfer_encoding = false, close = false, bad_expect = false;
    std::string_view content_length;
    for (const auto& [name, value] : pending_.headers) {
        if (name == "content-length") {
            ++content_lengths;
            content_length = value;
        } else if (name == "transfer-encoding") {
            transfer_encoding = true;
        } else if (name == "host") {
            ++hosts;
        } else if (name == "authorization") {
            ++authorizations;
        } else if (name == "content-type") {
            ++content_types;
        } else if (name == "expect" && pending_.version_minor == 1) {
            // RFC 9110 10.1.1: only 100-continue is defined; HTTP/1.0 ignores Expect.
            if (iequals(value, "100-continue"))
                expect_continue_ = true;
            else
                bad_expect = true;
        } else if (name == "connection") {
            std::string_view list = value;
            while (!list.empty()) {
                const size_t comma = list.find(',');
                if (iequals(trim_ows(list.substr(0, comma)), "close"))
                    close = true;
                list =
                    comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
            }
        }
    }
    if (transfer_encoding) {
        fail(501, "Transfer-Encoding is not supported: send the body with Content-Length");
        return false;
    }
    if (content_lengths > 1) {
        fail(400, "more than one Content-Length header field");
        return false;
    }
    if (pending_.version_minor == 1 && hosts == 0) {
        fail(400, "missing Host header field (RFC 9112 3.2)");
        return false;
    }
    if (hosts > 1 || authorizations > 1 || content_types > 1) {
        fail(400, hosts > 1            ? "more than one Host header field"
                  : authorizations > 1 ? "more than one Authorization header field"
                                       : "more than one Content-Type header field");
        return false;
    }
    // RFC 9110 8.6: Content-Length = 1*DIGIT. Saturate rather than overflow.
    uint64_t length = 0;
    bool too_large = false;
    if (content_lengths == 1) {
        if (content_length.empty() ||
            !std::all_of(content_length.begin(), content_length.end(),
                         [](char c) { return is_digit(static_cast<unsigned char>(c)); })) {
            fail(400, "malformed Content-Length");
            return false;
        }
        for (const char c : content_length) {
            length = length * 10 + static_cast<uint64_t>(c - '0');
            if (length > max_body_) {
                too_large = true;
                length = 0;
                break;
            }
        }
    }
    if (too_large) {
        std::string m("request body larger than ");
        append_number(m, max_body_);
        m.append(" bytes");
        fail(413, std::move(m));
        return false;
    }
    if (bad_expect) {
        fail(417, "unsupported expectation: only Expect: 100-continue is understood");
        return false;
    }
    pending_.keep_alive = pending_.version_minor == 1 && !close;
    body_len_ = static_cast<size_t>(length);
    body_start_ = scan_;
    state_ = state::body;
    // The whole body in one allocation (bounded by max_body above), not by doubling: a bulk
    // route batch is tens of MB.
    buf_.reserve(body_start_ + body_len_);
    // RFC 9110 10.1.1: no need for 100 (Continue) once some of the body is here.
    continue_ = expect_continue_ && body_len_ > 0 && buf_.size() == body_start_;
    return true;
}

// ---- responses

std::string_view http_reason_phrase(int status) noexcept {
    // RFC 9110 15 (and RFC 6585 for 428, 429, 431).
    static constexpr std::pair<int, std::string_view> phrases[] = {
        {100, "Continue"},
        {101, "Switching Protocols"},
        {200, "OK"},
        {201, "Created"},
        {202, "Accepted"},
        {204, "No Content"},
        {301, "Moved Permanently"},
        {302, "Found"},
        {303, "See Other"},
        {304, "Not Modified"},
        {307, "Temporary Redirect"},
        {308, "Permanent Redirect"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {406, "Not Acceptable"},
        {408, "Request Timeout"},
        {409, "Conflict"},
        {410, "Gone"},
        {411, "Length Required"},
        {412, "Precondition Failed"},
        {413, "Content Too Large"},
        {414, "URI Too Long"},
        {415, "Unsupported Media Type"},
        {416, "Range Not Satisfiable"},
        {417, "Expectation Failed"},
        {422, "Unprocessable Content"},
        {426, "Upgrade Required"},
        {428, "Precondition Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {501, "Not Implemented"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
    };
    for (const auto& [code, text] : phrases)
        if (code == status)
            return text;
    return "";
}

namespace {

void append_field(std::string& out, std::string_view name, std::string_view value) {
    out.append(name).append(": ");
    for (const char c : value) {
        const auto u = static_cast<unsigned char>(c);
        out.push_back(u < 0x20 || u == 0x7f ? ' ' : c); // no header injection through values
    }
    out.append("\r\n");
}

} // namespace

std::string serialize(const http_response& response, bool keep_alive) {
    const int status = response.status >= 100 && response.status <= 599 ? response.status : 500;
    const bool has_body = status >= 200 && status != 204 && status != 304;
    std::string out;
    out.reserve(160 + response.body.size());
    out.append("HTTP/1.1 ");
    append_number(out, static_cast<uint64_t>(status));
    out.push_back(' ');
    out.append(http_reason_phrase(status)).append("\r\n");
    if (has_body && !response.content_type.empty())
        append_field(out, "Content-Type", response.content_type);
    for (const auto& [name, value] : response.headers) {
        if (!is_token(name) || iequals(name, "content-length") ||
            iequals(name, "transfer-encoding") || iequals(name, "connection"))
            continue;
        append_field(out, name, value);
    }
    if (has_body) {
        out.append("Content-Length: ");
        append_number(out, response.body.size());
        out.append("\r\n");
    }
    if (!keep_alive)
        out.append("Connection: close\r\n");
    out.append("\r\n");
    if (has_body)
        out.append(response.body);
    return out;
}

// ---- JSON

namespace {

void append_u_escape(std::string& out, uint32_t cp) {
    static constexpr char hex[] = "0123456789abcdef";
    out.append("\\u");
    for (int shift = 12; shift >= 0; shift -= 4)
        out.push_back(hex[(cp >> shift) & 0xf]);
}

// Length of the valid UTF-8 sequence at s[i] (1..4), or 0 with `bad` set to the length of
// the maximal invalid subpart to replace by one U+FFFD (Unicode 15 table 3-7 and 3.9 U+FFFD
// substitution of maximal subparts).
size_t utf8_sequence(std::string_view s, size_t i, size_t& bad) noexcept {
    const auto b0 = static_cast<unsigned char>(s[i]);
    size_t need = 0;
    unsigned char lo = 0x80, hi = 0xbf; // range of the second byte
    if (b0 < 0x80)
        return 1;
    if (b0 >= 0xc2 && b0 <= 0xdf) {
        need = 1;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
        need = 2;
        if (b0 == 0xe0)
            lo = 0xa0; // no overlongs
        else if (b0 == 0xed)
            hi = 0x9f; // no surrogates
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
        need = 3;
        if (b0 == 0xf0)
            lo = 0x90; // no overlongs
        else if (b0 == 0xf4)
            hi = 0x8f; // not above U+10FFFF
    } else {
        bad = 1;
        return 0;
    }
    for (size_t k = 1; k <= need; ++k) {
        if (i + k >= s.size()) {
            bad = k;
            return 0;
        }
        const auto b = static_cast<unsigned char>(s[i + k]);
        const bool ok = k == 1 ? (b >= lo && b <= hi) : (b >= 0x80 && b <= 0xbf);
        if (!ok) {
            bad = k;
            return 0;
        }
    }
    return need + 1;
}

} // namespace

void append_json_string(std::string& out, std::string_view text) {
    out.push_back('"');
    size_t i = 0;
    while (i < text.size()) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x80) {
            switch (c) {
            case '"':
                out.append("\\\"");
                break;
            case '\\':
                out.append("\\\\");
                break;
            case '\b':
                out.append("\\b");
                break;
            case '\f':
                out.append("\\f");
                break;
            case '\n':
                out.append("\\n");
                break;
            case '\r':
                out.append("\\r");
                break;
            case '\t':
                out.append("\\t");
                break;
            default:
                if (c < 0x20 || c == 0x7f)
                    append_u_escape(out, c);
                else
                    out.push_back(static_cast<char>(c));
            }
            ++i;
            continue;
        }
        size_t bad = 0;
        const size_t n = utf8_sequence(text, i, bad);
        if (n == 0) {
            out.append("\xef\xbf\xbd"); // U+FFFD
            i += bad;
            continue;
        }
        if (n == 2 && c == 0xc2 && static_cast<unsigned char>(text[i + 1]) < 0xa0) {
            append_u_escape(out, static_cast<unsigned char>(text[i + 1])); // C1 control
        } else if (n == 3 && c == 0xe2 && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
                   (static_cast<unsigned char>(text[i + 2]) & 0xfe) == 0xa8) {
            // U+2028 / U+2029: valid JSON, but not valid in JavaScript string literals.
            append_u_escape(out, 0x2000u | (static_cast<unsigned char>(text[i + 2]) - 0x80u));
        } else {
            out.append(text.substr(i, n));
        }
        i += n;
    }
    out.push_back('"');
}

std::string json_error(std::string_view message) {
    json_writer w;
    w.begin_object().key("error").value(message).end_object();
    return w.take();
}

void json_writer::before_value() {
    if (after_key_) {
        after_key_ = false;
        return;
    }
    assert((stack_.empty() || stack_.back() == '[') && "json_writer: object member needs key()");
    assert((!stack_.empty() || out_.empty()) && "json_writer: one top-level value");
    if (need_comma_)
        out_.push_back(',');
}

void json_writer::begin(char open) {
    before_value();
    stack_.push_back(open);
    out_.push_back(open);
    need_comma_ = false;
}

void json_writer::end(char open, char close) {
    assert(!stack_.empty() && stack_.back() == open && !after_key_ && "json_writer: bad end");
    (void)open;
    if (!stack_.empty())
        stack_.pop_back();
    out_.push_back(close);
    need_comma_ = true;
}

json_writer& json_writer::begin_object() {
    begin('{');
    return *this;
}
json_writer& json_writer::end_object() {
    end('{', '}');
    return *this;
}
json_writer& json_writer::begin_array() {
    begin('[');
    return *this;
}
json_writer& json_writer::end_array() {
    end('[', ']');
    return *this;
}

json_writer& json_writer::key(std::string_view name) {
    assert(!stack_.empty() && stack_.back() == '{' && !after_key_ && "json_writer: key()");
    if (need_comma_)
        out_.push_back(',');
    append_json_string(out_, name);
    out_.push_back(':');
    after_key_ = true;
    need_comma_ = false;
    return *this;
}

json_writer& json_writer::value(std::string_view text) {
    before_value();
    append_json_string(out_, text);
    need_comma_ = true;
    return *this;
}

json_writer& json_writer::value(bool b) {
    before_value();
    out_.append(b ? "true" : "false");
    need_comma_ = true;
    return *this;
}

json_writer& json_writer::value(double d) {
    before_value();
    if (std::isfinite(d)) {
        char buf[32];
        const auto r = std::to_chars(buf, buf + sizeof buf, d); // shortest round-trip form
        out_.append(buf, r.ptr);
    } else {
        out_.append("null"); // RFC 8259 6: no NaN or Infinity
    }
    need_comma_ = true;
    return *this;
}

json_writer& json_writer::signed_value(int64_t v) {
    before_value();
    char buf[24];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    out_.append(buf, r.ptr);
    need_comma_ = true;
    return *this;
}

json_writer& json_writer::unsigned_value(uint64_t v) {
    before_value();
    append_number(out_, v);
    need_comma_ = true;
    return *this;
}

json_writer& json_writer::null() {
    before_value();
    out_.append("null");
    need_comma_ = true;
    return *this;
}

// ---- server

namespace {

constexpr size_t read_chunk = 64 * 1024;
// While this much output waits for a client, its further pipelined requests wait too (and
// nothing more is read from it): memory per connection stays bounded.
constexpr size_t out_high_water = 1024 * 1024;
// After an answer that closes the connection: stop writing, discard what the client still
// sends for a moment, then close, so the client reads the answer instead of a reset.
constexpr auto drain_time = std::chrono::seconds(1);
constexpr size_t drain_limit = 1024 * 1024;
constexpr size_t accepts_per_round = 64;
constexpr std::string_view continue_line = "HTTP/1.1 100 Continue\r\n\r\n";

http_response error_response(int status, std::string_view message) {
    http_response r;
    r.status = status;
    r.body = json_error(message);
    return r;
}

std::string endpoint_text(std::string_view address, uint16_t port) {
    std::string s;
    const bool v6 = address.find(':') != std::string_view::npos;
    if (v6)
        s.push_back('[');
    s.append(address);
    if (v6)
        s.push_back(']');
    s.push_back(':');
    append_number(s, port);
    return s;
}

std::string peer_text(int fd, http_transport transport, const sockaddr_storage& ss) {
    std::string s;
    if (transport == http_transport::unix_socket) {
        ucred cred{};
        socklen_t len = sizeof cred;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
            s.append("pid ");
            append_number(s, static_cast<uint64_t>(cred.pid));
            s.append(" uid ");
            append_number(s, cred.uid);
        }
        return s;
    }
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
        const auto* a = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &a->sin_addr, buf, sizeof buf);
        return endpoint_text(buf, ntohs(a->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        const auto* a = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &a->sin6_addr, buf, sizeof buf);
        return endpoint_text(buf, ntohs(a->sin6_port));
    }
    return s;
}

} // namespace

struct http_server::connection {
    explicit connection(size_t max_body) : parser(max_body) {}
    size_t pending() const noexcept { return out.size() - out_off; }

    int fd = -1;
    connection_info info;
    http_request_parser parser;
    std::string out; // serialized responses not yet written, from out_off
    size_t out_off = 0;
    clock::time_point last_progress;
    clock::time_point drain_until;
    size_t drained = 0;
    bool peer_closed = false;       // EOF read: no further request will come
    bool close_after_flush = false; // the last answer closes the connection
    bool draining = false;          // answer sent, write side shut down, input discarded
    bool closed = false;
};

http_server::http_server(const http_server_options& options, handler on_request)
    : options_(options), handler_(std::move(on_request)), read_buf_(read_chunk) {}

http_server::~http_server() {
    for (const auto& c : connections_)
        if (c->fd >= 0)
            ::close(c->fd);
    for (const int fd : {unix_fd_, tcp_fd_, spare_fd_})
        if (fd >= 0)
            ::close(fd);
    if (unix_bound_) {
        // Only our own socket file: another instance may have replaced it since.
        struct stat st {};
        if (::lstat(options_.unix_path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
            static_cast<uint64_t>(st.st_dev) == unix_dev_ &&
            static_cast<uint64_t>(st.st_ino) == unix_ino_)
            ::unlink(options_.unix_path.c_str());
    }
}

fwd::result<std::unique_ptr<http_server>> http_server::create(const http_server_options& options,
                                                              handler on_request) {
    if (options.unix_path.empty() && options.tcp_address.empty())
        return fwd::error("api: no listener: set a unix socket path or a tcp address");
    if (!on_request)
        return fwd::error("api: no request handler");
    if (options.max_connections == 0)
        return fwd::error("api: max_connections must be at least 1");
    if (options.idle_timeout.count() <= 0)
        return fwd::error("api: idle_timeout must be positive");
    std::unique_ptr<http_server> server(new http_server(options, std::move(on_request)));
    if (!options.unix_path.empty())
        if (auto st = server->open_unix_listener(); !st)
            return st.err(); // the destructor closes and unlinks what was made
    if (!options.tcp_address.empty())
        if (auto st = server->open_tcp_listener(); !st)
            return st.err();
    server->spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    return fwd::result<std::unique_ptr<http_server>>(std::move(server));
}

fwd::status http_server::open_unix_listener() {
    const std::string& path = options_.unix_path;
    std::string where("api socket ");
    where.append(path);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path)
        return sys_error(where, "path longer than 107 bytes", 0);
    std::memcpy(addr.sun_path, path.data(), path.size());
    const auto* sa = reinterpret_cast<const sockaddr*>(&addr);

    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            return sys_error(where, "exists and is not a socket; not replacing it", 0);
        // A socket file: stale (nobody accepts) or live (another daemon: leave it alone).
        const int probe = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (probe < 0)
            return sys_error(where, "socket", errno);
        const int rc = ::connect(probe, sa, sizeof addr);
        const int err = errno;
        ::close(probe);
        if (rc == 0 || err == EAGAIN || err == EINPROGRESS)
            return sys_error(where, "another process is serving this socket", 0,
                             fwd::errc::conflict);
        if (err != ECONNREFUSED && err != ENOENT)
            return sys_error(where, "probing the existing socket", err);
        if (::unlink(path.c_str()) != 0 && errno != ENOENT)
            return sys_error(where, "removing the stale socket", errno);
    } else if (errno != ENOENT) {
        return sys_error(where, "lstat", errno);
    }

    unix_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (unix_fd_ < 0)
        return sys_error(where, "socket", errno);
    // Born 0600: bind under a umask that clears group and other bits (the umask is process
    // wide; the window is one system call), then chmod before listen() in case a default ACL
    // on the directory overrode the umask. Nobody can connect before listen().
    const mode_t old_mask = ::umask(0177);
    const int rc = ::bind(unix_fd_, sa, sizeof addr);
    const int bind_err = errno;
    ::umask(old_mask);
    if (rc != 0)
        return sys_error(where, "bind", bind_err);
    if (::lstat(path.c_str(), &st) != 0)
        return sys_error(where, "lstat after bind", errno);
    unix_bound_ = true;
    unix_dev_ = static_cast<uint64_t>(st.st_dev);
    unix_ino_ = static_cast<uint64_t>(st.st_ino);
    if (::chmod(path.c_str(), 0600) != 0)
        return sys_error(where, "chmod 0600", errno);
    if (::listen(unix_fd_, SOMAXCONN) != 0)
        return sys_error(where, "listen", errno);
    return fwd::ok();
}

fwd::status http_server::open_tcp_listener() {
    std::string where("api tcp ");
    where.append(endpoint_text(options_.tcp_address, options_.tcp_port));
    sockaddr_storage ss{};
    socklen_t len = 0;
    in_addr a4{};
    in6_addr a6{};
    if (::inet_pton(AF_INET, options_.tcp_address.c_str(), &a4) == 1) {
        if ((ntohl(a4.s_addr) >> 24) != 127)
            return sys_error(where, "not a loopback address (127.0.0.0/8 or ::1)", 0);
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_addr = a4;
        sin->sin_port = htons(options_.tcp_port);
        len = sizeof(sockaddr_in);
    } else if (::inet_pton(AF_INET6, options_.tcp_address.c_str(), &a6) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&a6))
            return sys_error(where, "not a loopback address (127.0.0.0/8 or ::1)", 0);
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = a6;
        sin6->sin6_port = htons(options_.tcp_port);
        len = sizeof(sockaddr_in6);
    } else {
        return sys_error(where, "not an IPv4 or IPv6 address", 0);
    }
    const std::string& token = options_.bearer_token;
    if (token.empty())
        return sys_error(where, "a bearer token is required on TCP", 0);
    // RFC 6750 2.1 b64token is narrower; any visible ASCII works in a header and a file.
    if (!std::all_of(token.begin(), token.end(), [](char c) { return c > 0x20 && c < 0x7f; }))
        return sys_error(where, "the bearer token has spaces or non-printable characters", 0);

    tcp_fd_ = ::socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (tcp_fd_ < 0)
        return sys_error(where, "socket", errno);
    const int one = 1;
    if (::setsockopt(tcp_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        return sys_error(where, "SO_REUSEADDR", errno);
    if (::bind(tcp_fd_, reinterpret_cast<const sockaddr*>(&ss), len) != 0)
        return sys_error(where, "bind", errno);
    if (::listen(tcp_fd_, SOMAXCONN) != 0)
        return sys_error(where, "listen", errno);
    sockaddr_storage bound{};
    socklen_t bound_len = sizeof bound;
    if (::getsockname(tcp_fd_, reinterpret_cast<sockaddr*>(&bound), &bound_len) != 0)
        return sys_error(where, "getsockname", errno);
    tcp_port_ = ntohs(bound.ss_family == AF_INET
                          ? reinterpret_cast<const sockaddr_in*>(&bound)->sin_port
                          : reinterpret_cast<const sockaddr_in6*>(&bound)->sin6_port);
    return fwd::ok();
}

void http_server::run(const std::atomic<bool>& stop) {
    while (!stop.load(std::memory_order_relaxed))
        poll_once(100);
}

http_server::clock::time_point http_server::deadline(const connection& c) const {
    return c.draining ? c.drain_until : c.last_progress + options_.idle_timeout;
}

bool http_server::poll_once(int timeout_ms) {
    std::vector<pollfd> fds;
    fds.reserve(2 + connections_.size());
    if (unix_fd_ >= 0)
        fds.push_back(pollfd{unix_fd_, POLLIN, 0});
    if (tcp_fd_ >= 0)
        fds.push_back(pollfd{tcp_fd_, POLLIN, 0});
    const size_t listeners = fds.size();
    const size_t polled = connections_.size();

    auto now = clock::now();
    std::optional<clock::time_point> wake;
    if (timeout_ms >= 0)
        wake = now + std::chrono::milliseconds(timeout_ms);
    for (const auto& c : connections_) {
        short events = 0;
        if (c->draining) {
            events = POLLIN;
        } else {
            if (!c->peer_closed && !c->close_after_flush && c->pending() < out_high_water)
                events |= POLLIN;
            if (c->pending() > 0)
                events |= POLLOUT;
        }
        fds.push_back(pollfd{c->fd, events, 0});
        const auto d = deadline(*c);
        if (!wake || d < *wake)
            wake = d;
    }
    int wait_ms = -1;
    if (wake) {
        const auto ms = std::chrono::ceil<std::chrono::milliseconds>(*wake - now).count();
        wait_ms = static_cast<int>(std::clamp<int64_t>(ms, 0, 24 * 3600 * 1000));
    }
    const int ready = ::poll(fds.data(), fds.size(), wait_ms);
    now = clock::now();
    if (ready > 0) {
        for (size_t i = 0; i < polled; ++i)
            if (const short rev = fds[listeners + i].revents; rev != 0)
                service(*connections_[i], rev, now);
    }
    for (auto& c : connections_)
        if (!c->closed && now >= deadline(*c))
            c->closed = true; // idle, or done draining
    std::erase_if(connections_, [](const std::unique_ptr<connection>& c) {
        if (c->closed)
            ::close(c->fd);
        return c->closed;
    });
    if (ready > 0) {
        for (size_t i = 0; i < listeners; ++i)
            if (fds[i].revents & POLLIN)
                accept_ready(fds[i].fd, fds[i].fd == unix_fd_ ? http_transport::unix_socket
                                                              : http_transport::tcp);
    }
    return ready > 0;
}

void http_server::accept_ready(int listen_fd, http_transport transport) {
    for (size_t i = 0; i < accepts_per_round; ++i) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        const int fd = ::accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len,
                                 SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE) && spare_fd_ >= 0) {
                // Out of descriptors: take the pending connection off the queue with the
                // spare one and drop it, or poll() would report the listener forever.
                ::close(spare_fd_);
                if (const int drop = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
                    drop >= 0)
                    ::close(drop);
                spare_fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
            }
            return; // EAGAIN: nothing more to accept
        }
        if (connections_.size() >= options_.max_connections) {
            reject(fd);
            continue;
        }
        if (transport == http_transport::tcp) {
            const int one = 1; // answers are written whole: no reason to wait for an ACK
            (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        auto c = std::make_unique<connection>(options_.max_body);
        c->fd = fd;
        c->info.transport = transport;
        c->info.peer = peer_text(fd, transport, ss);
        c->last_progress = clock::now();
        connections_.push_back(std::move(c));
    }
}

void http_server::reject(int fd) {
    // Best effort, one non-blocking write: the client learns why before the close.
    static const std::string busy =
        serialize(error_response(503, "too many connections to the API"), false);
    (void)::send(fd, busy.data(), busy.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    ::close(fd);
}

void http_server::service(connection& c, short revents, clock::time_point now) {
    if (revents & POLLNVAL) {
        c.closed = true;
        return;
    }
    if (revents & (POLLIN | POLLHUP | POLLERR))
        read_from(c, now); // recv() reports EOF and socket errors too
    if (c.closed || c.draining)
        return;
    // Answer what is complete and write; again while answers stopped at the high-water mark
    // and the write emptied the buffer.
    for (;;) {
        const bool more = process(c);
        flush(c, now);
        if (c.closed || c.pending() > 0 || !more)
            break;
    }
    finish_if_done(c, now);
    if (!c.closed && c.peer_closed && (revents & (POLLHUP | POLLERR)))
        c.closed = true; // hung up both ways: nothing more can be written
}

void http_server::read_from(connection& c, clock::time_point now) {
    const ssize_t n = ::recv(c.fd, read_buf_.data(), read_buf_.size(), 0);
    if (n > 0) {
        c.last_progress = now;
        if (c.draining) {
            c.drained += static_cast<size_t>(n);
            if (c.drained > drain_limit)
                c.closed = true;
            return;
        }
        c.parser.feed(std::string_view(read_buf_.data(), static_cast<size_t>(n)));
        return;
    }
    if (n == 0) {
        c.peer_closed = true;
        if (c.draining)
            c.closed = true;
        return;
    }
    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        c.closed = true; // ECONNRESET and friends
}

bool http_server::process(connection& c) {
    if (c.close_after_flush || c.draining)
        return false;
    while (c.pending() < out_high_water) {
        std::optional<http_request> request = c.parser.next();
        if (!request) {
            if (c.parser.failed()) {
                const http_error& e = c.parser.error();
                respond(c, error_response(e.status, e.message), false);
                c.close_after_flush = true;
            } else if (const http_request* head = c.parser.pending_head()) {
                // Refuse before taking the body: an unauthenticated client must not make
                // us buffer up to max_body.
                if (!authorized(*head, c.info)) {
                    http_response r = error_response(401, "missing or wrong bearer token");
                    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"sagd\"");
                    respond(c, std::move(r), false);
                    c.close_after_flush = true;
                } else if (c.parser.take_continue()) {
                    c.out.append(continue_line);
                }
            }
            return false;
        }
        respond(c, dispatch(*request, c.info), request->keep_alive, request->method == "HEAD");
        if (!request->keep_alive) {
            c.close_after_flush = true;
            return false;
        }
    }
    return true; // stopped at the high-water mark: more may wait
}

bool http_server::authorized(const http_request& request, const connection_info& info) const {
    if (info.transport != http_transport::tcp)
        return true; // unix socket: its file mode is the access control
    if (request.method == "GET" &&
        std::find(options_.token_exempt_paths.begin(), options_.token_exempt_paths.end(),
                  request.path) != options_.token_exempt_paths.end())
        return true;
    const auto h = request.header("authorization");
    // RFC 6750 2.1: "Bearer" 1*SP b64token; the scheme is case-insensitive (RFC 9110 11.1).
    if (!h || h->size() < 7 || !iequals(h->substr(0, 6), "bearer") || (*h)[6] != ' ')
        return false;
    std::string_view token = h->substr(7);
    while (!token.empty() && token.front() == ' ')
        token.remove_prefix(1);
    return constant_time_equal(token, options_.bearer_token);
}

http_response http_server::dispatch(http_request& request, const connection_info& info) {
    if (!authorized(request, info)) {
        http_response r = error_response(401, "missing or wrong bearer token");
        r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"sagd\"");
        return r;
    }
    // The token never reaches handler code (nor its logs).
    std::erase_if(request.headers, [](const auto& h) { return h.first == "authorization"; });
    http_response response;
    try {
        response = handler_(request, info);
    } catch (...) {
        response = error_response(500, "internal error");
    }
    return response;
}

void http_server::respond(connection& c, http_response response, bool keep_alive, bool head_only) {
    // RFC 9110 6.6.1: an origin server with a clock sends Date.
    if (std::none_of(response.headers.begin(), response.headers.end(),
                     [](const auto& h) { return iequals(h.first, "date"); }))
        response.headers.emplace_back("Date", http_date(std::time(nullptr)));
    std::string wire = serialize(response, keep_alive);
    // RFC 9110 9.3.2: the answer to HEAD is the GET answer's head (Content-Length included)
    // without its content. Header values never hold CRLF, so the first empty line ends it.
    if (head_only)
        wire.resize(wire.find("\r\n\r\n") + 4);
    c.out.append(wire);
}

void http_server::flush(connection& c, clock::time_point now) {
    while (c.pending() > 0) {
        const ssize_t n = ::send(c.fd, c.out.data() + c.out_off, c.pending(), MSG_NOSIGNAL);
        if (n > 0) {
            c.out_off += static_cast<size_t>(n);
            c.last_progress = now;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        c.closed = true; // EPIPE, ECONNRESET: the client is gone
        return;
    }
    if (c.pending() == 0) {
        if (c.out.capacity() > out_high_water)
            std::string().swap(c.out); // give back the memory of a large answer
        else
            c.out.clear();
        c.out_off = 0;
    } else if (c.out_off >= read_chunk && c.out_off > c.out.size() / 2) {
        c.out.erase(0, c.out_off); // amortized: each byte moves at most once more
        c.out_off = 0;
    }
}

void http_server::finish_if_done(connection& c, clock::time_point now) {
    if (c.closed || c.pending() > 0)
        return;
    if (c.close_after_flush) {
        if (c.peer_closed) {
            c.closed = true;
            return;
        }
        ::shutdown(c.fd, SHUT_WR);
        c.draining = true;
        c.drain_until = now + drain_time;
        return;
    }
    // EOF and every complete request answered: a partial request can never complete.
    if (c.peer_closed)
        c.closed = true;
}

} // namespace sagd::shim
