/* errors.c - JMessage error table: default message, HTTP status, MQTT 5 reason code. */
#include "gateway/im/errors.h"

#include "core/common.h"
#include "gateway/im/imjson.h"

struct im_err_row {
    int code;
    uint16_t http;
    uint8_t mqtt;
    const char *message;
};

#define IMPL IM_MQTT_RC_IMPL_SPECIFIC
#define UNSP IM_MQTT_RC_UNSPECIFIED
#define NAUT IM_MQTT_RC_NOT_AUTHORIZED

/* Sorted by code (binary search). Messages are JMessage's own (typos included where SDKs might
 * match on them: "Appkey not exit"). */
static const struct im_err_row k_rows[] = {
    { IM_E_LOGIN_NO_USER,        403, IM_MQTT_RC_BAD_USER_PASSWORD, "user not exist" },
    { IM_E_LOGIN_PASSWORD,       403, IM_MQTT_RC_BAD_USER_PASSWORD, "invalid password" },
    { IM_E_LOGIN_DISABLED,       403, IM_MQTT_RC_BANNED,            "user disabled" },
    { IM_E_SEND_STORE,           500, UNSP,  "system error" },
    { IM_E_SEND_NETWORK,         500, UNSP,  "system error" },
    { IM_E_SEND_NO_USER,         403, IMPL,  "target user not exist" },
    { IM_E_SEND_NO_GROUP,        403, IMPL,  "target group not exist" },
    { IM_E_SEND_NOT_MEMBER,      403, NAUT,  "user not in group" },
    { IM_E_SEND_NOT_PERMITTED,   403, NAUT,  "user not permitted" },
    { IM_E_SEND_TOO_LONG,        400, IM_MQTT_RC_PAYLOAD_INVALID, "length of message exceed limit" },
    { IM_E_SEND_BLACKLISTED,     403, NAUT,  "user in blacklist" },
    { IM_E_SEND_SENSITIVE,       403, IMPL,  "the message contains sensitive word" },
    { IM_E_SEND_RATE,            429, IM_MQTT_RC_QUOTA_EXCEEDED, "beyond the frequency limit" },
    { IM_E_SEND_JSON,            400, IM_MQTT_RC_PAYLOAD_INVALID, "msg content json error" },
    { IM_E_SEND_SILENCED,        403, NAUT,  "can not chat while silent" },
    { IM_E_RETRACT_TIMEOUT,      403, IMPL,  "out of time" },
    { IM_E_RETRACT_NOT_SENDER,   403, NAUT,  "request user is not message sender" },
    { IM_E_RETRACT_NO_MSG,       403, IMPL,  "request message not exist" },
    { IM_E_RETRACT_DONE,         403, IMPL,  "message already retract" },
    { IM_E_SYSTEM,               500, UNSP,  "Server internal error" },
    { IM_E_USER_EXIST,           403, IMPL,  "User exist" },
    { IM_E_NO_USER,              403, IMPL,  "No such user" },
    { IM_E_PARAM,                400, IM_MQTT_RC_PAYLOAD_INVALID, "parameter invalid" },
    { IM_E_NO_GROUP,             403, IMPL,  "Group id invalid" },
    { IM_E_NO_AUTH_INFO,         401, NAUT,  "Missing authen info" },
    { IM_E_AUTH_FAILED,          401, NAUT,  "Basic authentication failed" },
    { IM_E_NO_APPKEY,            401, NAUT,  "Appkey not exit" },
    { IM_E_MEMBER_REPEAT,        403, IMPL,  "Repeat to add the members" },
    { IM_E_GROUP_FULL,           403, IM_MQTT_RC_QUOTA_EXCEEDED, "No enough space for members" },
    { IM_E_USER_LIST_TOO_LONG,   400, IM_MQTT_RC_QUOTA_EXCEEDED, "User list is bigger than 500" },
    { IM_E_REMOVE_NOT_MEMBER,    403, IMPL,  "remove failed: username not in group" },
    { IM_E_USER_GROUPS_FULL,     403, IM_MQTT_RC_QUOTA_EXCEEDED, "User 's group are full can not continue" },
    { IM_E_NO_SEND_AUTH,         403, NAUT,  "No authority to send message" },
    { IM_E_IN_BLACKLIST,         403, IMPL,  "There are usernames exist in blacklist" },
    { IM_E_ADMIN_BLACKLIST,      403, NAUT,  "Admin can not be added into blacklist" },
    { IM_E_NOT_IN_BLACKLIST,     403, IMPL,  "Here are usernames not exist in blacklist" },
    { IM_E_CROSS_APP,            403, NAUT,  "no auth to operating other appkey" },
    { IM_E_USE_CROSS_API,        403, NAUT,  "should use cross app api" },
    { IM_E_BUSY,                 503, UNSP,  "Server response time out, please try again later" },
    { IM_E_NODISTURB_USER_DUP,   403, IMPL,  "duplicate add user" },
    { IM_E_NODISTURB_USER_NONE,  403, IMPL,  "user is not exist in setting" },
    { IM_E_NODISTURB_NO_GROUP,   403, IMPL,  "group is not exist" },
    { IM_E_NODISTURB_NOT_MEMBER, 403, NAUT,  "user is not in group" },
    { IM_E_NODISTURB_GROUP_DUP,  403, IMPL,  "duplicate add group" },
    { IM_E_NODISTURB_GLOBAL_ON,  403, IMPL,  "already open global" },
    { IM_E_NODISTURB_GROUP_NONE, 403, IMPL,  "group is not exist in setting" },
    { IM_E_NODISTURB_GLOBAL_OFF, 403, IMPL,  "already close global" },
    { IM_E_SHIELD_NO_GROUP,      403, IMPL,  "group is not exist" },
    { IM_E_SHIELD_ALREADY_ON,    403, IMPL,  "group shield already open" },
    { IM_E_SHIELD_ALREADY_OFF,   403, IMPL,  "group shield already closed" },
    { IM_E_FRIEND_EXIST,         403, IMPL,  "user is already a friend" },
    { IM_E_FRIEND_NONE,          403, IMPL,  "user is not a friend" },
    { IM_E_NO_ROOM,              403, IMPL,  "room id no exist" },
    { IM_E_NOT_IN_ROOM,          403, NAUT,  "user not in room" },
};

