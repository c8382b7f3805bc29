/* apps.h - apps (tenants): records and the default app created at first start. */
#ifndef AU_IM_APPS_H
#define AU_IM_APPS_H

#include "store/store.h"

#include <stddef.h>
#include <stdint.h>

/* Store records of one app (KS_IM_APP | app -> JSON {appkey, secret_hash, name, ctime_ms}, KS_IM_APPKEY | appkey
 * -> app u32) added to a batch. */
void im_app_records(struct store_batch *b, uint32_t app, const char *appkey, const char *secret_hash,
                    const char *name, uint64_t ctime_ms);

/* Called by main before the shards start (synchronous store calls): when the store holds no app yet, create the
 * default app with id 1 (the MQTT broker's default topic space, AU_DEFAULT_APP), print its AppKey and Master
 * Secret and write them to <data_dir>/default-app.json (mode 0600). Returns 0 or -1 with a message. */
int im_apps_bootstrap(struct store *st, const char *data_dir, char *err, size_t errlen);

#endif
