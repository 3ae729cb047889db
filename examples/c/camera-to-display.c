/*
 * camera-to-display.c: a V4L2 camera's frames scanned out by a KMS display with no copy,
 * written against libcenalloc and libdrm only.
 *
 * cenalloc plans one buffer for the camera and the display together (a contiguous-only camera
 * gets the CMA heap, a scatter-gather one the system heap), allocates a pool of them imported
 * into both, and the loop hands each captured buffer's framebuffer to the display. With
 * --verify the display's writeback connector drives the CRTC instead, and every frame it read
 * back is compared bit-exact with the captured buffer.
 *
 *   cc camera-to-display.c $(pkg-config --cflags --libs cenalloc libdrm)
 *   ./a.out [--camera NAME] [--display NAME] [--frames N] [--verify]
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <linux/videodev2.h>

#include <drm_fourcc.h>
#include <xf86drm.h>
#include <xf86drmMode.h>

#include <cenalloc/cenalloc.h>

#define WIDTH 640
#define HEIGHT 480
#define BUFFERS 4

struct options {
    const char *camera;
    const char *display;
    unsigned frames;
    bool verify;
};

/* A CRTC, its primary plane and a connector driving it, with a mode of WIDTH x HEIGHT. */
struct output {
    int fd;
    uint32_t crtc, plane, connector;
    drmModeModeInfo mode;
    uint32_t mode_blob;
};

static int fail(const char *what, int code)
{
    fprintf(stderr, "camera-to-display: %s: %s (%s)\n", what, cenalloc_last_error(),
            strerror(-code));
    return 1;
}

static uint32_t property(int fd, uint32_t object, uint32_t type, const char *name)
{
    drmModeObjectProperties *props = drmModeObjectGetProperties(fd, object, type);
    uint32_t id = 0;
    for (uint32_t i = 0; props && i < props->count_props && !id; i++) {
        drmModePropertyRes *p = drmModeGetProperty(fd, props->props[i]);
        if (p && strcmp(p->name, name) == 0)
            id = p->prop_id;
        drmModeFreeProperty(p);
    }
    drmModeFreeObjectProperties(props);
    return id;
}

/* Finds a connector of the wanted kind (writeback or not) with a WIDTH x HEIGHT mode, a CRTC
 * it can use and that CRTC's primary plane. */
static int find_output(int fd, bool writeback, struct output *out)
{
    drmModeRes *res = drmModeGetResources(fd);
    drmModePlaneRes *planes = drmModeGetPlaneResources(fd);
    int found = -1;
    for (int c = 0; res && planes && c < res->count_connectors && found; c++) {
        drmModeConnector *conn = drmModeGetConnector(fd, res->connectors[c]);
        if (!conn)
            continue;
        bool is_wb = conn->connector_type == DRM_MODE_CONNECTOR_WRITEBACK;
        for (int m = 0; is_wb == writeback && m < conn->count_modes && found; m++) {
            if (conn->modes[m].hdisplay != WIDTH || conn->modes[m].vdisplay != HEIGHT)
                continue;
            for (int e = 0; e < conn->count_encoders && found; e++) {
                drmModeEncoder *enc = drmModeGetEncoder(fd, conn->encoders[e]);
                for (int k = 0; enc && k < res->count_crtcs && found; k++) {
                    if (!(enc->possible_crtcs & (1u << k)))
                        continue;
                    for (uint32_t p = 0; p < planes->count_planes && found; p++) {
                        drmModePlane *plane = drmModeGetPlane(fd, planes->planes[p]);
                        uint32_t type_prop = property(fd, planes->planes[p],
                                                      DRM_MODE_OBJECT_PLANE, "type");
                        drmModeObjectProperties *props = drmModeObjectGetProperties(
                            fd, planes->planes[p], DRM_MODE_OBJECT_PLANE);
                        bool primary = false;
                        for (uint32_t i = 0; props && i < props->count_props; i++)
                            if (props->props[i] == type_prop)
                                primary = props->prop_values[i] == DRM_PLANE_TYPE_PRIMARY;
                        drmModeFreeObjectProperties(props);
                        if (plane && primary && (plane->possible_crtcs & (1u << k))) {
                            out->fd = fd;
                            out->crtc = res->crtcs[k];
                            out->plane = plane->plane_id;
                            out->connector = conn->connector_id;
                            out->mode = conn->modes[m];
                            found = 0;
                        }
                        drmModeFreePlane(plane);
                    }
                }
                drmModeFreeEncoder(enc);
            }
        }
        drmModeFreeConnector(conn);
    }
    drmModeFreePlaneResources(planes);
    drmModeFreeResources(res);
    if (found == 0 && drmModeCreatePropertyBlob(fd, &out->mode, sizeof(out->mode),
                                                &out->mode_blob) != 0)
        found = -1;
    return found;
}

