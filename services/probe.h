/* xo.probe, the actor `xoscar tune` measures pairs of pools with (services/probe.c). */
#ifndef XO_SERVICES_PROBE_H
#define XO_SERVICES_PROBE_H

#include "xoscar/xoscar.h"

#define XO_PROBE_CLASS "xo.probe"
#define XO_PROBE_UID "xo.probe"

/* Registered in every pool by xo_pool_start. */
extern const xo_actor_class_t xo_probe_class;

#endif
