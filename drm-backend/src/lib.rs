//! DRM devices (KMS displays, render GPUs) as cenalloc importers and exporters.
