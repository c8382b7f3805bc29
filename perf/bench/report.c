/* report.c - aurora-bench's final summary: a table for people, one JSON object for scripts. */
#include "perf/bench/bench.h"

#include <string.h>

static double us(uint64_t ns) { return (double)ns / 1000.0; }

static const char *version_name(uint8_t v) { return v == 5 ? "5.0" : "3.1.1"; }

/* Percentiles in microseconds, or milliseconds with ms */
static void lat_line(FILE *f, const char *label, const struct hist *h, bool ms)
{
    double d = ms ? 1000.0 : 1.0;
    fprintf(f, "  %-16s p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f  (%llu samples)\n", label,
            us(hist_quantile(h, 0.5)) / d, us(hist_quantile(h, 0.99)) / d, us(hist_quantile(h, 0.999)) / d,
            us(h->count ? h->max : 0) / d, hist_mean(h) / 1000.0 / d, (unsigned long long)h->count);
}

static void im_table(FILE *f, const struct bench_result *r)
{
    const struct bench_cfg *cfg = r->cfg;
    if (cfg->scenario == SC_IM_GROUP)
        fprintf(f, "  %-16s %u group(s) x %u members, %u sender device(s)\n", "groups", cfg->groups, cfg->members,
                cfg->publishers);
    fprintf(f, "  %-16s %.2f s%s\n", "send phase", r->run_s, cfg->messages ? "" : " (--duration)");
    fprintf(f, "  %-16s %llu msgs, %.0f msgs/s\n", "sent", (unsigned long long)r->sent, r->msgs_out_s);
    fprintf(f, "  %-16s %llu msgs, %.0f msgs/s (PUBACK = durable), %llu refused\n", "committed",
            (unsigned long long)r->committed, r->committed_s, (unsigned long long)r->refused);
    if (cfg->scenario == SC_IM_REPLAY) {
        fprintf(f, "  %-16s %llu of %llu expected (latest %u of each of %u conversations), %.1f ms from SUBSCRIBE to the last"
                   " (first after %.1f ms; login %.1f ms), %.0f msgs/s\n", "replay",
                (unsigned long long)r->unique, (unsigned long long)r->replay_expected, cfg->offline_msgs,
                cfg->publishers, r->replay_ms, r->replay_first_ms, r->replay_login_ms, r->replay_msgs_s);
        lat_line(f, "arrival ms", &r->lat, true);   /* after SUBSCRIBE */
    } else {
        fprintf(f, "  %-16s %llu msgs, %.0f msgs/s, expected %llu (%.3f%%)\n", "delivered",
                (unsigned long long)r->unique, r->msgs_in_s, (unsigned long long)r->expected,
                r->expected ? 100.0 * (double)r->unique / (double)r->expected : 0.0);
        lat_line(f, "latency us", &r->lat, false);
    }
    fprintf(f, "  %-16s missing %llu, duplicates %llu, out of order %llu, server sequence errors %llu\n", "checks",
            (unsigned long long)r->missing, (unsigned long long)r->dups, (unsigned long long)r->ooo,
            (unsigned long long)r->seq_err);
    fprintf(f, "  %-16s %llu of earlier runs, %llu events\n", "other inbox", (unsigned long long)r->stale,
            (unsigned long long)r->events);
    if (r->resyncs) fprintf(f, "  %-16s %llu window resyncs (messages given up after %u ms)\n", "",
                            (unsigned long long)r->resyncs, BENCH_STALL_MS);
}

