// YAML config loader. Parsing throws an internal `parse_failure` carrying a YAML mark; the two
// public entry points catch everything and return it as a sagd::error (STYLE.md rule 3).
//
// Key hygiene (STYLE.md rule 6): the file is read into one buffer of the exact size and wiped
// after parsing; yaml-cpp reads it through a streambuf over that buffer (no stream copy); key
// scalars in the node tree are wiped in place once decoded; keymat is reserved before filling so
// it never reallocates. yaml-cpp's own scanner tokens are short-lived copies we cannot reach.
#include "control-shim/config_yaml.hpp"

#include "forwarding/ipv6_addr.hpp"
#include "forwarding/packet6.hpp"

#include <openssl/crypto.h>

#include <yaml-cpp/anchor.h>
#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/yaml.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <initializer_list>
#include <istream>
#include <map>
#include <streambuf>
#include <sys/stat.h>
#include <unistd.h>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace sagd {

namespace {

constexpr size_t max_config_bytes = 64u << 20; // 2000 tunnels are well under 1 MiB

// ---- text helpers -----------------------------------------------------------------------------

bool looks_like_key_material(std::string_view text); // defined below: needs hex_value

// Quotes user text for an error message: printable ASCII only, long values shortened, and
// nothing that could be a pasted key (a run of 16+ hex digits) is shown at all.
std::string quote(std::string_view text) {
    if (looks_like_key_material(text))
        return "(value not shown: it looks like key material)";
    std::string out = "'";
    size_t shown = 0;
    for (char c : text) {
        if (shown == 48) {
            out += "...";
            break;
        }
        unsigned char u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f) {
            out += c;
        } else {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", u);
            out += buf;
        }
        ++shown;
    }
    out += "'";
    return out;
}

