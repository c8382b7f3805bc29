/* log.h - structured logging: one line per event, "ts level shard=N msg key=value ...". */
#ifndef AU_LOG_H
#define AU_LOG_H

enum au_log_level { AU_LOG_DEBUG = 0, AU_LOG_INFO, AU_LOG_WARN, AU_LOG_ERROR };

void au_log_set_level(enum au_log_level lvl);
enum au_log_level au_log_get_level(void);
int au_log_parse_level(const char *s); /* -1 on unknown */
/* Shard id of the calling thread (-1 = main/other); set once per thread. */
void au_log_set_shard(int shard);
void au_log(enum au_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define au_debug(...) do { if (au_log_get_level() <= AU_LOG_DEBUG) au_log(AU_LOG_DEBUG, __VA_ARGS__); } while (0)
#define au_info(...)  au_log(AU_LOG_INFO, __VA_ARGS__)
#define au_warn(...)  au_log(AU_LOG_WARN, __VA_ARGS__)
#define au_error(...) au_log(AU_LOG_ERROR, __VA_ARGS__)

#endif
