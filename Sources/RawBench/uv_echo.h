#ifndef OMX_RAWBENCH_UV_ECHO_H
#define OMX_RAWBENCH_UV_ECHO_H

/* Serves the echo on one bare libuv loop until killed; prints "ready" once both listen, then
   per closed connection "served FRAMES cpu_ns NS user_ns NS" (the loop thread's CPU time while
   it was open). With `key_path` (a cluster key file) frames are OMX envelopes, answered as an
   OMX service answers Bench.Echo (signed on TCP): the protocol floor. */
int serve_uv_echo(const char *tcp_host, int tcp_port, const char *unix_path, const char *key_path);

#endif
