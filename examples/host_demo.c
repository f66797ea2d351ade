/* Pools as processes: a host with a main pool (this process) and two sub pools (xoscar-pool processes bound to
 * their cores), a word count spread over them, and what happens when a sub pool is killed.
 *
 *   host_demo MODULE.so [TEXT-FILE]      (the README's main command runs it with the example module) */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xoscar/host.h>
#include <xoscar/module.h>
#include <xoscar/xoscar.h>

#include "wordcount_run.h"


static const char *default_text =
    "the actor model for heterogeneous hardware actors live in pools bound to cores and the messages take the "
    "fastest path between them the main pool starts the sub pools and watches them and the actors in the pools "
    "talk over shared memory when they share a host and over the network when they do not";

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) n = 0;
    if (buf) buf[n] = '\0';
    fclose(f);
    return buf;
}

static void on_event(const char *address, xo_pool_event_t ev, void *arg)
{
    printf("  [supervisor] pool %s %s\n", address, ev == XO_POOL_DOWN ? "died" : "was restarted");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODULE.so [TEXT-FILE]\n", argv[0]);
        return 2;
    }
    char *text = argc > 2 ? read_file(argv[2]) : strdup(default_text);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", argv[2]);
        return 2;
    }
    const char *modules[] = {argv[1]};
    xo_host_config_t cfg = {.n_sub_pools = 2, .modules = modules, .n_modules = 1, .restart = XO_RESTART_ACTORS,
                            .on_event = on_event};
    xo_host_t *host;
    CHECK(xo_host_start(&cfg, &host));
    printf("host %s: main pool pid %d, sub pools %s (pid %d), %s (pid %d)\n", xo_host_address(host), (int)getpid(),
           xo_host_sub_pool_address(host, 1), xo_host_sub_pool_pid(host, 1), xo_host_sub_pool_address(host, 2),
           xo_host_sub_pool_pid(host, 2));

    /* One mapper per sub pool (round robin), the reducer in the main pool. */
    xo_ref_t *mappers[2], *reducer;
    xo_placement_t rr = {.strategy = "round_robin"}, main_pool = {.strategy = "main_pool"};
    for (int i = 0; i < 2; i++) CHECK(xo_host_create_actor(host, "Mapper", NULL, NULL, &rr, &mappers[i]));
    CHECK(xo_host_create_actor(host, "Reducer", NULL, "reducer", &main_pool, &reducer));
    for (int i = 0; i < 2; i++) {
        xo_result_t *r;
        int pid;
        CHECK(xo_call(mappers[i], "pid", NULL, 2000, &r));
        xo_result_unpack(r, "i", &pid);
        xo_result_free(r);
        printf("mapper %d lives at %s (pid %d)\n", i, xo_ref_address(mappers[i]), pid);
    }

    /* Mappers count chunks concurrently in their processes; the reducer (here) merges. */
    xo_result_t *r;
    wordcount_run(mappers, 2, reducer, text, strlen(text), 5);

    /* Supervision: kill a sub pool with a call in flight; the call fails at once, the pool comes back. */
    xo_future_t *pending;
    CHECK(xo_send(mappers[0], "count", xo_args("s", text), &pending));
    kill(xo_host_sub_pool_pid(host, 1), SIGKILL);
    xo_status_t st = xo_future_wait(pending, 5000, NULL);
    printf("after kill -9 of %s: call %s (%s)\n", xo_host_sub_pool_address(host, 1),
           st == XO_OK ? "finished first" : xo_status_name(st), st == XO_OK ? "it was quick" : xo_last_error());
    xo_future_free(pending);
    for (int i = 0; i < 200 && xo_host_sub_pool_pid(host, 1) == 0; i++) usleep(10000);
    usleep(100000);
    xo_ref_t *again;
    CHECK(xo_actor_ref(xo_host_address(host), xo_ref_uid(mappers[0]), &again));
    CHECK(xo_call(again, "pid", NULL, 2000, &r));
    int pid;
    xo_result_unpack(r, "i", &pid);
    xo_result_free(r);
    printf("mapper 0 was re-created in the restarted pool (pid %d)\n", pid);

    xo_ref_free(again);
    for (int i = 0; i < 2; i++) xo_ref_free(mappers[i]);
    xo_ref_free(reducer);
    xo_host_stop(host);
    free(text);
    printf("host stopped\n");
    return 0;
}
