/* main.c - aurora-bench: phases, progress lines and the final report.
 *
 * Phases (run->phase, advanced only here):
 *   SETUP    workers connect (and subscribe) their connections, paced by --rate (hold/storm) and
 *            --connect-window; ends when every connection is ready or failed, or at --setup-timeout.
 *   RUN      hold: keep the sessions for --duration; pub/sub: publish for --duration. (storm: none)
 *   DRAIN    pub/sub: no new publishes; wait for outstanding deliveries and acks (<= BENCH_DRAIN_MS).
 *   TEARDOWN DISCONNECT and close everything (<= BENCH_TEARDOWN_MS).
 * So a run never lasts longer than setup + duration + drain + teardown, all bounded. SIGINT or
 * SIGTERM jumps to TEARDOWN; a second one ends at once. */
#include "perf/bench/bench.h"

#include "core/log.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static const char *const k_phase_names[] = { "setup", "run", "drain", "teardown", "done" };

struct totals {
    uint64_t connects, connacks, ready, failed, alive, lost, open, sent, acked, received, pings, resyncs;
    uint64_t im_unique, im_dup, im_ooo, im_seq_err, im_stale, im_events, im_refused, im_missing, im_last_ns;
    uint64_t errors[E__COUNT], errors_total;
    uint64_t first_connect_ns, last_connack_ns, last_recv_ns;
    uint32_t done, fatal;
};

static uint64_t ld(_Atomic uint64_t *v) { return atomic_load_explicit(v, memory_order_relaxed); }

static void gather(const struct bench_run *run, struct totals *t)
{
    memset(t, 0, sizeof *t);
    for (uint32_t i = 0; i < run->n_workers; i++) {
        struct bench_worker *w = &run->workers[i];
        struct bench_stats *s = &w->st;
        t->connects += ld(&s->connects);
        t->connacks += ld(&s->connacks);
        t->ready += ld(&s->ready);
        t->failed += ld(&s->failed);
        t->alive += ld(&s->alive);
        t->lost += ld(&s->lost);
        t->open += ld(&s->open);
        t->sent += ld(&s->sent);
        t->acked += ld(&s->acked);
        t->received += ld(&s->received);
        t->pings += ld(&s->pings);
        t->resyncs += ld(&s->resyncs);
        t->im_unique += ld(&s->im_unique);
        t->im_dup += ld(&s->im_dup);
        t->im_ooo += ld(&s->im_ooo);
        t->im_seq_err += ld(&s->im_seq_err);
        t->im_stale += ld(&s->im_stale);
        t->im_events += ld(&s->im_events);
        t->im_refused += ld(&s->im_refused);
        t->im_missing += ld(&s->im_missing);
        if (ld(&s->im_last_ns) > t->im_last_ns) t->im_last_ns = ld(&s->im_last_ns);
        for (int e = 0; e < E__COUNT; e++) {
            t->errors[e] += ld(&s->errors[e]);
            t->errors_total += ld(&s->errors[e]);
        }
        uint64_t fc = ld(&s->first_connect_ns), lc = ld(&s->last_connack_ns), lr = ld(&s->last_recv_ns);
        if (fc && (!t->first_connect_ns || fc < t->first_connect_ns)) t->first_connect_ns = fc;
        if (lc > t->last_connack_ns) t->last_connack_ns = lc;
        if (lr > t->last_recv_ns) t->last_recv_ns = lr;
        if (atomic_load_explicit(&s->done, memory_order_acquire)) {
            t->done++;
            if (w->fatal) t->fatal++;
        }
    }
}

/* Deliveries due: every message sent times the subscribers of its topic. IM: every committed message
 * (PUBACK = durable) times the devices of its conversation; im-replay: what the returning device must get. */
