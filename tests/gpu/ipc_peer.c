/* The other process of the IPC tests (tests/gpu/device_test.cc): a fresh program (fork + exec, so that it inherits
 * neither the parent's mappings nor a CUDA context) that imports a buffer by handle, checks what the parent wrote,
 * and writes its own byte for the parent to see.
 *
 *   xo_gpu_ipc_peer <backend> <handle as hex> <bytes> <expected byte> <byte to write>
 *
 * Two more modes, for events shared between processes:
 *
 *   xo_gpu_ipc_peer event <backend> <memory handle> <event handle> <bytes> <expected byte>
 *       imports both, checks that the event is still pending, queues on its own stream a wait for the event and a
 *       copy of the buffer, prints "queued", and checks that the copy saw the byte the exporter's stream wrote
 *       before recording the event;
 *   xo_gpu_ipc_peer hold-event <backend>
 *       records a shareable event behind work that never finishes, prints its handle, and sleeps (to be killed).
 *
 * Exit status: 0 when everything held; otherwise a distinct code per step, with the reason on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "xoscar/gpu.h"

static int die(int code, const char *what)
{
    fprintf(stderr, "ipc_peer: %s: %s\n", what, xo_last_error());
    return code;
}

static int parse_handle(const char *hex, xo_device_ipc_handle_t *h)
{
    if (strlen(hex) != 2 * sizeof h->bytes) {
        fprintf(stderr, "ipc_peer: a handle must be %zu hex digits\n", 2 * sizeof h->bytes);
        return -1;
    }
    for (size_t i = 0; i < sizeof h->bytes; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) return -1;
        h->bytes[i] = (unsigned char)v;
    }
    return 0;
}

static xo_device_t *open_device(const char *backend)
{
    const xo_device_ops_t *be = xo_device_backend_find(backend);
    if (!be) return NULL;
    xo_device_config_t cfg = {.capacity = 16u << 20};
    xo_device_t *dev = NULL;
    return xo_device_open(be, 0, &cfg, &dev) == XO_OK ? dev : NULL;
}

static int event_mode(char **argv)
{
    xo_device_ipc_handle_t mh, eh;
    if (parse_handle(argv[3], &mh) || parse_handle(argv[4], &eh)) return 2;
    size_t n = strtoull(argv[5], NULL, 10);
    int expect = atoi(argv[6]);
    xo_device_t *dev = open_device(argv[2]);
    if (!dev) return die(4, "open");
    void *p = NULL;
    xo_device_event_t *ev = NULL;
    xo_device_stream_t *s = NULL;
    if (xo_device_ipc_import(dev, &mh, &p) != XO_OK) return die(5, "import memory");
    if (xo_device_ipc_import_event(dev, &eh, &ev) != XO_OK) return die(12, "import event");
    if (xo_device_event_query(ev) != XO_EAGAIN) return die(13, "the exporter's record should still be pending");
    if (xo_device_stream_create(dev, &s) != XO_OK) return die(14, "stream");
    if (xo_device_stream_wait_event(s, ev) != XO_OK) return die(15, "stream wait");
    xo_device_event_destroy(ev); /* the queued wait stays */
    /* Device to device on the stream: a copy into pageable host memory may block in CUDA until the stream gets
     * there (seen on an H200: the peer hung in it until the exporter's gate gave up), and "queued" must come first. */
    void *mine = NULL;
    if (xo_device_alloc(dev, n, &mine) != XO_OK) return die(6, "alloc");
    if (xo_device_memcpy(dev, mine, p, n, XO_MEMCPY_DEVICE_TO_DEVICE, s) != XO_OK) return die(7, "copy on the stream");
    printf("queued\n");
    fflush(stdout);
    if (xo_device_stream_synchronize(s) != XO_OK) return die(16, "stream synchronize");
    unsigned char *buf = malloc(n);
    if (!buf) return 6;
    if (xo_device_memcpy(dev, buf, mine, n, XO_MEMCPY_DEVICE_TO_HOST, NULL) != XO_OK) return die(7, "copy out");
    xo_device_free(dev, mine);
    for (size_t i = 0; i < n; i++)
        if (buf[i] != (unsigned char)expect) {
            fprintf(stderr, "ipc_peer: byte %zu is %u, expected %d: the copy did not wait for the event\n", i, buf[i],
                    expect);
            return 8;
        }
    if (xo_device_ipc_import_event(dev, &eh, &ev) != XO_OK) return die(17, "import event again");
    if (xo_device_event_synchronize(ev) != XO_OK || xo_device_event_query(ev) != XO_OK) return die(18, "completed");
    if (xo_device_event_record(ev, s) != XO_EINVAL) return die(19, "recording an imported event should fail");
    xo_device_event_destroy(ev);
    xo_device_stream_destroy(s);
    free(buf);
    if (xo_device_ipc_close(dev, p) != XO_OK) return die(10, "close");
    xo_device_close(dev);
    return 0;
}

