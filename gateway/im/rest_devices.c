/* rest_devices.c - credentials of push-only devices (CONNECT username "<appkey>"):
 *   POST /v1/devices/token   body {"client_id": "...", "ttl": seconds (optional)}
 *                            -> 200 {"client_id": "...", "token": "au1....", "expires": unix seconds}
 * The app server (Basic appKey:masterSecret) asks for a device token bound to (its AppKey, the device's
 * client id) and hands it to the device, which presents it as its CONNECT password. The token is a login
 * token of auth.h (same key and code, see auth_device_token_issue): verified in microseconds at CONNECT,
 * nothing is stored; it stops working when it expires (or when <data>/token.key is replaced). */
#include "gateway/im/rest_internal.h"
#include "gateway/im/auth.h"
#include "gateway/im/imconn.h"

static void post_device_token(const struct http_req *req, struct http_resp *resp, void *ctx)
{
    struct rest_ctx c;
    if (!rest_auth(req, resp, ctx, &c)) return;
    size_t bl;
    const char *body = rest_body(req, &bl);
    json_t *o = json_loadb(body, bl, JSON_REJECT_DUPLICATES, NULL);
    json_t *jc = json_object_get(o, "client_id"), *jt = json_object_get(o, "ttl");
    const char *cid = json_string_value(jc);
    size_t cl = cid ? json_string_length(jc) : 0;
    json_int_t ttl = jt ? (json_is_integer(jt) ? json_integer_value(jt) : -1) : (json_int_t)AUTH_DEVICE_TOKEN_TTL_S;
    const char *bad = NULL;
    if (!json_is_object(o)) bad = "body must be a JSON object {\"client_id\": \"...\"}";
    else if (!cid || cl == 0 || cl > AU_MQTT_MAX_CLIENT_ID || strlen(cid) != cl) bad = "client_id: 1..256 bytes of UTF-8, no NUL";
    else if (ttl < 1 || ttl > (json_int_t)AUTH_DEVICE_TOKEN_TTL_MAX) bad = "ttl: 1..31536000 seconds";
    if (bad) {
        json_decref(o);
        rest_error(resp, IM_E_PARAM, bad);
        return;
    }
    char tok[AUTH_TOKEN_MAX];
    uint64_t exp = 0;
    int n = imconn_device_token(c.appkey, (const uint8_t *)cid, cl, (uint32_t)ttl, tok, sizeof tok, &exp);
    if (n < 0) {
        json_decref(o);
        rest_error(resp, IM_E_SYSTEM, "device tokens are unavailable (no token key)");
        return;
    }
    json_t *out = json_pack("{s:s%,s:s,s:I}", "client_id", cid, cl, "token", tok, "expires", (json_int_t)exp);
    json_decref(o);
    size_t len;
    char *js = rest_json_dump(out, &len);
    json_decref(out);
    rest_json(resp, 200, js, len);
    free(js);
}

static const struct http_route_def routes[] = {
    { "POST", "/v1/devices/token", post_device_token },
};
const struct http_routes rest_devices_routes = { routes, AU_ARRAY_LEN(routes) };
