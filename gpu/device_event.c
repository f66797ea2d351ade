/* Events of the device interface (include/xoscar/gpu.h): the common checks, and events shared with other processes.
 *
 * An exportable event (xo_device_event_create_ipc) keeps its handle and sits in its device's list, so that an import
 * of it by this same process finds it and shares its backend object instead of opening the handle: CUDA refuses to
 * open an event handle in the process that exported it, and the runtime does exactly that when a pool's device
 * buffer service waits for a buffer it lent to another host. Sharing needs references: the creator's and one per
 * such import; the last one destroys the backend object. */
#include <string.h>
#include <stdlib.h>

#include "gpu/device.h"
#include "base/error.h"

static xo_status_t event_new(xo_device_t *dev, xo__event_kind_t kind, xo_device_event_t **event_p)
{
    xo_device_event_t *e = calloc(1, sizeof *e);
    if (!e) return xo__error_set(XO_ENOMEM, "out of memory");
    e->dev = dev;
    e->kind = kind;
    e->refs = 1;
    *event_p = e;
    return XO_OK;
}

xo_status_t xo_device_event_create(xo_device_t *dev, xo_device_event_t **event_p)
{
    if (!dev || !event_p) return xo__error_set(XO_EINVAL, "xo_device_event_create: NULL argument");
    xo_device_event_t *e;
    xo_status_t st = event_new(dev, XO_EVENT_LOCAL, &e);
    if (st != XO_OK) return st;
    st = dev->ops->event_create(dev, &e->impl);
    if (st != XO_OK) {
        free(e);
        return st;
    }
    *event_p = e;
    return XO_OK;
}

xo_status_t xo_device_event_create_ipc(xo_device_t *dev, xo_device_event_t **event_p)
{
    if (!dev || !event_p) return xo__error_set(XO_EINVAL, "xo_device_event_create_ipc: NULL argument");
    if (!dev->ops->event_create_ipc)
        return xo__error_set(XO_ENOTSUP, "device %s: backend %s cannot share events", xo__device_label(dev),
                            dev->ops->name);
    xo_device_event_t *e;
    xo_status_t st = event_new(dev, XO_EVENT_IPC, &e);
    if (st != XO_OK) return st;
    xo__ipc_header_t hdr = {.magic = XO_DEVICE_IPC_EVENT_MAGIC, .version = XO_DEVICE_IPC_VERSION};
    memcpy(hdr.backend, dev->ops->name, strlen(dev->ops->name)); /* fits: device.c's check_backends */
    size_t len = 0;
    st = dev->ops->event_create_ipc(dev, &e->impl, e->handle.bytes + sizeof hdr, &len);
    if (st != XO_OK) {
        free(e);
        return st;
    }
    hdr.payload_len = (uint16_t)len;
    memcpy(e->handle.bytes, &hdr, sizeof hdr);
    pthread_mutex_lock(&dev->lock);
    e->next_ipc = dev->ipc_events;
    dev->ipc_events = e;
    pthread_mutex_unlock(&dev->lock);
    *event_p = e;
    return XO_OK;
}

/* Drops one reference of an exportable event (dev->lock held); true when it was the last. */
static bool ipc_unref_locked(xo_device_event_t *e)
{
    if (--e->refs > 0) return false;
    for (xo_device_event_t **pp = &e->dev->ipc_events; *pp; pp = &(*pp)->next_ipc) {
        if (*pp == e) {
            *pp = e->next_ipc;
            break;
        }
    }
    return true;
}

void xo_device_event_destroy(xo_device_event_t *event)
{
    if (!event) return;
    xo_device_t *dev = event->dev;
    xo_device_event_t *owner = event->origin ? event->origin : event;
    if (owner->kind == XO_EVENT_IPC) {
        pthread_mutex_lock(&dev->lock);
        bool last = ipc_unref_locked(owner);
        pthread_mutex_unlock(&dev->lock);
        if (event != owner) free(event);
        if (!last) return;
        event = owner;
    }
    dev->ops->event_destroy(dev, event->impl);
    free(event);
}

