#define _GNU_SOURCE
#include "CFileSystem.h"
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/fanotify.h>
#include <sys/statfs.h>

/* Entries appearing, going or moving change their directory's listing; the rest change an
   inode's attributes or data. FAN_ONDIR: directories too. */
static const uint64_t omx_entry_events = FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO;
static const uint64_t omx_watched_events = FAN_CREATE | FAN_DELETE | FAN_MOVED_FROM | FAN_MOVED_TO | FAN_MODIFY | FAN_ATTRIB | FAN_ONDIR;

int omx_fanotify_open(void) {
    int fd = fanotify_init(FAN_CLASS_NOTIF | FAN_REPORT_DFID_NAME | FAN_CLOEXEC, O_RDONLY | O_LARGEFILE);
    return fd < 0 ? -errno : fd;
}

int omx_fanotify_watch(int fanotify_fd, const char *path, int32_t fsid[2]) {
    struct statfs info;
    if (statfs(path, &info) != 0) return -errno;
    if (fanotify_mark(fanotify_fd, FAN_MARK_ADD | FAN_MARK_FILESYSTEM, omx_watched_events, AT_FDCWD, path) != 0) return -errno;
    _Static_assert(sizeof info.f_fsid == 2 * sizeof(int32_t), "fsid is two 32-bit words");
    memcpy(fsid, &info.f_fsid, sizeof info.f_fsid);
    return 0;
}

int omx_fanotify_next(const char *buffer, size_t length, size_t *offset, omx_fanotify_event *event) {
    if (*offset + sizeof(struct fanotify_event_metadata) > length) return 0;
    const struct fanotify_event_metadata *metadata = (const void *)(buffer + *offset);
    if (metadata->event_len < sizeof *metadata || *offset + metadata->event_len > length) return 0;
    *offset += metadata->event_len;
    memset(event, 0, sizeof *event);
    event->pid = metadata->pid;
    event->overflow = (metadata->mask & FAN_Q_OVERFLOW) != 0;
    event->entry = (metadata->mask & omx_entry_events) != 0;
    event->directory = (metadata->mask & FAN_ONDIR) != 0;
    event->name = "";
    const char *info = (const char *)(metadata + 1);
    const char *end = (const char *)metadata + metadata->event_len;
    while (info + sizeof(struct fanotify_event_info_header) <= end) {
        const struct fanotify_event_info_fid *fid = (const void *)info;
        if (fid->hdr.len == 0 || info + fid->hdr.len > end) break;
        if (fid->hdr.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME || fid->hdr.info_type == FAN_EVENT_INFO_TYPE_DFID) {
            const struct file_handle *handle = (const void *)fid->handle;
            memcpy(event->fsid, &fid->fsid, sizeof event->fsid);
            event->handle = handle;
            if (fid->hdr.info_type == FAN_EVENT_INFO_TYPE_DFID_NAME) event->name = (const char *)handle->f_handle + handle->handle_bytes;
        }
        info += fid->hdr.len;
    }
    return 1;
}

int omx_fanotify_open_directory(int mount_fd, const void *handle) {
    return open_by_handle_at(mount_fd, (struct file_handle *)handle, O_PATH | O_CLOEXEC);
}
