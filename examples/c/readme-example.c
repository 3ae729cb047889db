#include <stdio.h>
#include <drm_fourcc.h>
#include <linux/videodev2.h>
#include <cenalloc/cenalloc.h>

int main(void) {
    cenalloc_allocator *alloc;
    cenalloc_device *devices[2]; /* a camera and a display: vivid-000 and vkms in the guest */
    cenalloc_plan *plan;
    cenalloc_buffer *buffer;
    if (cenalloc_allocator_create(&alloc) ||
        cenalloc_device_open_v4l2("vivid-000", V4L2_BUF_TYPE_VIDEO_CAPTURE,
                                  CENALLOC_USAGE_CAMERA_WRITE, &devices[0]) ||
        cenalloc_device_open_drm("vkms", CENALLOC_USAGE_SCANOUT, &devices[1]) ||
        cenalloc_plan_create(alloc, devices, 2, 640, 480, DRM_FORMAT_XRGB8888, &plan) ||
        cenalloc_buffer_allocate(plan, &buffer)) {
        fprintf(stderr, "cenalloc: %s\n", cenalloc_last_error());
        return 1;
    }
    printf("source %s: fd %d, stride %u\n%s\n", cenalloc_plan_source(plan),
           cenalloc_buffer_fd(buffer, 0), cenalloc_buffer_stride(buffer, 0),
           cenalloc_plan_reasons(plan));
    return 0;
}