static uint64_t expected_deliveries(const struct bench_run *run)
{
    const struct bench_cfg *cfg = run->cfg;
    if (cfg->scenario == SC_IM_REPLAY) return atomic_load(&run->replay_expected);
    uint64_t e = 0;
    for (uint32_t p = 0; p < cfg->publishers; p++) {
        _Atomic uint64_t *n = cfg->im ? &run->pub_acked[p] : &run->pub_sent[p];
        e += atomic_load_explicit(n, memory_order_relaxed) * run->deliv[bench_pub_topic(cfg, p)];
    }
    return e;
}

/* im-replay: the latest offline_msgs messages of every conversation that were committed. */
static uint64_t replay_expected(const struct bench_run *run)
{
    uint64_t e = 0;
    for (uint32_t p = 0; p < run->cfg->publishers; p++)
        e += AU_MIN(atomic_load_explicit(&run->pub_acked[p], memory_order_relaxed), (uint64_t)run->cfg->offline_msgs);
    return e;
}

/* End-to-end window per topic (see BENCH_E2E_DELIVERIES / BENCH_E2E_PER_SUB). */
static void set_e2e_windows(struct bench_run *run, uint32_t wild)
{
    const struct bench_cfg *cfg = run->cfg;
    uint32_t *npub = calloc(cfg->topics ? cfg->topics : 1, sizeof *npub);
    AU_ASSERT(npub);
    for (uint32_t p = 0; p < cfg->publishers; p++) npub[bench_pub_topic(cfg, p)]++;
    for (uint32_t t = 0; t < cfg->topics; t++) {
        uint32_t reach = wild ? cfg->publishers : npub[t];   /* publishers one subscriber hears */
        uint32_t win = cfg->window;
        if (run->deliv[t]) win = AU_MIN(win, BENCH_E2E_DELIVERIES / run->deliv[t]);
        if (reach) win = AU_MIN(win, BENCH_E2E_PER_SUB / reach);
        run->e2e[t] = AU_MAX(win, 1u);
    }
    free(npub);
}

static void set_phase(struct bench_run *run, int phase)
{
    /* IM: the committed counts the workers check arrivals against (published with the phase) */
    if (phase >= PH_TEARDOWN && run->pub_acked_final && atomic_load(&run->phase) < PH_TEARDOWN)
        for (uint32_t p = 0; p < run->cfg->publishers; p++) {
            run->pub_acked_final[p] = atomic_load_explicit(&run->pub_acked[p], memory_order_relaxed);
            run->pub_refused_final[p] = atomic_load_explicit(&run->pub_refused[p], memory_order_relaxed);
        }
    atomic_store_explicit(&run->phase, phase, memory_order_release);
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }

/* Per-ring connection cap from RLIMIT_NOFILE: the sparse table may not exceed it. */
static uint32_t ring_cap_from_rlimit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) return 1000;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    uint64_t reserve = 256;       /* the table may not exceed the limit; keep a little for small limits */
    uint64_t cap = rl.rlim_cur > reserve + 1 ? rl.rlim_cur - reserve : 1;
    return (uint32_t)AU_MIN(cap, (uint64_t)BENCH_CONNS_PER_RING);
}

