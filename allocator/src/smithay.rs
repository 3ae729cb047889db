//! Interop with smithay 0.7: cenalloc buffers as smithay `Dmabuf`s, cenalloc as a smithay
//! `Allocator`.
