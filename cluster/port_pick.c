/* Picking a host's port base (cluster/port_pick.h). */
#include "cluster/port_pick.h"

#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

/* The kernel's ephemeral range; Linux's default when it cannot be read. */
static void ephemeral_range(unsigned *lo, unsigned *hi)
{
    *lo = 32768;
    *hi = 60999;
    FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");
    if (!f) return;
    unsigned a, b;
    if (fscanf(f, "%u %u", &a, &b) == 2 && a <= b && b <= 65535) *lo = a, *hi = b;
    fclose(f);
}

/* Whether a listener could bind host:port now, with the options the pools' listeners use (SO_REUSEADDR: a port
 * whose old connections linger in TIME_WAIT is free for them). */
static bool bindable(const struct addrinfo *ai, unsigned port)
{
    struct sockaddr_storage sa;
    memcpy(&sa, ai->ai_addr, ai->ai_addrlen);
    if (sa.ss_family == AF_INET) ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
    else if (sa.ss_family == AF_INET6) ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
    else return false;
    int fd = socket(sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    bool ok = bind(fd, (struct sockaddr *)&sa, ai->ai_addrlen) == 0;
    close(fd);
    return ok;
}

bool xo__pick_port_base(const char *host, unsigned n_after, unsigned *port_p)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *ai = NULL;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0 || !ai) return false;
    unsigned lo, hi;
    ephemeral_range(&lo, &hi);
    /* Above the ephemeral range when it leaves room (Linux's default leaves 61000-65535), else below it. */
    unsigned first, last;
    if (65535 - hi > 1000 + n_after) first = hi + 1, last = 65535 - n_after;
    else if (lo > 11000 + n_after) first = 10000, last = lo - 1 - n_after;
    else first = 1024, last = 65535 - n_after;
    bool found = false;
    for (int tries = 0; tries < 300 && !found; tries++) {
        unsigned r = 0;
        if (getrandom(&r, sizeof r, 0) != sizeof r) r = (unsigned)rand();
        unsigned base = first + r % (last - first + 1);
        found = true;
        for (unsigned k = 0; k <= n_after && found; k++) found = bindable(ai, base + k);
        if (found) *port_p = base;
    }
    freeaddrinfo(ai);
    return found;
}
