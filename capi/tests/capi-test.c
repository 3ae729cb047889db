/*
 * capi-test.c: libcenalloc's C API as a C program uses it.
 *
 *   capi-test host    checks needing no device (run under valgrind on the build machine):
 *                     NULL, destroyed and made-up handles, bad fds and out-parameters
 *   capi-test guest   the host checks, then with the guest's vkms and vivid-000: a plan
 *                     choosing CMA, bad input (zero size, devices that cannot agree, a
 *                     plane or device of the wrong kind), fds and RSS flat over 10,000 cycles
 *
 * Every check prints "ok - what" or "not ok - what: why"; the exit status is the number of
 * failed checks (0: all passed).
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/videodev2.h>

#include <drm_fourcc.h>

#include <cenalloc/cenalloc.h>

static int failed;

static void check(bool ok, const char *what, const char *detail)
{
    if (ok)
        printf("ok - %s\n", what);
    else {
        printf("not ok - %s: %s\n", what, detail ? detail : "");
        failed++;
    }
}

/* The call returned `code` and the last error mentions `needle`. */
static void check_error(int got, int code, const char *needle, const char *what)
{
    const char *msg = cenalloc_last_error();
    char detail[1024];
    snprintf(detail, sizeof detail, "returned %d (want %d), last error \"%s\" (want \"%s\")",
             got, code, msg ? msg : "(null)", needle);
    check(got == code && msg && strstr(msg, needle), what, detail);
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n - 1; /* the directory's own fd */
}

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kib = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kib = strtol(line + 6, NULL, 10);
    if (f)
        fclose(f);
    return kib;
}