void bench_report_table(FILE *f, const struct bench_result *r)
{
    const struct bench_cfg *cfg = r->cfg;
    fprintf(f, "\naurora-bench %s: target %s port %u, MQTT %s, QoS %u, payload %u B, %u thread(s)%s\n",
            cfg->scenario_name, cfg->host, cfg->port, version_name(cfg->version), cfg->qos, cfg->payload,
            cfg->threads, r->interrupted ? "  [INTERRUPTED]" : "");
    fprintf(f, "  %-16s %u requested (%u publishers, %u subscribers, %u idle), %llu connected, %llu failed, %llu lost\n",
            "connections", cfg->connections, cfg->publishers, cfg->subscribers, cfg->idle,
            (unsigned long long)r->connacks, (unsigned long long)r->failed, (unsigned long long)r->lost);
    fprintf(f, "  %-16s %.0f sessions/s (setup phase %.2f s)\n", "connect rate", r->connect_rate, r->setup_s);
    if (cfg->scenario >= SC_P2P && !cfg->im && (!cfg->sub_clean || cfg->sub_expiry))
        fprintf(f, "  %-16s clean %u, session expiry %u s: %s\n", "subscribers", cfg->sub_clean ? 1u : 0u,
                cfg->sub_expiry, cfg->durable ? "persistent sessions (stored before PUBACK)" : "not persistent");
    if (cfg->scenario == SC_HOLD)
        fprintf(f, "  %-16s %llu sessions held at the end of %.2f s, %llu PINGREQ sent\n", "held",
                (unsigned long long)r->alive_end, r->run_s, (unsigned long long)r->pings);
    if (cfg->im) {
        im_table(f, r);
    } else if (cfg->scenario >= SC_P2P) {
        fprintf(f, "  %-16s %.2f s\n", "duration", r->run_s);
        fprintf(f, "  %-16s %llu msgs, %.0f msgs/s", "sent", (unsigned long long)r->sent, r->msgs_out_s);
        if (cfg->qos) fprintf(f, ", %llu acknowledged", (unsigned long long)r->acked);
        fputc('\n', f);
        fprintf(f, "  %-16s %llu msgs, %.0f msgs/s, expected %llu (%.3f%%)\n", "received",
                (unsigned long long)r->received, r->msgs_in_s, (unsigned long long)r->expected,
                r->expected ? 100.0 * (double)r->received / (double)r->expected : 0.0);
        fprintf(f, "  %-16s p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f  mean %.1f  (%llu samples)\n",
                "latency us", us(hist_quantile(&r->lat, 0.5)), us(hist_quantile(&r->lat, 0.99)),
                us(hist_quantile(&r->lat, 0.999)), us(r->lat.count ? r->lat.max : 0), hist_mean(&r->lat) / 1000.0,
                (unsigned long long)r->lat.count);
        if (r->resyncs) fprintf(f, "  %-16s %llu window resyncs (messages given up after %u ms)\n", "",
                                (unsigned long long)r->resyncs, BENCH_STALL_MS);
    }
    fprintf(f, "  %-16s p50 %.1f  p99 %.1f  p99.9 %.1f  max %.1f\n", "connect us",
            us(hist_quantile(&r->conn_lat, 0.5)), us(hist_quantile(&r->conn_lat, 0.99)),
            us(hist_quantile(&r->conn_lat, 0.999)), us(r->conn_lat.count ? r->conn_lat.max : 0));
    fprintf(f, "  %-16s %llu", "errors", (unsigned long long)r->errors_total);
    for (int e = 0; e < E__COUNT; e++)
        if (r->errors[e]) fprintf(f, "  %s=%llu", bench_err_names[e], (unsigned long long)r->errors[e]);
    fputc('\n', f);
}

static void json_str(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
        else if (ch < 0x20) fprintf(f, "\\u%04x", ch);
        else fputc(ch, f);
    }
    fputc('"', f);
}

