/* errors.h - the one table of JMessage error codes Aurora speaks.
 *
 * Source: JiGuang's "IM SDK ErrorCode" (server error) table and the IM REST API pages
 * (docs.jiguang.cn/jmessage/client/im_errorcode_server, .../server/rest_api_im). Codes keep
 * JMessage's numbers and default messages so existing server SDKs and client code that switch on
 * them keep working. Each code carries:
 *   - the HTTP status a REST answer uses (JPush/JMessage status rules: 400 bad request, 401
 *     authentication, 403 understood but refused, 429 rate, 500 internal, 503 busy; the iOS SDK's
 *     JMSGHttpErrorCode notes give 403 for "user exists"/"no such user"/"no such group" and 400 for
 *     "parameter invalid", 401 for the authentication codes);
 *   - the MQTT 5 reason code the broker puts in a PUBACK/PUBREC refusing an `im/send` publish
 *     (or, for the 801xxx login codes, in the CONNACK). Only reason codes the MQTT 5 spec allows
 *     in PUBACK are used: 0x80 unspecified, 0x83 implementation specific, 0x87 not authorized,
 *     0x97 quota exceeded, 0x99 payload format invalid. (0x96 "message rate too high" is a
 *     DISCONNECT-only code, so rate limiting maps to 0x97.) The JMessage code and message travel
 *     as the reason string "<code> <message>" and as a `send_error` event on `im/inbox`;
 *     MQTT 3.1.1 clients, which have no PUBACK reason, get only the event.
 * docs/rest-api.md lists the table.
 */
#ifndef AU_IM_ERRORS_H
#define AU_IM_ERRORS_H

#include <stddef.h>
#include <stdint.h>

enum im_code {
    IM_OK = 0,

    /* ---- REST (899xxx) ---- */
    IM_E_SYSTEM              = 899000, /* Server internal error */
    IM_E_USER_EXIST          = 899001, /* User exist */
    IM_E_NO_USER             = 899002, /* No such user */
    IM_E_PARAM               = 899003, /* parameter invalid */
    IM_E_NO_GROUP            = 899006, /* Group id invalid (does not exist) */
    IM_E_NO_AUTH_INFO        = 899007, /* Missing authen info */
    IM_E_AUTH_FAILED         = 899008, /* Basic authentication failed */
    IM_E_NO_APPKEY           = 899009, /* Appkey not exist */
    IM_E_MEMBER_REPEAT       = 899011, /* Repeat to add the members */
    IM_E_GROUP_FULL          = 899012, /* No enough space for members */
    IM_E_USER_LIST_TOO_LONG  = 899013, /* User list is bigger than 500 */
    IM_E_REMOVE_NOT_MEMBER   = 899014, /* remove: some username is not in the group */
    IM_E_USER_GROUPS_FULL    = 899015, /* User's groups are full */
    IM_E_NO_SEND_AUTH        = 899016, /* No authority to send message (from_id is no admin) */
    IM_E_IN_BLACKLIST        = 899017, /* usernames already in blacklist */
    IM_E_ADMIN_BLACKLIST     = 899018, /* Admin can not be added into blacklist */
    IM_E_NOT_IN_BLACKLIST    = 899019, /* usernames not in blacklist */
    IM_E_CROSS_APP           = 899020, /* no auth to operating other appkey */
    IM_E_USE_CROSS_API       = 899021, /* should use cross app api */
    IM_E_BUSY                = 899030, /* Server response time out, please try again later */
    IM_E_NODISTURB_USER_DUP  = 899043,
    IM_E_NODISTURB_USER_NONE = 899044,
    IM_E_NODISTURB_NO_GROUP  = 899045,
    IM_E_NODISTURB_NOT_MEMBER= 899046,
    IM_E_NODISTURB_GROUP_DUP = 899047,
    IM_E_NODISTURB_GLOBAL_ON = 899048,
    IM_E_NODISTURB_GROUP_NONE= 899049,
    IM_E_NODISTURB_GLOBAL_OFF= 899050,
    IM_E_SHIELD_NO_GROUP     = 899051,
    IM_E_SHIELD_ALREADY_ON   = 899052,
    IM_E_SHIELD_ALREADY_OFF  = 899053,
    IM_E_FRIEND_EXIST        = 899070,
    IM_E_FRIEND_NONE         = 899071,
    IM_E_NO_ROOM             = 899081,
    IM_E_NOT_IN_ROOM         = 899082,

