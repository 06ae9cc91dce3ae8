#ifndef CLIBUV_H
#define CLIBUV_H

/* The only door from Swift to libuv: Swift code imports CLibUV and never <uv.h> itself. */
#include <uv.h>
#include <stdint.h>
#include <sys/types.h>

/* Writes the IPv4 address a TCP handle is bound to into buf and its port into *port; 0 or a libuv error. */
int CLibUV_tcp_local_ip(const uv_tcp_t *tcp, char *buf, size_t len, int *port);

/* Reads the kernel's SO_PEERCRED of a connected Unix-socket handle; 0 or a negative errno. */
int CLibUV_pipe_peer_credentials(const uv_pipe_t *pipe, pid_t *pid, uid_t *uid, gid_t *gid);

/* Reads the kernel's SO_PEERGROUPS (the supplementary groups the peer had when it connected) of a
   connected Unix-socket handle into groups: their count, or a negative errno; -ERANGE when more
   than capacity, with *needed set to their count. */
int CLibUV_pipe_peer_groups(const uv_pipe_t *pipe, gid_t *groups, int capacity, int *needed);

/* Binds a TCP handle to an IPv4 address and port (port 0: any); 0 or a libuv error. */
int CLibUV_tcp_bind4(uv_tcp_t *tcp, const char *ip, int port);

/* Starts connecting a TCP handle to an IPv4 address and port; 0 or a libuv error. */
int CLibUV_tcp_connect4(uv_connect_t *req, uv_tcp_t *tcp, const char *ip, int port, uv_connect_cb cb);

/* Names the calling thread (15 characters at most), as top -H and perf show it. */
void CLibUV_name_this_thread(const char *name);

/* Gives the calling thread the nice value of the process's main thread (on Linux each thread has
   its own, and threads made by Swift's pool take theirs from their tasks' priorities). Best
   effort: a process that may not raise a thread's priority leaves it as it is. */
void CLibUV_take_process_nice(void);

#endif
