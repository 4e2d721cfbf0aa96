// Unit tests for control-shim/http.*: the request parser (every split of the input gives the
// same result), response serialization, the JSON writer (checked by a strict RFC 8259 reader
// below) and the server on real sockets: a unix socket in a temp dir and 127.0.0.1 port 0,
// with the server's run() loop on a thread and blocking clients here.
#include "control-shim/http.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace {

using namespace sagd::shim;
using namespace std::chrono_literals;

// ---- parser helpers

struct outcome {
    std::vector<http_request> requests;
    std::optional<http_error> error;
};

void drain(http_request_parser& p, outcome& out) {
    while (auto r = p.next())
        out.requests.push_back(std::move(*r));
    if (p.failed())
        out.error = p.error();
}

// Feeds `input` cut at the given offsets (ascending), calling next() after every chunk.
outcome parse_cut(std::string_view input, const std::vector<size_t>& cuts,
                  size_t max_body = http_default_max_body) {
    http_request_parser p(max_body);
    outcome out;
    size_t from = 0;
    for (size_t cut : cuts) {
        p.feed(input.substr(from, cut - from));
        drain(p, out);
        from = cut;
    }
    p.feed(input.substr(from));
    drain(p, out);
    return out;
}

outcome parse(std::string_view input, size_t max_body = http_default_max_body) {
    return parse_cut(input, {}, max_body);
}

http_request parse_one(std::string_view input) {
    outcome o = parse(input);
    EXPECT_FALSE(o.error) << o.error->status << " " << o.error->message;
    EXPECT_EQ(o.requests.size(), 1u);
    return o.requests.empty() ? http_request{} : o.requests.front();
}

int error_status(std::string_view input, size_t max_body = http_default_max_body) {
    outcome o = parse(input, max_body);
    return o.error ? o.error->status : 0;
}

bool same_request(const http_request& a, const http_request& b) {
    return a.method == b.method && a.path == b.path && a.query == b.query &&
           a.headers == b.headers && a.body == b.body && a.version_minor == b.version_minor &&
           a.keep_alive == b.keep_alive;
}

::testing::AssertionResult same_outcome(const outcome& a, const outcome& b) {
    if (a.requests.size() != b.requests.size())
        return ::testing::AssertionFailure()
               << a.requests.size() << " vs " << b.requests.size() << " requests";
    for (size_t i = 0; i < a.requests.size(); ++i)
        if (!same_request(a.requests[i], b.requests[i]))
            return ::testing::AssertionFailure() << "request " << i << " differs";
    if (a.error.has_value() != b.error.has_value())
        return ::testing::AssertionFailure() << "error vs none";
    if (a.error && (a.error->status != b.error->status || a.error->message != b.error->message))
        return ::testing::AssertionFailure() << a.error->status << " " << a.error->message << " vs "
                                             << b.error->status << " " << b.error->message;
    return ::testing::AssertionSuccess();
}

// ---- parser

TEST(HttpParser, SimpleGet) {
    const http_request r =
        parse_one("GET /v1/status HTTP/1.1\r\nHost: localhost\r\nX-Trace-ID:  abc \t\r\n\r\n");
    EXPECT_EQ(r.method, "GET");
    EXPECT_EQ(r.path, "/v1/status");
    EXPECT_TRUE(r.query.empty());
    EXPECT_EQ(r.version_minor, 1);
    EXPECT_TRUE(r.keep_alive);
    ASSERT_EQ(r.headers.size(), 2u);
    EXPECT_EQ(r.headers[1].first, "x-trace-id"); // names lower-cased
    EXPECT_EQ(r.headers[1].second, "abc");       // surrounding whitespace removed
    EXPECT_EQ(r.header("X-TRACE-ID"), "abc");
    EXPECT_EQ(r.header("host"), "localhost");
    EXPECT_FALSE(r.header("content-length"));
    EXPECT_TRUE(r.body.empty());
}

