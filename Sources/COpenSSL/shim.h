// OpenSSL's libcrypto (Debian libssl-dev): SHA-256 of model weight files.
#include <openssl/evp.h>
