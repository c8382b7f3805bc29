/* routes.h - the one HTTP route table of the gateway: every module's routes, in registration order.
 *
 * Each module declares its routes as a static table next to its handlers and exports it as a
 * `const struct http_routes` (gateway/http/http_server.h); gateway_routes lists them all. Adding a REST
 * endpoint: the handler and its line in its module's table (gateway/im/rest_<area>.c); a new module adds its
 * table's extern to its header and one line to gateway_routes (gateway/routes.c). The HTTP server compiles
 * the patterns once at start-up (route_find's packed shape prefilter); nothing is looked up per request here. */
#ifndef AU_GATEWAY_ROUTES_H
#define AU_GATEWAY_ROUTES_H

#include "gateway/http/http_server.h"

/* NULL-terminated, in registration order (the order of the Allow header of a 405). */
extern const struct http_routes *const gateway_routes[];

/* Register every table of gateway_routes (main thread, before the shards start; once). Aborts on a table
 * the HTTP server refuses (a programming error: a duplicate or malformed pattern). */
void gateway_routes_register(void);

#endif