int main(int argc, char **argv)
{
    static struct bench_cfg cfg;
    int pr = bench_parse_args(argc, argv, &cfg);
    if (pr) return pr > 0 ? 0 : 2;

    uint32_t cap = ring_cap_from_rlimit();
    uint32_t need = (cfg.connections + cap - 1) / cap;
    if (need > BENCH_MAX_THREADS) {
        au_error("RLIMIT_NOFILE allows %u connections per ring: %u connections need too many rings", cap, cfg.connections);
        return 1;
    }
    if (cfg.threads < need) {
        au_info("--threads raised to %u (RLIMIT_NOFILE allows %u direct descriptors per ring)", need, cap);
        cfg.threads = need;
    }

    /* Signals are taken synchronously by the main thread; workers inherit the blocked mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    static struct bench_run run;
    run.cfg = &cfg;
    run.n_workers = cfg.threads;
    run.workers = calloc(cfg.threads, sizeof *run.workers);
    run.topic_subs = calloc(cfg.topics ? cfg.topics : 1, sizeof *run.topic_subs);
    run.deliv = calloc(cfg.topics ? cfg.topics : 1, sizeof *run.deliv);
    run.e2e = calloc(cfg.topics ? cfg.topics : 1, sizeof *run.e2e);
    run.delivered = calloc((size_t)cfg.threads * (cfg.publishers ? cfg.publishers : 1), sizeof *run.delivered);
    run.pub_sent = calloc(cfg.publishers ? cfg.publishers : 1, sizeof *run.pub_sent);
    run.pub_acked = calloc(cfg.publishers ? cfg.publishers : 1, sizeof *run.pub_acked);
    run.pub_refused = calloc(cfg.publishers ? cfg.publishers : 1, sizeof *run.pub_refused);
    if (cfg.im) {
        run.pub_acked_final = calloc(cfg.publishers ? cfg.publishers : 1, sizeof *run.pub_acked_final);
        run.pub_refused_final = calloc(cfg.publishers ? cfg.publishers : 1, sizeof *run.pub_refused_final);
    }
    if (!run.workers || !run.topic_subs || !run.deliv || !run.e2e || !run.delivered || !run.pub_sent ||
        !run.pub_acked || !run.pub_refused || (cfg.im && (!run.pub_acked_final || !run.pub_refused_final))) {
        au_error("out of memory");
        return 1;
    }

    uint64_t t0 = bench_now_ns();
    run.t0_ns = t0;
    run.im_run_id = (uint32_t)((uint64_t)getpid() * 2654435761u ^ (t0 >> 12));
    atomic_store(&run.setup_start_ns, t0);
    set_phase(&run, PH_SETUP);
    uint64_t bound_s = (uint64_t)cfg.setup_s + cfg.duration_s + (BENCH_DRAIN_MS + BENCH_TEARDOWN_MS) / 1000u;
    au_info("%s: %u connections (%u pub, %u sub, %u idle) to %s:%u, %u thread(s), src %s; run bounded to %llu s",
            cfg.scenario_name, cfg.connections, cfg.publishers, cfg.subscribers, cfg.idle, cfg.host, cfg.port,
            cfg.threads, cfg.n_src ? cfg.src_spec : "(kernel's choice)", (unsigned long long)bound_s);

    uint32_t started = 0;
    for (uint32_t i = 0; i < cfg.threads; i++) {
        struct bench_worker *w = &run.workers[i];
        w->id = i;
        w->run = &run;
        w->cfg = &cfg;
        w->n_conns = (cfg.connections - i + cfg.threads - 1) / cfg.threads;
        int e = pthread_create(&w->thread, NULL, bench_worker_main, w);
        if (e) {
            au_error("pthread_create: %s", strerror(e));
            break;
        }
        started++;
    }
    bool fatal = started < cfg.threads;
    if (fatal) set_phase(&run, PH_TEARDOWN);

    struct totals t, prev;
    memset(&prev, 0, sizeof prev);
    uint64_t setup_end = 0, run_start = 0, run_end = 0, drain_start = 0, teardown_start = fatal ? t0 : 0;
    uint64_t alive_end = 0, timeouts = 0, drain_progress_ns = 0, drain_last = 0;
    uint64_t next_tick = t0 + 1000000000u, last_tick = t0;
    bool interrupted = false;
    if (!cfg.quiet)
        printf("%8s %-8s %9s %9s %10s %10s %8s %10s\n", "time", "phase", "conns", "conn/s", "out/s", "in/s", "errors",
               "lat max ms");
    for (;;) {
        struct timespec ts = { 0, 50 * 1000000L };
        int sig = sigtimedwait(&sigs, NULL, &ts);
        uint64_t now = bench_now_ns();
        int phase = atomic_load(&run.phase);
        if (sig == SIGINT || sig == SIGTERM) {
            if (interrupted || phase >= PH_TEARDOWN) {
                au_warn("second signal: stopping now");
                set_phase(&run, PH_DONE);
                break;
            }
            interrupted = true;
            atomic_store(&run.interrupted, true);
            au_warn("interrupted: disconnecting");
            if (phase == PH_RUN || phase == PH_DRAIN) run_end = run_end ? run_end : now;
            if (phase == PH_SETUP) setup_end = now;
            if (phase == PH_RUN) {
                gather(&run, &t);
                alive_end = t.alive;
            }
            set_phase(&run, PH_TEARDOWN);
            teardown_start = now;
            phase = PH_TEARDOWN;
        }
        gather(&run, &t);
        if (t.fatal && phase < PH_TEARDOWN) {
            for (uint32_t i = 0; i < cfg.threads; i++)
                if (run.workers[i].fatal) au_error("worker %u: %s", i, run.workers[i].err_msg);
            fatal = true;
            if (!setup_end) setup_end = now;
            set_phase(&run, PH_TEARDOWN);
            teardown_start = now;
            phase = PH_TEARDOWN;
        }
        switch (phase) {
        case PH_SETUP: {
            bool all = t.ready + t.failed >= cfg.connections - bench_deferred(&cfg);
            bool late = now - t0 >= (uint64_t)cfg.setup_s * 1000000000u;
            if (!all && !late) break;
            setup_end = now;
            if (late) {
                timeouts = cfg.connections - bench_deferred(&cfg) - t.ready - t.failed;
                au_warn("setup timeout: %llu of %u connections not ready after %u s",
                        (unsigned long long)timeouts, cfg.connections, cfg.setup_s);
            }
            if (cfg.scenario == SC_STORM) {
                set_phase(&run, PH_TEARDOWN);
                teardown_start = now;
                break;
            }
            bool ok = t.ready > 0;
            if (cfg.scenario >= SC_P2P) {
                uint32_t wild = atomic_load(&run.wild_subs);
                uint32_t subs = wild;
                for (uint32_t i = 0; i < cfg.topics; i++) {
                    run.deliv[i] = atomic_load(&run.topic_subs[i]) + wild;
                    subs += atomic_load(&run.topic_subs[i]);
                }
                if (cfg.scenario == SC_IM_REPLAY) {
                    run.deliv[0] = 0;          /* nobody is online: no end-to-end window, just QoS 1 */
                    subs = 1;
                }
                if (!subs) ok = false;
                set_e2e_windows(&run, wild);
            }
            if (!ok) {
                au_error("no session could be set up (see the errors above)");
                fatal = true;
                set_phase(&run, PH_TEARDOWN);
                teardown_start = now;
                break;
            }
            run_start = now;
            atomic_store(&run.run_start_ns, now);
            set_phase(&run, PH_RUN);
            break;
        }
        case PH_RUN: {
            /* --messages: done when every publisher sent its share and every one was acknowledged */
            bool all_sent = cfg.messages && t.sent >= (uint64_t)cfg.publishers * cfg.messages && t.acked >= t.sent;
            if (now - run_start < (uint64_t)cfg.duration_s * 1000000000u && !all_sent) break;
            run_end = now;
            alive_end = t.alive;
            atomic_store(&run.run_end_ns, now);
            if (cfg.scenario == SC_IM_REPLAY) {
                atomic_store(&run.replay_expected, replay_expected(&run));
                au_info("im-replay: %llu messages committed; the device returns, expecting %llu",
                        (unsigned long long)t.acked - t.im_refused, (unsigned long long)atomic_load(&run.replay_expected));
            }
            if (cfg.scenario >= SC_P2P) {
                drain_start = drain_progress_ns = now;
                drain_last = t.received + t.acked;
                set_phase(&run, PH_DRAIN);
            } else {
                set_phase(&run, PH_TEARDOWN);
                teardown_start = now;
            }
            break;
        }
        case PH_DRAIN: {
            uint64_t exp = expected_deliveries(&run);
            bool complete = t.received >= exp && (cfg.qos == 0 || t.acked >= t.sent);
            if (cfg.im) complete = t.im_unique >= exp && t.acked >= t.sent;
            if (cfg.scenario == SC_IM_REPLAY) {
                /* the replay: bounded by --replay-timeout, and by BENCH_IM_REPLAY_STALL_MS without an
                 * arrival once subscribed; nothing expected: done a second after the SUBSCRIBE */
                uint64_t sub = atomic_load(&run.replay_sub_ns);
                if (t.received != drain_last) {
                    drain_last = t.received;
                    drain_progress_ns = now;
                }
                if (sub && drain_progress_ns < sub) drain_progress_ns = sub;
                complete = exp ? t.im_unique >= exp : (sub && now - sub >= (uint64_t)BENCH_IM_REPLAY_EMPTY_MS * 1000000u);
                bool stalled = sub && now - drain_progress_ns >= (uint64_t)BENCH_IM_REPLAY_STALL_MS * 1000000u;
                if (complete || stalled || now - drain_start >= (uint64_t)cfg.replay_timeout_s * 1000000000u) {
                    if (!complete)
                        au_warn("im-replay: %llu of %llu messages after %.1f s (%s)", (unsigned long long)t.im_unique,
                                (unsigned long long)exp, secs(now - drain_start), stalled ? "no progress" : "timeout");
                    set_phase(&run, PH_TEARDOWN);
                    teardown_start = now;
                }
                break;
            }
            if (t.received + t.acked != drain_last) {
                drain_last = t.received + t.acked;
                drain_progress_ns = now;
            }
            bool stuck = now - drain_progress_ns >= 1000000000u;
            if (complete || stuck || now - drain_start >= (uint64_t)BENCH_DRAIN_MS * 1000000u) {
                set_phase(&run, PH_TEARDOWN);
                teardown_start = now;
            }
            break;
        }
        case PH_TEARDOWN:
            if (t.done == started || now - teardown_start >= (uint64_t)BENCH_TEARDOWN_MS * 1000000u)
                set_phase(&run, PH_DONE);
            break;
        default:
            break;
        }
        if (!cfg.quiet && now >= next_tick) {
            double dt = secs(now - last_tick);
            uint64_t lat_max = 0;
            for (uint32_t i = 0; i < run.n_workers; i++) {
                uint64_t m = atomic_exchange_explicit(&run.workers[i].st.lat_max_tick, 0, memory_order_relaxed);
                if (m > lat_max) lat_max = m;
            }
            printf("%7.1fs %-8s %9llu %9.0f %10.0f %10.0f %8llu %10.1f\n", secs(now - t0),
                   k_phase_names[atomic_load(&run.phase)],
                   (unsigned long long)(atomic_load(&run.phase) >= PH_TEARDOWN ? t.open : t.alive),
                   (double)(t.connacks - prev.connacks) / dt, (double)(t.sent - prev.sent) / dt,
                   (double)(t.received - prev.received) / dt, (unsigned long long)t.errors_total, (double)lat_max / 1e6);
            fflush(stdout);
            prev = t;
            last_tick = now;
            next_tick += 1000000000u;
            if (next_tick < now) next_tick = now + 1000000000u;
        }
        if (atomic_load(&run.phase) == PH_DONE) break;
    }
    for (uint32_t i = 0; i < started; i++) pthread_join(run.workers[i].thread, NULL);
    gather(&run, &t);
    if (t.open && !interrupted) au_warn("%llu connections still open at the end of teardown", (unsigned long long)t.open);

    static struct bench_result r;
    r.cfg = &cfg;
    r.connects = t.connects;
    r.connacks = t.connacks;
    r.ready = t.ready;
    r.failed = t.failed;
    r.lost = t.lost;
    r.alive_end = alive_end;
    r.sent = t.sent;
    r.acked = t.acked;
    r.received = t.received;
    r.expected = expected_deliveries(&run);
    if (cfg.im) {
        r.committed = t.acked - t.im_refused;
        r.refused = t.im_refused;
        r.unique = t.im_unique;
        r.dups = t.im_dup;
        r.ooo = t.im_ooo;
        r.seq_err = t.im_seq_err;
        r.missing = t.im_missing;
        r.stale = t.im_stale;
        r.events = t.im_events;
        r.replay_expected = atomic_load(&run.replay_expected);
        uint64_t sub = atomic_load(&run.replay_sub_ns), first = atomic_load(&run.replay_first_ns);
        uint64_t conn = atomic_load(&run.replay_connect_ns), ack = atomic_load(&run.replay_connack_ns);
        if (cfg.scenario == SC_IM_REPLAY && sub) {
            if (t.im_unique && t.im_last_ns > sub) {
                r.replay_ms = (double)(t.im_last_ns - sub) / 1e6;
                r.replay_msgs_s = (double)t.im_unique / secs(t.im_last_ns - sub);
            }
            if (first > sub) r.replay_first_ms = (double)(first - sub) / 1e6;
            if (conn && ack > conn) r.replay_login_ms = (double)(ack - conn) / 1e6;
        }
    }
    r.pings = t.pings;
    r.resyncs = t.resyncs;
    memcpy(r.errors, t.errors, sizeof r.errors);
    r.errors[E_TIMEOUT] += timeouts;
    r.errors_total = t.errors_total + timeouts;
    r.interrupted = interrupted;
    if (!setup_end) setup_end = bench_now_ns();
    r.setup_s = secs(setup_end - t0);
    if (t.connacks && t.last_connack_ns > t.first_connect_ns)
        r.connect_rate = (double)t.connacks / secs(t.last_connack_ns - t.first_connect_ns);
    if (cfg.scenario == SC_STORM) {
        r.run_s = t.last_connack_ns > t.first_connect_ns ? secs(t.last_connack_ns - t.first_connect_ns) : 0;
    } else if (run_start) {
        r.run_s = secs((run_end ? run_end : bench_now_ns()) - run_start);
    }
    if (r.run_s > 0 && cfg.scenario >= SC_P2P) {
        r.msgs_out_s = (double)r.sent / r.run_s;
        r.committed_s = (double)r.committed / r.run_s;
        double in_s = r.run_s;
        if (t.last_recv_ns > run_start && secs(t.last_recv_ns - run_start) > in_s) in_s = secs(t.last_recv_ns - run_start);
        r.msgs_in_s = (double)r.received / in_s;
        if (cfg.im) r.msgs_in_s = (double)r.unique / in_s;
        if (cfg.scenario == SC_IM_REPLAY) r.msgs_in_s = r.replay_msgs_s;
    }
    hist_init(&r.lat);
    hist_init(&r.conn_lat);
    for (uint32_t i = 0; i < started; i++) {
        hist_merge(&r.lat, &run.workers[i].lat);
        hist_merge(&r.conn_lat, &run.workers[i].conn_lat);
    }

    bench_report_table(stdout, &r);
    if (cfg.json_path) {
        FILE *f = fopen(cfg.json_path, "w");
        if (!f) {
            au_error("--json %s: %s", cfg.json_path, strerror(errno));
            fatal = true;
        } else {
            bench_report_json(f, &r);
            fputc('\n', f);
            if (fclose(f) != 0) fatal = true;
        }
    }
    printf("JSON: ");
    bench_report_json(stdout, &r);
    printf("\n");
    fflush(stdout);

    free(run.workers);
    free((void *)run.topic_subs);
    free(run.deliv);
    free(run.e2e);
    free((void *)run.delivered);
    free((void *)run.pub_sent);
    free((void *)run.pub_acked);
    free(run.pub_acked_final);
    free((void *)run.pub_refused);
    free(run.pub_refused_final);
    free(cfg.gids);
    free(cfg.src);
    return fatal ? 1 : interrupted ? 130 : 0;
}
