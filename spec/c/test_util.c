/* SPDX-License-Identifier: MIT */
/* C tests of the pure util core: base64url (RFC 4648 vectors, strictness), URL encoding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "et_b64.h"
#include "et_url.h"
#include "tap.h"


#define check ok

static void b64_roundtrip(const char *plain, const char *enc)
{
    char out[128], name[160];
    unsigned char dec[128];
    size_t n = strlen(plain), m = et_b64url_encoded_len(n), dlen = 0, pos = 0;
    et_b64url_encode((const unsigned char *)plain, n, out);
    snprintf(name, sizeof name, "b64url encode \"%s\"", plain);
    check(m == strlen(enc) && memcmp(out, enc, m) == 0, name);
    snprintf(name, sizeof name, "b64url decode \"%s\"", enc);
    check(et_b64url_decode(enc, strlen(enc), dec, &dlen, &pos) == ET_B64_OK && dlen == n &&
          memcmp(dec, plain, n) == 0, name);
}

static void b64_bad(const char *enc, int want, size_t want_pos, const char *name)
{
    unsigned char dec[128];
    size_t dlen = 0, pos = 0;
    int st = et_b64url_decode(enc, strlen(enc), dec, &dlen, &pos);
    check(st == want && (want_pos == (size_t)-1 || pos == want_pos), name);
}

static void b64std(const char *enc, const char *plain, int want, const char *name)
{
    unsigned char dec[128];
    size_t dlen = 0, pos = 0;
    int st = et_b64std_decode(enc, strlen(enc), dec, &dlen, &pos);
    check(st == want && (want != ET_B64_OK || (dlen == strlen(plain) && memcmp(dec, plain, dlen) == 0)),
          name);
}

static void url(const char *in, size_t n, const char *form, const char *path)
{
    char out[256], name[160];
    size_t m = et_url_encoded_len(in, n, ET_URL_FORM);
    et_url_encode(in, n, ET_URL_FORM, out);
    snprintf(name, sizeof name, "form_encode -> %s", form);
    check(m == strlen(form) && memcmp(out, form, m) == 0, name);
    m = et_url_encoded_len(in, n, ET_URL_PATH);
    et_url_encode(in, n, ET_URL_PATH, out);
    snprintf(name, sizeof name, "path_encode -> %s", path);
    check(m == strlen(path) && memcmp(out, path, m) == 0, name);
}

int main(void)
{
    unsigned char all[256], dec[512];
    char enc[512];
    size_t i, dlen = 0, pos = 0;

    /* RFC 4648 section 10 (no padding in base64url). */
    b64_roundtrip("", "");
    b64_roundtrip("f", "Zg");
    b64_roundtrip("fo", "Zm8");
    b64_roundtrip("foo", "Zm9v");
    b64_roundtrip("foob", "Zm9vYg");
    b64_roundtrip("fooba", "Zm9vYmE");
    b64_roundtrip("foobar", "Zm9vYmFy");
    /* url-safe alphabet: 0xfb 0xff -> "-_8" */
    et_b64url_encode((const unsigned char *)"\xfb\xff", 2, enc);
    check(memcmp(enc, "-_8", 3) == 0, "b64url uses - and _");
    for (i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    et_b64url_encode(all, 256, enc);
    check(et_b64url_decode(enc, et_b64url_encoded_len(256), dec, &dlen, &pos) == ET_B64_OK &&
          dlen == 256 && memcmp(dec, all, 256) == 0, "b64url round trip of all bytes");

    b64_bad("Zm9v+mFy", ET_B64_EBADCHAR, 4, "b64url rejects + (standard alphabet)");
    b64_bad("Zm9v/mFy", ET_B64_EBADCHAR, 4, "b64url rejects /");
    b64_bad("Zm9 vA", ET_B64_EBADCHAR, 3, "b64url rejects a space");
    b64_bad("Zg==", ET_B64_EPADDING, 2, "b64url rejects padding");
    b64_bad("Zm9=", ET_B64_EPADDING, 3, "b64url rejects one padding character");
    b64_bad("Zm9vY", ET_B64_ELENGTH, (size_t)-1, "b64url rejects length 4k+1");
    b64_bad("Zh", ET_B64_ETRAIL, (size_t)-1, "b64url rejects non-zero trailing bits (2 chars)");
    b64_bad("Zm9", ET_B64_ETRAIL, (size_t)-1, "b64url rejects non-zero trailing bits (3 chars)");
    b64_bad("Zm\x80v", ET_B64_EBADCHAR, 2, "b64url rejects a high byte");
    check(strcmp(et_b64_strerror(ET_B64_EBADCHAR), "bad character") == 0, "b64 strerror");

    b64std("Zm9vYmE=", "fooba", ET_B64_OK, "b64 standard with one padding");
    b64std("Zm9vYg==", "foob", ET_B64_OK, "b64 standard with two padding");
    b64std("+/8=", "\xfb\xff", ET_B64_OK, "b64 standard alphabet");
    b64std("Zm9vYg", "", ET_B64_ELENGTH, "b64 standard requires padding");
    b64std("Zg===", "", ET_B64_ELENGTH, "b64 standard: bad length");
    b64std("Z===", "", ET_B64_EPADDING, "b64 standard: three padding characters");
    b64std("Zm=v", "", ET_B64_EPADDING, "b64 standard: padding inside");
    b64std("-_8=", "", ET_B64_EBADCHAR, "b64 standard rejects the url alphabet");

    /* Expected values from Python: quote_plus(s), quote(s, safe=''). */
    url("", 0, "", "");
    url("abc", 3, "abc", "abc");
    url("a b", 3, "a+b", "a%20b");
    url("a+b", 3, "a%2Bb", "a%2Bb");
    url("~-._", 4, "~-._", "~-._");
    url("/?#[]@!$&'()*,;=%", 17, "%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2C%3B%3D%25",
        "%2F%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2C%3B%3D%25");
    url("\x00\x7f\xff", 3, "%00%7F%FF", "%00%7F%FF");
    url("\xc3\xa9\xe2\x82\xac", 5, "%C3%A9%E2%82%AC", "%C3%A9%E2%82%AC");
    url("http://localhost:8000/oauth/callback", 36, "http%3A%2F%2Flocalhost%3A8000%2Foauth%2Fcallback",
        "http%3A%2F%2Flocalhost%3A8000%2Foauth%2Fcallback");
    url("A Z a z 0 9", 11, "A+Z+a+z+0+9", "A%20Z%20a%20z%200%209");

    return tap_done("util");
}
