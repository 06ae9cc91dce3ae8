#include "CMigrator.h"
#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int omx_exec_events_open(void) {
    int fd = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
    if (fd < 0) return -errno;
    struct sockaddr_nl address = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC};
    if (bind(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    struct __attribute__((packed)) {
        struct nlmsghdr header;
        struct cn_msg message;
        enum proc_cn_mcast_op operation;
    } listen;
    memset(&listen, 0, sizeof(listen));
    listen.header.nlmsg_len = sizeof(listen);
    listen.header.nlmsg_type = NLMSG_DONE;
    listen.message.id.idx = CN_IDX_PROC;
    listen.message.id.val = CN_VAL_PROC;
    listen.message.len = sizeof(enum proc_cn_mcast_op);
    listen.operation = PROC_CN_MCAST_LISTEN;
    if (send(fd, &listen, sizeof(listen), 0) < 0) {
        int error = errno;
        close(fd);
        return -error;
    }
    return fd;
}

int omx_exec_events_next(int fd, int32_t *pids, int max) {
    char buffer[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
    ssize_t length = recv(fd, buffer, sizeof(buffer), 0);
    if (length < 0) return -errno;
    int count = 0;
    for (struct nlmsghdr *header = (struct nlmsghdr *)buffer; NLMSG_OK(header, (size_t)length);
         header = NLMSG_NEXT(header, length)) {
        if (header->nlmsg_type == NLMSG_ERROR || header->nlmsg_type == NLMSG_NOOP) continue;
        struct cn_msg *message = NLMSG_DATA(header);
        if (message->id.idx != CN_IDX_PROC || message->id.val != CN_VAL_PROC) continue;
        struct proc_event *event = (struct proc_event *)message->data;
        if (event->what == PROC_EVENT_EXEC && count < max) pids[count++] = event->event_data.exec.process_tgid;
    }
    return count;
}