std::string hex32(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

int hex_value(char c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool looks_like_key_material(std::string_view text) {
    size_t run = 0;
    for (char c : text) {
        if (c == ':' || c == '-' || c == ' ')
            continue; // common separators inside pasted keys
        run = hex_value(c) >= 0 ? run + 1 : 0;
        if (run >= 16)
            return true;
    }
    return false;
}

// Strict decimal 0..max without leading zeros; returns false on any deviation.
bool parse_decimal(std::string_view text, uint32_t max, uint32_t& out) {
    if (text.empty() || text.size() > 10)
        return false;
    if (text.size() > 1 && text[0] == '0')
        return false;
    uint64_t v = 0;
    for (char c : text) {
        if (!is_digit(c))
            return false;
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (v > max)
        return false;
    out = static_cast<uint32_t>(v);
    return true;
}

// Why a dotted quad is bad, or empty when it is good.
std::string ipv4_problem(std::string_view text, ipv4_addr& out) {
    ipv4_addr addr = 0;
    size_t pos = 0;
    for (int octet = 1; octet <= 4; ++octet) {
        size_t end = pos;
        while (end < text.size() && is_digit(text[end]))
            ++end;
        std::string_view part = text.substr(pos, end - pos);
        if (part.empty())
            return "octet " + std::to_string(octet) + " is missing or not a number";
        if (part.size() > 1 && part[0] == '0')
            return "octet " + std::to_string(octet) + " has a leading zero";
        uint32_t v = 0;
        if (!parse_decimal(part, 255, v))
            return "octet " + std::to_string(octet) + " is greater than 255";
        addr = (addr << 8) | v;
        pos = end;
        if (octet < 4) {
            if (pos >= text.size() || text[pos] != '.')
                return "expected four octets separated by '.'";
            ++pos;
        }
    }
    if (pos != text.size())
        return "unexpected text after the fourth octet";
    out = addr;
    return {};
}

std::string cidr_problem(std::string_view text, ipv4_cidr& out) {
    size_t slash = text.find('/');
    if (slash == std::string_view::npos)
        return "expected address/length";
    ipv4_addr addr = 0;
    std::string why = ipv4_problem(text.substr(0, slash), addr);
    if (!why.empty())
        return why;
    uint32_t len = 0;
    if (!parse_decimal(text.substr(slash + 1), 32, len))
        return "prefix length must be a number 0..32";
    out.addr = addr;
    out.len = static_cast<uint8_t>(len);
    return {};
}

// Why IPv6 text is bad, or empty when it is good (RFC 4291 2.2 forms via inet_pton; no zone
// index, no brackets).
std::string ipv6_problem(std::string_view text, ipv6_addr& out) {
    if (text.empty() || text.size() > 45)
        return "expected an IPv6 address (RFC 4291 text form)";
    for (char c : text)
        if (!(is_digit(c) || hex_value(c) >= 0 || c == ':' || c == '.'))
            return "unexpected character '" + std::string(1, c) + "'";
    std::string z(text);
    if (::inet_pton(AF_INET6, z.c_str(), out.data()) != 1)
        return "not a valid IPv6 address";
    return {};
}

std::string cidr6_problem(std::string_view text, ipv6_addr& addr, uint8_t& len) {
    size_t slash = text.find('/');
    if (slash == std::string_view::npos)
        return "expected address/length";
    std::string why = ipv6_problem(text.substr(0, slash), addr);
    if (!why.empty())
        return why;
    uint32_t l = 0;
    if (!parse_decimal(text.substr(slash + 1), 128, l))
        return "prefix length must be a number 0..128";
    len = static_cast<uint8_t>(l);
    return {};
}

// Unicast an IPv6 host may own or route to: not ::, ::1, multicast, or IPv4-mapped.
std::string ipv6_unicast_problem(const ipv6_addr& a) {
    if (fwd::ipv6_is_unspecified(a))
        return "is the unspecified address";
    if (fwd::ipv6_is_loopback(a))
        return "is the loopback address";
    if (fwd::ipv6_is_multicast(a))
        return "is a multicast address";
    static constexpr uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(mapped, mapped + 12, a.begin()))
        return "is an IPv4-mapped address";
    return {};
}

bool is_unicast(ipv4_addr a) {
    uint32_t top = a >> 24;
    return top != 0 && top != 127 && top < 224; // not this-network, loopback, multicast/reserved
}

bool in_subnet(ipv4_addr a, ipv4_addr net, uint8_t len) {
    return (a & ipv4_mask(len)) == (net & ipv4_mask(len));
}

std::string subnet_text(ipv4_addr addr, uint8_t len) {
    return format_ipv4_prefix(ipv4_prefix{addr & ipv4_mask(len), len});
}

bool valid_name(std::string_view name) {
    if (name.empty() || name.size() > 31)
        return false;
    for (char c : name)
        if (!((c >= 'a' && c <= 'z') || is_digit(c) || c == '_' || c == '.' || c == '-'))
            return false;
    return true;
}

// ---- errors -----------------------------------------------------------------------------------

struct parse_failure {
    YAML::Mark mark;
    std::string message;
};

// Where an error is: the object ("tunnels[1] 'ccn-edge-2'") and a field path prefix inside it
// ("inbound_sas[0]."). `secret` suppresses echoing values (inside SA definitions a misplaced key
// could otherwise end up in a message).
struct scope {
    std::string object;
    std::string path;
    bool secret = false;

    scope sub(const std::string& p, bool is_secret) const {
        return scope{object, path + p, secret || is_secret};
    }
};

[[noreturn]] void fail(const scope& s, const YAML::Mark& mark, const std::string& what) {
    std::string msg = s.object.empty() ? std::string{} : s.object + ": ";
    throw parse_failure{mark, msg + s.path + what};
}

// Best position for a node: its own mark, else (for null nodes, whose marks are unreliable) none.
YAML::Mark mark_of(const YAML::Node& n) {
    return n.IsDefined() && !n.IsNull() ? n.Mark() : YAML::Mark::null_mark();
}

std::string type_name(const YAML::Node& n) {
    switch (n.Type()) {
    case YAML::NodeType::Null:
        return "an empty value";
    case YAML::NodeType::Scalar:
        return n.Tag() == "!" ? "a quoted string" : "a scalar";
    case YAML::NodeType::Sequence:
        return "a list";
    case YAML::NodeType::Map:
        return "a mapping";
    case YAML::NodeType::Undefined:
        break;
    }
    return "nothing";
}

// ---- mapping access ---------------------------------------------------------------------------

struct field {
    std::string_view name; // one of the allowed names (a string literal)
    YAML::Node key;
    YAML::Node value;
};

// The fields of one YAML mapping, checked against the allowed names: unknown keys (typos) and
// duplicate keys are errors.
class fields {
  public:
    fields(const YAML::Node& map, std::initializer_list<std::string_view> allowed, const scope& s)
        : scope_(s), map_mark_(map.Mark()) {
        for (auto it = map.begin(); it != map.end(); ++it) {
            YAML::Node key = it->first; // handles are cheap; it-> yields a temporary
            YAML::Node value = it->second;
            if (!key.IsScalar())
                fail(s, key.Mark(), std::string("keys must be plain names, got ") + type_name(key));
            const std::string& k = key.Scalar();
            auto known = std::find(allowed.begin(), allowed.end(), std::string_view(k));
            if (known == allowed.end()) {
                std::string list;
                for (auto a : allowed)
                    list += (list.empty() ? "" : ", ") + std::string(a);
                bool showable = valid_name(k) && k.size() <= 24;
                fail(s, key.Mark(),
                     (showable ? k + ": unknown key" : std::string("unknown key (not shown)")) +
                         " (expected one of: " + list + ")");
            }
            for (const auto& f : items_)
                if (f.name == *known)
                    fail(s, key.Mark(), k + ": duplicate key");
            items_.push_back(field{*known, key, value});
        }
    }

    // The field, or nullptr when absent or explicitly empty ("gateway:" or "gateway: ~").
    const field* find(std::string_view name) const {
        for (const auto& f : items_)
            if (f.name == name)
                return f.value.IsNull() ? nullptr : &f;
        return nullptr;
    }

    const field& need(std::string_view name) const {
        for (const auto& f : items_)
            if (f.name == name) {
                if (f.value.IsNull())
                    fail(scope_, f.key.Mark(), std::string(name) + ": required, but empty");
                return f;
            }
        fail(scope_, map_mark_, std::string(name) + ": required field missing");
    }

  private:
    scope scope_;
    YAML::Mark map_mark_;
    std::vector<field> items_;
};

void expect_map(const YAML::Node& n, const scope& s, std::string_view name) {
    if (!n.IsMap())
        fail(s, mark_of(n), std::string(name) + ": expected a mapping, got " + type_name(n));
}

void expect_list(const YAML::Node& n, const scope& s, std::string_view name) {
    if (!n.IsSequence())
        fail(s, mark_of(n), std::string(name) + ": expected a list, got " + type_name(n));
}

const std::string& get_text(const field& f, const scope& s) {
    if (!f.value.IsScalar())
        fail(s, mark_of(f.value),
             std::string(f.name) + ": expected a string, got " + type_name(f.value));
    return f.value.Scalar();
}

// An integer: plain (unquoted) decimal or 0x hex. Quoted numbers are a type error.
uint64_t get_uint(const field& f, const scope& s, uint64_t min, uint64_t max,
                  const char* range_text = nullptr) {
    std::string name(f.name);
    const YAML::Node& v = f.value;
    if (!v.IsScalar() || (v.Tag() != "?" && v.Tag() != "tag:yaml.org,2002:int"))
        fail(s, mark_of(v), name + ": expected an integer, got " + type_name(v));
    std::string_view t = v.Scalar();
    std::string shown = s.secret ? std::string{} : " " + quote(t);
    bool hex = t.size() >= 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X');
    std::string_view digits = hex ? t.substr(2) : t;
    bool negative = !digits.empty() && digits[0] == '-' && !hex;
    if (negative)
        digits.remove_prefix(1);
    if (digits.empty())
        fail(s, v.Mark(), name + ":" + shown + " is not an integer");
    if (!hex && digits.size() > 1 && digits[0] == '0')
        fail(s, v.Mark(),
             name + ":" + shown + " has a leading zero (write decimal without it, or 0x hex)");
    uint64_t value = 0;
    bool overflow = false;
    for (char c : digits) {
        int d = hex ? hex_value(c) : (is_digit(c) ? c - '0' : -1);
        if (d < 0)
            fail(s, v.Mark(), name + ":" + shown + " is not an integer (decimal or 0x hex)");
        unsigned base = hex ? 16 : 10;
        if (value > (UINT64_MAX - static_cast<uint64_t>(d)) / base)
            overflow = true;
        else
            value = value * base + static_cast<uint64_t>(d);
    }
    std::string range =
        range_text ? std::string(range_text) : std::to_string(min) + ".." + std::to_string(max);
    if (negative || overflow || value < min || value > max)
        fail(s, v.Mark(),
             name +
                 (s.secret ? std::string{} : " " + (t.size() <= 12 ? std::string(t) : quote(t))) +
                 " out of range " + range);
    return value;
}

bool get_bool(const field& f, const scope& s) {
    const YAML::Node& v = f.value;
    if (v.IsScalar() && v.Tag() != "!") {
        const std::string& t = v.Scalar();
        if (t == "true" || t == "True" || t == "TRUE")
            return true;
        if (t == "false" || t == "False" || t == "FALSE")
            return false;
    }
    fail(s, mark_of(v),
         std::string(f.name) + ": expected true or false, got " +
             (v.IsScalar() && !s.secret ? quote(v.Scalar()) : type_name(v)));
}

ipv4_addr get_ipv4(const field& f, const scope& s) {
    const std::string& t = get_text(f, s);
    ipv4_addr a = 0;
    std::string why = ipv4_problem(t, a);
    if (!why.empty())
        fail(s, f.value.Mark(),
             std::string(f.name) + " " + quote(t) + " is not an IPv4 address: " + why);
    return a;
}

ipv4_addr get_unicast(const field& f, const scope& s) {
    ipv4_addr a = get_ipv4(f, s);
    if (!is_unicast(a))
        fail(s, f.value.Mark(),
             std::string(f.name) + " " + format_ipv4(a) +
                 " is not a unicast address (0/8, 127/8, 224/3 are refused)");
    return a;
}

// The scalar under `key` in a mapping, if any, without validating the mapping yet: lets error
// labels name the object ("tunnels[3] 'edge-3'") even when another field is the problem.
std::string peek(const YAML::Node& node, std::string_view key) {
    if (!node.IsMap())
        return {};
    for (auto it = node.begin(); it != node.end(); ++it) {
        YAML::Node k = it->first;
        YAML::Node v = it->second;
        if (k.IsScalar() && k.Scalar() == key && v.IsScalar())
            return v.Scalar();
    }
    return {};
}

std::string label(const std::string& base, const std::string& name) {
    return name.empty() ? base : base + " '" + name + "'";
}

std::string peek_name(const YAML::Node& node) {
    std::string name = peek(node, "name");
    return valid_name(name) ? name : std::string{};
}

// ---- the loader -------------------------------------------------------------------------------

class loader {
  public:
    ~loader() {
        // Key scalars live in the node tree until it is destroyed: wipe them in place. The
        // tree owns these strings (Scalar() returns a reference into node data).
        for (auto& n : key_nodes_) {
            auto& text = const_cast<std::string&>(n.Scalar());
            if (!text.empty())
                OPENSSL_cleanse(text.data(), text.size());
        }
    }

    config load(const YAML::Node& root) {
        scope top;
        if (root.IsNull() || !root.IsDefined())
            fail(top, YAML::Mark::null_mark(),
                 "the configuration is empty (at least 'ports' is required)");
        if (!root.IsMap())
            fail(top, mark_of(root), "the top level must be a mapping, got " + type_name(root));
        fields f(root,
                 {"workers", "eal", "api", "fpm", "limits", "ports", "tunnels", "groups", "routes",
                  "neighbours"},
                 top);

        config cfg;
        if (auto* w = f.find("workers"))
            cfg.workers = static_cast<uint16_t>(get_uint(*w, top, 1, 64));
        if (auto* e = f.find("eal"))
            cfg.eal_args = load_eal(*e, top);
        if (auto* a = f.find("api"))
            load_api(*a, cfg.api);
        if (auto* p = f.find("fpm"))
            load_fpm(*p, cfg.fpm);
        if (auto* l = f.find("limits"))
            load_limits(*l, cfg.limits);
        load_ports(f.need("ports"), cfg);
        if (auto* t = f.find("tunnels"))
            load_tunnels(*t, cfg);
        if (auto* g = f.find("groups"))
            load_groups(*g, cfg);
        if (auto* r = f.find("routes"))
            load_routes(*r, cfg);
        if (auto* n = f.find("neighbours"))
            load_neighbours(*n, cfg);
        return cfg;
    }

  private:
    static std::string absolute_path(const field& f, const scope& s) {
        const std::string& p = get_text(f, s);
        if (p.empty() || p[0] != '/' || p.size() > 107)
            fail(s, f.value.Mark(),
                 std::string(f.name) + " must be an absolute path of at most 107 characters");
        return p;
    }

    void load_api(const field& a, api_config& out) {
        scope s{"api", "", false};
        expect_map(a.value, s, "api");
        fields f(a.value, {"socket", "tcp", "token_file", "persist"}, s);
        if (auto* x = f.find("socket"))
            out.socket = x->value.IsNull() ? std::string{} : absolute_path(*x, s);
        if (auto* x = f.find("tcp")) {
            const std::string& t = get_text(*x, s);
            size_t colon = t.rfind(':');
            uint32_t port = 0;
            auto addr = colon == std::string::npos ? result<ipv4_addr>(error{"is missing"})
                                                   : parse_ipv4(t.substr(0, colon));
            if (!addr || (addr.value() >> 24) != 127 ||
                !parse_decimal(std::string_view(t).substr(colon + 1), 65535, port) || port == 0)
                fail(s, x->value.Mark(),
                     "tcp " + quote(t) + " must be a loopback address and port (127.0.0.1:8080)");
            out.tcp_address = t.substr(0, colon);
            out.tcp_port = static_cast<uint16_t>(port);
        }
        if (auto* x = f.find("token_file"))
            out.token_file = absolute_path(*x, s);
        if (auto* x = f.find("persist"))
            out.persist = absolute_path(*x, s);
        if (out.tcp_port != 0 && out.token_file.empty())
            fail(s, a.key.Mark(), "tcp needs token_file (the bearer token TCP clients must send)");
    }

    void load_fpm(const field& p, fpm_config& out) {
        scope s{"fpm", "", false};
        expect_map(p.value, s, "fpm");
        fields f(p.value, {"listen", "grace_seconds"}, s);
        out.enabled = true;
        if (auto* x = f.find("listen")) {
            const std::string& t = get_text(*x, s);
            size_t colon = t.rfind(':');
            uint32_t port = 0;
            auto addr = colon == std::string::npos ? result<ipv4_addr>(error{"is missing"})
                                                   : parse_ipv4(t.substr(0, colon));
            if (!addr || !parse_decimal(std::string_view(t).substr(colon + 1), 65535, port) ||
                port == 0)
                fail(s, x->value.Mark(), "listen " + quote(t) + " must be address:port");
            out.address = addr.value();
            out.port = static_cast<uint16_t>(port);
        }
        if (auto* x = f.find("grace_seconds"))
            out.grace_seconds = static_cast<uint32_t>(get_uint(*x, s, 0, 3600));
    }

    void load_limits(const field& l, limits_config& out) {
        scope s{"limits", "", false};
        expect_map(l.value, s, "limits");
        fields f(l.value, {"ipv4_routes", "ipv6_routes", "tunnels"}, s);
        if (auto* x = f.find("ipv4_routes"))
            out.ipv4_routes = static_cast<uint32_t>(get_uint(*x, s, 1024, 16u << 20));
        if (auto* x = f.find("ipv6_routes"))
            out.ipv6_routes = static_cast<uint32_t>(get_uint(*x, s, 1024, 16u << 20));
        if (auto* x = f.find("tunnels"))
            out.tunnels = static_cast<uint32_t>(get_uint(*x, s, 1, 1u << 20));
    }

    std::vector<std::string> load_eal(const field& e, const scope& s) {
        expect_list(e.value, s, "eal");
        std::vector<std::string> args;
        size_t i = 0;
        for (const auto& item : e.value) {
            std::string at = "eal[" + std::to_string(i++) + "]";
            if (!item.IsScalar() || item.Scalar().empty())
                fail(s, mark_of(item),
                     at + ": expected a non-empty string, got " + type_name(item));
            args.push_back(item.Scalar());
        }
        return args;
    }

    // -- ports --

    void load_ports(const field& p, config& cfg) {
        scope top;
        expect_list(p.value, top, "ports");
        if (p.value.size() == 0)
            fail(top, p.key.Mark(), "ports: at least one port is required");
        cfg.ports.reserve(p.value.size());
        std::unordered_set<std::string> devices;
        size_t i = 0;
        for (const auto& node : p.value) {
            scope s{label("ports[" + std::to_string(i) + "]", peek_name(node)), "", false};
            expect_map(node, s, "port");
            fields f(node, {"name", "role", "device", "address", "address6", "mtu", "gateway"}, s);
            port_config port;

            const field& name = f.need("name");
            port.name = get_text(name, s);
            if (!valid_name(port.name))
                fail(s, name.value.Mark(),
                     "name " + quote(port.name) + " is invalid (1..31 of a-z 0-9 _ . -)");
            if (port_index_.count(port.name))
                fail(s, name.value.Mark(),
                     "name already used by ports[" + std::to_string(port_index_[port.name]) + "]");

            const field& role = f.need("role");
            const std::string& r = get_text(role, s);
            if (r == "lan")
                port.role = port_role::lan;
            else if (r == "wan")
                port.role = port_role::wan;
            else
                fail(s, role.value.Mark(), "role " + quote(r) + " is not lan or wan");

            const field& dev = f.need("device");
            port.device = get_text(dev, s);
            if (port.device.empty() || port.device.size() > 1024)
                fail(s, dev.value.Mark(), "device: expected 1..1024 characters");
            for (char c : port.device)
                if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
                    fail(s, dev.value.Mark(), "device contains a control character");
            if (!devices.insert(port.device).second)
                fail(s, dev.value.Mark(),
                     "device " + quote(port.device) + " already used by another port");

            const field& addr = f.need("address");
            const std::string& at = get_text(addr, s);
            ipv4_cidr cidr;
            std::string why = cidr_problem(at, cidr);
            if (!why.empty())
                fail(s, addr.value.Mark(),
                     "address " + quote(at) + " is not an IPv4 prefix: " + why);
            if (cidr.len == 0 || cidr.len > 31)
                fail(s, addr.value.Mark(),
                     "address " + quote(at) + ": prefix length must be 1..31 (a connected subnet)");
            if (!is_unicast(cidr.addr))
                fail(s, addr.value.Mark(), "address " + quote(at) + " is not a unicast address");
            if (cidr.len <= 30) {
                ipv4_addr host = cidr.addr & ~ipv4_mask(cidr.len);
                if (host == 0)
                    fail(s, addr.value.Mark(),
                         "address " + quote(at) + " is the subnet's network address");
                if (host == ~ipv4_mask(cidr.len))
                    fail(s, addr.value.Mark(),
                         "address " + quote(at) + " is the subnet's broadcast address");
            }
            port.address = cidr.addr;
            port.prefix_len = cidr.len;
            for (const auto& other : cfg.ports) {
                if (other.address == port.address)
                    fail(s, addr.value.Mark(),
                         "address " + format_ipv4(port.address) + " already used by port '" +
                             other.name + "'");
                uint8_t shorter = std::min(other.prefix_len, port.prefix_len);
                if (in_subnet(port.address, other.address, shorter))
                    fail(s, addr.value.Mark(),
                         "address " + quote(at) + " overlaps port '" + other.name + "' subnet " +
                             subnet_text(other.address, other.prefix_len));
            }

            if (auto* m = f.find("mtu"))
                port.mtu = static_cast<uint16_t>(get_uint(*m, s, 576, 9000));
            if (auto* a6 = f.find("address6"))
                load_address6(*a6, port, cfg, s);

            if (auto* g = f.find("gateway")) {
                if (port.role != port_role::wan)
                    fail(s, g->key.Mark(),
                         "gateway is only valid on wan ports (LAN routers are "
                         "route gateways)");
                ipv4_addr gw = get_unicast(*g, s);
                check_on_link(gw, port, *g, s);
                port.gateway = gw;
            }

            port_index_.emplace(port.name, i);
            cfg.ports.push_back(std::move(port));
            ++i;
        }
    }

    // A LAN port's IPv6 address and on-link prefix ("2001:db8:1::1/64"). The link-local address
    // comes from the MAC (EUI-64) and needs no config.
    void load_address6(const field& a6, port_config& port, const config& cfg, const scope& s) {
        if (port.role != port_role::lan)
            fail(s, a6.key.Mark(),
                 "address6 is only valid on lan ports (tunnels keep an IPv4 outer header)");
        const std::string& at = get_text(a6, s);
        ipv6_addr addr{};
        uint8_t len = 0;
        std::string why = cidr6_problem(at, addr, len);
        if (!why.empty())
            fail(s, a6.value.Mark(), "address6 " + quote(at) + " is not an IPv6 prefix: " + why);
        if (len < 8 || len > 127)
            fail(s, a6.value.Mark(),
                 "address6 " + quote(at) + ": prefix length must be 8..127 (an on-link prefix)");
        why = ipv6_unicast_problem(addr);
        if (!why.empty())
            fail(s, a6.value.Mark(), "address6 " + quote(at) + " " + why);
        if (fwd::ipv6_is_link_local(addr))
            fail(s, a6.value.Mark(),
                 "address6 " + quote(at) +
                     " is link-local (the link-local address is derived from the MAC)");
        if (fwd::ipv6_mask(addr, len) == addr)
            fail(s, a6.value.Mark(),
                 "address6 " + quote(at) +
                     " is the prefix's subnet-router anycast address (RFC 4291 2.6.1)");
        for (const auto& other : cfg.ports) {
            if (!other.address6)
                continue;
            uint8_t shorter = std::min(other.prefix6_len, len);
            if (fwd::ipv6_in_prefix(addr, *other.address6, shorter))
                fail(s, a6.value.Mark(),
                     "address6 " + quote(at) + " overlaps port '" + other.name + "' prefix " +
                         fwd::format_prefix6(fwd::ipv6_mask(*other.address6, other.prefix6_len),
                                             other.prefix6_len));
        }
        port.address6 = addr;
        port.prefix6_len = len;
    }

    // An on-link neighbour address of a port: inside its subnet, not its own/network/broadcast.
    void check_on_link(ipv4_addr a, const port_config& port, const field& f, const scope& s) {
        std::string what = std::string(f.name) + " " + format_ipv4(a);
        if (!in_subnet(a, port.address, port.prefix_len))
            fail(s, f.value.Mark(),
                 what + " is not inside port '" + port.name + "' subnet " +
                     subnet_text(port.address, port.prefix_len));
        if (a == port.address)
            fail(s, f.value.Mark(), what + " is port '" + port.name + "' own address");
        if (port.prefix_len <= 30) {
            ipv4_addr host = a & ~ipv4_mask(port.prefix_len);
            if (host == 0 || host == ~ipv4_mask(port.prefix_len))
                fail(s, f.value.Mark(),
                     what + " is the network or broadcast address of " +
                         subnet_text(port.address, port.prefix_len));
        }
    }

    const port_config& need_port(const config& cfg, const field& f, const scope& s) {
        const std::string& name = get_text(f, s);
        auto it = port_index_.find(name);
        if (it == port_index_.end())
            fail(s, f.value.Mark(), std::string(f.name) + " " + quote(name) + " is not a port");
        return cfg.ports[it->second];
    }

    // -- tunnels --

    // One SA mapping; `at` is its path in the tunnel ("outbound_sa", "inbound_sas[1]").
    sa_config load_sa(const YAML::Node& node, const scope& tunnel, const std::string& at) {
        expect_map(node, tunnel, at);
        scope s = tunnel.sub(at + ".", true);
        fields f(node, {"spi", "cipher", "key"}, s);
        sa_config sa;
        const field& spi = f.need("spi");
        uint64_t v = get_uint(spi, s, 0, 0xffffffffull, "256..0xffffffff");
        if (v < 256)
            fail(s, spi.value.Mark(),
                 "spi " + hex32(v) +
                     " is reserved (RFC 4303 2.1: 0 is local-only, 1..255 are "
                     "IANA-reserved); use 256..0xffffffff");
        sa.spi = static_cast<uint32_t>(v);

        const field& cipher = f.need("cipher");
        const std::string& c = get_text(cipher, s);
        size_t key_bytes = 0;
        std::string layout;
        if (c == "aes-gcm-128") {
            sa.cipher = aead_cipher::aes_gcm_128;
            key_bytes = 20;
            layout = "20 bytes: 16-byte key + 4-byte salt";
        } else if (c == "aes-gcm-256") {
            sa.cipher = aead_cipher::aes_gcm_256;
            key_bytes = 36;
            layout = "36 bytes: 32-byte key + 4-byte salt";
        } else {
            fail(s, cipher.value.Mark(),
                 "cipher " + (c.size() <= 16 ? quote(c) + " " : std::string{}) +
                     "is not supported (aes-gcm-128 | aes-gcm-256)");
        }

        const field& key = f.need("key");
        if (!key.value.IsScalar())
            fail(s, mark_of(key.value), "key: expected a hex string, got " + type_name(key.value));
        key_nodes_.push_back(key.value);
        decode_key(key.value.Scalar(), key_bytes, layout, sa.keymat, key, s);
        return sa;
    }

    // RFC 4106 keymat from hex ("0x" prefix optional, ':' between groups allowed). Never echoes
    // the text; fills a pre-reserved vector so no partial copy is left behind by reallocation.
    void decode_key(std::string_view text, size_t bytes, const std::string& layout,
                    std::vector<uint8_t>& out, const field& key, const scope& s) {
        size_t start =
            text.size() >= 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X') ? 2 : 0;
        size_t digits = 0;
        for (size_t i = start; i < text.size(); ++i) {
            char c = text[i];
            if (c == ':') {
                if (i == start || i + 1 == text.size() || text[i + 1] == ':')
                    fail(s, key.value.Mark(),
                         "key: ':' may only separate hex digits (character " +
                             std::to_string(i + 1) + ")");
                continue;
            }
            if (hex_value(c) < 0)
                fail(s, key.value.Mark(),
                     "key: character " + std::to_string(i + 1) + " is not a hex digit");
            ++digits;
        }
        if (digits != bytes * 2)
            fail(s, key.value.Mark(),
                 "key: expected " + std::to_string(bytes * 2) + " hex digits (" + layout +
                     "), got " + std::to_string(digits));
        out.clear();
        out.reserve(bytes);
        int high = -1;
        for (size_t i = start; i < text.size(); ++i) {
            if (text[i] == ':')
                continue;
            int d = hex_value(text[i]);
            if (high < 0) {
                high = d;
            } else {
                out.push_back(static_cast<uint8_t>((high << 4) | d));
                high = -1;
            }
        }
    }

    void load_tunnels(const field& t, config& cfg) {
        scope top;
        expect_list(t.value, top, "tunnels");
        cfg.tunnels.reserve(t.value.size());
        std::unordered_map<std::string, size_t> names;
        std::unordered_map<uint32_t, std::string> inbound_spis;  // spi -> tunnel name
        std::unordered_map<uint64_t, std::string> outbound_spis; // (spi, peer) -> tunnel name
        size_t i = 0;
        for (const auto& node : t.value) {
            scope s{label("tunnels[" + std::to_string(i) + "]", peek_name(node)), "", false};
            expect_map(node, s, "tunnel");
            fields f(node,
                     {"name", "port", "local", "peer", "encap", "udp_src_port", "udp_dst_port",
                      "replay_window", "esn", "outbound_sa", "inbound_sas", "bfd", "health_check"},
                     s);
            tunnel_config tun;

            const field& name = f.need("name");
            tun.name = get_text(name, s);
            if (!valid_name(tun.name))
                fail(s, name.value.Mark(),
                     "name " + quote(tun.name) + " is invalid (1..31 of a-z 0-9 _ . -)");
            if (auto it = names.find(tun.name); it != names.end())
                fail(s, name.value.Mark(),
                     "name already used by tunnels[" + std::to_string(it->second) + "]");

            const field& pf = f.need("port");
            const port_config& port = need_port(cfg, pf, s);
            if (port.role != port_role::wan)
                fail(s, pf.value.Mark(), "port '" + port.name + "' is not a wan port");
            tun.port = port.name;

            if (auto* l = f.find("local")) {
                ipv4_addr local = get_unicast(*l, s);
                if (!in_subnet(local, port.address, port.prefix_len))
                    fail(s, l->value.Mark(),
                         "local " + format_ipv4(local) + " is not inside port '" + port.name +
                             "' subnet " + subnet_text(port.address, port.prefix_len));
                tun.local = local;
            }

            const field& peer = f.need("peer");
            tun.peer = get_unicast(peer, s);
            for (const auto& p : cfg.ports)
                if (p.address == tun.peer)
                    fail(s, peer.value.Mark(),
                         "peer " + format_ipv4(tun.peer) + " is port '" + p.name + "' own address");
            if (!port.gateway && !in_subnet(tun.peer, port.address, port.prefix_len))
                fail(s, peer.value.Mark(),
                     "peer " + format_ipv4(tun.peer) + " is not on port '" + port.name +
                         "' subnet " + subnet_text(port.address, port.prefix_len) +
                         " and the port has no gateway");

            const field& encap = f.need("encap");
            const std::string& enc = get_text(encap, s);
            if (enc == "esp")
                tun.encap = tunnel_encap::esp;
            else if (enc == "esp-udp")
                tun.encap = tunnel_encap::esp_udp;
            else
                fail(s, encap.value.Mark(), "encap " + quote(enc) + " is not esp or esp-udp");
            for (const char* udp : {"udp_src_port", "udp_dst_port"}) {
                auto* u = f.find(udp);
                if (!u)
                    continue;
                if (tun.encap != tunnel_encap::esp_udp)
                    fail(s, u->key.Mark(),
                         std::string(udp) + " is only valid with encap esp-udp (RFC 3948)");
                auto port_no = static_cast<uint16_t>(get_uint(*u, s, 1, 65535));
                (u->name == "udp_src_port" ? tun.udp_src_port : tun.udp_dst_port) = port_no;
            }

            if (auto* r = f.find("replay_window")) {
                uint64_t w = get_uint(*r, s, 0, 4096, "0 (off) or 64..4096");
                if (w != 0 && w < 64)
                    fail(s, r->value.Mark(),
                         "replay_window " + std::to_string(w) +
                             " out of range 0 (off) or 64..4096");
                tun.replay_window = static_cast<uint32_t>(w);
            }
            if (auto* e = f.find("esn"))
                tun.esn = get_bool(*e, s);

            const field& out = f.need("outbound_sa");
            tun.outbound_sa = load_sa(out.value, s, "outbound_sa");
            uint64_t out_key = (uint64_t{tun.outbound_sa.spi} << 32) | tun.peer;
            if (auto [it, fresh] = outbound_spis.emplace(out_key, tun.name); !fresh)
                fail(s, mark_of(out.value),
                     "outbound_sa.spi " + hex32(tun.outbound_sa.spi) + " to peer " +
                         format_ipv4(tun.peer) + " already used by tunnel '" + it->second + "'");

            const field& in = f.need("inbound_sas");
            expect_list(in.value, s, "inbound_sas");
            if (in.value.size() < 1 || in.value.size() > 2)
                fail(s, mark_of(in.value),
                     "inbound_sas: expected 1 or 2 SAs (2 during rekey), got " +
                         std::to_string(in.value.size()));
            tun.inbound_sas.reserve(in.value.size());
            size_t j = 0;
            for (const auto& sa_node : in.value) {
                std::string at = "inbound_sas[" + std::to_string(j) + "]";
                sa_config sa = load_sa(sa_node, s, at);
                if (auto [it, fresh] = inbound_spis.emplace(sa.spi, tun.name); !fresh) {
                    std::string owner = it->second == tun.name
                                            ? "an earlier inbound SA of this tunnel"
                                            : "tunnel '" + it->second + "'";
                    fail(s, mark_of(sa_node),
                         at + ".spi " + hex32(sa.spi) + " already used by " + owner);
                }
                tun.inbound_sas.push_back(std::move(sa));
                ++j;
            }

            if (auto* b = f.find("bfd"))
                tun.bfd = load_bfd(*b, s);
            if (auto* h = f.find("health_check"))
                tun.health_check = load_check(*h, s);

            names.emplace(tun.name, i);
            cfg.tunnels.push_back(std::move(tun));
            ++i;
        }
        tunnel_index_ = std::move(names);
    }

    // BFD inside a tunnel: {local, remote, transmit_interval_ms, receive_interval_ms,
    // detect_multiplier}, the names FRR's bfdd uses for the same knobs.
    tunnel_bfd_config load_bfd(const field& b, const scope& s) {
        scope bs = s.sub("bfd.", false);
        expect_map(b.value, bs, "bfd");
        fields f(
            b.value,
            {"local", "remote", "transmit_interval_ms", "receive_interval_ms", "detect_multiplier"},
            bs);
        tunnel_bfd_config c;
        c.local = get_unicast(f.need("local"), bs);
        const field& remote = f.need("remote");
        c.remote = get_unicast(remote, bs);
        if (c.remote == c.local)
            fail(bs, remote.value.Mark(),
                 "remote " + format_ipv4(c.remote) + " is the local address");
        if (auto* x = f.find("transmit_interval_ms"))
            c.desired_min_tx_us = static_cast<uint32_t>(get_uint(*x, bs, 50, 60000) * 1000);
        if (auto* x = f.find("receive_interval_ms"))
            c.required_min_rx_us = static_cast<uint32_t>(get_uint(*x, bs, 50, 60000) * 1000);
        if (auto* x = f.find("detect_multiplier"))
            c.detect_mult = static_cast<uint8_t>(get_uint(*x, bs, 1, 255));
        return c;
    }

    // ICMP echo health check through a tunnel: {target, source, interval_ms, timeout_ms,
    // failures, rtt_threshold_ms}.
    tunnel_check_config load_check(const field& h, const scope& s) {
        scope hs = s.sub("health_check.", false);
        expect_map(h.value, hs, "health_check");
        fields f(h.value,
                 {"target", "source", "interval_ms", "timeout_ms", "failures", "rtt_threshold_ms",
                  "window", "sla"},
                 hs);
        tunnel_check_config c;
        c.target = get_unicast(f.need("target"), hs);
        const field& src = f.need("source");
        c.source = get_unicast(src, hs);
        if (c.source == c.target)
            fail(hs, src.value.Mark(), "source " + format_ipv4(c.source) + " is the target");
        if (auto* x = f.find("interval_ms"))
            c.interval_ms = static_cast<uint32_t>(get_uint(*x, hs, 100, 60000));
        if (auto* x = f.find("timeout_ms"))
            c.timeout_ms = static_cast<uint32_t>(get_uint(*x, hs, 10, 60000));
        if (auto* x = f.find("failures"))
            c.failures = static_cast<uint32_t>(get_uint(*x, hs, 1, 100));
        if (auto* x = f.find("rtt_threshold_ms"))
            c.rtt_threshold_ms = static_cast<uint32_t>(get_uint(*x, hs, 0, 60000));
        if (auto* x = f.find("window"))
            c.window = static_cast<uint32_t>(get_uint(*x, hs, 10, 256));
        if (auto* x = f.find("sla")) {
            scope ss = hs.sub("sla.", false);
            expect_map(x->value, ss, "sla");
            fields sf(x->value, {"max_loss_percent", "max_latency_ms", "max_jitter_ms"}, ss);
            sla_limits l;
            if (auto* y = sf.find("max_loss_percent"))
                l.max_loss_percent = static_cast<uint32_t>(get_uint(*y, ss, 1, 100));
            if (auto* y = sf.find("max_latency_ms"))
                l.max_latency_ms = static_cast<uint32_t>(get_uint(*y, ss, 1, 60000));
            if (auto* y = sf.find("max_jitter_ms"))
                l.max_jitter_ms = static_cast<uint32_t>(get_uint(*y, ss, 1, 60000));
            if (l == sla_limits{})
                fail(ss, mark_of(x->value), "sla: give at least one limit");
            c.sla = l;
        }
        return c;
    }

    // -- groups --

    void load_groups(const field& g, config& cfg) {
        scope top;
        expect_list(g.value, top, "groups");
        cfg.groups.reserve(g.value.size());
        std::unordered_map<std::string, size_t> names;
        size_t i = 0;
        for (const auto& node : g.value) {
            scope s{label("groups[" + std::to_string(i) + "]", peek_name(node)), "", false};
            expect_map(node, s, "group");
            fields f(node, {"name", "members", "hold_down_ms"}, s);
            group_config grp;
            if (auto* h = f.find("hold_down_ms"))
                grp.hold_down_ms = static_cast<uint32_t>(get_uint(*h, s, 0, 3'600'000));
            const field& name = f.need("name");
            grp.name = get_text(name, s);
            if (!valid_name(grp.name))
                fail(s, name.value.Mark(),
                     "name " + quote(grp.name) + " is invalid (1..31 of a-z 0-9 _ . -)");
            if (tunnel_index_.count(grp.name))
                fail(s, name.value.Mark(), "name already used by a tunnel");
            if (auto it = names.find(grp.name); it != names.end())
                fail(s, name.value.Mark(),
                     "name already used by groups[" + std::to_string(it->second) + "]");
            const field& mf = f.need("members");
            expect_list(mf.value, s, "members");
            if (mf.value.size() < 1 || mf.value.size() > 16)
                fail(s, mark_of(mf.value),
                     "members: expected 1..16 tunnels, got " + std::to_string(mf.value.size()));
            size_t j = 0;
            for (const auto& mn : mf.value) {
                scope ms = s.sub("members[" + std::to_string(j) + "].", false);
                expect_map(mn, ms, "member");
                fields mfs(mn, {"tunnel", "priority", "weight"}, ms);
                group_member_config m;
                const field& tf = mfs.need("tunnel");
                m.tunnel = get_text(tf, ms);
                if (!fragment_ && !tunnel_index_.count(m.tunnel))
                    fail(ms, tf.value.Mark(), "tunnel " + quote(m.tunnel) + " is not a tunnel");
                for (const auto& other : grp.members)
                    if (other.tunnel == m.tunnel)
                        fail(ms, tf.value.Mark(), "tunnel " + quote(m.tunnel) + " listed twice");
                if (auto* p = mfs.find("priority"))
                    m.priority = static_cast<uint8_t>(get_uint(*p, ms, 0, 255));
                if (auto* w = mfs.find("weight"))
                    m.weight = static_cast<uint16_t>(get_uint(*w, ms, 1, 1000));
                grp.members.push_back(std::move(m));
                ++j;
            }
            names.emplace(grp.name, i);
            cfg.groups.push_back(std::move(grp));
            ++i;
        }
        group_index_ = std::move(names);
    }

    // -- routes --

    void load_routes(const field& r, config& cfg) {
        scope top;
        expect_list(r.value, top, "routes");
        cfg.routes.reserve(r.value.size());
        std::unordered_map<uint64_t, size_t> seen; // (addr, len) -> index
        std::map<fwd::prefix6_key, size_t> seen6;
        size_t i = 0;
        for (const auto& node : r.value) {
            std::string peeked = peek(node, "prefix");
            if (peeked.find(':') != std::string::npos) {
                load_route6(node, i, peeked, cfg, seen6);
                ++i;
                continue;
            }
            scope s{label("routes[" + std::to_string(i) + "]",
                          parse_ipv4_prefix(peeked).ok() ? peeked : std::string{}),
                    "", false};
            expect_map(node, s, "route");
            fields f(node, {"prefix", "tunnel", "gateway", "group", "distance"}, s);
            route_config route;

            const field& pf = f.need("prefix");
            const std::string& text = get_text(pf, s);
            auto prefix = parse_ipv4_prefix(text);
            if (!prefix)
                fail(s, pf.value.Mark(), "prefix " + prefix.err().message);
            route.prefix = prefix.value();

            auto* tf = f.find("tunnel");
            auto* gf = f.find("gateway");
            auto* grf = f.find("group");
            int vias = (tf != nullptr) + (gf != nullptr) + (grf != nullptr);
            if (vias != 1)
                fail(s, pf.value.Mark(),
                     "exactly one of 'tunnel', 'gateway' or 'group' is required, got " +
                         std::string(vias == 0 ? "none" : "several"));
            if (grf) {
                route.via = route_via::group;
                route.group = get_text(*grf, s);
                if (!fragment_ && !group_index_.count(route.group))
                    fail(s, grf->value.Mark(), "group " + quote(route.group) + " is not a group");
            } else if (tf) {
                route.via = route_via::tunnel;
                route.tunnel = get_text(*tf, s);
                if (!fragment_ && !tunnel_index_.count(route.tunnel))
                    fail(s, tf->value.Mark(), "tunnel " + quote(route.tunnel) + " is not a tunnel");
            } else {
                route.via = route_via::lan_gateway;
                route.gateway = get_unicast(*gf, s);
                const port_config* lan = nullptr;
                std::string subnets;
                for (const auto& p : cfg.ports) {
                    if (p.role != port_role::lan)
                        continue;
                    subnets += (subnets.empty() ? "" : ", ") + p.name + " " +
                               subnet_text(p.address, p.prefix_len);
                    if (!lan && in_subnet(route.gateway, p.address, p.prefix_len))
                        lan = &p;
                }
                if (!lan)
                    fail(s, gf->value.Mark(),
                         "gateway " + format_ipv4(route.gateway) +
                             " is not inside any lan port's subnet" +
                             (subnets.empty() ? std::string(" (there are no lan ports)")
                                              : " (" + subnets + ")"));
                check_on_link(route.gateway, *lan, *gf, s);
            }

            if (auto* d = f.find("distance"))
                route.distance = static_cast<uint8_t>(get_uint(*d, s, 1, 255));

            uint64_t key = (uint64_t{route.prefix.addr} << 8) | route.prefix.len;
            if (auto [it, fresh] = seen.emplace(key, i); !fresh)
                fail(s, pf.value.Mark(),
                     "prefix " + format_ipv4_prefix(route.prefix) + " already defined by routes[" +
                         std::to_string(it->second) +
                         "] (one static route per prefix: a backup path belongs in a group)");
            cfg.routes.push_back(std::move(route));
            ++i;
        }
    }

    // An IPv6 route: the same fields and rules as an IPv4 one; `gateway` is an IPv6 LAN router
    // on a lan port's IPv6 prefix, or link-local when exactly one lan port has IPv6.
    void load_route6(const YAML::Node& node, size_t i, const std::string& peeked, config& cfg,
                     std::map<fwd::prefix6_key, size_t>& seen) {
        scope s{label("routes[" + std::to_string(i) + "]", peeked), "", false};
        expect_map(node, s, "route");
        fields f(node, {"prefix", "tunnel", "gateway", "group", "distance"}, s);
        route6_config route;
        const field& pf = f.need("prefix");
        const std::string& text = get_text(pf, s);
        auto prefix = parse_ipv6_prefix(text);
        if (!prefix)
            fail(s, pf.value.Mark(), "prefix " + prefix.err().message);
        route.prefix = prefix.value();
        auto* tf = f.find("tunnel");
        auto* gf = f.find("gateway");
        auto* grf = f.find("group");
        int vias = (tf != nullptr) + (gf != nullptr) + (grf != nullptr);
        if (vias != 1)
            fail(s, pf.value.Mark(),
                 "exactly one of 'tunnel', 'gateway' or 'group' is required, got " +
                     std::string(vias == 0 ? "none" : "several"));
        if (grf) {
            route.via = route_via::group;
            route.group = get_text(*grf, s);
            if (!fragment_ && !group_index_.count(route.group))
                fail(s, grf->value.Mark(), "group " + quote(route.group) + " is not a group");
        } else if (tf) {
            route.via = route_via::tunnel;
            route.tunnel = get_text(*tf, s);
            if (!fragment_ && !tunnel_index_.count(route.tunnel))
                fail(s, tf->value.Mark(), "tunnel " + quote(route.tunnel) + " is not a tunnel");
        } else {
            route.via = route_via::lan_gateway;
            const std::string& gt = get_text(*gf, s);
            std::string why = ipv6_problem(gt, route.gateway);
            if (!why.empty())
                fail(s, gf->value.Mark(),
                     "gateway " + quote(gt) + " is not an IPv6 address: " + why);
            why = ipv6_unicast_problem(route.gateway);
            if (!why.empty())
                fail(s, gf->value.Mark(), "gateway " + quote(gt) + " " + why);
            const port_config* lan = nullptr;
            size_t v6_lans = 0;
            std::string prefixes;
            for (const auto& p : cfg.ports) {
                if (p.role != port_role::lan || !p.address6)
                    continue;
                ++v6_lans;
                prefixes +=
                    (prefixes.empty() ? "" : ", ") + p.name + " " +
                    fwd::format_prefix6(fwd::ipv6_mask(*p.address6, p.prefix6_len), p.prefix6_len);
                if (!lan && fwd::ipv6_in_prefix(route.gateway, *p.address6, p.prefix6_len))
                    lan = &p;
            }
            if (fwd::ipv6_is_link_local(route.gateway)) {
                if (v6_lans != 1)
                    fail(s, gf->value.Mark(),
                         "gateway " + quote(gt) +
                             " is link-local: it needs exactly one lan port with address6, "
                             "there are " +
                             std::to_string(v6_lans));
            } else if (!lan) {
                fail(s, gf->value.Mark(),
                     "gateway " + quote(gt) + " is not inside any lan port's IPv6 prefix" +
                         (prefixes.empty() ? std::string(" (no lan port has address6)")
                                           : " (" + prefixes + ")"));
            } else if (route.gateway == *lan->address6) {
                fail(s, gf->value.Mark(),
                     "gateway " + quote(gt) + " is port '" + lan->name + "' own address");
            }
        }
        if (auto* d = f.find("distance"))
            route.distance = static_cast<uint8_t>(get_uint(*d, s, 1, 255));
        fwd::prefix6_key key{route.prefix.addr, route.prefix.len};
        if (auto [it, fresh] = seen.emplace(key, i); !fresh)
            fail(s, pf.value.Mark(),
                 "prefix " + format_ipv6_prefix(route.prefix) + " already defined by routes[" +
                     std::to_string(it->second) +
                     "] (one static route per prefix: a backup path belongs in a group)");
        cfg.routes6.push_back(std::move(route));
    }

    // -- neighbours --

    void load_neighbours(const field& n, config& cfg) {
        scope top;
        expect_list(n.value, top, "neighbours");
        cfg.neighbours.reserve(n.value.size());
        std::unordered_map<std::string, size_t> seen; // "port/address" -> index
        size_t i = 0;
        for (const auto& node : n.value) {
            std::string peeked = peek(node, "address");
            scope s{label("neighbours[" + std::to_string(i) + "]",
                          parse_ipv4(peeked).ok() ? peeked : std::string{}),
                    "", false};
            expect_map(node, s, "neighbour");
            fields f(node, {"port", "address", "mac"}, s);
            neighbour_config nb;
            const field& pf = f.need("port");
            const port_config& port = need_port(cfg, pf, s);
            nb.port = port.name;
            const field& af = f.need("address");
            nb.address = get_unicast(af, s);
            check_on_link(nb.address, port, af, s);

            const field& mf = f.need("mac");
            const std::string& mt = get_text(mf, s);
            auto mac = parse_mac(mt);
            if (!mac)
                fail(s, mf.value.Mark(), "mac " + mac.err().message);
            if (mac.value()[0] & 0x01)
                fail(s, mf.value.Mark(),
                     "mac " + format_mac(mac.value()) +
                         " is a multicast address (a neighbour is unicast)");
            if (mac.value() == mac_addr{})
                fail(s, mf.value.Mark(), "mac 00:00:00:00:00:00 is not a valid neighbour address");
            nb.mac = mac.value();

            std::string key = nb.port + "/" + std::to_string(nb.address);
            if (auto [it, fresh] = seen.emplace(key, i); !fresh)
                fail(s, af.value.Mark(),
                     "address " + format_ipv4(nb.address) + " on port '" + nb.port +
                         "' already defined by neighbours[" + std::to_string(it->second) + "]");
            cfg.neighbours.push_back(std::move(nb));
            ++i;
        }
    }

    std::unordered_map<std::string, size_t> port_index_;
    std::unordered_map<std::string, size_t> tunnel_index_;
    std::unordered_map<std::string, size_t> group_index_;
    std::vector<YAML::Node> key_nodes_;

  public:
    // An API body is checked alone: references to tunnels are resolved by the table writer
    // against the running state, not against this document.
    bool fragment_ = false;
};

// Reads from a buffer without copying it (std::istringstream would copy the key text).
class view_buf : public std::streambuf {
  public:
    view_buf(const char* data, size_t size) {
        char* p = const_cast<char*>(data); // read-only use: the get area is never written
        setg(p, p, p + size);
    }
};

// Counts documents, at most two. yaml-cpp 0.7's LoadAll() loops forever on a stray top-level
// ',' (jbeder/yaml-cpp#1040, fixed upstream by PR #1319): the parser keeps reporting a new empty
// document without consuming the token. Driving the parser ourselves with a cap avoids that, and
// also catches what YAML::Load() silently ignores after the first document ("[a],").
class document_counter : public YAML::EventHandler {
  public:
    int documents = 0;
    YAML::Mark second_start;

    void OnDocumentStart(const YAML::Mark& mark) override {
        if (++documents == 2)
            second_start = mark;
    }
    void OnDocumentEnd() override {}
    void OnNull(const YAML::Mark&, YAML::anchor_t) override {}
    void OnAlias(const YAML::Mark&, YAML::anchor_t) override {}
    void OnScalar(const YAML::Mark&, const std::string&, YAML::anchor_t,
                  const std::string&) override {}
    void OnSequenceStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                         YAML::EmitterStyle::value) override {}
    void OnSequenceEnd() override {}
    void OnMapStart(const YAML::Mark&, const std::string&, YAML::anchor_t,
                    YAML::EmitterStyle::value) override {}
    void OnMapEnd() override {}
};

std::string location(std::string_view source, const YAML::Mark& mark) {
    std::string out(source);
    if (!mark.is_null() && mark.line >= 0)
        out += ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
    return out;
}

result<config> load_text(const char* data, size_t size, std::string_view source,
                         bool fragment = false) {
    if (size > max_config_bytes)
        return error{std::string(source) + ": larger than " +
                     std::to_string(max_config_bytes >> 20) + " MiB"};
    // A NUL byte never belongs in a text config, and leading NULs would make yaml-cpp guess
    // UTF-16/32.
    if (const void* nul = std::memchr(data, 0, size)) {
        size_t off = static_cast<size_t>(static_cast<const char*>(nul) - data);
        YAML::Mark m;
        m.pos = static_cast<int>(off);
        m.line = static_cast<int>(std::count(data, data + off, '\n'));
        const char* line_start = data + off;
        while (line_start > data && line_start[-1] != '\n')
            --line_start;
        m.column = static_cast<int>(data + off - line_start);
        return error{location(source, m) + ": NUL byte in the file (not a text file?)"};
    }
    try {
        {
            view_buf buf(data, size);
            std::istream in(&buf);
            YAML::Parser parser(in);
            document_counter counter;
            while (counter.documents < 2 && parser.HandleNextDocument(counter)) {
            }
            if (counter.documents > 1) {
                const YAML::Mark& m = counter.second_start;
                bool marker = m.pos >= 0 && static_cast<size_t>(m.pos) + 3 <= size &&
                              std::string_view(data + m.pos, 3) == "---";
                return error{location(source, m) +
                             (marker ? ": expected one YAML document, found more"
                                     : ": YAML syntax error: unexpected text after the end of "
                                       "the document")};
            }
        }
        view_buf buf(data, size);
        std::istream in(&buf);
        YAML::Node root = YAML::Load(in);
        loader l;
        l.fragment_ = fragment;
        config cfg = l.load(root);
        return result<config>(std::move(cfg));
    } catch (const parse_failure& e) {
        return error{location(source, e.mark) + ": " + e.message};
    } catch (const YAML::Exception& e) {
        // e.msg is yaml-cpp's generic description; it never quotes the document text.
        return error{location(source, e.mark) + ": YAML syntax error: " + e.msg};
    } catch (const std::bad_alloc&) {
        return error{std::string(source) + ": out of memory while parsing"};
    } catch (const std::exception& e) {
        return error{std::string(source) + ": cannot parse: " + e.what()};
    }
}

} // namespace

