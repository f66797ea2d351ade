/* The other process of the IPC tests (tests/gpu/device_test.cc): a fresh program (fork + exec, so that it inherits
 * neither the parent's mappings nor a CUDA context) that imports a buffer by handle, checks what the parent wrote,
 * and writes its own byte for the parent to see.
 *
 *   xo_gpu_ipc_peer <backend> <handle as hex> <bytes> <expected byte> <byte to write>
 *
 * Exit status: 0 when everything held; otherwise a distinct code per step, with the reason on stderr. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xoscar/gpu.h"

static int die(int code, const char *what)
{
    fprintf(stderr, "ipc_peer: %s: %s\n", what, xo_last_error());
    return code;
}

int main(int argc, char **argv)
{
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
