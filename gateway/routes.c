/* routes.c - the gateway's route table (see routes.h). */
#include "gateway/routes.h"

#include "core/log.h"
#include "gateway/http/http_gw.h"
#include "gateway/im/rest.h"
#include "gateway/im/rest_media.h"

const struct http_routes *const gateway_routes[] = {
    &http_gw_routes,       /* /healthz, /metrics */
    &rest_users_routes,    /* /v1/users, /v1/admins */
    &rest_groups_routes,   /* /v1/groups */
    &rest_apps_routes,     /* /ops/v1/apps */
    &rest_devices_routes,  /* /v1/devices */
    &rest_messages_routes, /* /v1/messages, /v2/messages, /v2/users/{username}/messages, /v2/groups/{gid}/messages */
    &rest_silence_routes,  /* /v1/groups/messages/{gid}/silence */
    &rest_media_routes,    /* /v1/resource */
    NULL,
};

void gateway_routes_register(void)
{
    for (size_t t = 0; gateway_routes[t]; t++) {
        size_t bad = 0;
        if (http_routes_add(gateway_routes[t], &bad) != 0) {
            au_error("route %s %s refused (duplicate, malformed, or table full)", gateway_routes[t]->r[bad].method,
                     gateway_routes[t]->r[bad].pattern);
            AU_ASSERT(0);
        }
    }
}