// ---- public helpers ---------------------------------------------------------------------------

result<ipv4_addr> parse_ipv4(std::string_view text) {
    ipv4_addr a = 0;
    std::string why = ipv4_problem(text, a);
    if (!why.empty())
        return error{quote(text) + " is not an IPv4 address: " + why};
    return a;
}

result<ipv4_cidr> parse_ipv4_cidr(std::string_view text) {
    ipv4_cidr c;
    std::string why = cidr_problem(text, c);
    if (!why.empty())
        return error{quote(text) + " is not an IPv4 prefix: " + why};
    return c;
}

result<ipv4_prefix> parse_ipv4_prefix(std::string_view text) {
    ipv4_cidr c;
    std::string why = cidr_problem(text, c);
    if (!why.empty())
        return error{quote(text) + " is not an IPv4 prefix: " + why};
    ipv4_prefix p{c.addr & ipv4_mask(c.len), c.len};
    if (p.addr != c.addr)
        return error{quote(text) + " has host bits set; the prefix is " + format_ipv4_prefix(p)};
    return p;
}

result<ipv6_addr> parse_ipv6(std::string_view text) {
    ipv6_addr a{};
    std::string why = ipv6_problem(text, a);
    if (!why.empty())
        return error{quote(text) + " is not an IPv6 address: " + why};
    return a;
}

