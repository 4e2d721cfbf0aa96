#include "dataplane/config.hpp"

#include <openssl/crypto.h>

namespace sagd {

// Keys are wiped when their holder goes away (STYLE.md rule 6).
sa_config::~sa_config() {
    if (!keymat.empty())
        OPENSSL_cleanse(keymat.data(), keymat.size());
}

} // namespace sagd
