// HTTP/1.1 transport for the runtime API (control-shim/API.md): a strict incremental request
// parser, response serialization, a streaming JSON writer and a poll(2)-based single-threaded
// server on a unix socket and an optional loopback TCP port. Plain C++ and POSIX, no DPDK.
// Every byte a client sends is untrusted: nothing here may crash, read out of bounds or grow
// without a bound.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "forwarding/result.hpp"

namespace sagd::shim {

// Request line + header lines + the empty line, CRLFs included (431 beyond).
inline constexpr size_t http_max_head_size = 16 * 1024;
inline constexpr size_t http_max_header_count = 100; // 431 beyond
inline constexpr size_t http_default_max_body = 64 * 1024 * 1024;

struct http_request {
    std::string method; // a token (RFC 9110 9.1), case-sensitive: "GET", "POST", ...
    std::string path;   // origin-form path, percent-decoded, without the query
    // Query pairs in order, percent-decoded; '+' decodes to a space (form-urlencoded).
    std::vector<std::pair<std::string, std::string>> query;
    // Header fields in order; names lower-cased, values with surrounding whitespace removed.
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    int version_minor = 1;  // HTTP/1.<minor>: 0 or 1
    bool keep_alive = true; // HTTP/1.1 without "Connection: close"; always false for HTTP/1.0

    // First field with that name (any case) / first query parameter with that name.
    std::optional<std::string_view> header(std::string_view name) const;
    std::optional<std::string_view> query_value(std::string_view name) const;
};

struct http_error {
    int status = 400; // 400, 413, 417, 431, 501 or 505
    std::string message;
};

// Cuts a byte stream into requests (RFC 9112). Feed chunks of any size; pipelined requests
// come out one per next() call. Strict:
//   - request line exactly `METHOD SP origin-form SP HTTP/1.1` (or HTTP/1.0); other
//     HTTP/x.y versions get 505, anything else 400;
//   - lines end with CRLF: a bare LF or a bare CR is refused (400) rather than tolerated, so
//     there is one way to frame a request (RFC 9112 2.2 allows either choice);
//   - empty lines before a request line are skipped (RFC 9112 2.2) and count as head bytes;
//   - no obs-fold, no whitespace between a field name and its colon, no control characters;
//   - an encoded '/' (%2F) or NUL (%00) in the path and NUL in the query are refused;
//   - body only by Content-Length: Transfer-Encoding gets 501; a duplicate or malformed
//     Content-Length, a missing or repeated Host (HTTP/1.1), a repeated Authorization or
//     Content-Type get 400; a body over max_body gets 413 as soon as the head is in;
//   - "Expect: 100-continue" is honoured (see take_continue), any other expectation gets 417.
// The result does not depend on how the stream is chunked. After an error the parser stays
// failed (the caller sends the error and closes the connection) and drops further input.
// Memory: at most one request (head <= http_max_head_size, body <= max_body) plus what the
// caller fed beyond it.
class http_request_parser {
  public:
    explicit http_request_parser(size_t max_body = http_default_max_body) noexcept
        : max_body_(max_body) {}

    void feed(std::string_view bytes);
    // The next complete request, or nullopt: more bytes needed, or failed().
    std::optional<http_request> next();

    bool failed() const noexcept { return state_ == state::failed; }
    const http_error& error() const noexcept { return error_; } // meaningful when failed()
    // True once per request whose head asked for "100-continue" and whose body is not all
    // here yet: the caller answers "HTTP/1.1 100 Continue" (RFC 9110 10.1.1).
    bool take_continue() noexcept { return std::exchange(continue_, false); }
    // The head of the request whose body is still arriving (nullptr otherwise): lets a server
    // refuse an unauthenticated request before taking its body.
    const http_request* pending_head() const noexcept {
        return state_ == state::body ? &pending_ : nullptr;
    }
    size_t buffered() const noexcept { return buf_.size() - pos_; }

  private:
    enum class state : uint8_t { head, body, failed };

    void fail(int status, std::string message);
    bool on_head_line(std::string_view line);
    bool on_request_line(std::string_view line);
    bool on_header_line(std::string_view line);
    bool on_head_end();
    void reset_request();

    size_t max_body_;
    state state_ = state::head;
    std::string buf_;
    size_t pos_ = 0;        // start of the current request in buf_
    size_t scan_ = 0;       // bytes before this in the head hold no unprocessed '\n'
    size_t line_start_ = 0; // start of the head line being read
    size_t body_start_ = 0;
    size_t body_len_ = 0;
    bool have_request_line_ = false;
    bool expect_continue_ = false;
    bool continue_ = false;
    http_request pending_;
    http_error error_;
};

struct http_response {
    int status = 200;
    std::string content_type = "application/json"; // not sent when empty
    std::string body;
    // Sent as given, except Content-Length, Transfer-Encoding and Connection (serialize() owns
    // them) and names that are not tokens; control characters in values become spaces.
    std::vector<std::pair<std::string, std::string>> headers;
};

// The standard reason phrase ("Not Found"); "" for codes without one.
std::string_view http_reason_phrase(int status) noexcept;
// Status line, headers, Content-Length and body. 1xx, 204 and 304 carry no body and no
// Content-Length (RFC 9110 8.6, 6.4.1); a status outside 100..599 is sent as 500.
// keep_alive == false adds "Connection: close".
std::string serialize(const http_response& response, bool keep_alive);

// Streaming writer of RFC 8259 JSON. Commas and colons are placed automatically; strings are
// escaped (quote, backslash, C0 and C1 controls, DEL, U+2028/U+2029) and invalid UTF-8 is
// replaced by U+FFFD per maximal subpart (Unicode 15 3.9). Non-finite doubles become null.
// Misuse (a value in an object without a key, unbalanced ends) is a programming error
// (asserted), not an input error.
class json_writer {
  public:
    json_writer& begin_object();
    json_writer& end_object();
    json_writer& begin_array();
    json_writer& end_array();
    json_writer& key(std::string_view name);