result<ipv6_prefix> parse_ipv6_prefix(std::string_view text) {
    ipv6_addr a{};
    uint8_t len = 0;
    std::string why = cidr6_problem(text, a, len);
    if (!why.empty())
        return error{quote(text) + " is not an IPv6 prefix: " + why};
    ipv6_prefix p{fwd::ipv6_mask(a, len), len};
    if (p.addr != a)
        return error{quote(text) + " has host bits set; the prefix is " + format_ipv6_prefix(p)};
    return p;
}

std::string format_ipv6(const ipv6_addr& a) {
    return fwd::format_ipv6(a);
}

std::string format_ipv6_prefix(const ipv6_prefix& p) {
    return fwd::format_prefix6(p.addr, p.len);
}

result<mac_addr> parse_mac(std::string_view text) {
    mac_addr mac{};
    bool good = text.size() == 17;
    for (size_t i = 0; good && i < 6; ++i) {
        int hi = hex_value(text[i * 3]);
        int lo = hex_value(text[i * 3 + 1]);
        if (hi < 0 || lo < 0 || (i < 5 && text[i * 3 + 2] != ':'))
            good = false;
        else
            mac[i] = static_cast<uint8_t>((hi << 4) | lo);
    }
    if (!good)
        return error{quote(text) + " is not a MAC address (expected six hex pairs like "
                                   "02:00:00:00:00:01)"};
    return mac;
}

