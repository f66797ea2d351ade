#include "cluster/cli/json_msgpack.h"

#include <jansson.h>
#include <string.h>

#include "base/error.h"

static int pack_json(msgpack_packer *pk, const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_NULL: return msgpack_pack_nil(pk);
    case JSON_TRUE: return msgpack_pack_true(pk);
    case JSON_FALSE: return msgpack_pack_false(pk);
    case JSON_INTEGER: return msgpack_pack_int64(pk, (int64_t)json_integer_value(j));
    case JSON_REAL: return msgpack_pack_double(pk, json_real_value(j));
    case JSON_STRING: return msgpack_pack_str_with_body(pk, json_string_value(j), json_string_length(j));
    case JSON_ARRAY: {
        size_t n = json_array_size(j);
        int rc = msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n && !rc; i++) rc = pack_json(pk, json_array_get(j, i));
        return rc;
    }
    case JSON_OBJECT: {
        int rc = msgpack_pack_map(pk, json_object_size(j));
        const char *key;
        json_t *val;
        json_object_foreach((json_t *)j, key, val)
        {
            if (!rc) rc = msgpack_pack_str_with_body(pk, key, strlen(key));
            if (!rc) rc = pack_json(pk, val);
        }
        return rc;
    }
    }
    return -1;
}

xo_status_t xo_cli_json_to_args(const char *text, xo_args_t **args_p)
{
    json_error_t err;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &err);
    if (!j) return xo__error_set(XO_EINVAL, "arguments: %s at line %d column %d", err.text, err.line, err.column);
    if (!json_is_array(j)) {
        json_decref(j);
        return xo__error_set(XO_EINVAL, "arguments must be a JSON array, e.g. '[1, \"two\"]'");
    }
    xo_args_t *args = xo_args_new((uint32_t)json_array_size(j));
    int rc = args ? 0 : -1;
    for (size_t i = 0; i < json_array_size(j) && !rc; i++) rc = pack_json(xo_args_packer(args), json_array_get(j, i));
    json_decref(j);
    if (rc) {
        xo_args_free(args);
        return xo__error_set(XO_ENOMEM, "out of memory encoding the arguments");
    }
    *args_p = args;
    return XO_OK;
}

static void print_string(FILE *out, const char *p, size_t n)
{
    json_t *s = json_stringn(p, n);
    char *text = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    fputs(text ? text : "\"?\"", out);
    free(text);
    json_decref(s);
}

void xo_cli_print_json(FILE *out, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: fputs("null", out); break;
    case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", out); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(out, "%llu", (unsigned long long)o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(out, "%lld", (long long)o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: fprintf(out, "%.17g", o->via.f64); break;
    case MSGPACK_OBJECT_STR: print_string(out, o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_BIN: fprintf(out, "{\"$bin\": %u}", o->via.bin.size); break;
    case MSGPACK_OBJECT_EXT: fprintf(out, "{\"$ext\": %d}", o->via.ext.type); break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', out);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i) fputs(", ", out);
            xo_cli_print_json(out, &o->via.array.ptr[i]);
        }
        fputc(']', out);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', out);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i) fputs(", ", out);
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type == MSGPACK_OBJECT_STR) {
                print_string(out, k->via.str.ptr, k->via.str.size);
            } else { /* JSON keys are strings: print the key's JSON as one */
                char *buf = NULL;
                size_t len = 0;
                FILE *m = open_memstream(&buf, &len);
                xo_cli_print_json(m, k);
                fclose(m);
                print_string(out, buf, len);
                free(buf);
            }
            fputs(": ", out);
            xo_cli_print_json(out, &o->via.map.ptr[i].val);
        }
        fputc('}', out);
        break;
    }
}