void bench_report_json(FILE *f, const struct bench_result *r)
{
    const struct bench_cfg *cfg = r->cfg;
    fprintf(f, "{\"tool\":\"aurora-bench\",\"scenario\":");
    json_str(f, cfg->scenario_name);
    fprintf(f, ",\"host\":");
    json_str(f, cfg->host);
    fprintf(f, ",\"port\":%u,\"version\":%u,\"qos\":%u,\"payload\":%u,\"threads\":%u,\"rate\":%.0f,\"window\":%u",
            cfg->port, cfg->version, cfg->qos, cfg->payload, cfg->threads, cfg->rate, cfg->window);
    fprintf(f, ",\"clean\":%s,\"session_expiry\":%u,\"durable\":%s", cfg->sub_clean ? "true" : "false",
            cfg->sub_expiry, cfg->durable ? "true" : "false");
    fprintf(f, ",\"connections\":%u,\"publishers\":%u,\"subscribers\":%u,\"topics\":%u",
            cfg->connections, cfg->publishers, cfg->subscribers, cfg->topics);
    fprintf(f, ",\"connected\":%llu,\"failed\":%llu,\"lost\":%llu,\"held\":%llu,\"connect_rate\":%.1f,\"setup_s\":%.3f",
            (unsigned long long)r->connacks, (unsigned long long)r->failed, (unsigned long long)r->lost,
            (unsigned long long)r->alive_end, r->connect_rate, r->setup_s);
    fprintf(f, ",\"duration\":%.3f,\"sent\":%llu,\"acked\":%llu,\"received\":%llu,\"expected\":%llu",
            r->run_s, (unsigned long long)r->sent, (unsigned long long)r->acked,
            (unsigned long long)r->received, (unsigned long long)r->expected);
    fprintf(f, ",\"msgs_per_s_out\":%.1f,\"msgs_per_s_in\":%.1f", r->msgs_out_s, r->msgs_in_s);
    fprintf(f, ",\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f,\"samples\":%llu}",
            us(hist_quantile(&r->lat, 0.5)), us(hist_quantile(&r->lat, 0.99)), us(hist_quantile(&r->lat, 0.999)),
            us(r->lat.count ? r->lat.max : 0), hist_mean(&r->lat) / 1000.0, (unsigned long long)r->lat.count);
    fprintf(f, ",\"connect_latency_us\":{\"p50\":%.1f,\"p99\":%.1f,\"p999\":%.1f,\"max\":%.1f,\"mean\":%.1f,\"samples\":%llu}",
            us(hist_quantile(&r->conn_lat, 0.5)), us(hist_quantile(&r->conn_lat, 0.99)),
            us(hist_quantile(&r->conn_lat, 0.999)), us(r->conn_lat.count ? r->conn_lat.max : 0),
            hist_mean(&r->conn_lat) / 1000.0, (unsigned long long)r->conn_lat.count);
    fprintf(f, ",\"pings\":%llu,\"resyncs\":%llu,\"errors\":%llu,\"errors_by_kind\":{",
            (unsigned long long)r->pings, (unsigned long long)r->resyncs, (unsigned long long)r->errors_total);
    for (int e = 0; e < E__COUNT; e++)
        fprintf(f, "%s\"%s\":%llu", e ? "," : "", bench_err_names[e], (unsigned long long)r->errors[e]);
    fprintf(f, "}");
    if (cfg->im) {
        fprintf(f, ",\"groups\":%u,\"members\":%u,\"messages\":%u,\"committed\":%llu,\"refused\":%llu",
                cfg->groups, cfg->members, cfg->messages, (unsigned long long)r->committed, (unsigned long long)r->refused);
        fprintf(f, ",\"msgs_per_s_committed\":%.1f,\"delivered\":%llu,\"missing\":%llu,\"duplicates\":%llu",
                r->committed_s, (unsigned long long)r->unique, (unsigned long long)r->missing, (unsigned long long)r->dups);
        fprintf(f, ",\"out_of_order\":%llu,\"sequence_errors\":%llu,\"stale\":%llu,\"events\":%llu",
                (unsigned long long)r->ooo, (unsigned long long)r->seq_err, (unsigned long long)r->stale,
                (unsigned long long)r->events);
        if (cfg->scenario == SC_IM_REPLAY)
            fprintf(f, ",\"offline_msgs\":%u,\"replay_expected\":%llu,\"replay_ms\":%.3f,\"replay_first_ms\":%.3f"
                       ",\"replay_login_ms\":%.3f,\"replay_msgs_per_s\":%.1f",
                    cfg->offline_msgs, (unsigned long long)r->replay_expected, r->replay_ms, r->replay_first_ms,
                    r->replay_login_ms, r->replay_msgs_s);
    }
    fprintf(f, ",\"interrupted\":%s}", r->interrupted ? "true" : "false");
}
