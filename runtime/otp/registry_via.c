/* The registry as a via module for gen_server and Agent names (Elixir's
 * {:via, Registry, {registry, key}}): ot_registry_via's callbacks take the
 * registry handle's value as their `reg` pointer (OT_REG_VIA). As in Elixir,
 * register_name registers the calling process only (the runtime calls it
 * from the new server), with no value, in a unique registry; the name goes
 * when the server exits, as every entry does. */
#include "registry_int.h"

#include <stdint.h>

_Static_assert(sizeof(void *) >= sizeof(uint64_t), "a handle must fit the via pointer");

static ot_reg via_reg(void *reg) { return (ot_reg){(uint64_t)(uintptr_t)reg}; }

static int via_register(void *reg, const void *key, size_t klen, ot_pid pid)
{
    ot_reg r = via_reg(reg);
    struct reg_view v;
    int rc = reg_open(r, &v);
    if (rc)
        return rc;
    /* Elixir raises for a duplicate registry and for a pid other than self(). */
    if (v.kind != OT_UNIQUE || pid.v != ot_self().v || !pid.v)
        return -EINVAL;
    return ot_registry_register(r, key, klen, NULL, 0, NULL);
}

static int via_unregister(void *reg, const void *key, size_t klen)
{
    return ot_registry_unregister(via_reg(reg), key, klen);
}

static ot_pid via_whereis(void *reg, const void *key, size_t klen)
{
    return ot_registry_whereis_name(via_reg(reg), key, klen);
}

OT_API const ot_via_ops ot_registry_via = {
    .module = "registry",
    .register_name = via_register,
    .unregister_name = via_unregister,
    .whereis_name = via_whereis,
};