static void block_forever(void *arg)
{
    (void)arg;
    for (;;) pause();
}

static int hold_event_mode(char **argv)
{
    xo_device_t *dev = open_device(argv[2]);
    if (!dev) return die(4, "open");
    xo_device_stream_t *s = NULL;
    xo_device_event_t *ev = NULL;
    xo_device_ipc_handle_t h;
    if (xo_device_stream_create(dev, &s) != XO_OK || xo_device_event_create_ipc(dev, &ev) != XO_OK ||
        xo_device_launch_host(s, block_forever, NULL) != XO_OK || xo_device_event_record(ev, s) != XO_OK ||
        xo_device_ipc_export_event(ev, &h) != XO_OK)
        return die(20, "set up a pending event");
    for (size_t i = 0; i < sizeof h.bytes; i++) printf("%02x", h.bytes[i]);
    printf("\n");
    fflush(stdout);
    for (;;) pause();
}

int main(int argc, char **argv)
{
    if (argc == 7 && strcmp(argv[1], "event") == 0) return event_mode(argv);
    if (argc == 3 && strcmp(argv[1], "hold-event") == 0) return hold_event_mode(argv);
    if (argc != 6) {
        fprintf(stderr, "usage: %s backend handle-hex bytes expect write\n", argv[0]);
        return 2;
    }
    xo_device_ipc_handle_t h;
    if (strlen(argv[2]) != 2 * sizeof h.bytes) {
        fprintf(stderr, "ipc_peer: the handle must be %zu hex digits\n", 2 * sizeof h.bytes);
        return 2;
    }
    for (size_t i = 0; i < sizeof h.bytes; i++) {
        unsigned v;
        if (sscanf(argv[2] + 2 * i, "%2x", &v) != 1) return 2;
        h.bytes[i] = (unsigned char)v;
    }
    size_t n = strtoull(argv[3], NULL, 10);
    int expect = atoi(argv[4]), write = atoi(argv[5]);

    const xo_device_ops_t *be = xo_device_backend_find(argv[1]);
    if (!be) return die(3, "no such backend");
    xo_device_config_t cfg = {.capacity = 16u << 20};
    xo_device_t *dev = NULL;
    if (xo_device_open(be, 0, &cfg, &dev) != XO_OK) return die(4, "open");
    void *p = NULL;
    if (xo_device_ipc_import(dev, &h, &p) != XO_OK) return die(5, "import");
    unsigned char *buf = malloc(n);
    if (!buf) return 6;
    if (xo_device_memcpy(dev, buf, p, n, XO_MEMCPY_DEVICE_TO_HOST, NULL) != XO_OK) return die(7, "copy out");
    for (size_t i = 0; i < n; i++)
        if (buf[i] != (unsigned char)expect) {
            fprintf(stderr, "ipc_peer: byte %zu is %u, expected %d\n", i, buf[i], expect);
            return 8;
        }
    if (xo_device_memset(dev, p, write, n, NULL) != XO_OK) return die(9, "memset");
    if (xo_device_ipc_close(dev, p) != XO_OK) return die(10, "close");
    if (xo_device_ipc_close(dev, p) != XO_EINVAL) return die(11, "a second close should fail");
    free(buf);
    xo_device_close(dev);
    return 0;
}
