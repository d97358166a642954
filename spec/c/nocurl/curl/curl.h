/* SPDX-License-Identifier: MIT */
/* Stands in for libcurl's header when build/test_resp is compiled (Makefile): the response framer
 * and the header parser (et_buf, et_hdr, et_proto, et_resp) must build without libcurl, for the
 * nginx cosocket transport. Anything that includes curl/curl.h there stops the build here. */
#error "curl/curl.h included by the cosocket framer's sources (et_buf, et_hdr, et_proto, et_resp)"