xo_status_t xo_device_event_record(xo_device_event_t *event, xo_device_stream_t *stream)
{
    if (!event || !stream) return xo__error_set(XO_EINVAL, "xo_device_event_record: NULL argument");
    if (stream->dev != event->dev)
        return xo__error_set(XO_EINVAL, "xo_device_event_record: the stream belongs to another device");
    if (event->kind == XO_EVENT_IMPORTED)
        return xo__error_set(XO_EINVAL, "xo_device_event_record: an imported event is for waiting only (its exporter "
                                       "records it)");
    return event->dev->ops->event_record(event->dev, event->impl, stream->impl);
}

xo_status_t xo_device_event_synchronize(xo_device_event_t *event)
{
    if (!event) return xo__error_set(XO_EINVAL, "xo_device_event_synchronize: NULL event");
    return event->dev->ops->event_synchronize(event->dev, event->impl);
}

xo_status_t xo_device_event_query(xo_device_event_t *event)
{
    if (!event) return xo__error_set(XO_EINVAL, "xo_device_event_query: NULL event");
    return event->dev->ops->event_query(event->dev, event->impl);
}

xo_status_t xo_device_ipc_export_event(xo_device_event_t *event, xo_device_ipc_handle_t *handle_p)
{
    if (!event || !handle_p) return xo__error_set(XO_EINVAL, "xo_device_ipc_export_event: NULL argument");
    if (event->kind != XO_EVENT_IPC)
        return xo__error_set(XO_EINVAL, "xo_device_ipc_export_event: the event was not made by "
                                       "xo_device_event_create_ipc%s",
                            event->kind == XO_EVENT_IMPORTED ? " (an imported event cannot be exported again)" : "");
    *handle_p = event->handle;
    return XO_OK;
}

xo_status_t xo_device_ipc_import_event(xo_device_t *dev, const xo_device_ipc_handle_t *handle,
                                       xo_device_event_t **event_p)
{
    if (!dev || !handle || !event_p) return xo__error_set(XO_EINVAL, "xo_device_ipc_import_event: NULL argument");
    xo__ipc_header_t hdr;
    memcpy(&hdr, handle->bytes, sizeof hdr);
    if (hdr.magic != XO_DEVICE_IPC_EVENT_MAGIC || hdr.version != XO_DEVICE_IPC_VERSION ||
        hdr.payload_len > XO_DEVICE_IPC_PAYLOAD_MAX || memchr(hdr.backend, '\0', sizeof hdr.backend) == NULL)
        return xo__error_set(XO_EINVAL, "device %s: not an event IPC handle (bad magic or version%s)",
                            xo__device_label(dev),
                            hdr.magic == XO_DEVICE_IPC_MAGIC ? ": it is a memory handle" : "");
    if (strcmp(hdr.backend, dev->ops->name) != 0)
        return xo__error_set(XO_EINVAL, "device %s: the event handle was exported by backend \"%s\", not \"%s\"",
                            xo__device_label(dev), hdr.backend, dev->ops->name);
    xo_device_event_t *e;
    xo_status_t st = event_new(dev, XO_EVENT_IMPORTED, &e);
    if (st != XO_OK) return st;
    /* This process's own event: share it. */
    pthread_mutex_lock(&dev->lock);
    for (xo_device_event_t *o = dev->ipc_events; o; o = o->next_ipc) {
        if (memcmp(o->handle.bytes, handle->bytes, sizeof handle->bytes) == 0) {
            o->refs++;
            e->origin = o;
            e->impl = o->impl;
            break;
        }
    }
    pthread_mutex_unlock(&dev->lock);
    if (e->origin) {
        *event_p = e;
        return XO_OK;
    }
    if (!dev->ops->event_ipc_import) {
        free(e);
        return xo__error_set(XO_ENOTSUP, "device %s: backend %s cannot share events", xo__device_label(dev),
                            dev->ops->name);
    }
    st = dev->ops->event_ipc_import(dev, handle->bytes + sizeof hdr, hdr.payload_len, &e->impl);
    if (st != XO_OK) {
        free(e);
        return st;
    }
    *event_p = e;
    return XO_OK;
}
