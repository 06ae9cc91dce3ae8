#define _GNU_SOURCE
#include "CLibUV.h"
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

int CLibUV_tcp_local_ip(const uv_tcp_t *tcp, char *buf, size_t len, int *port) {
    struct sockaddr_storage addr;
    int namelen = sizeof(addr);
    int rc = uv_tcp_getsockname(tcp, (struct sockaddr *)&addr, &namelen);
    if (rc != 0) return rc;
    if (addr.ss_family != AF_INET) return UV_EAFNOSUPPORT;
    *port = ntohs(((const struct sockaddr_in *)&addr)->sin_port);
    return uv_ip4_name((const struct sockaddr_in *)&addr, buf, len);
}

int CLibUV_pipe_peer_credentials(const uv_pipe_t *pipe, pid_t *pid, uid_t *uid, gid_t *gid) {
    uv_os_fd_t fd;
    int rc = uv_fileno((const uv_handle_t *)pipe, &fd);
    if (rc != 0) return rc;
    struct ucred cred;
    socklen_t size = sizeof(cred);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &size) != 0) return -errno;
    *pid = cred.pid;
    *uid = cred.uid;
    *gid = cred.gid;
    return 0;
}

int CLibUV_pipe_peer_groups(const uv_pipe_t *pipe, gid_t *groups, int capacity, int *needed) {
    uv_os_fd_t fd;
    int rc = uv_fileno((const uv_handle_t *)pipe, &fd);
    if (rc != 0) return rc;
    socklen_t size = (socklen_t)(capacity * sizeof(gid_t));
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &size) != 0) {
        if (errno == ERANGE) *needed = (int)(size / sizeof(gid_t));
        return -errno;
    }
    return (int)(size / sizeof(gid_t));
}

int CLibUV_tcp_bind4(uv_tcp_t *tcp, const char *ip, int port) {
    struct sockaddr_in addr;
    int rc = uv_ip4_addr(ip, port, &addr);
    if (rc != 0) return rc;
    return uv_tcp_bind(tcp, (const struct sockaddr *)&addr, 0);
}

int CLibUV_tcp_connect4(uv_connect_t *req, uv_tcp_t *tcp, const char *ip, int port, uv_connect_cb cb) {
    struct sockaddr_in addr;
    int rc = uv_ip4_addr(ip, port, &addr);
    if (rc != 0) return rc;
    return uv_tcp_connect(req, tcp, (const struct sockaddr *)&addr, cb);
}

void CLibUV_name_this_thread(const char *name) {
    pthread_setname_np(pthread_self(), name);
}

void CLibUV_take_process_nice(void) {
    errno = 0;
    int nice = getpriority(PRIO_PROCESS, (id_t)getpid());
    if (nice == -1 && errno != 0) return;
    setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), nice);
}