TEST(HttpParser, PercentDecodingAndQuery) {
    const http_request r =
        parse_one("GET /v1/tunnels/caf%C3%A9%20edge?prefix=10.0.0.0/8&match=longer&x=a+b%2Bc&flag&&"
                  "empty=&%41=%3d HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(r.path, "/v1/tunnels/caf\xc3\xa9 edge");
    const std::vector<std::pair<std::string, std::string>> want = {{"prefix", "10.0.0.0/8"},
                                                                   {"match", "longer"},
                                                                   {"x", "a b+c"},
                                                                   {"flag", ""},
                                                                   {"empty", ""},
                                                                   {"A", "="}};
    EXPECT_EQ(r.query, want);
    EXPECT_EQ(r.query_value("prefix"), "10.0.0.0/8");
    EXPECT_EQ(r.query_value("flag"), "");
    EXPECT_FALSE(r.query_value("Prefix")); // query names are case-sensitive
    // '+' is literal in the path; '?' may appear inside the query.
    const http_request r2 = parse_one("GET /a+b?q=x?y HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_EQ(r2.path, "/a+b");
    EXPECT_EQ(r2.query_value("q"), "x?y");
}

TEST(HttpParser, BodyByContentLength) {
    const http_request r =
        parse_one("POST /v1/tunnels HTTP/1.1\r\nHost: h\r\nContent-Length: "
                  "11\r\nContent-Type: application/json\r\n\r\n{\"a\":\r\n\"b\"}");
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.body, "{\"a\":\r\n\"b\"}");
    EXPECT_EQ(parse_one("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 007\r\n\r\n1234567").body,
              "1234567"); // 1*DIGIT: leading zeros are digits
    EXPECT_EQ(parse_one("PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n").body, "");
}

TEST(HttpParser, Pipelining) {
    const std::string in = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
                           "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz"
                           "DELETE /c?x=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
                           "GET /d HTT";
    http_request_parser p;
    p.feed(in);
    auto a = p.next();
    auto b = p.next();
    auto c = p.next();
    ASSERT_TRUE(a && b && c);
    EXPECT_EQ(a->path, "/a");
    EXPECT_EQ(b->body, "xyz");
    EXPECT_EQ(c->method, "DELETE");
    EXPECT_FALSE(c->keep_alive);
    EXPECT_FALSE(p.next()); // the fourth is incomplete
    EXPECT_FALSE(p.failed());
    EXPECT_EQ(p.buffered(), 10u);
    p.feed("P/1.1\r\nHost: h\r\n\r\n");
    auto d = p.next();
    ASSERT_TRUE(d);
    EXPECT_EQ(d->path, "/d");
    EXPECT_EQ(p.buffered(), 0u);
}

// The samples the split test runs; each is either a good stream or ends in an error.
const std::vector<std::string>& split_samples() {
    static const std::vector<std::string> samples = {
        "GET /a?b=c%20d HTTP/1.1\r\nHost: h\r\n\r\n"
        "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n\r\n\r\n\r"
        "\r\nPUT /c HTTP/1.0\r\nContent-Length: 2\r\n\r\nok",
        "GET /a HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n",
        "GET /a HTTP/1.1\nHost: h\r\n\r\n",
        "GET /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        "GET /a HTTP/1.1\r\nHost: h\r\n\r\nGET /b HTTP/3.0\r\n\r\n",
        "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n",
        "GET /%e2%82%ac?q=%ZZ HTTP/1.1\r\nHost: h\r\n\r\n",
    };
    return samples;
}

TEST(HttpParser, SameResultForEverySplit) {
    for (const std::string& in : split_samples()) {
        SCOPED_TRACE(in);
        const outcome whole = parse(in, 64);
        for (size_t cut = 0; cut <= in.size(); ++cut)
            ASSERT_TRUE(same_outcome(whole, parse_cut(in, {cut}, 64))) << "cut at " << cut;
        for (size_t a = 0; a <= in.size(); a += 7)
            for (size_t b = a; b <= in.size(); b += 5)
                ASSERT_TRUE(same_outcome(whole, parse_cut(in, {a, b}, 64)))
                    << "cuts at " << a << ", " << b;
        std::vector<size_t> every(in.size());
        for (size_t i = 0; i < in.size(); ++i)
            every[i] = i;
        ASSERT_TRUE(same_outcome(whole, parse_cut(in, every, 64))) << "byte by byte";
    }
    // And the samples do what they are there for.
    EXPECT_EQ(parse(split_samples()[0], 64).requests.size(), 3u);
    EXPECT_EQ(parse(split_samples()[6], 64).requests.size(), 1u);
    EXPECT_EQ(parse(split_samples()[6], 64).error->status, 505);
}

TEST(HttpParser, HeadSizeLimit) {
    auto with_head_size = [](size_t total) {
        const std::string start = "GET / HTTP/1.1\r\nHost: h\r\nX-Pad: ";
        const std::string end = "\r\n\r\n";
        return start + std::string(total - start.size() - end.size(), 'p') + end;
    };
    EXPECT_EQ(error_status(with_head_size(http_max_head_size)), 0);
    EXPECT_EQ(error_status(with_head_size(http_max_head_size + 1)), 431);
    // An endless line is refused once the limit is passed, without waiting for its end.
    http_request_parser p;
    p.feed("GET /" + std::string(http_max_head_size, 'a'));
    EXPECT_FALSE(p.next());
    ASSERT_TRUE(p.failed());
    EXPECT_EQ(p.error().status, 431);
    EXPECT_EQ(p.buffered(), 0u); // memory given back
    // Empty lines before the request line count as head bytes.
    std::string crlfs;
    for (size_t i = 0; i < http_max_head_size / 2; ++i)
        crlfs += "\r\n";
    EXPECT_EQ(error_status(crlfs + "GET / HTTP/1.1\r\nHost: h\r\n\r\n"), 431);
}

TEST(HttpParser, HeaderCountLimit) {
    auto with_fields = [](size_t n) {
        std::string s = "GET / HTTP/1.1\r\nHost: h\r\n";
        for (size_t i = 1; i < n; ++i)
            s += "X-A: b\r\n";
        return s + "\r\n";
    };
    EXPECT_EQ(error_status(with_fields(http_max_header_count)), 0);
    EXPECT_EQ(error_status(with_fields(http_max_header_count + 1)), 431);
}

TEST(HttpParser, BodyLimit) {
    const std::string head = "POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: ";
    EXPECT_EQ(parse(head + "10\r\n\r\n0123456789", 10).requests.size(), 1u);
    // 413 as soon as the head is in, before any body byte.
    EXPECT_EQ(error_status(head + "11\r\n\r\n", 10), 413);
    EXPECT_EQ(error_status(head + "99999999999999999999999999999999\r\n\r\n"), 413);
    EXPECT_EQ(error_status(head + std::to_string(http_default_max_body + 1) + "\r\n\r\n"), 413);
    http_request_parser p(0);
    p.feed("POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\n");
    EXPECT_FALSE(p.next());
    EXPECT_EQ(p.error().status, 413);
    EXPECT_NE(p.error().message.find("0 bytes"), std::string::npos) << p.error().message;
}

TEST(HttpParser, Refusals) {
    const std::string host = "Host: h\r\n";
    const struct {
        std::string input;
        int status;
    } cases[] = {
        // request line
        {"GET\r\n\r\n", 400},
        {"GET /\r\n\r\n", 400},
        {"GET  / HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET / HTTP/1.1 \r\n" + host + "\r\n", 400},
        {" GET / HTTP/1.1\r\n" + host + "\r\n", 400},
        {"G(ET / HTTP/1.1\r\n" + host + "\r\n", 400},
        {"G\xc3\x89T / HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET / http/1.1\r\n" + host + "\r\n", 400},
        {"GET / HTTP/1.1x\r\n" + host + "\r\n", 400},
        {"GET / HTTP/11\r\n" + host + "\r\n", 400},
        {"GET / HTTP/2.0\r\n" + host + "\r\n", 505},
        {"GET / HTTP/1.2\r\n" + host + "\r\n", 505},
        {"GET / HTTP/0.9\r\n" + host + "\r\n", 505},
        {"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
        {"OPTIONS * HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET http://h/ HTTP/1.1\r\n" + host + "\r\n", 400},
        {"CONNECT h:443 HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET /a#frag HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET /a\"b HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET /caf\xc3\xa9 HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET /a\tb HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET /a%2Fb HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET /a%2fb HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET /a%zz HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET /a%2 HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET /a% HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET /a%00b HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET /a?x=%00 HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET /a?x=%g0 HTTP/1.1\r\n" + host + "\r\n", 400},
        {"GET /a?x=[1] HTTP/1.1\r\n" + host + "\r\n", 400},
        // line endings
        {"GET / HTTP/1.1\n" + host + "\r\n", 400},
        {"GET / HTTP/1.1\r\n" + host + "\n", 400},
        {"GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\r\n" + host + "\r\n", 400},
        {"\nGET / HTTP/1.1\r\n" + host + "\r\n", 400},
        // header fields
        {"GET / HTTP/1.1\r\n" + host + " X-Folded: y\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n" + host + "X-A: b\r\n\tfolded\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n" + host + "X-A : b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n" + host + "X-A\t: b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n" + host + ": b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n" + host + "X(A): b\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n" + host + "no colon\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n" + host + std::string("X-A: b\0c\r\n\r\n", 12), 400},
        {"GET / HTTP/1.1\r\n" + host + "X-A: b\x7f\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n" + host + "X-A: b\x01\r\n\r\n", 400},
        {"GET / HTTP/1.1\r\n\r\n", 400},                    // no Host
        {"GET / HTTP/1.1\r\n" + host + host + "\r\n", 400}, // two Hosts
        {"GET / HTTP/1.1\r\n" + host + "Authorization: Bearer a\r\nAuthorization: Bearer b\r\n\r\n",
         400},
        {"POST / HTTP/1.1\r\n" + host +
             "Content-Type: application/json\r\nContent-Type: text/plain\r\n\r\n",
         400},
        // bodies
        {"POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
        {"POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n",
         501},
        {"POST / HTTP/1.1\r\n" + host + "Content-Length: 1\r\nContent-Length: 1\r\n\r\nx", 400},
        {"POST / HTTP/1.1\r\n" + host + "Content-Length: 1, 1\r\n\r\nx", 400},
        {"POST / HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\n" + host + "Content-Length: +1\r\n\r\nx", 400},
        {"POST / HTTP/1.1\r\n" + host + "Content-Length: 0x10\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\n" + host + "Content-Length: 1 2\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\n" + host + "Content-Length:\r\n\r\n", 400},
        {"POST / HTTP/1.1\r\n" + host + "Expect: 200-ok\r\n\r\n", 417},
    };
    for (const auto& c : cases) {
        outcome o = parse(c.input);
        ASSERT_TRUE(o.error) << c.input;
        EXPECT_EQ(o.error->status, c.status) << c.input << " -> " << o.error->message;
        EXPECT_TRUE(o.requests.empty()) << c.input;
        EXPECT_FALSE(o.error->message.empty());
    }
    // Accepted for contrast: any token is a method (the handler answers 405), HTTP/1.0
    // needs no Host, empty lines before a request are skipped, "Expect" is ignored in 1.0.
    EXPECT_EQ(parse_one("get / HTTP/1.1\r\nHost: h\r\n\r\n").method, "get");
    EXPECT_EQ(parse_one("M-SEARCH / HTTP/1.1\r\nHost: h\r\n\r\n").method, "M-SEARCH");
    EXPECT_EQ(parse_one("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n").path, "/");
    EXPECT_EQ(parse_one("GET / HTTP/1.0\r\nExpect: nonsense\r\n\r\n").version_minor, 0);
    EXPECT_EQ(parse_one("GET / HTTP/1.1\r\nHost:\r\nX-Empty:\r\n\r\n").header("x-empty"), "");
    EXPECT_EQ(
        parse_one("GET / HTTP/1.1\r\nHost: h\r\nX-Utf8: caf\xc3\xa9\r\n\r\n").header("x-utf8"),
        "caf\xc3\xa9"); // obs-text is kept as bytes
}

TEST(HttpParser, ErrorIsFinal) {
    http_request_parser p;
    p.feed("GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n");
    EXPECT_FALSE(p.next());
    ASSERT_TRUE(p.failed());
    EXPECT_EQ(p.error().status, 400);
    EXPECT_NE(p.error().message.find("whitespace"), std::string::npos);
    p.feed("GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    EXPECT_FALSE(p.next());
    EXPECT_TRUE(p.failed());
    EXPECT_EQ(p.buffered(), 0u);
}

TEST(HttpParser, KeepAlive) {
    EXPECT_TRUE(parse_one("GET / HTTP/1.1\r\nHost: h\r\n\r\n").keep_alive);
    EXPECT_FALSE(parse_one("GET / HTTP/1.1\r\nHost: h\r\nConnection: Close\r\n\r\n").keep_alive);
    EXPECT_FALSE(
        parse_one("GET / HTTP/1.1\r\nHost: h\r\nConnection: te, close\r\n\r\n").keep_alive);
    EXPECT_TRUE(parse_one("GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n").keep_alive);
    const http_request old = parse_one("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    EXPECT_EQ(old.version_minor, 0);
    EXPECT_FALSE(old.keep_alive); // HTTP/1.0: one request per connection
}

TEST(HttpParser, ExpectContinueAndPendingHead) {
    http_request_parser p;
    p.feed("PUT /v1/config HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n");
    EXPECT_FALSE(p.next());
    EXPECT_EQ(p.pending_head(), nullptr); // head not complete yet
    p.feed("\r\n");
    EXPECT_FALSE(p.next());
    ASSERT_NE(p.pending_head(), nullptr);
    EXPECT_EQ(p.pending_head()->path, "/v1/config");
    EXPECT_TRUE(p.take_continue());
    EXPECT_FALSE(p.take_continue()); // once
    p.feed("ab");
    EXPECT_FALSE(p.next());
    EXPECT_FALSE(p.take_continue());
    p.feed("cd");
    auto r = p.next();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->body, "abcd");
    EXPECT_EQ(p.pending_head(), nullptr);
    // Body already here, or no body: no 100 (RFC 9110 10.1.1).
    http_request_parser q;
    q.feed("PUT /x HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz");
    EXPECT_TRUE(q.next());
    EXPECT_FALSE(q.take_continue());
}

TEST(HttpParser, BoundedMemoryOnGarbage) {
    http_request_parser p;
    std::mt19937 rng(7);
    std::string chunk(4096, '\0');
    for (int i = 0; i < 64 && !p.failed(); ++i) {
        for (char& c : chunk)
            c = static_cast<char>(rng() % 2 ? 'A' + rng() % 26 : ' ');
        p.feed(chunk);
        EXPECT_FALSE(p.next());
        EXPECT_LE(p.buffered(), http_max_head_size + chunk.size());
    }
    EXPECT_TRUE(p.failed());
}

// ---- responses

TEST(HttpResponse, Serialize) {
    http_response r;
    r.body = "{\"a\":1}";
    EXPECT_EQ(serialize(r, true), "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                  "Content-Length: 7\r\n\r\n{\"a\":1}");
    r.status = 404;
    r.headers = {{"Allow", "GET"}};
    EXPECT_EQ(serialize(r, false), "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\n"
                                   "Allow: GET\r\nContent-Length: 7\r\nConnection: close\r\n\r\n"
                                   "{\"a\":1}");
    http_response empty;
    empty.body = "ignored";
    empty.status = 204;
    EXPECT_EQ(serialize(empty, true), "HTTP/1.1 204 No Content\r\n\r\n");
    empty.status = 304;
    EXPECT_EQ(serialize(empty, true), "HTTP/1.1 304 Not Modified\r\n\r\n");
    http_response text;
    text.content_type = "text/plain; version=0.0.4";
    EXPECT_EQ(serialize(text, true), "HTTP/1.1 200 OK\r\nContent-Type: text/plain; "
                                     "version=0.0.4\r\nContent-Length: 0\r\n\r\n");
    http_response no_type;
    no_type.content_type.clear();
    no_type.status = 201;
    EXPECT_EQ(serialize(no_type, true), "HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
}

TEST(HttpResponse, StatusAndHeaderHygiene) {
    http_response r;
    r.content_type.clear();
    r.status = 299;
    EXPECT_EQ(serialize(r, true), "HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n");
    r.status = 42;
    EXPECT_EQ(serialize(r, true),
              "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n");
    r.status = 200;
    r.headers = {
        {"X-Inject", "a\r\nSet-Cookie: x"}, {"Content-Length", "99"}, {"connection", "keep-alive"},
        {"Transfer-Encoding", "chunked"},   {"Bad Name", "v"},        {"", "v"}};
    EXPECT_EQ(serialize(r, true),
              "HTTP/1.1 200 OK\r\nX-Inject: a  Set-Cookie: x\r\nContent-Length: 0\r\n\r\n");
    EXPECT_EQ(http_reason_phrase(413), "Content Too Large");
    EXPECT_EQ(http_reason_phrase(431), "Request Header Fields Too Large");
    EXPECT_EQ(http_reason_phrase(401), "Unauthorized");
    EXPECT_EQ(http_reason_phrase(411), "Length Required");
    EXPECT_EQ(http_reason_phrase(415), "Unsupported Media Type");
    EXPECT_EQ(http_reason_phrase(505), "HTTP Version Not Supported");
}

// ---- JSON: a strict RFC 8259 reader to check what the writer makes

bool valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        const auto b = static_cast<unsigned char>(s[i]);
        size_t n;
        uint32_t cp;
        if (b < 0x80) {
            n = 1;
            cp = b;
        } else if ((b & 0xe0) == 0xc0) {
            n = 2;
            cp = b & 0x1f;
        } else if ((b & 0xf0) == 0xe0) {
            n = 3;
            cp = b & 0x0f;
        } else if ((b & 0xf8) == 0xf0) {
            n = 4;
            cp = b & 0x07;
        } else {
            return false;
        }
        if (i + n > s.size())
            return false;
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

class json_checker {
  public:
    explicit json_checker(std::string_view s) : s_(s) {}
    // Valid JSON text; `decoded` gets the value of each string seen, in order.
    bool valid() {
        if (!valid_utf8(s_))
            return false;
        ws();
        if (!value(0))
            return false;
        ws();
        return i_ == s_.size();
    }
    std::vector<std::string> strings;

  private:
    bool eat(char c) {
        if (i_ < s_.size() && s_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    void ws() {
        while (i_ < s_.size() &&
               (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r'))
            ++i_;
    }
    bool literal(std::string_view w) {
        if (s_.substr(i_, w.size()) != w)
            return false;
        i_ += w.size();
        return true;
    }
    bool digits() {
        const size_t start = i_;
        while (i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '9')
            ++i_;
        return i_ > start;
    }
    bool number() {
        eat('-');
        if (eat('0')) {
        } else if (i_ < s_.size() && s_[i_] >= '1' && s_[i_] <= '9') {
            digits();
        } else {
            return false;
        }
        if (eat('.') && !digits())
            return false;
        if (eat('e') || eat('E')) {
            if (!eat('+'))
                eat('-');
            if (!digits())
                return false;
        }
        return true;
    }
    static void put_utf8(std::string& out, uint32_t cp) {
        if (cp < 0x80) {
            out.push_back(static_cast<char>(cp));
        } else if (cp < 0x800) {
            out.push_back(static_cast<char>(0xc0 | cp >> 6));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        } else {
            out.push_back(static_cast<char>(0xe0 | cp >> 12));
            out.push_back(static_cast<char>(0x80 | (cp >> 6 & 0x3f)));
            out.push_back(static_cast<char>(0x80 | (cp & 0x3f)));
        }
    }
    bool string() {
        if (!eat('"'))
            return false;
        std::string decoded;
        while (i_ < s_.size()) {
            const auto c = static_cast<unsigned char>(s_[i_++]);
            if (c == '"') {
                strings.push_back(decoded);
                return true;
            }
            if (c < 0x20)
                return false;
            if (c != '\\') {
                decoded.push_back(static_cast<char>(c));
                continue;
            }
            if (i_ >= s_.size())
                return false;
            const char e = s_[i_++];
            switch (e) {
            case '"':
                decoded.push_back('"');
                break;
            case '\\':
                decoded.push_back('\\');
                break;
            case '/':
                decoded.push_back('/');
                break;
            case 'b':
                decoded.push_back('\b');
                break;
            case 'f':
                decoded.push_back('\f');
                break;
            case 'n':
                decoded.push_back('\n');
                break;
            case 'r':
                decoded.push_back('\r');
                break;
            case 't':
                decoded.push_back('\t');
                break;
            case 'u': {
                if (i_ + 4 > s_.size())
                    return false;
                uint32_t cp = 0;
                for (int k = 0; k < 4; ++k) {
                    const char h = s_[i_++];
                    cp <<= 4;
                    if (h >= '0' && h <= '9')
                        cp |= static_cast<uint32_t>(h - '0');
                    else if (h >= 'a' && h <= 'f')
                        cp |= static_cast<uint32_t>(h - 'a' + 10);
                    else if (h >= 'A' && h <= 'F')
                        cp |= static_cast<uint32_t>(h - 'A' + 10);
                    else
                        return false;
                }
                if (cp >= 0xd800 && cp <= 0xdfff)
                    return false; // the writer never splits into surrogates
                put_utf8(decoded, cp);
                break;
            }
            default:
                return false;
            }
        }
        return false;
    }
    bool value(int depth) {
        if (depth > 64 || i_ >= s_.size())
            return false;
        switch (s_[i_]) {
        case '{':
            ++i_;
            ws();
            if (eat('}'))
                return true;
            do {
                ws();
                if (!string())
                    return false;
                ws();
                if (!eat(':'))
                    return false;
                ws();
                if (!value(depth + 1))
                    return false;
                ws();
            } while (eat(','));
            return eat('}');
        case '[':
            ++i_;
            ws();
            if (eat(']'))
                return true;
            do {
                ws();
                if (!value(depth + 1))
                    return false;
                ws();
            } while (eat(','));
            return eat(']');
        case '"':
            return string();
        case 't':
            return literal("true");
        case 'f':
            return literal("false");
        case 'n':
            return literal("null");
        default:
            return number();
        }
    }

    std::string_view s_;
    size_t i_ = 0;
};

bool valid_json(std::string_view s) {
    return json_checker(s).valid();
}

TEST(JsonChecker, RefusesInvalid) {
    for (const char* bad : {"", "{", "{\"a\"}", "[1,]", "[01]", "1.", "\"\x01\"", "\"\\x\"",
                            "{\"a\":1,}", "tru", "\"\xff\"", "[1] 2", "-", "1e", "\"\\u12\""})
        EXPECT_FALSE(valid_json(bad)) << bad;
    for (const char* good : {"0", "-0.5e+3", "[]", "{}", "{\"a\":[true,false,null,\"\\u00e9\"]}"})
        EXPECT_TRUE(valid_json(good)) << good;
}

TEST(JsonWriter, StructureAndCommas) {
    json_writer w;
    w.begin_object()
        .member("name", "edge-1")
        .key("sas")
        .begin_array()
        .begin_object()
        .member("spi", 0x1001u)
        .member("cipher", std::string("aes-gcm-128"))
        .end_object()
        .begin_object()
        .end_object()
        .end_array()
        .key("empty")
        .begin_array()
        .end_array()
        .member("up", true)
        .member("down", false)
        .key("none")
        .null()
        .key("nested")
        .begin_array()
        .begin_array()
        .value(1)
        .end_array()
        .value(2)
        .end_array()
        .end_object();
    EXPECT_TRUE(w.complete());
    EXPECT_EQ(w.str(),
              "{\"name\":\"edge-1\",\"sas\":[{\"spi\":4097,\"cipher\":\"aes-gcm-128\"},{}"
              "],\"empty\":[],\"up\":true,\"down\":false,\"none\":null,\"nested\":[[1],2]}");
    EXPECT_TRUE(valid_json(w.str()));
    json_writer top;
    EXPECT_FALSE(top.complete());
    top.value("just a string");
    EXPECT_TRUE(top.complete());
    EXPECT_EQ(top.take(), "\"just a string\"");
    json_writer open;
    open.begin_array().value(1);
    EXPECT_FALSE(open.complete());
}

TEST(JsonWriter, Numbers) {
    json_writer w;
    w.begin_array()
        .value(std::numeric_limits<uint64_t>::max())
        .value(std::numeric_limits<int64_t>::min())
        .value(static_cast<uint8_t>(255))
        .value(static_cast<int16_t>(-7))
        .value(0.1)
        .value(-2.5e-300)
        .value(1e21)
        .value(3.0)
        .value(-0.0)
        .value(std::nan(""))
        .value(std::numeric_limits<double>::infinity())
        .value(1.5f)
        .end_array();
    EXPECT_EQ(w.str(), "[18446744073709551615,-9223372036854775808,255,-7,0.1,-2.5e-300,1e+21,3,"
                       "-0,null,null,1.5]");
    EXPECT_TRUE(valid_json(w.str()));
}

TEST(JsonWriter, Escaping) {
    json_writer w;
    w.value(std::string_view("q\"b\\s/\b\f\n\r\t\x01\x1f\x7f\0end", 18));
    EXPECT_EQ(w.str(), "\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\\u007f\\u0000end\"");
    EXPECT_TRUE(valid_json(w.str()));
    // Valid UTF-8 passes as is, except C1 controls and the JavaScript line separators.
    std::string s;
    append_json_string(
        s, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xc2\x85 \xe2\x80\xa8\xe2\x80\xa9");
    EXPECT_EQ(s, "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \\u0085 \\u2028\\u2029\"");
    EXPECT_EQ(json_error("tunnel 'a\"b': spi 0x100 already used"),
              "{\"error\":\"tunnel 'a\\\"b': spi 0x100 already used\"}");
    // Keys are escaped the same way.
    json_writer k;
    k.begin_object().member("a\nb", 1).end_object();
    EXPECT_EQ(k.str(), "{\"a\\nb\":1}");
}

TEST(JsonWriter, InvalidUtf8BecomesReplacementCharacter) {
    const std::string fffd = "\xef\xbf\xbd";
    const struct {
        std::string in, out;
    } cases[] = {
        {"\xff", fffd},
        {"a\x80z", "a" + fffd + "z"},
        {"\xc3", fffd},                                  // truncated at the end
        {"\xc3(", fffd + "("},                           // truncated before ASCII
        {"\xc0\xaf", fffd + fffd},                       // overlong lead: each byte
        {"\xe0\x80\xaf", fffd + fffd + fffd},            // overlong 3-byte
        {"\xed\xa0\x80", fffd + fffd + fffd},            // surrogate U+D800
        {"\xf4\x90\x80\x80", fffd + fffd + fffd + fffd}, // above U+10FFFF
        {"\xe2\x82", fffd},                              // maximal subpart: one U+FFFD
        {"\xe2\x82x", fffd + "x"},
        {"\xf0\x9f\x98", fffd},
        {"\xf0\x9f\x98\xc3\xa9", fffd + "\xc3\xa9"},
        {"\xf8\x88\x80\x80\x80", fffd + fffd + fffd + fffd + fffd},
    };
    for (const auto& c : cases) {
        std::string s;
        append_json_string(s, c.in);
        EXPECT_EQ(s, "\"" + c.out + "\"");
        EXPECT_TRUE(valid_json(s)) << s;
    }
}

TEST(JsonWriter, RandomBytesAlwaysMakeValidJson) {
    std::mt19937 rng(42);
    for (int round = 0; round < 3000; ++round) {
        std::string in(rng() % 40, '\0');
        for (char& c : in) // bias towards interesting bytes
            c = static_cast<char>(rng() % 3 == 0 ? 0x80 + rng() % 0x80 : rng() % 0x100);
        json_writer w;
        w.begin_object()
            .member(in, in)
            .key("list")
            .begin_array()
            .value(in)
            .end_array()
            .end_object();
        json_checker check(w.str());
        ASSERT_TRUE(check.valid()) << w.str();
        ASSERT_EQ(check.strings.size(), 4u); // key, value, "list", element
        if (valid_utf8(in)) {                // valid text round-trips exactly
            EXPECT_EQ(check.strings[1], in);
        }
    }
}

// ---- server: clients

class temp_dir {
  public:
    temp_dir() {
        char tmpl[] = "/tmp/sagd-http-XXXXXX";
        const char* d = ::mkdtemp(tmpl);
        if (d == nullptr)
            throw std::runtime_error("mkdtemp failed");
        path_ = d;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    std::string file(const char* name) const { return path_ + "/" + name; }

  private:
    std::string path_;
};

void set_timeouts(int fd, std::chrono::milliseconds t) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(t.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>(t.count() % 1000 * 1000);
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

class client {
  public:
    explicit client(int fd) : fd_(fd) {
        if (fd_ >= 0)
            set_timeouts(fd_, 5s);
    }
    ~client() { close(); }
    client(client&& o) noexcept : fd_(std::exchange(o.fd_, -1)), carry_(std::move(o.carry_)) {}
    client(const client&) = delete;

    static client unix_socket(const std::string& path) {
        const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            ::close(fd);
            return client(-1);
        }
        return client(fd);
    }
    static client tcp(uint16_t port) {
        const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_port = htons(port);
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
            ::close(fd);
            return client(-1);
        }
        return client(fd);
    }

    bool ok() const { return fd_ >= 0; }
    int fd() const { return fd_; }
    void close() {
        if (fd_ >= 0)
            ::close(fd_);
        fd_ = -1;
    }

    bool send(std::string_view data) {
        while (!data.empty()) {
            const ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
            if (n <= 0)
                return false;
            data.remove_prefix(static_cast<size_t>(n));
        }
        return true;
    }

    struct response {
        int status = 0;
        std::vector<std::pair<std::string, std::string>> headers; // names lower-cased
        std::string body;
        std::string header(const std::string& name) const {
            for (const auto& [n, v] : headers)
                if (n == name)
                    return v;
            return {};
        }
        bool has(const std::string& name) const {
            return std::any_of(headers.begin(), headers.end(),
                               [&](const auto& h) { return h.first == name; });
        }
    };

    // One response (1xx included), or nullopt on EOF, error or timeout first. An answer to
    // HEAD has no content whatever its Content-Length says.
    std::optional<response> read_response(bool to_head = false) {
        size_t head_end;
        while ((head_end = carry_.find("\r\n\r\n")) == std::string::npos)
            if (!fill())
                return std::nullopt;
        response r;
        const std::string head = carry_.substr(0, head_end);
        carry_.erase(0, head_end + 4);
        if (head.compare(0, 9, "HTTP/1.1 ") != 0)
            return std::nullopt;
        r.status = std::atoi(head.c_str() + 9);
        size_t pos = head.find("\r\n");
        while (pos != std::string::npos) {
            const size_t next = head.find("\r\n", pos + 2);
            const std::string line = head.substr(
                pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
            const size_t colon = line.find(':');
            std::string name = line.substr(0, colon);
            for (char& c : name)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            r.headers.emplace_back(name, line.substr(colon + 2));
            pos = next;
        }
        const size_t length =
            r.has("content-length") && !to_head ? std::stoul(r.header("content-length")) : 0;
        while (carry_.size() < length)
            if (!fill())
                return std::nullopt;
        r.body = carry_.substr(0, length);
        carry_.erase(0, length);
        return r;
    }

    // The server closed the connection (EOF or reset) within the receive timeout.
    bool closed_by_server() {
        char buf[4096];
        for (;;) {
            const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
            if (n == 0)
                return true;
            if (n < 0)
                return errno == ECONNRESET || errno == EPIPE;
        }
    }

  private:
    bool fill() {
        char buf[65536];
        const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
        if (n <= 0)
            return false;
        carry_.append(buf, static_cast<size_t>(n));
        return true;
    }

    int fd_ = -1;
    std::string carry_;
};

std::string get(std::string_view path, std::string_view extra = "") {
    std::string s("GET ");
    s.append(path).append(" HTTP/1.1\r\nHost: localhost\r\n").append(extra).append("\r\n");
    return s;
}

std::string post(std::string_view path, std::string_view body, std::string_view extra = "") {
    std::string s("POST ");
    s.append(path).append(" HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n");
    s.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    s.append(extra).append("\r\n").append(body);
    return s;
}

// Echoes the request as JSON; /boom throws; /big answers 8 MiB.
http_response echo(const http_request& r, const connection_info& info) {
    if (r.path == "/boom")
        throw std::runtime_error("handler bug");
    http_response resp;
    if (r.path == "/big") {
        resp.content_type = "text/plain";
        resp.body.assign(8 << 20, 'x');
        return resp;
    }
    json_writer w;
    w.begin_object()
        .member("method", r.method)
        .member("path", r.path)
        .member("body", r.body)
        .member("transport", info.transport == http_transport::tcp ? "tcp" : "unix")
        .member("peer", info.peer)
        .member("saw_authorization", r.header("authorization").has_value());
    w.key("query").begin_array();
    for (const auto& [k, v] : r.query)
        w.begin_array().value(k).value(v).end_array();
    w.end_array().end_object();
    resp.body = w.take();
    return resp;
}

// The server's run() loop on its own thread for the life of the object.
class running_server {
  public:
    explicit running_server(std::unique_ptr<http_server> s)
        : server_(std::move(s)), thread_([this] { server_->run(stop_); }) {}
    ~running_server() {
        stop_ = true;
        thread_.join();
    }
    http_server& operator*() { return *server_; }
    http_server* operator->() { return server_.get(); }

  private:
    std::unique_ptr<http_server> server_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

std::unique_ptr<http_server> make_server(const http_server_options& o,
                                         http_server::handler h = echo) {
    auto s = http_server::create(o, std::move(h));
    EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.err().message);
    return s.ok() ? std::move(s).value() : nullptr;
}

constexpr const char* token = "s3cr3t-t0ken-0123456789abcdef";

http_server_options tcp_options() {
    http_server_options o;
    o.tcp_address = "127.0.0.1";
    o.tcp_port = 0;
    o.bearer_token = token;
    o.token_exempt_paths = {"/metrics"};
    return o;
}

// ---- server: listeners

TEST(HttpServer, UnixSocketMode0600AndCleanup) {
    temp_dir dir;
    http_server_options o;
    o.unix_path = dir.file("api.sock");
    const mode_t before = ::umask(0022);
    {
        running_server s(make_server(o));
        struct stat st {};
        ASSERT_EQ(::lstat(o.unix_path.c_str(), &st), 0);
        EXPECT_TRUE(S_ISSOCK(st.st_mode));
        EXPECT_EQ(st.st_mode & 07777, 0600u);
        EXPECT_EQ(::umask(0022), 0022u); // the process umask is back as it was
        EXPECT_EQ(s->tcp_port(), 0);
        client c = client::unix_socket(o.unix_path);
        ASSERT_TRUE(c.ok());
        ASSERT_TRUE(c.send(get("/v1/status?x=1")));
        auto r = c.read_response();
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200);
        EXPECT_EQ(r->header("content-type"), "application/json");
        EXPECT_TRUE(r->has("date"));
        EXPECT_NE(r->body.find("\"path\":\"/v1/status\""), std::string::npos) << r->body;
        EXPECT_NE(r->body.find("\"transport\":\"unix\""), std::string::npos);
        EXPECT_NE(r->body.find("\"peer\":\"pid "), std::string::npos) << r->body;
        EXPECT_NE(r->body.find("[[\"x\",\"1\"]]"), std::string::npos);
        EXPECT_TRUE(valid_json(r->body));
    }
    ::umask(before);
    struct stat st {};
    EXPECT_NE(::lstat(o.unix_path.c_str(), &st), 0); // unlinked by the destructor
}

TEST(HttpServer, StaleSocketReplacedOthersRefused) {
    temp_dir dir;
    http_server_options o;
    o.unix_path = dir.file("api.sock");
    { // a stale socket file: bound, never listening, closed
        const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::strncpy(addr.sun_path, o.unix_path.c_str(), sizeof addr.sun_path - 1);
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
        ::close(fd);
    }
    auto first = make_server(o);
    ASSERT_TRUE(first);
    // A second server on a live socket leaves it alone.
    auto second = http_server::create(o, echo);
    ASSERT_FALSE(second.ok());
    EXPECT_NE(second.err().message.find(o.unix_path), std::string::npos);
    EXPECT_NE(second.err().message.find("another process"), std::string::npos)
        << second.err().message;
    EXPECT_EQ(second.err().code, sagd::fwd::errc::conflict);
    struct stat st {};
    EXPECT_EQ(::lstat(o.unix_path.c_str(), &st), 0);
    first.reset();

    // Not a socket: refused, untouched.
    const std::string file = dir.file("not-a-socket");
    std::ofstream(file) << "keep me";
    o.unix_path = file;
    auto third = http_server::create(o, echo);
    ASSERT_FALSE(third.ok());
    EXPECT_NE(third.err().message.find(file), std::string::npos);
    EXPECT_NE(third.err().message.find("not a socket"), std::string::npos);
    std::string content;
    std::getline(std::ifstream(file), content);
    EXPECT_EQ(content, "keep me");

    // A missing directory: the errno text is in the message.
    o.unix_path = dir.file("missing/api.sock");
    auto fourth = http_server::create(o, echo);
    ASSERT_FALSE(fourth.ok());
    EXPECT_NE(fourth.err().message.find("No such file or directory"), std::string::npos)
        << fourth.err().message;
    o.unix_path = "/tmp/" + std::string(120, 'a');
    EXPECT_FALSE(http_server::create(o, echo).ok());
}

TEST(HttpServer, OptionChecks) {
    http_server_options none;
    EXPECT_FALSE(http_server::create(none, echo).ok());
    http_server_options o = tcp_options();
    EXPECT_FALSE(http_server::create(o, nullptr).ok());
    for (const char* addr : {"0.0.0.0", "10.1.2.3", "192.168.0.1", "::", "2001:db8::1", "localhost",
                             "127.0.0.1:80", ""}) {
        if (std::string_view(addr).empty())
            continue; // empty means no TCP listener
        o.tcp_address = addr;
        auto s = http_server::create(o, echo);
        ASSERT_FALSE(s.ok()) << addr;
        EXPECT_NE(s.err().message.find(addr), std::string::npos) << s.err().message;
    }
    o = tcp_options();
    o.bearer_token.clear();
    auto no_token = http_server::create(o, echo);
    ASSERT_FALSE(no_token.ok());
    EXPECT_NE(no_token.err().message.find("token"), std::string::npos);
    o.bearer_token = "has space";
    EXPECT_FALSE(http_server::create(o, echo).ok());
    o = tcp_options();
    o.max_connections = 0;
    EXPECT_FALSE(http_server::create(o, echo).ok());

    // A port in use: the message names address, port and errno text.
    auto first = make_server(tcp_options());
    ASSERT_TRUE(first);
    ASSERT_NE(first->tcp_port(), 0);
    o = tcp_options();
    o.tcp_port = first->tcp_port();
    auto clash = http_server::create(o, echo);
    ASSERT_FALSE(clash.ok());
    const std::string where = "127.0.0.1:" + std::to_string(first->tcp_port());
    EXPECT_NE(clash.err().message.find(where), std::string::npos) << clash.err().message;
    EXPECT_NE(clash.err().message.find("Address already in use"), std::string::npos);
    // Other loopback addresses are fine.
    o = tcp_options();
    o.tcp_address = "127.0.0.2";
    EXPECT_TRUE(http_server::create(o, echo).ok());
}

// ---- server: tokens on TCP

TEST(HttpServer, TcpBearerToken) {
    running_server s(make_server(tcp_options()));
    const uint16_t port = s->tcp_port();
    auto ask = [&](const std::string& request) {
        client c = client::tcp(port);
        EXPECT_TRUE(c.ok());
        EXPECT_TRUE(c.send(request));
        auto r = c.read_response();
        EXPECT_TRUE(r);
        return r.value_or(client::response{});
    };
    auto no_token = ask(get("/v1/status"));
    EXPECT_EQ(no_token.status, 401);
    EXPECT_TRUE(no_token.header("www-authenticate").starts_with("Bearer"));
    EXPECT_EQ(no_token.body, "{\"error\":\"missing or wrong bearer token\"}");
    const std::vector<std::string> wrong = {"Bearer wrong",
                                            "Bearer s3cr3t-t0ken-0123456789abcde",
                                            "Bearer s3cr3t-t0ken-0123456789abcdefX",
                                            "Basic czNjcjN0",
                                            "Bearer",
                                            "Bearer ",
                                            "Bearers3cr3t-t0ken-0123456789abcdef",
                                            std::string("Token ") + token};
    for (const std::string& bad : wrong) {
        auto r = ask(get("/v1/status", "Authorization: " + bad + "\r\n"));
        EXPECT_EQ(r.status, 401) << bad;
        EXPECT_TRUE(r.has("www-authenticate")) << bad;
    }
    for (const std::string& good : {std::string("Bearer ") + token, std::string("bearer ") + token,
                                    std::string("BEARER  ") + token}) {
        auto r = ask(get("/v1/status", "Authorization: " + good + "\r\n"));
        EXPECT_EQ(r.status, 200) << good;
        EXPECT_NE(r.body.find("\"transport\":\"tcp\""), std::string::npos);
        EXPECT_NE(r.body.find("\"peer\":\"127.0.0.1:"), std::string::npos) << r.body;
        // The handler never sees the token.
        EXPECT_NE(r.body.find("\"saw_authorization\":false"), std::string::npos) << r.body;
    }
    // Exempt: GET /metrics only.
    EXPECT_EQ(ask(get("/metrics")).status, 200);
    EXPECT_EQ(ask(get("/metrics?x=1")).status, 200);
    EXPECT_EQ(ask(post("/metrics", "{}")).status, 401);
    EXPECT_EQ(ask(get("/metrics/")).status, 401);
    EXPECT_EQ(ask(get("/Metrics")).status, 401);
    // A wrong token keeps the connection open for a retry with the right one.
    client c = client::tcp(port);
    ASSERT_TRUE(c.send(get("/v1/status", "Authorization: Bearer nope\r\n")));
    auto r1 = c.read_response();
    ASSERT_TRUE(r1);
    EXPECT_EQ(r1->status, 401);
    ASSERT_TRUE(c.send(get("/v1/status", std::string("Authorization: Bearer ") + token + "\r\n")));
    auto r2 = c.read_response();
    ASSERT_TRUE(r2);
    EXPECT_EQ(r2->status, 200);
}

TEST(HttpServer, TcpUnauthenticatedBodyRefusedBeforeItArrives) {
    http_server_options o = tcp_options();
    o.max_body = 1 << 20;
    running_server s(make_server(o));
    client c = client::tcp(s->tcp_port());
    // Only the head: the 401 comes without waiting for the (large) body.
    ASSERT_TRUE(c.send("PUT /v1/config HTTP/1.1\r\nHost: h\r\nContent-Length: 1000000\r\n\r\n"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 401);
    EXPECT_EQ(r->header("connection"), "close");
    EXPECT_TRUE(c.closed_by_server());
}

// ---- server: connections

TEST(HttpServer, KeepAliveAndPipelining) {
    temp_dir dir;
    http_server_options o;
    o.unix_path = dir.file("api.sock");
    running_server s(make_server(o));
    client c = client::unix_socket(o.unix_path);
    ASSERT_TRUE(c.send(get("/one")));
    auto r1 = c.read_response();
    ASSERT_TRUE(r1);
    EXPECT_FALSE(r1->has("connection"));
    ASSERT_TRUE(c.send(post("/two", "{\"x\":[1,2]}")));
    auto r2 = c.read_response();
    ASSERT_TRUE(r2);
    EXPECT_NE(r2->body.find("\"body\":\"{\\\"x\\\":[1,2]}\""), std::string::npos) << r2->body;
    // Three at once, the last closes the connection.
    ASSERT_TRUE(c.send(get("/a") + post("/b", "bb") + get("/c", "Connection: close\r\n")));
    for (const char* path : {"/a", "/b", "/c"}) {
        auto r = c.read_response();
        ASSERT_TRUE(r) << path;
        EXPECT_NE(r->body.find(std::string("\"path\":\"") + path + "\""), std::string::npos);
    }
    EXPECT_TRUE(c.closed_by_server());
    // HTTP/1.0: one request, then close.
    client old = client::unix_socket(o.unix_path);
    ASSERT_TRUE(old.send("GET /old HTTP/1.0\r\n\r\n"));
    auto r = old.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->header("connection"), "close");
    EXPECT_TRUE(old.closed_by_server());
}

TEST(HttpServer, StalledClientDoesNotBlockOthers) {
    temp_dir dir;
    http_server_options o;
    o.unix_path = dir.file("api.sock");
    running_server s(make_server(o));
    // Half a request, then silence.
    client slow = client::unix_socket(o.unix_path);
    ASSERT_TRUE(
        slow.send("POST /v1/tunnels HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n{\"na"));
    // A client that asks for 8 MiB and does not read.
    client lazy = client::unix_socket(o.unix_path);
    ASSERT_TRUE(lazy.send(get("/big")));
    std::this_thread::sleep_for(50ms);
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 3; ++i) {
        client quick = client::unix_socket(o.unix_path);
        ASSERT_TRUE(quick.send(get("/v1/status")));
        auto r = quick.read_response();
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200);
    }
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
    // The stalled ones still complete.
    ASSERT_TRUE(slow.send(std::string(94, ' ') + "\"}"));
    auto rs = slow.read_response();
    ASSERT_TRUE(rs);
    EXPECT_EQ(rs->status, 200);
    auto rl = lazy.read_response();
    ASSERT_TRUE(rl);
    EXPECT_EQ(rl->body.size(), size_t{8} << 20);
}

TEST(HttpServer, ParseErrorsAnswerAndClose) {
    temp_dir dir;
    http_server_options o;
    o.unix_path = dir.file("api.sock");
    o.max_body = 1024;
    running_server s(make_server(o));
    const struct {
        std::string request;
        int status;
    } cases[] = {
        {"POST /v1/tunnels HTTP/1.1\r\nHost: h\r\nContent-Length: 1025\r\n\r\n", 413},
        {"GET /v1/status HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
        {"GET /v1/status HTTP/2.0\r\n\r\n", 505},
        {"GET /v1/status HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n", 400},
        {"GET /x HTTP/1.1\r\nHost: h\r\nX: " + std::string(20000, 'a') + "\r\n\r\n", 431},
    };
    for (const auto& k : cases) {
        client c = client::unix_socket(o.unix_path);
        ASSERT_TRUE(c.send(k.request));
        auto r = c.read_response();
        ASSERT_TRUE(r) << k.request.substr(0, 60);
        EXPECT_EQ(r->status, k.status);
        EXPECT_EQ(r->header("connection"), "close");
        EXPECT_TRUE(r->has("date"));
        EXPECT_TRUE(r->body.starts_with("{\"error\":\"")) << r->body;
        EXPECT_TRUE(valid_json(r->body));
        EXPECT_TRUE(c.closed_by_server());
    }
    // A 413 sent while the client is still sending its body still reaches it.
    client c = client::unix_socket(o.unix_path);
    ASSERT_TRUE(c.send("POST /v1/tunnels HTTP/1.1\r\nHost: h\r\nContent-Length: 5000\r\n\r\n" +
                       std::string(5000, 'b')));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    // A good request before a bad one is answered first.
    client d = client::unix_socket(o.unix_path);
    ASSERT_TRUE(d.send(get("/first") + "BAD\r\n\r\n"));
    auto first = d.read_response();
    ASSERT_TRUE(first);
    EXPECT_EQ(first->status, 200);
    auto bad = d.read_response();
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->status, 400);
}

TEST(HttpServer, HeadHasNoContent) {
    temp_dir dir;
    http_server_options o;
    o.unix_path = dir.file("api.sock");
    running_server s(make_server(o));
    client c = client::unix_socket(o.unix_path);
    ASSERT_TRUE(c.send("HEAD /v1/status HTTP/1.1\r\nHost: h\r\n\r\n" + get("/after")));
    auto head = c.read_response(true);
    ASSERT_TRUE(head);
    EXPECT_EQ(head->status, 200);
    EXPECT_NE(head->header("content-length"), "0"); // the length a GET would have
    EXPECT_TRUE(head->body.empty());
    auto after = c.read_response(); // framing intact
    ASSERT_TRUE(after);
    EXPECT_NE(after->body.find("\"path\":\"/after\""), std::string::npos) << after->body;
}

TEST(HttpServer, HandlerExceptionIs500) {
    temp_dir dir;
    http_server_options o;
    o.unix_path = dir.file("api.sock");
    running_server s(make_server(o));
    client c = client::unix_socket(o.unix_path);
    ASSERT_TRUE(c.send(get("/boom") + get("/after")));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 500);
    EXPECT_EQ(r->body, "{\"error\":\"internal error\"}");
    auto after = c.read_response(); // the connection survives
    ASSERT_TRUE(after);
    EXPECT_EQ(after->status, 200);
}

TEST(HttpServer, ExpectContinue) {
    temp_dir dir;
    http_server_options o;
    o.unix_path = dir.file("api.sock");
    running_server s(make_server(o));
    client c = client::unix_socket(o.unix_path);
    ASSERT_TRUE(c.send("PUT /v1/config HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n"
                       "Content-Length: 2\r\n\r\n"));
    auto interim = c.read_response();
    ASSERT_TRUE(interim);
    EXPECT_EQ(interim->status, 100);
    ASSERT_TRUE(c.send("{}"));
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_NE(r->body.find("\"body\":\"{}\""), std::string::npos);
}

TEST(HttpServer, MaxConnections) {
    temp_dir dir;
    http_server_options o;
    o.unix_path = dir.file("api.sock");
    o.max_connections = 2;
    running_server s(make_server(o));
    client a = client::unix_socket(o.unix_path);
    client b = client::unix_socket(o.unix_path);
    for (client* c : {&a, &b}) { // a request each makes sure both are accepted
        ASSERT_TRUE(c->send(get("/v1/status")));
        auto r = c->read_response();
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200);
    }
    client extra = client::unix_socket(o.unix_path);
    ASSERT_TRUE(extra.ok()); // accepted, then answered 503 and closed
    auto busy = extra.read_response();
    ASSERT_TRUE(busy);
    EXPECT_EQ(busy->status, 503);
    EXPECT_TRUE(extra.closed_by_server());
    for (client* c : {&a, &b}) { // the two keep working
        ASSERT_TRUE(c->send(get("/v1/status")));
        auto r = c->read_response();
        ASSERT_TRUE(r);
        EXPECT_EQ(r->status, 200);
    }
    a.close();
    // Once the server has seen the close, there is room again.
    bool served = false;
    for (int attempt = 0; attempt < 100 && !served; ++attempt) {
        client n = client::unix_socket(o.unix_path);
        if (n.send(get("/v1/status")))
            if (auto r = n.read_response(); r && r->status == 200)
                served = true;
        if (!served)
            std::this_thread::sleep_for(20ms);
    }
    EXPECT_TRUE(served);
}

TEST(HttpServer, IdleTimeout) {
    temp_dir dir;
    http_server_options o;
    o.unix_path = dir.file("api.sock");
    o.idle_timeout = 200ms;
    running_server s(make_server(o));
    client c = client::unix_socket(o.unix_path);
    ASSERT_TRUE(c.send("GET /v1/st")); // and nothing more
    const auto start = std::chrono::steady_clock::now();
    EXPECT_TRUE(c.closed_by_server());
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_GE(took, 150ms);
    EXPECT_LT(took, 2s);
}

TEST(HttpServer, PollOnceWithoutThread) {
    // The same server driven by hand: poll_once() serves what is ready and returns.
    temp_dir dir;
    http_server_options o;
    o.unix_path = dir.file("api.sock");
    auto s = make_server(o);
    ASSERT_TRUE(s);
    EXPECT_FALSE(s->poll_once(0)); // nothing ready: the caller may idle
    client c = client::unix_socket(o.unix_path);
    ASSERT_TRUE(c.send(get("/v1/status")));
    bool worked = false;
    for (int i = 0; i < 10; ++i)
        worked |= s->poll_once(50);
    EXPECT_TRUE(worked); // accepted, read and answered
    EXPECT_EQ(s->connection_count(), 1u);
    pollfd p{c.fd(), POLLIN, 0};
    ASSERT_EQ(::poll(&p, 1, 0), 1); // the answer is already there
    auto r = c.read_response();
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    // An open keep-alive connection with nothing to say is not work: sagd's control loop
    // would otherwise spin and starve zebra on the control core.
    EXPECT_FALSE(s->poll_once(0));
    EXPECT_EQ(s->connection_count(), 1u);
    c.close();
    for (int i = 0; i < 5; ++i)
        s->poll_once(10);
    EXPECT_EQ(s->connection_count(), 0u);
}

} // namespace