std::string format_ipv4(ipv4_addr a) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%u.%u.%u.%u", (a >> 24) & 0xff, (a >> 16) & 0xff,
                  (a >> 8) & 0xff, a & 0xff);
    return buf;
}

std::string format_ipv4_prefix(const ipv4_prefix& p) {
    return format_ipv4(p.addr) + "/" + std::to_string(p.len);
}

std::string format_mac(const mac_addr& m) {
    char buf[18];
    std::snprintf(buf, sizeof buf, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4],
                  m[5]);
    return buf;
}

result<config> load_config_string(const std::string& yaml, std::string_view source) {
    return load_text(yaml.data(), yaml.size(), source);
}

result<config> load_config_file(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return error{path + ": cannot open: " + std::strerror(errno)};
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int err = errno;
        ::close(fd);
        return error{path + ": " +
                     (S_ISREG(st.st_mode) ? std::string(std::strerror(err))
                                          : std::string("not a regular file"))};
    }
    if (static_cast<uint64_t>(st.st_size) > max_config_bytes) {
        ::close(fd);
        return error{path + ": larger than " + std::to_string(max_config_bytes >> 20) + " MiB"};
    }
    // One exact-size buffer, wiped before it is freed: the file holds key material.
    size_t size = static_cast<size_t>(st.st_size);
    std::vector<char> text(size + 1);
    size_t got = 0;
    while (got < text.size()) {
        ssize_t n = ::read(fd, text.data() + got, text.size() - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int err = errno;
            ::close(fd);
            OPENSSL_cleanse(text.data(), text.size());
            return error{path + ": cannot read: " + std::strerror(err)};
        }
        if (n == 0)
            break;
        got += static_cast<size_t>(n);
    }
    ::close(fd);
    if (got > size) {
        OPENSSL_cleanse(text.data(), text.size());
        return error{path + ": the file grew while being read; try again"};
    }
    result<config> r = load_text(text.data(), got, path);
    OPENSSL_cleanse(text.data(), text.size());
    return r;
}

