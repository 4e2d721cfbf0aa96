// libFuzzer target for the runtime API's request parser (control-shim/http.*): the bytes are
// what a client of the API socket could send. Each input is parsed (1) whole, (2) in three
// chunks cut where its first two bytes say and (3) byte by byte (small inputs); the three must
// give the same requests and the same error. Every request must keep the parser's promises
// (checked below), the parser's buffer stays bounded, and the request's fields go through the
// JSON string escaper and the response serializer, whose output is checked too. The sanitizers
// catch out-of-bounds reads. Built without libFuzzer (gcc), the same file has a main() that
// replays corpus files or directories: see tests/fuzz/README.md.
#include "control-shim/http.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace sagd::shim;

void check(bool ok, const char* what) {
    if (!ok) {
        std::fprintf(stderr, "http_fuzz: invariant broken: %s\n", what);
        std::abort();
    }
}

bool is_tchar(unsigned char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

// Strict UTF-8 (no overlongs, surrogates or code points above U+10FFFF).
bool valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        size_t n = b < 0x80             ? 1
                   : (b & 0xe0) == 0xc0 ? 2
                   : (b & 0xf0) == 0xe0 ? 3
                   : (b & 0xf8) == 0xf0 ? 4
                                        : 0;
        if (n == 0 || i + n > s.size())
            return false;
        uint32_t cp = n == 1 ? b : b & (0x7f >> n);
        for (size_t k = 1; k < n; ++k) {
            const auto c = static_cast<unsigned char>(s[i + k]);
            if ((c & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (c & 0x3f);
        }
        static constexpr uint32_t min_for[] = {0, 0, 0x80, 0x800, 0x10000};
        if (cp < min_for[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n;
    }
    return true;
}

// A JSON string literal as RFC 8259 7 defines it.
void check_json_string(std::string_view lit) {
    check(lit.size() >= 2 && lit.front() == '"' && lit.back() == '"', "quoted");
    check(valid_utf8(lit), "JSON string is valid UTF-8");
    for (size_t i = 1; i + 1 < lit.size(); ++i) {
        const auto c = static_cast<unsigned char>(lit[i]);
        check(c >= 0x20 && c != '"' && c != 0x7f, "no raw control or quote in JSON string");
        if (c != '\\')
            continue;
        check(i + 2 < lit.size(), "escape inside the string");
        const char e = lit[++i];
        if (e == 'u') {
            check(i + 5 < lit.size(), "\\u has 4 digits");
            for (int k = 0; k < 4; ++k) {
                const char h = lit[++i];
                check((h >= '0' && h <= '9') || (h >= 'a' && h <= 'f'), "\\u hex digit");
            }
        } else {
            check(std::string_view("\"\\/bfnrt").find(e) != std::string_view::npos, "known escape");
        }
    }
}

void check_request(const http_request& r, size_t max_body) {
    check(!r.method.empty() &&
              std::all_of(r.method.begin(), r.method.end(), [](char c) { return is_tchar(c); }),
          "method is a token");
    check(!r.path.empty() && r.path.front() == '/', "path is absolute");
    check(r.path.find('\0') == std::string::npos, "no NUL in path");
    for (const auto& [k, v] : r.query)
        check(k.find('\0') == std::string::npos && v.find('\0') == std::string::npos,
              "no NUL in query");
    for (const auto& [name, value] : r.headers) {
        check(!name.empty() &&
                  std::all_of(name.begin(), name.end(),
                              [](char c) { return is_tchar(c) && !(c >= 'A' && c <= 'Z'); }),
              "header name is a lower-case token");
        check(value.find_first_of(std::string_view("\r\n\0", 3)) == std::string::npos,
              "no CR, LF or NUL in a header value");
        check(value.empty() || (value.front() != ' ' && value.front() != '\t' &&
                                value.back() != ' ' && value.back() != '\t'),
              "header value trimmed");
    }
    check(r.body.size() <= max_body, "body within max_body");
    check(r.version_minor == 0 || r.version_minor == 1, "HTTP/1.0 or HTTP/1.1");
    check(r.version_minor == 1 || !r.keep_alive, "no keep-alive for HTTP/1.0");
    check(r.version_minor == 0 || r.header("host").has_value(), "HTTP/1.1 has Host");
    if (const auto cl = r.header("content-length"))
        check(std::to_string(r.body.size()) ==
                  std::string(*cl).erase(0, std::min(cl->find_first_not_of('0'), cl->size() - 1)),
              "body length is the Content-Length");
    check(!r.header("transfer-encoding"), "no Transfer-Encoding");

    // The fields through the JSON escaper and the response serializer.
    for (std::string_view s : {std::string_view(r.path), std::string_view(r.body)}) {
        std::string lit;
        append_json_string(lit, s);
        check_json_string(lit);
    }
    for (const auto& [name, value] : r.headers) {
        std::string lit;
        append_json_string(lit, value);
        check_json_string(lit);
    }
    http_response resp;
    resp.status = 200 + static_cast<int>(r.body.size() % 400);
    resp.headers = {{"X-Path", r.path}, {r.method, r.body}};
    resp.body = r.path;
    const std::string wire = serialize(resp, r.keep_alive);
    const size_t head_end = wire.find("\r\n\r\n");
    check(head_end != std::string::npos, "response head ends");
    for (size_t i = 0; i < head_end; ++i) {
        if (wire[i] == '\r')
            check(wire[i + 1] == '\n', "CR only before LF in the response head");
        if (wire[i] == '\n')
            check(wire[i - 1] == '\r', "LF only after CR in the response head");
        check(wire[i] != '\0', "no NUL in the response head");
    }
    const std::string_view body = std::string_view(wire).substr(head_end + 4);
    check(body.empty() || body == r.path, "response body as given");
}

struct outcome {
    std::vector<http_request> requests;
    std::optional<http_error> error;
};

bool same(const outcome& a, const outcome& b) {
    if (a.requests.size() != b.requests.size() || a.error.has_value() != b.error.has_value())
        return false;
    for (size_t i = 0; i < a.requests.size(); ++i) {
        const http_request& x = a.requests[i];
        const http_request& y = b.requests[i];
        if (x.method != y.method || x.path != y.path || x.query != y.query ||
            x.headers != y.headers || x.body != y.body || x.version_minor != y.version_minor ||
            x.keep_alive != y.keep_alive)
            return false;
    }
    return !a.error || (a.error->status == b.error->status && a.error->message == b.error->message);
}

// Feeds `in` cut at `cuts` (ascending), taking requests after every chunk.
outcome parse(std::string_view in, size_t max_body, const std::vector<size_t>& cuts) {
    http_request_parser p(max_body);
    outcome out;
    size_t from = 0;
    auto take = [&] {
        while (auto r = p.next()) {
            check_request(*r, max_body);
            out.requests.push_back(std::move(*r));
        }
        (void)p.take_continue();
        if (p.failed()) {
            const int s = p.error().status;
            check(s == 400 || s == 413 || s == 417 || s == 431 || s == 501 || s == 505,
                  "error status is one of the documented ones");
            check(!p.error().message.empty(), "error has a message");
            check(p.buffered() == 0 && !p.pending_head(), "failed parser holds nothing");
            out.error = p.error();
        } else {
            check(p.buffered() < http_max_head_size + max_body, "buffer bounded by one request");
            if (const http_request* h = p.pending_head())
                check(h->body.empty() && !h->method.empty(), "pending head has no body yet");
        }
    };
    for (const size_t cut : cuts) {
        p.feed(in.substr(from, cut - from));
        take();
        from = cut;
    }
    p.feed(in.substr(from));
    take();
    // Further input after an error is ignored.
    if (p.failed()) {
        p.feed(in);
        check(!p.next() && p.buffered() == 0, "failed parser stays failed");
    }
    return out;
}

void run_one(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    // Small limits now and then so that 413 and full bodies are both reachable.
    const size_t max_body = size > 2 && (data[2] & 1) ? 16 : 1 << 20;
    const outcome whole = parse(in, max_body, {});
    // Three chunks, cut where the first two bytes say.
    const size_t a = size ? data[0] % (size + 1) : 0;
    const size_t b = size > 1 ? a + data[1] % (size - a + 1) : a;
    check(same(whole, parse(in, max_body, {a, b})), "same result in three chunks");
    if (size <= 2048) {
        std::vector<size_t> every(size);
        for (size_t i = 0; i < size; ++i)
            every[i] = i;
        check(same(whole, parse(in, max_body, every)), "same result byte by byte");
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    run_one(data, size);
    return 0;
}

#ifdef SAGD_HTTP_REPLAY_MAIN
#define SAGD_FUZZ_NAME "http_fuzz"
#include "replay_main.hpp"
#endif