    /* ---- login (801xxx): CONNACK refusals ---- */
    IM_E_LOGIN_NO_USER       = 801003, /* user not exist */
    IM_E_LOGIN_PASSWORD      = 801004, /* invalid password */
    IM_E_LOGIN_DISABLED      = 801006, /* user disabled */

    /* ---- device send (803xxx): `im/send` refusals ---- */
    IM_E_SEND_STORE          = 803001, /* system error: state store */
    IM_E_SEND_NETWORK        = 803002, /* system error: internal network */
    IM_E_SEND_NO_USER        = 803003, /* target user not exist */
    IM_E_SEND_NO_GROUP       = 803004, /* target group not exist */
    IM_E_SEND_NOT_MEMBER     = 803005, /* user not in group */
    IM_E_SEND_NOT_PERMITTED  = 803006, /* user not permitted (from_type/from_id mismatch) */
    IM_E_SEND_TOO_LONG       = 803007, /* length of message exceed limit */
    IM_E_SEND_BLACKLISTED    = 803008, /* user in blacklist (single chat) */
    IM_E_SEND_SENSITIVE      = 803009, /* the message contains sensitive word */
    IM_E_SEND_RATE           = 803010, /* beyond the frequency limit */
    IM_E_SEND_JSON           = 803011, /* msg content json error */
    IM_E_SEND_SILENCED       = 803012, /* can not chat while silent */

    /* ---- retract (855xxx) ---- */
    IM_E_RETRACT_TIMEOUT     = 855001, /* out of time */
    IM_E_RETRACT_NOT_SENDER  = 855002, /* request user is not message sender */
    IM_E_RETRACT_NO_MSG      = 855003, /* request message not exist */
    IM_E_RETRACT_DONE        = 855004, /* message already retract */
};

/* MQTT 5 reason codes used by the table (PUBACK/PUBREC and CONNACK subsets). */
#define IM_MQTT_RC_SUCCESS            0x00
#define IM_MQTT_RC_UNSPECIFIED        0x80
#define IM_MQTT_RC_IMPL_SPECIFIC      0x83
#define IM_MQTT_RC_BAD_USER_PASSWORD  0x86
#define IM_MQTT_RC_NOT_AUTHORIZED     0x87
#define IM_MQTT_RC_BANNED             0x8A
#define IM_MQTT_RC_QUOTA_EXCEEDED     0x97
#define IM_MQTT_RC_PAYLOAD_INVALID    0x99

/* Longest default message in the table, bytes (for buffers). */
#define IM_ERR_MESSAGE_MAX 64

/* Default message ("User exist", ...). Unknown codes: "unknown error". Never NULL. */
const char *im_err_message(int code);
/* HTTP status for a REST answer carrying this code. Unknown codes: 500. */
int im_err_http_status(int code);
/* MQTT 5 reason code for a PUBACK refusing an im/send (803xxx) or a CONNACK (801xxx).
 * Other known codes: 0x83; unknown: 0x80. IM_OK: 0x00. */
uint8_t im_err_mqtt_reason(int code);
/* True when the code is in the table. */
int im_err_known(int code);

/* {"error":{"code":N,"message":"..."}} into buf (snprintf semantics: returns the length the full
 * text needs, excluding the NUL; the output is complete and NUL-terminated only if that is < cap).
 * message NULL or "" uses the default message of the code. */
size_t im_err_render(int code, const char *message, char *buf, size_t cap);

#endif