// ---- writing a config back, and API bodies ----------------------------------------------------

namespace {

std::string yaml_quoted(std::string_view text) {
    std::string out = "\"";
    for (char c : text) {
        if (c == '"' || c == '\\')
            out += '\\';
        out += c;
    }
    return out + "\"";
}

void dump_sa(std::string& out, const sa_config& sa, bool with_keys) {
    char spi[16];
    std::snprintf(spi, sizeof spi, "0x%x", sa.spi);
    out += "{spi: ";
    out += spi;
    out +=
        sa.cipher == aead_cipher::aes_gcm_128 ? ", cipher: aes-gcm-128" : ", cipher: aes-gcm-256";
    if (with_keys) {
        static const char hex[] = "0123456789abcdef";
        out += ", key: 0x";
        for (uint8_t b : sa.keymat) {
            out += hex[b >> 4];
            out += hex[b & 15];
        }
    } else {
        out += ", key: redacted";
    }
    out += "}";
}

// Indents every line after the first by `n` spaces (JSON strings hold no raw newline, so this
// never changes a value).
std::string indent_tail(std::string_view text, size_t n) {
    std::string out;
    out.reserve(text.size() + 64);
    for (char c : text) {
        out += c;
        if (c == '\n')
            out.append(n, ' ');
    }
    return out;
}

// "src:line:col: message" -> "message": the lines of a synthesized document mean nothing to
// the client.
std::string without_location(const std::string& message, std::string_view source) {
    if (message.rfind(source, 0) != 0)
        return message;
    size_t at = message.find(": ", source.size());
    return at == std::string::npos ? message : message.substr(at + 2);
}

struct wiped_string {
    std::string text;
    ~wiped_string() {
        if (!text.empty())
            OPENSSL_cleanse(text.data(), text.size());
    }
};

result<config> load_with_ports(const config& base, const std::string& section,
                               const std::string& body) {
    config ports_only;
    ports_only.workers = base.workers;
    ports_only.ports = base.ports;
    wiped_string doc;
    doc.text = dump_config(ports_only, false);
    doc.text += section;
    doc.text += ":\n";
    // A body that is a list stays one; an object becomes the list's only item.
    size_t first = body.find_first_not_of(" \t\r\n");
    if (first == std::string::npos)
        return error{"the request body is empty"};
    bool list = body[first] == '[' || (body[first] == '-' && body.size() > first + 1 &&
                                       (body[first + 1] == ' ' || body[first + 1] == '\n'));
    doc.text += list ? "  " : "  - ";
    doc.text += indent_tail(body, list ? 2 : 4);
    doc.text += "\n";
    auto r = load_text(doc.text.data(), doc.text.size(), "body", true);
    if (!r)
        return error{without_location(r.err().message, "body")};
    return r;
}

} // namespace

