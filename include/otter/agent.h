/* Agent (Elixir 1.14's Agent): a gen_server that holds one state pointer and
 * runs the caller's functions on it, in the agent process. Functions run
 * there, so what they allocate with ot_alloc belongs to the agent. Arguments
 * and results are copied (arg_len, out_len bytes): a caller that gives up on a
 * timeout never has its memory written by a late function. */
#ifndef OTTER_AGENT_H
#define OTTER_AGENT_H

#include <otter/gen_server.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Agent.start_link/start: init(arg) runs in the agent and returns its state.
 * Results as ot_gen_server_start_link (init cannot stop or ignore). arg must
 * stay valid until the call returns. */
OT_API int ot_agent_start_link(void *(*init)(void *arg), void *arg, const ot_start_opts *o,
                               ot_pid *out);
OT_API int ot_agent_start(void *(*init)(void *arg), void *arg, const ot_start_opts *o, ot_pid *out);

/* Agent.get: fn(state, out) writes at most out_len bytes into a buffer that
 * is copied to out when the reply comes. Errors as ot_call. */
OT_API int ot_agent_get(ot_pid a, void (*fn)(const void *state, void *out), void *out,
                        size_t out_len, int64_t timeout_ms);
/* Agent.update: the state becomes fn(state, arg), arg a copy of arg_len bytes. */
OT_API int ot_agent_update(ot_pid a, void *(*fn)(void *state, void *arg), const void *arg,
                           size_t arg_len, int64_t timeout_ms);
/* Agent.get_and_update: the state becomes fn(state, arg, out); out as get. */
OT_API int ot_agent_get_and_update(ot_pid a, void *(*fn)(void *state, void *arg, void *out),
                                   const void *arg, size_t arg_len, void *out, size_t out_len,
                                   int64_t timeout_ms);
/* Agent.cast: update without waiting; 0 also when the agent is dead. */
OT_API int ot_agent_cast(ot_pid a, void *(*fn)(void *state, void *arg), const void *arg,
                         size_t arg_len);
/* Agent.stop: as ot_gen_server_stop. */
OT_API int ot_agent_stop(ot_pid a, ot_reason why, int64_t timeout_ms);

#ifdef __cplusplus
}
#endif
#endif
