/* aurora-ctl - command-line client of Aurora's operator API (docs/rest-api.md "Operator API").
 *
 *   aurora-ctl [--http HOST:PORT] [--data DIR | --token TOKEN] apps create NAME
 *   aurora-ctl [...] apps list
 *   aurora-ctl [...] apps delete APPKEY
 *   aurora-ctl [--data DIR] store repair   (offline, Aurora stopped: docs/storage.md "Write failures")
 *
 * --http defaults to 127.0.0.1:8080. The operator token is --token, else $AURORA_OPERATOR_TOKEN, else
 * the content of DIR/operator.token (--data, default ./data). Prints the JSON answer on stdout; exit
 * status 0 for a 2xx answer, 1 for an error answer, 2 for a usage or connection error.
 *
 * A tiny HTTP/1.1 client on a blocking socket: one request, "Connection: close", the answer read to
 * its Content-Length (or to EOF). */
#include "core/config.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define CTL_TOKEN_MAX    256
#define CTL_BODY_MAX     (8u << 20)   /* largest answer read */
#define CTL_TIMEOUT_S    30

static void usage(FILE *f)
{
    fprintf(f, "usage: aurora-ctl [--http HOST:PORT] [--data DIR | --token TOKEN] COMMAND\n"
               "commands:\n"
               "  apps create NAME     create an app; prints its appkey and master_secret (shown once)\n"
               "  apps list            list the apps\n"
               "  apps delete APPKEY   delete an app and all its data\n"
               "  store repair         with Aurora stopped: repair DIR/db after Aurora refused to open it as\n"
               "                       damaged (keeps every intact record, drops the damaged ones; copy DIR/db\n"
               "                       aside first)\n"
               "options:\n"
               "  --http HOST:PORT     the gateway's HTTP listener (default 127.0.0.1:8080)\n"
               "  --data DIR           read the operator token from DIR/operator.token (default ./data)\n"
               "  --token TOKEN        the operator token (or $AURORA_OPERATOR_TOKEN)\n");
}

static int read_token(const char *dir, char *out, size_t cap)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/operator.token", dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "aurora-ctl: %s: %s\n", path, strerror(errno));
        return -1;
    }
    size_t n = fread(out, 1, cap - 1, f);
    fclose(f);
    while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' || out[n - 1] == ' ')) n--;
    out[n] = 0;
    if (n == 0) {
        fprintf(stderr, "aurora-ctl: %s is empty\n", path);
        return -1;
    }
    return 0;
}

/* JSON string body of a name (escapes quotes, backslashes and control characters). */
static void json_escape(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s && o + 7 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            out[o++] = '\\';
            out[o++] = (char)ch;
        } else if (ch < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", ch);
        } else {
            out[o++] = (char)ch;
        }
    }
    out[o] = 0;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One request; the answer's status in *status and its body printed. Returns 0, or -1 on a transport error. */