namespace {
// ", sla: {max_loss_percent: 10, ...}" with the limits that are set, or "".
std::string sla_text(const std::optional<sla_limits>& l) {
    if (!l)
        return {};
    std::string out;
    auto add = [&](const char* k, uint32_t v) {
        if (v != 0)
            out += std::string(out.empty() ? "" : ", ") + k + ": " + std::to_string(v);
    };
    add("max_loss_percent", l->max_loss_percent);
    add("max_latency_ms", l->max_latency_ms);
    add("max_jitter_ms", l->max_jitter_ms);
    return ", sla: {" + out + "}";
}
} // namespace

std::string dump_config(const config& cfg, bool with_keys) {
    std::string out;
    out += "workers: " + std::to_string(cfg.workers) + "\n";
    if (!cfg.eal_args.empty()) {
        out += "eal:\n";
        for (const auto& a : cfg.eal_args)
            out += "  - " + yaml_quoted(a) + "\n";
    }
    const api_config defaults_api;
    if (cfg.api.socket != defaults_api.socket || cfg.api.tcp_port != 0 ||
        !cfg.api.persist.empty()) {
        out += "api:\n";
        out += "  socket: " +
               (cfg.api.socket.empty() ? std::string("null") : yaml_quoted(cfg.api.socket)) + "\n";
        if (cfg.api.tcp_port != 0)
            out += "  tcp: " + cfg.api.tcp_address + ":" + std::to_string(cfg.api.tcp_port) + "\n";
        if (!cfg.api.token_file.empty())
            out += "  token_file: " + yaml_quoted(cfg.api.token_file) + "\n";
        if (!cfg.api.persist.empty())
            out += "  persist: " + yaml_quoted(cfg.api.persist) + "\n";
    }
    if (cfg.fpm.enabled)
        out += "fpm:\n  listen: " + format_ipv4(cfg.fpm.address) + ":" +
               std::to_string(cfg.fpm.port) +
               "\n  grace_seconds: " + std::to_string(cfg.fpm.grace_seconds) + "\n";
    out += "limits:\n  ipv4_routes: " + std::to_string(cfg.limits.ipv4_routes) +
           "\n  ipv6_routes: " + std::to_string(cfg.limits.ipv6_routes) +
           "\n  tunnels: " + std::to_string(cfg.limits.tunnels) + "\n";
    out += "ports:\n";
    for (const auto& p : cfg.ports) {
        out += "  - name: " + p.name + "\n";
        out += std::string("    role: ") + (p.role == port_role::lan ? "lan" : "wan") + "\n";
        out += "    device: " + yaml_quoted(p.device) + "\n";
        out += "    address: " + format_ipv4(p.address) + "/" + std::to_string(p.prefix_len) + "\n";
        if (p.gateway)
            out += "    gateway: " + format_ipv4(*p.gateway) + "\n";
        if (p.address6)
            out += "    address6: " + format_ipv6(*p.address6) + "/" +
                   std::to_string(p.prefix6_len) + "\n";
        out += "    mtu: " + std::to_string(p.mtu) + "\n";
    }
    if (!cfg.tunnels.empty()) {
        out += "tunnels:\n";
        for (const auto& t : cfg.tunnels) {
            out += "  - name: " + t.name + "\n";
            out += "    port: " + t.port + "\n";
            if (t.local)
                out += "    local: " + format_ipv4(*t.local) + "\n";
            out += "    peer: " + format_ipv4(t.peer) + "\n";
            out += std::string("    encap: ") + (t.encap == tunnel_encap::esp ? "esp" : "esp-udp") +
                   "\n";
            if (t.encap == tunnel_encap::esp_udp) {
                out += "    udp_src_port: " + std::to_string(t.udp_src_port) + "\n";
                out += "    udp_dst_port: " + std::to_string(t.udp_dst_port) + "\n";
            }
            out += "    replay_window: " + std::to_string(t.replay_window) + "\n";
            out += std::string("    esn: ") + (t.esn ? "true" : "false") + "\n";
            out += "    outbound_sa: ";
            dump_sa(out, t.outbound_sa, with_keys);
            out += "\n    inbound_sas:\n";
            for (const auto& sa : t.inbound_sas) {
                out += "      - ";
                dump_sa(out, sa, with_keys);
                out += "\n";
            }
            if (t.bfd)
                out +=
                    "    bfd: {local: " + format_ipv4(t.bfd->local) +
                    ", remote: " + format_ipv4(t.bfd->remote) +
                    ", transmit_interval_ms: " + std::to_string(t.bfd->desired_min_tx_us / 1000) +
                    ", receive_interval_ms: " + std::to_string(t.bfd->required_min_rx_us / 1000) +
                    ", detect_multiplier: " + std::to_string(t.bfd->detect_mult) + "}\n";
            if (t.health_check)
                out += "    health_check: {target: " + format_ipv4(t.health_check->target) +
                       ", source: " + format_ipv4(t.health_check->source) +
                       ", interval_ms: " + std::to_string(t.health_check->interval_ms) +
                       ", timeout_ms: " + std::to_string(t.health_check->timeout_ms) +
                       ", failures: " + std::to_string(t.health_check->failures) +
                       ", rtt_threshold_ms: " + std::to_string(t.health_check->rtt_threshold_ms) +
                       ", window: " + std::to_string(t.health_check->window) +
                       sla_text(t.health_check->sla) + "}\n";
        }
    }
    if (!cfg.groups.empty()) {
        out += "groups:\n";
        for (const auto& g : cfg.groups) {
            out += "  - name: " + g.name + "\n    hold_down_ms: " + std::to_string(g.hold_down_ms) +
                   "\n    members:\n";
            for (const auto& m : g.members)
                out += "      - {tunnel: " + m.tunnel +
                       ", priority: " + std::to_string(m.priority) +
                       ", weight: " + std::to_string(m.weight) + "}\n";
        }
    }
    if (!cfg.routes.empty() || !cfg.routes6.empty()) {
        out += "routes:\n";
        for (const auto& r : cfg.routes6) {
            out += "  - {prefix: \"" + format_ipv6_prefix(r.prefix) + "\"";
            if (r.via == route_via::tunnel)
                out += ", tunnel: " + r.tunnel;
            else if (r.via == route_via::group)
                out += ", group: " + r.group;
            else
                out += ", gateway: \"" + format_ipv6(r.gateway) + "\"";
            out += ", distance: " + std::to_string(r.distance) + "}\n";
        }
        for (const auto& r : cfg.routes) {
            out += "  - {prefix: " + format_ipv4_prefix(r.prefix);
            if (r.via == route_via::tunnel)
                out += ", tunnel: " + r.tunnel;
            else if (r.via == route_via::group)
                out += ", group: " + r.group;
            else
                out += ", gateway: " + format_ipv4(r.gateway);
            out += ", distance: " + std::to_string(r.distance) + "}\n";
        }
    }
    if (!cfg.neighbours.empty()) {
        out += "neighbours:\n";
        for (const auto& n : cfg.neighbours)
            out += "  - {port: " + n.port + ", address: " + format_ipv4(n.address) + ", mac: \"" +
                   format_mac(n.mac) + "\"}\n";
    }
    return out;
}