static void add(drmModeAtomicReq *req, int fd, uint32_t object, uint32_t type,
                const char *name, uint64_t value)
{
    drmModeAtomicAddProperty(req, object, property(fd, object, type, name), value);
}

/* Puts `fb` on the output's primary plane full-screen. */
static void add_plane(drmModeAtomicReq *req, const struct output *o, uint32_t fb)
{
    add(req, o->fd, o->plane, DRM_MODE_OBJECT_PLANE, "FB_ID", fb);
    add(req, o->fd, o->plane, DRM_MODE_OBJECT_PLANE, "CRTC_ID", o->crtc);
    add(req, o->fd, o->plane, DRM_MODE_OBJECT_PLANE, "SRC_X", 0);
    add(req, o->fd, o->plane, DRM_MODE_OBJECT_PLANE, "SRC_Y", 0);
    add(req, o->fd, o->plane, DRM_MODE_OBJECT_PLANE, "SRC_W", (uint64_t)WIDTH << 16);
    add(req, o->fd, o->plane, DRM_MODE_OBJECT_PLANE, "SRC_H", (uint64_t)HEIGHT << 16);
    add(req, o->fd, o->plane, DRM_MODE_OBJECT_PLANE, "CRTC_X", 0);
    add(req, o->fd, o->plane, DRM_MODE_OBJECT_PLANE, "CRTC_Y", 0);
    add(req, o->fd, o->plane, DRM_MODE_OBJECT_PLANE, "CRTC_W", WIDTH);
    add(req, o->fd, o->plane, DRM_MODE_OBJECT_PLANE, "CRTC_H", HEIGHT);
}

/* Detaches every other connector from the output's CRTC (vkms cannot drive its virtual and
 * its writeback connector from one CRTC at once). */
static void detach_others(drmModeAtomicReq *req, const struct output *o)
{
    drmModeRes *res = drmModeGetResources(o->fd);
    for (int c = 0; res && c < res->count_connectors; c++)
        if (res->connectors[c] != o->connector)
            add(req, o->fd, res->connectors[c], DRM_MODE_OBJECT_CONNECTOR, "CRTC_ID", 0);
    drmModeFreeResources(res);
}

/* Shows `fb`: the first call sets the mode; every call waits until the frame is on screen
 * (or, with a writeback target, until it was written back). */
static int show(const struct output *o, uint32_t fb, uint32_t writeback_fb, bool first)
{
    drmModeAtomicReq *req = drmModeAtomicAlloc();
    int fence = -1;
    uint32_t flags = 0;
    if (first) {
        detach_others(req, o);
        add(req, o->fd, o->crtc, DRM_MODE_OBJECT_CRTC, "MODE_ID", o->mode_blob);
        add(req, o->fd, o->crtc, DRM_MODE_OBJECT_CRTC, "ACTIVE", 1);
        add(req, o->fd, o->connector, DRM_MODE_OBJECT_CONNECTOR, "CRTC_ID", o->crtc);
        flags |= DRM_MODE_ATOMIC_ALLOW_MODESET;
    }
    add_plane(req, o, fb);
    if (writeback_fb) {
        add(req, o->fd, o->connector, DRM_MODE_OBJECT_CONNECTOR, "WRITEBACK_FB_ID",
            writeback_fb);
        add(req, o->fd, o->connector, DRM_MODE_OBJECT_CONNECTOR, "WRITEBACK_OUT_FENCE_PTR",
            (uint64_t)(uintptr_t)&fence);
    }
    int ret = drmModeAtomicCommit(o->fd, req, flags, NULL);
    drmModeAtomicFree(req);
    if (ret != 0)
        return -errno;
    if (fence >= 0) {
        struct pollfd p = {.fd = fence, .events = POLLIN};
        ret = poll(&p, 1, 10000) == 1 ? 0 : -ETIMEDOUT;
        close(fence);
    }
    return ret;
}

/* Compares the 24 colour bits of every pixel (XRGB8888's X byte is undefined). */
static bool same_picture(cenalloc_buffer *a, cenalloc_buffer *b)
{
    void *pa, *pb;
    size_t la, lb;
    if (cenalloc_buffer_map(a, CENALLOC_MAP_READ, &pa, &la) != 0)
        return false;
    if (cenalloc_buffer_map(b, CENALLOC_MAP_READ, &pb, &lb) != 0) {
        cenalloc_buffer_unmap(a);
        return false;
    }
    uint32_t sa = cenalloc_buffer_stride(a, 0), sb = cenalloc_buffer_stride(b, 0);
    bool same = true;
    for (uint32_t y = 0; y < HEIGHT && same; y++) {
        const uint8_t *ra = (const uint8_t *)pa + (size_t)y * sa;
        const uint8_t *rb = (const uint8_t *)pb + (size_t)y * sb;
        for (uint32_t x = 0; x < WIDTH && same; x++)
            same = memcmp(ra + 4 * x, rb + 4 * x, 3) == 0;
    }
    cenalloc_buffer_unmap(b);
    cenalloc_buffer_unmap(a);
    return same;
}