static void host_checks(void)
{
    int fds = count_fds();
    cenalloc_allocator *alloc = NULL;
    cenalloc_device *dev = NULL;
    cenalloc_plan *plan = NULL;
    cenalloc_buffer *buf = NULL;

    check(strlen(cenalloc_version()) > 0, "cenalloc_version", NULL);
    check(cenalloc_allocator_create(&alloc) == 0 && alloc, "allocator_create", NULL);
    check_error(cenalloc_allocator_create(NULL), -EINVAL, "out is NULL",
                "allocator_create(NULL)");

    check_error(cenalloc_allocator_destroy(NULL), -EINVAL, "NULL", "destroy(NULL)");
    check_error(cenalloc_buffer_destroy((cenalloc_buffer *)alloc), -EINVAL,
                "not a live cenalloc_buffer", "an allocator handle used as a buffer");
    check_error(cenalloc_buffer_destroy((cenalloc_buffer *)(uintptr_t)0xdeadbeef), -EINVAL,
                "not a live cenalloc_buffer", "a made-up buffer handle");
    check(cenalloc_buffer_width(NULL) == 0, "buffer_width(NULL) is 0", NULL);
    check(cenalloc_plan_reasons(NULL) == NULL, "plan_reasons(NULL) is NULL", NULL);
    check_error(cenalloc_buffer_fd(NULL, 0), -EINVAL, "NULL", "buffer_fd(NULL)");

    check_error(cenalloc_device_open_drm(NULL, CENALLOC_USAGE_SCANOUT, &dev), -EINVAL,
                "name is NULL", "open_drm(NULL name)");
    check_error(cenalloc_device_open_drm("no-such-display", CENALLOC_USAGE_SCANOUT, &dev),
                -ENODEV, "no-such-display", "open_drm of a name that names nothing");
    check_error(cenalloc_device_open_v4l2("no-such-camera", V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                          CENALLOC_USAGE_CAMERA_WRITE, &dev),
                -ENODEV, "no V4L2 node named no-such-camera",
                "open_v4l2 of a name that names nothing");
    check_error(cenalloc_device_from_drm_fd(-1, CENALLOC_USAGE_SCANOUT, &dev), -EBADF,
                "fd -1", "from_drm_fd(-1)");
    int closed = open("/dev/null", O_RDONLY);
    close(closed);
    check_error(cenalloc_device_from_drm_fd(closed, CENALLOC_USAGE_SCANOUT, &dev), -EBADF,
                "fd", "from_drm_fd of a closed fd");
    int null_fd = open("/dev/null", O_RDWR);
    check_error(cenalloc_device_from_drm_fd(null_fd, CENALLOC_USAGE_SCANOUT, &dev), -ENODEV,
                "not a DRM device", "from_drm_fd of /dev/null");
    check_error(cenalloc_device_from_v4l2_fd(null_fd, V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                             CENALLOC_USAGE_CAMERA_WRITE, &dev),
                -ENOTTY, "VIDIOC_QUERYCAP", "from_v4l2_fd of /dev/null");
    check_error(cenalloc_device_from_v4l2_fd(null_fd, 42, CENALLOC_USAGE_CAMERA_WRITE, &dev),
                -EINVAL, "buffer type 42", "a buffer type that is not one");
    check_error(cenalloc_device_from_drm_fd(null_fd, 1u << 30, &dev), -EINVAL,
                "unknown bits", "usage with unknown bits");
    close(null_fd);

    check_error(cenalloc_plan_create(alloc, NULL, 1, 64, 64, DRM_FORMAT_XRGB8888, &plan),
                -EINVAL, "devices is NULL", "plan_create(devices NULL, count 1)");
    check_error(cenalloc_plan_create(alloc, NULL, 0, 64, 64, 0x20202020, &plan), -EINVAL,
                "unknown fourcc", "plan_create with an unknown fourcc");
    check_error(cenalloc_plan_create(alloc, NULL, 0, 0, 64, DRM_FORMAT_XRGB8888, &plan),
                -EINVAL, "invalid request", "plan_create with zero width");
    check_error(cenalloc_plan_create(NULL, NULL, 0, 64, 64, DRM_FORMAT_XRGB8888, &plan),
                -EINVAL, "cenalloc_allocator handle is NULL", "plan_create(NULL allocator)");
    check_error(cenalloc_plan_create(alloc, NULL, 0, 64, 64, DRM_FORMAT_XRGB8888, NULL),
                -EINVAL, "out is NULL", "plan_create(out NULL)");
    check_error(cenalloc_buffer_allocate(NULL, &buf), -EINVAL, "NULL",
                "buffer_allocate(NULL plan)");
    check_error(cenalloc_v4l2_dequeue(NULL, 0, NULL, NULL), -EINVAL, "index is NULL",
                "v4l2_dequeue(index NULL)");

    check(cenalloc_allocator_destroy(alloc) == 0, "allocator_destroy", NULL);
    check_error(cenalloc_allocator_destroy(alloc), -EINVAL, "not a live", "double destroy");

    char detail[64];
    snprintf(detail, sizeof detail, "%d fds before, %d after", fds, count_fds());
    check(count_fds() == fds, "no fd leaked by the bad calls", detail);
}