result<tunnel_config> parse_tunnel_body(const config& base, const std::string& body) {
    auto r = load_with_ports(base, "tunnels", body);
    if (!r)
        return r.err();
    if (r.value().tunnels.size() != 1)
        return error{"expected one tunnel object"};
    return std::move(r.value().tunnels[0]);
}

result<group_config> parse_group_body(const config& base, const std::string& body) {
    auto r = load_with_ports(base, "groups", body);
    if (!r)
        return r.err();
    if (r.value().groups.size() != 1)
        return error{"expected one group object"};
    return std::move(r.value().groups[0]);
}

result<std::vector<route_config>> parse_routes_body(const config& base, const std::string& body) {
    auto r = load_with_ports(base, "routes", body);
    if (!r)
        return r.err();
    return std::move(r.value().routes);
}

result<routes_body> parse_routes_body_any(const config& base, const std::string& body) {
    auto r = load_with_ports(base, "routes", body);
    if (!r)
        return r.err();
    return routes_body{std::move(r.value().routes), std::move(r.value().routes6)};
}

result<std::vector<neighbour_config>> parse_neighbours_body(const config& base,
                                                            const std::string& body) {
    auto r = load_with_ports(base, "neighbours", body);
    if (!r)
        return r.err();
    return std::move(r.value().neighbours);
}

} // namespace sagd
