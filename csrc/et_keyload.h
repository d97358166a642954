/* SPDX-License-Identifier: MIT */
/* Parsing of key text into EVP_PKEYs: PEM (SPKI, PKCS#1, PKCS#8, SEC1) and OpenSSH public lines. */
#ifndef ET_KEYLOAD_H
#define ET_KEYLOAD_H

#include <stddef.h>

#include <openssl/evp.h>

/* Parses text (n bytes, need not be NUL-terminated). want_private: the text must hold a private
 * key (PEM "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY"); otherwise a public key is
 * expected, in PEM or as an OpenSSH line (ssh-rsa, ssh-ed25519, ecdsa-sha2-nistp256/384), and a
 * private PEM is also accepted. Encrypted PEM is refused without ever asking for a passphrase.
 * Returns 1 with *out set (caller frees), or 0 with a message in err (no key text in it) and
 * the OpenSSL error queue drained. */
int et_keyload(const char *text, size_t n, int want_private, EVP_PKEY **out, char *err, size_t errlen);

#endif
