// OpenSSL 3's setters and getters below are macros over SSL_CTX_ctrl,
// SSL_ctrl and BIO_ctrl, and its option bits are macro expressions; Swift
// imports neither, so these inline wrappers expand them. Everything else in
// <openssl/ssl.h>, <openssl/err.h> and <openssl/x509v3.h> imports directly.
#ifndef REACTOR_TLS_SHIM_H
#define REACTOR_TLS_SHIM_H
#include <openssl/ssl.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <openssl/buffer.h>

// MARK: SSL_CTX settings

static inline long reactor_tls_ctx_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}
static inline int reactor_tls_ctx_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}
static inline long reactor_tls_ctx_set_session_cache_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_session_cache_mode(ctx, mode);
}

typedef int (*reactor_tls_servername_cb)(SSL *ssl, int *alert, void *arg);

/// Installs the SNI callback and the argument it receives.
static inline int reactor_tls_ctx_set_servername_callback(SSL_CTX *ctx, reactor_tls_servername_cb cb, void *arg) {
    if (SSL_CTX_set_tlsext_servername_arg(ctx, arg) != 1) return 0;
    return (int)SSL_CTX_set_tlsext_servername_callback(ctx, cb);
}

// The SSL_OP_* bits are `SSL_OP_BIT(n)` expressions.
static inline uint64_t reactor_tls_op_no_renegotiation(void) { return SSL_OP_NO_RENEGOTIATION; }
static inline uint64_t reactor_tls_op_no_ticket(void) { return SSL_OP_NO_TICKET; }
static inline uint64_t reactor_tls_op_cipher_server_preference(void) { return SSL_OP_CIPHER_SERVER_PREFERENCE; }

// MARK: SSL settings

/// Sets the SNI name a client sends.
static inline int reactor_tls_set_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

// MARK: Certificates

/// RFC 2253 names (`CN=localhost,O=Test`) with UTF-8 left as UTF-8.
static inline unsigned long reactor_tls_name_flags(void) {
    return XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB;
}

// MARK: Memory BIOs

/// Makes an empty memory BIO read as end of file (0) instead of "retry" (-1).
static inline int reactor_tls_bio_set_mem_eof_return(BIO *bio, int value) {
    return (int)BIO_set_mem_eof_return(bio, value);
}
/// The unread bytes of a memory BIO: a pointer to them (stored in `data`) and their count.
static inline long reactor_tls_bio_get_mem_data(BIO *bio, char **data) {
    return BIO_get_mem_data(bio, data);
}
/// The memory BIO's buffer (its `max` is the capacity it has grown to).
static inline BUF_MEM *reactor_tls_bio_get_mem_ptr(BIO *bio) {
    BUF_MEM *memory = NULL;
    if (BIO_get_mem_ptr(bio, &memory) <= 0) return NULL;
    return memory;
}
#endif