    json_writer& value(std::string_view text);
    json_writer& value(const char* text) { return value(std::string_view(text)); }
    json_writer& value(bool b);
    json_writer& value(double d);
    json_writer& value(float f) { return value(static_cast<double>(f)); }
    template <std::integral T>
    requires(!std::same_as<T, bool>) json_writer& value(T v) {
        if constexpr (std::is_signed_v<T>)
            return signed_value(static_cast<int64_t>(v));
        else
            return unsigned_value(static_cast<uint64_t>(v));
    }
    json_writer& null();

    template <typename T> json_writer& member(std::string_view name, const T& v) {
        key(name);
        return value(v);
    }

    const std::string& str() const noexcept { return out_; }
    std::string take() noexcept { return std::move(out_); }
    // One whole value was written and every object and array is closed.
    bool complete() const noexcept { return stack_.empty() && !after_key_ && !out_.empty(); }

  private:
    json_writer& signed_value(int64_t v);
    json_writer& unsigned_value(uint64_t v);
    void before_value();
    void begin(char open);
    void end(char open, char close);

    std::string out_;
    std::vector<char> stack_; // '{' or '[' per open container
    bool need_comma_ = false;
    bool after_key_ = false;
};

// Appends `text` as a JSON string literal (quotes included), escaped as json_writer does.
void append_json_string(std::string& out, std::string_view text);
// {"error":"<message>"}
std::string json_error(std::string_view message);

enum class http_transport : uint8_t { unix_socket, tcp };

struct connection_info {
    http_transport transport = http_transport::unix_socket;
    std::string peer; // "pid 1234 uid 0" (unix, SO_PEERCRED) or "127.0.0.1:41000" (tcp)
};

struct http_server_options {
    // Unix listener (empty: none). Created with mode 0600; a stale socket file is replaced;
    // start-up fails if the path exists and is not a socket or another process serves it.
    std::string unix_path;
    // TCP listener (empty address: none). Must be a loopback address (127.0.0.0/8 or ::1);
    // port 0 picks a free port (see http_server::tcp_port()).
    std::string tcp_address;
    uint16_t tcp_port = 0;
    // Required on TCP as "Authorization: Bearer <token>" (compared in constant time); must be
    // set when TCP is on. Unix connections need no token.
    std::string bearer_token;
    // GET requests for these exact paths are served on TCP without a token (e.g. "/metrics").
    std::vector<std::string> token_exempt_paths;
    size_t max_connections = 64; // beyond: accepted, answered 503 and closed
    // A connection without any progress (bytes in or out) for this long is closed.
    std::chrono::milliseconds idle_timeout{30'000};
    size_t max_body = http_default_max_body;
};

// One control thread serves every connection: non-blocking sockets, partial writes buffered,
// a slow or stalled client only holds its own connection. The handler runs on that thread;
// it never sees the Authorization header (the token stays out of handler code and logs). An
// exception escaping the handler becomes a 500. Errors found by the parser are answered with
// {"error": ...} and the connection is closed. The server adds Date to every answer and drops
// the content of answers to HEAD (their Content-Length stays).
class http_server {
  public:
    using handler = std::function<http_response(const http_request&, const connection_info&)>;

    // Errors name the socket path or address:port and the errno text.
    static fwd::result<std::unique_ptr<http_server>> create(const http_server_options& options,
                                                            handler on_request);
    ~http_server(); // closes every socket; unlinks the unix socket if it is still ours
    http_server(const http_server&) = delete;
    http_server& operator=(const http_server&) = delete;

    // Waits up to timeout_ms (0: not at all) for readiness, then serves what is ready:
    // accepts, reads, answers complete requests, writes, closes idle connections.
    // Returns whether anything happened (a connection had events or one was accepted).
    bool poll_once(int timeout_ms);
    // poll_once() until `stop` is set; notices `stop` within 100 ms.
    void run(const std::atomic<bool>& stop);

    const std::string& unix_path() const noexcept { return options_.unix_path; }
    uint16_t tcp_port() const noexcept { return tcp_port_; } // the bound port; 0 without TCP
    size_t connection_count() const noexcept { return connections_.size(); }

  private:
    struct connection;
    using clock = std::chrono::steady_clock;

    http_server(const http_server_options& options, handler on_request);
    fwd::status open_unix_listener();
    fwd::status open_tcp_listener();
    void accept_ready(int listen_fd, http_transport transport);
    void reject(int fd);
    void service(connection& c, short revents, clock::time_point now);
    void read_from(connection& c, clock::time_point now);
    bool process(connection& c);
    void flush(connection& c, clock::time_point now);
    void finish_if_done(connection& c, clock::time_point now);
    http_response dispatch(http_request& request, const connection_info& info);
    void respond(connection& c, http_response response, bool keep_alive, bool head_only = false);
    bool authorized(const http_request& request, const connection_info& info) const;
    clock::time_point deadline(const connection& c) const;

    http_server_options options_;
    handler handler_;
    int unix_fd_ = -1;
    int tcp_fd_ = -1;
    int spare_fd_ = -1; // closed to accept-and-drop when the process runs out of descriptors
    uint16_t tcp_port_ = 0;
    bool unix_bound_ = false;
    uint64_t unix_dev_ = 0; // identity of the socket file we created, checked before unlink
    uint64_t unix_ino_ = 0;
    std::vector<std::unique_ptr<connection>> connections_;
    std::vector<char> read_buf_;
};

} // namespace sagd::shim
