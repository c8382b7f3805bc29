/* rest_media.h - JMessage media REST: upload (POST /v1/resource), download link (GET /v1/resource) and the
 * bytes behind the link (GET /v1/resource/raw). docs/media.md is the contract; store/media.h the storage.
 *
 *   POST /v1/resource?type=image|voice|file   Basic appKey:masterSecret, multipart/form-data, one file <= 8 MB
 *        -> 200 {"media_id","media_crc32",...}  once the bytes AND the app's ownership record are durable:
 *           KS_IM_MEDIA | app | media id -> {"type","fsize","crc32","format","width","height","fname","ctime"}
 *   GET  /v1/resource?mediaId=ID              Basic auth; the app must own ID (its KS_IM_MEDIA record)
 *        -> 200 {"url":"http://<Host>/v1/resource/raw?mediaId=ID&app=N&expires=T&sig=HEX"}
 *   GET|HEAD /v1/resource/raw?...             no Authorization: the link is the credential. sig is
 *        HMAC-SHA256 under <data>/media.key (32 random bytes, mode 0600) of "ID\nN\nT" in lowercase hex;
 *        T is wall-clock seconds (REST_MEDIA_URL_TTL_S after the link was made). The app's record is
 *        read again, so a link dies with its app; its fname names a file download.
 *
 * Threads: file work runs on the media iopool (REST_MEDIA_WORKERS threads, one external producer id
 * each); store reads and writes on the store's threads; every completion comes back to the shard that
 * took the request and finishes its deferred HTTP response.
 *
 * Start-up and shutdown (main thread unless noted):
 *   rest_media_init(&cfg, err, len)       before the shards start: opens <data>/media, loads or creates
 *                                         <data>/media.key, makes the pool (rest_media_routes: registered
 *                                         by gateway/routes.c)
 *   lo.n_ext += rest_media_threads()      producer ids after the store's and the auth pool's
 *   rest_media_start(shards, n, ext_base) after au_loop_start
 *   rest_media_shard_detach(s)            shard_fini hook, BEFORE store_shard_detach (a finished upload
 *                                         still writes its record; reads finishing later see the shard
 *                                         detached and submit no file work)
 *   rest_media_stop()                     after au_loop_stop */
#ifndef AU_IM_REST_MEDIA_H
#define AU_IM_REST_MEDIA_H

#include <stddef.h>

#include "core/config.h"

struct au_shard;

#define REST_MEDIA_WORKERS      2u            /* iopool threads (file writes with fsync, reads) */
#define REST_MEDIA_KEY_FILE     "media.key"   /* <data>/media.key */
#define REST_MEDIA_KEY_LEN      32u           /* HMAC-SHA256 key bytes */
#define REST_MEDIA_URL_TTL_S    86400u        /* a download link lives one day */
#define REST_MEDIA_HOST_MAX     255u          /* Host header bytes copied into a link */
#define REST_MEDIA_URL_MAX      512u          /* a whole link */
#define REST_MEDIA_DISP_NAME_MAX 512u         /* percent-encoded file name in Content-Disposition */
#define REST_MEDIA_START_WAIT_MS 10000u       /* a request may wait this long for rest_media_start (else abort) */

struct http_routes;
extern const struct http_routes rest_media_routes; /* POST|GET /v1/resource, GET /v1/resource/raw */

int rest_media_init(const struct au_config *cfg, char *err, size_t errlen);
unsigned rest_media_threads(void);
void rest_media_start(struct au_shard **shards, int n, int ext_base);
void rest_media_shard_detach(struct au_shard *s);
void rest_media_stop(void);

#endif
