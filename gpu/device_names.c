/* Helpers the device registry and every backend share: a device's name for error texts and the CPUs near a device
 * (sysfs). Compiled into the core and into the cuda plugin (gpu/CMakeLists.txt), which links nothing of the core:
 * they hold no state, so two copies behave as one. */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "gpu/device.h"

const char *xo__device_label(const xo_device_t *dev)
{
    static _Thread_local char buf[48];
    snprintf(buf, sizeof buf, "%s:%d", dev->ops->name, dev->index);
    return buf;
}

bool xo__read_cpulist(const char *path, char *buf, size_t len)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f) return false;
    bool ok = fgets(buf, (int)len, f) != NULL;
    fclose(f);
    if (!ok) {
        buf[0] = '\0';
        return false;
    }
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' ')) buf[--n] = '\0';
    return n > 0;
}
