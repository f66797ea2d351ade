/* Modules the loader must refuse, one library per case, chosen by a compile definition:
 *   XO_BAD_ABI        a descriptor with abi_version 2 (a future module on this runtime)
 *   XO_BAD_NOSYM      no xo_module_v1 symbol at all
 *   XO_BAD_CONFLICT   a class named "Counter", like the one of libxo_test_actors.so but another struct */
#include "xoscar/module.h"

static xo_status_t nop(xo_ctx_t *ctx, void *state, const msgpack_object *args, msgpack_packer *out)
{
    return XO_OK;
}

static const xo_method_t methods[] = {{.name = "nop", .fn = nop}};

static const xo_actor_class_t other_counter = {
    .abi_version = XO_CLASS_ABI_V1,
    .name = "Counter",
    .methods = methods,
    .n_methods = 1,
};

#if defined(XO_BAD_ABI)
/* What a v2 module looks like to a v1 loader: abi_version first, then fields it does not know. */
typedef struct {
    uint32_t abi_version;
    const char *name;
    const xo_actor_class_t *const *classes;
    size_t n_classes;
    uint64_t field_mask;
} module_v2_t;
static const xo_actor_class_t *const classes[] = {&other_counter};
XO_API const module_v2_t xo_module_v1 = {
    .abi_version = 2, .name = "future", .classes = classes, .n_classes = 1, .field_mask = 0};
#elif defined(XO_BAD_NOSYM)
XO_API const xo_actor_class_t *xo_not_a_module(void) { return &other_counter; }
#elif defined(XO_BAD_CONFLICT)
XO_MODULE_DEFINE("conflict", &other_counter);
#else
#error "define one of XO_BAD_ABI, XO_BAD_NOSYM, XO_BAD_CONFLICT"
#endif
