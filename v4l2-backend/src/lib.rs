//! V4L2 devices (cameras, decoders, encoders, mem2mem) as cenalloc importers.