static int parse(int argc, char **argv, struct options *o)
{
    *o = (struct options){.camera = "vivid-000", .display = "vkms", .frames = 60};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--camera") == 0 && i + 1 < argc)
            o->camera = argv[++i];
        else if (strcmp(argv[i], "--display") == 0 && i + 1 < argc)
            o->display = argv[++i];
        else if (strcmp(argv[i], "--frames") == 0 && i + 1 < argc)
            o->frames = (unsigned)strtoul(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--verify") == 0)
            o->verify = true;
        else {
            fprintf(stderr, "usage: camera-to-display [--camera NAME] [--display NAME] "
                            "[--frames N] [--verify]\n");
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct options opt;
    if (parse(argc, argv, &opt) != 0)
        return 2;
    cenalloc_allocator *alloc;
    cenalloc_device *camera, *display, *readback = NULL;
    cenalloc_plan *plan, *target_plan = NULL;
    cenalloc_pool *pool;
    cenalloc_buffer *frames[BUFFERS], *targets[2] = {NULL, NULL};
    uint32_t fbs[BUFFERS], target_fbs[2] = {0, 0};
    int ret;

    if ((ret = cenalloc_allocator_create(&alloc)) != 0)
        return fail("allocator", ret);
    uint32_t cpu = opt.verify ? CENALLOC_USAGE_CPU_READ : 0;
    if ((ret = cenalloc_device_open_v4l2(opt.camera, V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                         CENALLOC_USAGE_CAMERA_WRITE | cpu, &camera)) != 0)
        return fail(opt.camera, ret);
    if ((ret = cenalloc_device_open_drm(opt.display, CENALLOC_USAGE_SCANOUT, &display)) != 0)
        return fail(opt.display, ret);

    /* The camera's format is ours to set, on cenalloc's fd of it. */
    struct v4l2_format fmt = {.type = V4L2_BUF_TYPE_VIDEO_CAPTURE};
    fmt.fmt.pix.width = WIDTH;
    fmt.fmt.pix.height = HEIGHT;
    fmt.fmt.pix.pixelformat = V4L2_PIX_FMT_XBGR32; /* DRM_FORMAT_XRGB8888 in memory */
    fmt.fmt.pix.field = V4L2_FIELD_NONE;
    if (ioctl(cenalloc_device_fd(camera), VIDIOC_S_FMT, &fmt) != 0 ||
        fmt.fmt.pix.pixelformat != V4L2_PIX_FMT_XBGR32 || fmt.fmt.pix.width != WIDTH ||
        fmt.fmt.pix.height != HEIGHT) {
        fprintf(stderr, "camera-to-display: %s: cannot capture XR24 %dx%d\n",
                cenalloc_device_name(camera), WIDTH, HEIGHT);
        return 1;
    }

    cenalloc_device *both[] = {camera, display};
    if ((ret = cenalloc_plan_create(alloc, both, 2, WIDTH, HEIGHT, DRM_FORMAT_XRGB8888,
                                    &plan)) != 0)
        return fail("plan", ret);
    printf("camera %s → display %s, XR24 %dx%d, %d buffers\n", cenalloc_device_name(camera),
           cenalloc_device_name(display), WIDTH, HEIGHT, BUFFERS);
    printf("plan: source %s, %llu bytes per buffer, modifier 0x%llx\n%s\n",
           cenalloc_plan_source(plan), (unsigned long long)cenalloc_plan_size(plan),
           (unsigned long long)cenalloc_plan_modifier(plan), cenalloc_plan_reasons(plan));

    if ((ret = cenalloc_pool_create(plan, BUFFERS, &pool)) != 0)
        return fail("pool", ret);
    uint32_t granted = 0;
    if ((ret = cenalloc_v4l2_request_buffers(camera, BUFFERS, &granted)) != 0)
        return fail("V4L2 buffers", ret);
    if (granted != BUFFERS) {
        fprintf(stderr, "camera-to-display: asked for %d V4L2 buffers, got %u\n", BUFFERS,
                granted);
        return 1;
    }
    for (uint32_t i = 0; i < BUFFERS; i++) {
        if ((ret = cenalloc_pool_acquire(pool, &frames[i])) != 0)
            return fail("buffer", ret);
        if ((ret = cenalloc_buffer_framebuffer(frames[i], display, &fbs[i])) != 0)
            return fail("framebuffer", ret);
        if ((ret = cenalloc_v4l2_queue_buffer(camera, i, frames[i])) != 0)
            return fail("queue", ret);
    }

    int kms = cenalloc_device_fd(display);
    drmSetClientCap(kms, DRM_CLIENT_CAP_ATOMIC, 1);
    struct output out;
    if (opt.verify) {
        /* Read-back targets: buffers for the display alone, which the CPU reads. */
        drmSetClientCap(kms, DRM_CLIENT_CAP_WRITEBACK_CONNECTORS, 1);
        if (find_output(kms, true, &out) != 0) {
            fprintf(stderr, "camera-to-display: %s: no writeback connector with a %dx%d mode\n",
                    cenalloc_device_name(display), WIDTH, HEIGHT);
            return 1;
        }
        if ((ret = cenalloc_device_from_drm_fd(kms, CENALLOC_USAGE_SCANOUT |
                                                        CENALLOC_USAGE_CPU_READ,
                                               &readback)) != 0)
            return fail("readback device", ret);
        cenalloc_device *only[] = {readback};
        if ((ret = cenalloc_plan_create(alloc, only, 1, WIDTH, HEIGHT, DRM_FORMAT_XRGB8888,
                                        &target_plan)) != 0)
            return fail("readback plan", ret);
        for (int i = 0; i < 2; i++) {
            if ((ret = cenalloc_buffer_allocate(target_plan, &targets[i])) != 0)
                return fail("readback buffer", ret);
            if ((ret = cenalloc_buffer_framebuffer(targets[i], readback, &target_fbs[i])) != 0)
                return fail("readback framebuffer", ret);
        }
    } else if (find_output(kms, false, &out) != 0) {
        fprintf(stderr, "camera-to-display: %s: no connector with a %dx%d mode\n",
                cenalloc_device_name(display), WIDTH, HEIGHT);
        return 1;
    }

    if ((ret = cenalloc_v4l2_stream_on(camera)) != 0)
        return fail("stream on", ret);
    unsigned shown = 0, verified = 0;
    int previous = -1;
    while (shown < opt.frames) {
        uint32_t index, flags;
        if ((ret = cenalloc_v4l2_dequeue(camera, 5000, &index, &flags)) != 0)
            return fail("capture", ret);
        if (flags & V4L2_BUF_FLAG_ERROR) {
            cenalloc_v4l2_queue_buffer(camera, index, frames[index]);
            continue;
        }
        uint32_t target_fb = opt.verify ? target_fbs[shown % 2] : 0;
        if ((ret = show(&out, fbs[index], target_fb, shown == 0)) != 0) {
            fprintf(stderr, "camera-to-display: showing frame %u: %s\n", shown,
                    strerror(-ret));
            return 1;
        }
        if (opt.verify && same_picture(frames[index], targets[shown % 2]))
            verified++;
        /* The display has moved on from the frame shown before: the camera may refill it. */
        if (previous >= 0 &&
            (ret = cenalloc_v4l2_queue_buffer(camera, (uint32_t)previous,
                                              frames[previous])) != 0)
            return fail("queue", ret);
        previous = (int)index;
        shown++;
    }
    cenalloc_v4l2_stream_off(camera);

    if (opt.verify)
        printf("verified %u/%u frames\n", verified, shown);
    else
        printf("displayed %u frames\n", shown);

    /* Switch the display off before its framebuffers go away with the buffers. */
    drmModeAtomicReq *off = drmModeAtomicAlloc();
    add(off, kms, out.crtc, DRM_MODE_OBJECT_CRTC, "ACTIVE", 0);
    add(off, kms, out.crtc, DRM_MODE_OBJECT_CRTC, "MODE_ID", 0);
    add(off, kms, out.connector, DRM_MODE_OBJECT_CONNECTOR, "CRTC_ID", 0);
    add(off, kms, out.plane, DRM_MODE_OBJECT_PLANE, "FB_ID", 0);
    add(off, kms, out.plane, DRM_MODE_OBJECT_PLANE, "CRTC_ID", 0);
    drmModeAtomicCommit(kms, off, DRM_MODE_ATOMIC_ALLOW_MODESET, NULL);
    drmModeAtomicFree(off);
    drmModeDestroyPropertyBlob(kms, out.mode_blob);

    cenalloc_v4l2_request_buffers(camera, 0, NULL);
    for (int i = 0; i < BUFFERS; i++)
        cenalloc_buffer_destroy(frames[i]);
    for (int i = 0; i < 2; i++)
        if (targets[i])
            cenalloc_buffer_destroy(targets[i]);
    cenalloc_pool_destroy(pool);
    if (target_plan)
        cenalloc_plan_destroy(target_plan);
    cenalloc_plan_destroy(plan);
    if (readback)
        cenalloc_device_destroy(readback);
    cenalloc_device_destroy(display);
    cenalloc_device_destroy(camera);
    cenalloc_allocator_destroy(alloc);
    return opt.verify && verified != shown ? 1 : 0;
}