static const struct im_err_row *find(int code)
{
    size_t lo = 0, hi = AU_ARRAY_LEN(k_rows);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (k_rows[mid].code == code)
            return &k_rows[mid];
        if (k_rows[mid].code < code)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *im_err_message(int code)
{
    if (code == IM_OK)
        return "success";
    const struct im_err_row *r = find(code);
    return r ? r->message : "unknown error";
}

int im_err_http_status(int code)
{
    if (code == IM_OK)
        return 200;
    const struct im_err_row *r = find(code);
    return r ? r->http : 500;
}

uint8_t im_err_mqtt_reason(int code)
{
    if (code == IM_OK)
        return IM_MQTT_RC_SUCCESS;
    const struct im_err_row *r = find(code);
    return r ? r->mqtt : IM_MQTT_RC_UNSPECIFIED;
}

int im_err_known(int code)
{
    return find(code) != NULL;
}

size_t im_err_render(int code, const char *message, char *buf, size_t cap)
{
    struct im_jw w;
    im_jw_init(&w, buf, cap);
    im_jw_obj_begin(&w);
    im_jw_key(&w, "error");
    im_jw_obj_begin(&w);
    im_jw_key(&w, "code");
    im_jw_i64(&w, code);
    im_jw_key(&w, "message");
    im_jw_str(&w, (message && message[0]) ? message : im_err_message(code));
    im_jw_obj_end(&w);
    im_jw_obj_end(&w);
    return im_jw_finish(&w);
}