static void guest_checks(void)
{
    cenalloc_allocator *alloc;
    cenalloc_device *display, *camera;
    cenalloc_plan *plan;
    cenalloc_buffer *buf;
    int ret;

    check(cenalloc_allocator_create(&alloc) == 0, "allocator_create", NULL);
    ret = cenalloc_device_open_drm("vkms", CENALLOC_USAGE_SCANOUT, &display);
    check(ret == 0, "open vkms", cenalloc_last_error());
    ret = cenalloc_device_open_v4l2("vivid-000", V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                    CENALLOC_USAGE_CAMERA_WRITE, &camera);
    check(ret == 0, "open vivid-000", cenalloc_last_error());
    if (failed)
        return;
    cenalloc_device *both[] = {camera, display};
    ret = cenalloc_plan_create(alloc, both, 2, 640, 480, DRM_FORMAT_XRGB8888, &plan);
    check(ret == 0, "plan for vkms + vivid-000", cenalloc_last_error());
    if (ret != 0)
        return;
    check(strcmp(cenalloc_plan_source(plan), "reserved") == 0,
          "the plan chose the CMA heap (reserved)", cenalloc_plan_source(plan));
    check(strstr(cenalloc_plan_reasons(plan), "contiguous") != NULL,
          "the reasons say why (contiguous)", cenalloc_plan_reasons(plan));
    ret = cenalloc_buffer_allocate(plan, &buf);
    check(ret == 0, "allocate", cenalloc_last_error());
    if (ret == 0) {
        uint32_t fb = 0;
        check(cenalloc_buffer_fd(buf, 0) >= 0, "buffer fd", cenalloc_last_error());
        check(cenalloc_buffer_stride(buf, 0) >= 640 * 4, "stride", NULL);
        check(cenalloc_buffer_size(buf) == cenalloc_plan_size(plan), "size", NULL);
        check(cenalloc_buffer_modifier(buf) == DRM_FORMAT_MOD_LINEAR, "modifier linear",
              NULL);
        check(cenalloc_buffer_format(buf) == DRM_FORMAT_XRGB8888, "format", NULL);
        check(cenalloc_buffer_framebuffer(buf, display, &fb) == 0 && fb != 0,
              "framebuffer id", cenalloc_last_error());
        check_error(cenalloc_buffer_framebuffer(buf, camera, &fb), -EINVAL,
                    "not a DRM device", "framebuffer of a V4L2 device");
        check_error(cenalloc_buffer_stride(buf, 7) == 0 ? -EINVAL : 0, -EINVAL, "plane 7",
                    "a plane the buffer does not have");
        void *data;
        size_t len;
        ret = cenalloc_buffer_map(buf, CENALLOC_MAP_READ_WRITE, &data, &len);
        check(ret == 0 && len == cenalloc_buffer_size(buf), "map", cenalloc_last_error());
        if (ret == 0) {
            memset(data, 0x5a, len);
            check_error(cenalloc_buffer_map(buf, CENALLOC_MAP_READ, &data, &len), -EBUSY,
                        "already mapped", "a second map");
            check(cenalloc_buffer_unmap(buf) == 0, "unmap", cenalloc_last_error());
        }
        check(cenalloc_buffer_destroy(buf) == 0, "destroy buffer", NULL);
    }

    /* vkms cannot scan out 8-bit grey: the devices cannot agree. */
    cenalloc_plan *grey;
    check_error(cenalloc_plan_create(alloc, both, 2, 640, 480, DRM_FORMAT_R8, &grey), -ENOTSUP,
                "vkms", "devices that cannot agree (R8 on vkms)");
    check_error(cenalloc_plan_create(alloc, both, 2, 0, 480, DRM_FORMAT_XRGB8888, &grey),
                -EINVAL, "invalid request", "zero width with devices");

    /* 10,000 allocate/free cycles: fds and RSS flat. The first cycles warm the caches. */
    for (int i = 0; i < 100; i++) {
        if (cenalloc_buffer_allocate(plan, &buf) == 0)
            cenalloc_buffer_destroy(buf);
    }
    int fds = count_fds();
    long rss = rss_kib();
    int errors = 0;
    for (int i = 0; i < 10000; i++) {
        if (cenalloc_buffer_allocate(plan, &buf) != 0) {
            errors++;
            continue;
        }
        cenalloc_buffer_destroy(buf);
    }
    int fds_after = count_fds();
    long rss_after = rss_kib();
    char detail[256];
    snprintf(detail, sizeof detail,
             "errors %d; fds %d -> %d; RSS %ld -> %ld KiB", errors, fds, fds_after, rss,
             rss_after);
    printf("10000 cycles: %s\n", detail);
    check(errors == 0 && fds_after == fds, "10,000 allocate/free cycles: no error, fds flat",
          detail);
    check(rss_after - rss < 1024, "10,000 allocate/free cycles: RSS grew by less than 1 MiB",
          detail);

    cenalloc_plan_destroy(plan);
    cenalloc_device_destroy(camera);
    cenalloc_device_destroy(display);
    cenalloc_allocator_destroy(alloc);
}

int main(int argc, char **argv)
{
    if (argc != 2 || (strcmp(argv[1], "host") != 0 && strcmp(argv[1], "guest") != 0)) {
        fprintf(stderr, "usage: capi-test host|guest\n");
        return 2;
    }
    /* The device-free checks hold in the guest too, where devices do exist. */
    host_checks();
    if (strcmp(argv[1], "guest") == 0)
        guest_checks();
    printf("%s: %d failed\n", argv[1], failed);
    return failed;
}