static int request(const char *hostport, const char *method, const char *path, const char *token, const char *body,
                   int *status)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    if (au_parse_hostport(hostport, &ss, &sl) != 0) {
        fprintf(stderr, "aurora-ctl: bad --http address %s\n", hostport);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct timeval tv = { .tv_sec = CTL_TIMEOUT_S };
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0 || connect(fd, (struct sockaddr *)&ss, sl) != 0) {
        fprintf(stderr, "aurora-ctl: cannot connect to %s: %s\n", hostport, strerror(errno));
        if (fd >= 0) close(fd);
        return -1;
    }
    size_t bl = body ? strlen(body) : 0;
    char head[1024];
    int hl = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nAccept: application/json\r\n"
                      "Connection: close\r\nContent-Length: %zu\r\n%s\r\n",
                      method, path, hostport, token, bl, bl ? "Content-Type: application/json\r\n" : "");
    if (hl < 0 || (size_t)hl >= sizeof head || send_all(fd, head, (size_t)hl) != 0 ||
        (bl && send_all(fd, body, bl) != 0)) {
        fprintf(stderr, "aurora-ctl: cannot send the request: %s\n", strerror(errno));
        close(fd);
        return -1;
    }
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        return -1;
    }
    for (;;) {
        if (len == cap) {
            if (cap >= CTL_BODY_MAX) break;
            cap *= 2;
            char *nb = realloc(buf, cap + 1);
            if (!nb) break;
            buf = nb;
        }
        ssize_t r = recv(fd, buf + len, cap - len, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        len += (size_t)r;
    }
    close(fd);
    buf[len] = 0;
    char *eoh = strstr(buf, "\r\n\r\n");
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0 || !eoh) {
        fprintf(stderr, "aurora-ctl: no valid HTTP answer from %s\n", hostport);
        free(buf);
        return -1;
    }
    *status = atoi(buf + 9);
    char *b = eoh + 4;
    size_t n = len - (size_t)(b - buf);
    for (char *h = strstr(buf, "\r\n"); h && h < eoh; h = strstr(h + 2, "\r\n"))
        if (strncasecmp(h + 2, "Content-Length:", 15) == 0) {
            size_t cl = strtoul(h + 17, NULL, 10);
            if (cl < n) n = cl;
        }
    fwrite(b, 1, n, stdout);
    if (n && b[n - 1] != '\n') fputc('\n', stdout);
    free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    const char *http = "127.0.0.1:8080", *data = "./data", *token_arg = getenv("AURORA_OPERATOR_TOKEN");
    int i = 1;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            usage(stderr);
            return 2;
        }
        if (!strcmp(argv[i], "--http")) http = argv[++i];
        else if (!strcmp(argv[i], "--data")) data = argv[++i];
        else if (!strcmp(argv[i], "--token")) token_arg = argv[++i];
        else {
            fprintf(stderr, "aurora-ctl: unknown option %s\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    int rest = argc - i;
    if (rest == 2 && !strcmp(argv[i], "store") && !strcmp(argv[i + 1], "repair")) {
        char err[512];
        if (store_repair(data, err, sizeof err) != 0) {
            fprintf(stderr, "aurora-ctl: %s\n", err);
            return 1;
        }
        printf("repaired %s/db: damaged records, if any, were dropped (listed in %s/db/LOG); start Aurora again\n",
               data, data);
        return 0;
    }
    if (rest < 2 || strcmp(argv[i], "apps") != 0) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[i + 1];
    char token[CTL_TOKEN_MAX];
    if (token_arg && token_arg[0]) snprintf(token, sizeof token, "%s", token_arg);
    else if (read_token(data, token, sizeof token) != 0) return 2;
    if (strpbrk(token, "\r\n")) {
        fprintf(stderr, "aurora-ctl: bad token\n");
        return 2;
    }
    int status = 0, r;
    if (!strcmp(cmd, "create") && rest == 3) {
        char esc[1024], body[1100];
        json_escape(argv[i + 2], esc, sizeof esc);
        snprintf(body, sizeof body, "{\"name\":\"%s\"}", esc);
        r = request(http, "POST", "/ops/v1/apps", token, body, &status);
    } else if (!strcmp(cmd, "list") && rest == 2) {
        r = request(http, "GET", "/ops/v1/apps", token, NULL, &status);
    } else if (!strcmp(cmd, "delete") && rest == 3) {
        const char *k = argv[i + 2];
        for (const char *p = k; *p; p++)
            if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9'))) {
                fprintf(stderr, "aurora-ctl: an appkey is letters and digits\n");
                return 2;
            }
        char path[256];
        snprintf(path, sizeof path, "/ops/v1/apps/%.100s", k);
        r = request(http, "DELETE", path, token, NULL, &status);
    } else {
        usage(stderr);
        return 2;
    }
    explicit_bzero(token, sizeof token);
    if (r != 0) return 2;
    return status >= 200 && status < 300 ? 0 : 1;
}
