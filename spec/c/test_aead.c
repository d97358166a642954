/* SPDX-License-Identifier: MIT */
/* C tests of the AES-256-GCM core (et_aead.c): round trips, the NIST/McGrew-Viega GCM vector through
 * open, every kind of refusal (key, tag, associated data, ciphertext, nonce, truncation), fresh nonces. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "et_aead.h"
#include "tap.h"

static unsigned char hexval(char c)
{
    return (unsigned char)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
}

static size_t unhex(const char *h, unsigned char *out)
{
    size_t n = strlen(h) / 2, i;
    for (i = 0; i < n; i++)
        out[i] = (unsigned char)(hexval(h[2 * i]) << 4 | hexval(h[2 * i + 1]));
    return n;
}

int main(void)
{
    unsigned char key[32], key2[32], blob[256], blob2[256], out[256];
    const char *msg = "{\"a\":\"access-token\",\"x\":1700000000}";
    const char *aad = "eternaltwin-gate token v1\0place";
    size_t n = strlen(msg), outlen = 0, i;
    int flips_refused = 1;

    memset(key, 7, sizeof key);
    memset(key2, 7, sizeof key2);
    key2[31] ^= 1;

    ok(et_aead_seal(key, 32, (const unsigned char *)msg, n, (const unsigned char *)aad, 31, blob) == ET_AEAD_OK,
       "seal");
    ok(memcmp(blob + ET_AEAD_NONCE_LEN, msg, 8) != 0, "the ciphertext is not the plaintext");
    ok(et_aead_open(key, 32, blob, n + ET_AEAD_OVERHEAD, (const unsigned char *)aad, 31, out, &outlen) == ET_AEAD_OK
       && outlen == n && memcmp(out, msg, n) == 0, "open gives the plaintext back");
    ok(et_aead_open(key2, 32, blob, n + ET_AEAD_OVERHEAD, (const unsigned char *)aad, 31, out, &outlen)
       == ET_AEAD_EAUTH, "another key: refused");
    for (i = 0; i < n; i++)
        if (out[i] != 0)
            break;
    ok(i == n, "a refused open leaves no byte of plaintext behind");
    ok(et_aead_open(key, 32, blob, n + ET_AEAD_OVERHEAD, (const unsigned char *)"other place", 11, out, &outlen)
       == ET_AEAD_EAUTH, "other associated data: refused");
    ok(et_aead_open(key, 32, blob, n + ET_AEAD_OVERHEAD, NULL, 0, out, &outlen) == ET_AEAD_EAUTH,
       "no associated data: refused");
    for (i = 0; i < n + ET_AEAD_OVERHEAD; i++) {
        memcpy(blob2, blob, n + ET_AEAD_OVERHEAD);
        blob2[i] ^= 0x80;
        if (et_aead_open(key, 32, blob2, n + ET_AEAD_OVERHEAD, (const unsigned char *)aad, 31, out, &outlen)
            != ET_AEAD_EAUTH)
            flips_refused = 0;
    }
    ok(flips_refused, "one bit flipped anywhere (nonce, ciphertext, tag): refused");
    ok(et_aead_open(key, 32, blob, n + ET_AEAD_OVERHEAD - 1, (const unsigned char *)aad, 31, out, &outlen)
       == ET_AEAD_EAUTH, "truncated: refused");
    ok(et_aead_open(key, 32, blob, ET_AEAD_OVERHEAD - 1, NULL, 0, out, &outlen) == ET_AEAD_ESHORT,
       "shorter than nonce and tag: refused");
    ok(et_aead_seal(key, 31, (const unsigned char *)msg, n, NULL, 0, blob2) == ET_AEAD_EKEY, "seal: a 31-byte key");
    ok(et_aead_open(key, 33, blob, n + ET_AEAD_OVERHEAD, NULL, 0, out, &outlen) == ET_AEAD_EKEY, "open: a 33-byte key");

    /* Two seals of one plaintext: different nonces, different blobs. */
    ok(et_aead_seal(key, 32, (const unsigned char *)msg, n, NULL, 0, blob2) == ET_AEAD_OK &&
       memcmp(blob, blob2, ET_AEAD_NONCE_LEN) != 0, "a fresh nonce each time");

    /* Empty plaintext, empty associated data. */
    ok(et_aead_seal(key, 32, (const unsigned char *)"", 0, NULL, 0, blob2) == ET_AEAD_OK &&
       et_aead_open(key, 32, blob2, ET_AEAD_OVERHEAD, NULL, 0, out, &outlen) == ET_AEAD_OK && outlen == 0,
       "empty plaintext round trip");

    /* GCM test case 16 (McGrew & Viega, AES-256, 96-bit IV, with AAD): open checks the tag. */
    {
        unsigned char k[32], v[256], p[128], a[64];
        size_t kn = unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308", k), vn = 0, pn, an;
        (void)kn;
        vn += unhex("cafebabefacedbaddecaf888", v);
        vn += unhex("522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662", v + vn);
        vn += unhex("76fc6ece0f4e1768cddf8853bb2d551b", v + vn);
        pn = unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39", p);
        an = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", a);
        ok(et_aead_open(k, 32, v, vn, a, an, out, &outlen) == ET_AEAD_OK && outlen == pn &&
           memcmp(out, p, pn) == 0, "GCM test case 16 opens to its plaintext");
        v[vn - 1] ^= 1;
        ok(et_aead_open(k, 32, v, vn, a, an, out, &outlen) == ET_AEAD_EAUTH, "GCM test case 16, tag altered: refused");
    }
    ok(strcmp(et_aead_strerror(ET_AEAD_EAUTH), "ok") != 0 && et_aead_strerror(99) != NULL, "strerror");
    return tap_done("aead");
}
