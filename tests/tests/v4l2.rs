//! V4L2 devices as cenalloc importers, against the guest's real drivers: vivid (two instances,
//! dma-contig and vmalloc), vicodec (stateful encoder and decoder, stateless decoder), visl,
//! vim2m.

use std::sync::Arc;
use std::time::Duration;

use cenalloc::{
    Allocator, Buffer, BufferRequest, ConstraintKind, CpuAccess, Error, Fourcc, Importer, Layout,
    Modifier, PlaneLayout, SourceChoice, SourceKind, Usage,
};
use cenalloc_raw_ioctl::heap::alloc as heap_alloc;
use cenalloc_v4l2::fwht::FrameHeader;
use cenalloc_v4l2::{
    probe, ContiguityEvidence, Device, Direction, LastBuffer, MediaDevice, PixelFormat, Queue,
    Role, StatefulDecoder, StatefulEncoder, StatelessFwhtDecoder, V4l2Import, V4l2Importer,
};
use cenalloc_vmtests::{devices, fds};

const TIMEOUT: Duration = Duration::from_secs(20);

/// V4L2 device state (formats, buffers) is shared by every file of a non-m2m node: the tests
/// of this file take turns even when the harness runs them in parallel.
static DEVICES: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn exclusive() -> std::sync::MutexGuard<'static, ()> {
    DEVICES.lock().unwrap_or_else(|e| e.into_inner())
}

fn open(name: &str) -> Arc<Device> {
    let path = devices::video_node(name);
    Arc::new(Device::open(&path).unwrap_or_else(|e| panic!("opening {name}: {e}")))
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn probe_finds_every_v4l2_device_with_roles_and_contiguity() {
    let _turn = exclusive();
    let cases: &[(&str, &str, &[Role], Option<bool>)] = &[
        ("vivid-000-vid-cap", "vivid", &[Role::Camera], Some(true)),
        ("vivid-001-vid-cap", "vivid", &[Role::Camera], Some(false)),
        (
            "stateful-decoder",
            "vicodec",
            &[Role::Decoder, Role::M2m],
            Some(false),
        ),
        (
            "stateful-encoder",
            "vicodec",
            &[Role::Encoder, Role::M2m],
            Some(false),
        ),
        ("visl", "visl", &[Role::Decoder, Role::M2m], None),
        ("vim2m", "vim2m", &[Role::M2m], Some(false)),
    ];
    for (name, driver, roles, contiguous) in cases {
        let dev = open(name);
        let report = probe(&dev);
        let json = serde_json::to_value(&report).unwrap();
        for key in [
            "path",
            "name",
            "driver",
            "card",
            "roles",
            "capture_formats",
            "output_formats",
            "can_import",
            "needs_contiguous",
        ] {
            assert!(json.get(key).is_some(), "{name}: JSON lacks {key}: {json}");
        }
        println!(
            "{name}: {} roles={} needs_contiguous={} evidence={}",
            json["path"], json["roles"], json["needs_contiguous"], json["contiguity_evidence"]
        );
        assert_eq!(report.name, *name);
        assert_eq!(report.driver, *driver, "{name}");
        assert_eq!(report.roles, *roles, "{name}");
        assert!(report.streaming, "{name}");
        assert!(report.can_import, "{name}: no V4L2_BUF_CAP_SUPPORTS_DMABUF");
        if let Some(c) = contiguous {
            assert_eq!(report.needs_contiguous, *c, "{name}: needs_contiguous");
        }
    }
    // The vivid verdicts come from the trial import, not the fallback table.
    for name in ["vivid-000-vid-cap", "vivid-001-vid-cap"] {
        let r = probe(&open(name));
        assert_ne!(
            r.contiguity_evidence,
            ContiguityEvidence::DriverTable,
            "{name}: the trial import was inconclusive"
        );
    }
    let yuyv = probe(&open("vivid-000-vid-cap"));
    assert!(yuyv
        .capture_formats
        .iter()
        .any(|f| f.v4l2 == PixelFormat::YUYV && f.drm.as_deref() == Some("YUYV")));
    let dec = probe(&open("stateful-decoder"));
    assert!(dec
        .output_formats
        .iter()
        .any(|f| f.v4l2 == PixelFormat::FWHT && f.compressed));
}

/// Luma and chroma of the pixel pair holding pixel (x, y) of a YUYV frame.
fn yuyv_at(data: &[u8], stride: usize, x: usize, y: usize) -> (u8, u8, u8) {
    let pair = y * stride + (x & !1) * 2;
    let luma = data[pair + (x & 1) * 2];
    (luma, data[pair + 1], data[pair + 3])
}

/// Captures frames from `name` into buffers cenalloc allocates for it and checks vivid's
/// 75% colour bar test pattern. Returns the memory source cenalloc chose.
fn capture_colorbars(name: &str) -> SourceChoice {
    let (width, height) = (640u32, 360u32);
    let dev = open(name);
    let fmt = dev
        .set_format(Direction::Capture, PixelFormat::YUYV, width, height)
        .unwrap();
    assert_eq!((fmt.width, fmt.height), (width, height), "{name}: {fmt:?}");
    let importer: Arc<dyn Importer> = Arc::new(V4l2Importer::new(dev.clone(), Direction::Capture));
    let allocator = Allocator::new();
    let request = BufferRequest::image(width, height, Fourcc::Yuyv, Usage::CAMERA_WRITE);
    let mut queue = Queue::new(dev.clone(), Direction::Capture).unwrap();
    let mut buffers = Vec::new();
    for _ in 0..3 {
        let shared = allocator
            .allocate_and_import(&request, std::slice::from_ref(&importer))
            .unwrap_or_else(|e| panic!("{name}: allocate_and_import: {e}"));
        {
            let import = shared
                .import_for(importer.name())
                .and_then(|i| i.downcast_ref::<V4l2Import>())
                .expect("the V4L2 import");
            assert_eq!(import.format().pixelformat, PixelFormat::YUYV);
        }
        buffers.push(shared.buffer().clone());
    }
    let source = buffers[0].source().clone();
    let n = queue.request_dmabuf(buffers.len() as u32).unwrap();
    assert_eq!(n as usize, buffers.len());
    for (i, b) in buffers.iter().enumerate() {
        queue.queue_buffer(i as u32, b, &[]).unwrap();
    }
    queue.stream_on().unwrap();
    let stride = fmt.planes[0].bytesperline as usize;
    let mut checked = 0;
    for _ in 0..4 {
        let d = queue
            .dequeue(TIMEOUT)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: no frame within {TIMEOUT:?}"));
        assert!(!d.is_error(), "{name}: frame flagged as error");
        assert_eq!(d.bytesused[0], fmt.planes[0].sizeimage);
        let buffer = d.buffer.expect("the queued cenalloc buffer");
        {
            let map = buffer.map(CpuAccess::Read).unwrap();
            let data = map.as_slice();
            // Sample the middle of each of the 8 bars, in the lower half (the OSD text is at
            // the top). 75% bars, BT.601 limited range: white 180, yellow 162, cyan 131,
            // green 112, magenta 84, red 65, blue 35, black 16.
            let y = height as usize * 3 / 4;
            let lumas: Vec<u8> = (0..8)
                .map(|bar| {
                    let x = (2 * bar + 1) * width as usize / 16;
                    yuyv_at(data, stride, x, y).0
                })
                .collect();
            println!("{name}: bar lumas {lumas:?}");
            let expected = [180u8, 162, 131, 112, 84, 65, 35, 16];
            for (bar, (got, want)) in lumas.iter().zip(expected).enumerate() {
                assert!(
                    got.abs_diff(want) <= 6,
                    "{name}: bar {bar} luma {got}, expected {want}±6 (all: {lumas:?})"
                );
            }
            let (_, u, v) = yuyv_at(data, stride, width as usize / 16, y);
            assert!(
                u.abs_diff(128) <= 4 && v.abs_diff(128) <= 4,
                "white bar chroma {u},{v}"
            );
            // Chroma of 75% yellow (44, 142) and green (72, 58).
            let (_, u, v) = yuyv_at(data, stride, 3 * width as usize / 16, y);
            assert!(
                u.abs_diff(44) <= 4 && v.abs_diff(142) <= 4,
                "yellow bar chroma {u},{v}"
            );
            let (_, u, v) = yuyv_at(data, stride, 7 * width as usize / 16, y);
            assert!(
                u.abs_diff(72) <= 4 && v.abs_diff(58) <= 4,
                "green bar chroma {u},{v}"
            );
            let (_, u, v) = yuyv_at(data, stride, 11 * width as usize / 16, y);
            assert!(v > 200 && u < 128, "red bar chroma {u},{v}");
        }
        checked += 1;
        queue.queue_buffer(d.index, &buffer, &[]).unwrap();
    }
    assert_eq!(checked, 4);
    queue.release().unwrap();
    source
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vivid_000_captures_colorbars_into_cma_buffers_chosen_by_cenalloc() {
    let _turn = exclusive();
    let before = fds::open_fd_count();
    let source = capture_colorbars("vivid-000-vid-cap");
    assert_eq!(source.kind, SourceKind::Heap);
    assert_eq!(
        source.name, "reserved",
        "vivid-000 needs contiguous memory: CMA"
    );
    assert_eq!(fds::open_fd_count(), before, "fds leaked");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vivid_001_captures_colorbars_into_system_heap_buffers_chosen_by_cenalloc() {
    let _turn = exclusive();
    let before = fds::open_fd_count();
    let source = capture_colorbars("vivid-001-vid-cap");
    println!("vivid-001 buffers come from {source:?}");
    assert_eq!(source.kind, SourceKind::Heap);
    assert_eq!(
        source.name, "system",
        "vivid-001 takes scattered memory: system heap"
    );
    assert_eq!(fds::open_fd_count(), before, "fds leaked");
}

fn yuyv_layout(width: u32, height: u32, stride: u64, size: u64) -> Layout {
    Layout::new(
        Some(Fourcc::Yuyv),
        width,
        height,
        Modifier::LINEAR,
        &[PlaneLayout {
            offset: 0,
            stride,
            size,
        }],
        size,
    )
    .expect("the plane lies inside the buffer")
}

fn heap_buffer(heap: &str, layout: Layout, label: &str) -> Buffer {
    let size = layout.size().next_multiple_of(4096);
    let fd = heap_alloc(&devices::heap(heap), size).unwrap();
    let layout = Layout::new(
        layout.fourcc(),
        layout.width(),
        layout.height(),
        layout.modifier(),
        layout.planes(),
        size,
    )
    .unwrap();
    Buffer::from_fd(
        fd,
        layout,
        SourceChoice {
            kind: SourceKind::Heap,
            name: label.to_owned(),
            path: None,
        },
    )
    .unwrap()
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vivid_000_refuses_small_and_scattered_buffers_with_typed_errors() {
    let _turn = exclusive();
    let before = fds::open_fd_count();
    {
        let (width, height) = (640u32, 360u32);
        let dev = open("vivid-000-vid-cap");
        let fmt = dev
            .set_format(Direction::Capture, PixelFormat::YUYV, width, height)
            .unwrap();
        let stride = u64::from(fmt.planes[0].bytesperline);
        let sizeimage = u64::from(fmt.planes[0].sizeimage);
        let importer = V4l2Importer::new(dev.clone(), Direction::Capture);
        assert!(importer.needs_contiguous());

        // Too small: a CMA buffer of half the frame.
        let small = heap_buffer(
            "reserved",
            yuyv_layout(width, height, stride, sizeimage / 2),
            "reserved",
        );
        match importer.import(&small) {
            Err(Error::Incompatible {
                device,
                kind,
                reason,
            }) => {
                assert!(device.contains("vivid-000-vid-cap"), "{device}");
                assert_eq!(kind, ConstraintKind::Plane);
                println!("too small: {reason}");
            }
            other => panic!("a too-small buffer was not refused: {other:?}"),
        }
        let mut queue = Queue::new(dev.clone(), Direction::Capture).unwrap();
        queue.request_dmabuf(1).unwrap();
        match queue.queue_buffer(0, &small, &[]) {
            Err(Error::Incompatible { kind, .. }) => assert_eq!(kind, ConstraintKind::Plane),
            other => panic!("QBUF of a too-small buffer: {other:?}"),
        }

        // Non-contiguous, known from its source: the system heap.
        let system = heap_buffer(
            "system",
            yuyv_layout(width, height, stride, sizeimage),
            "system",
        );
        match importer.import(&system) {
            Err(Error::Incompatible { device, kind, .. }) => {
                assert!(device.contains("vivid-000-vid-cap"), "{device}");
                assert_eq!(kind, ConstraintKind::Contiguous);
            }
            other => panic!("a system-heap buffer was not refused: {other:?}"),
        }

        // Non-contiguous, source unknown (e.g. a client's dma-buf): the driver itself refuses
        // it at QBUF and the error says so.
        let (fd, len) = cenalloc_v4l2::probe::scattered_dmabuf(sizeimage).unwrap();
        let foreign = Buffer::from_fd(
            fd,
            yuyv_layout(width, height, stride, len),
            SourceChoice {
                kind: SourceKind::Device,
                name: "a client".to_owned(),
                path: None,
            },
        )
        .unwrap();
        importer.import(&foreign).expect("the layout itself fits");
        match queue.queue_buffer(0, &foreign, &[]) {
            Err(e @ Error::Incompatible { .. }) => {
                let Error::Incompatible { device, kind, .. } = &e else {
                    unreachable!()
                };
                assert!(device.contains("vivid-000-vid-cap"), "{device}");
                assert_eq!(*kind, ConstraintKind::Contiguous);
                println!("scattered: {e}");
            }
            other => panic!("QBUF of a scattered buffer: {other:?}"),
        }
        // A right buffer still works on the same queue afterwards.
        let good = heap_buffer(
            "reserved",
            yuyv_layout(width, height, stride, sizeimage),
            "reserved",
        );
        importer.import(&good).unwrap();
        queue.queue_buffer(0, &good, &[]).unwrap();
        queue.release().unwrap();
    }
    assert_eq!(fds::open_fd_count(), before, "fds leaked");
}

/// A smooth synthetic YUV 4:2:0 frame (planar, packed planes).
fn synthetic_yu12(width: usize, height: usize) -> Vec<u8> {
    let mut f = vec![0u8; width * height * 3 / 2];
    for y in 0..height {
        for x in 0..width {
            let v = 16.0
                + 200.0 * (x as f64 / width as f64) * 0.7
                + 60.0 * (y as f64 / height as f64)
                + 10.0 * ((x as f64) / 9.0).sin();
            f[y * width + x] = v.clamp(16.0, 235.0) as u8;
        }
    }
    let (cw, ch) = (width / 2, height / 2);
    for y in 0..ch {
        for x in 0..cw {
            f[width * height + y * cw + x] = (128.0 + 80.0 * (x as f64 / cw as f64 - 0.5)) as u8;
            f[width * height + cw * ch + y * cw + x] =
                (128.0 + 80.0 * (y as f64 / ch as f64 - 0.5)) as u8;
        }
    }
    f
}

fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let mse = a
        .iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        return f64::INFINITY;
    }
    10.0 * (255.0f64 * 255.0 / mse).log10()
}

fn blob(allocator: &Allocator, importer: &Arc<dyn Importer>, size: u64) -> Buffer {
    let request = BufferRequest::blob(size, Usage::VIDEO_DECODE | Usage::CPU_WRITE);
    allocator
        .allocate_and_import(&request, std::slice::from_ref(importer))
        .unwrap_or_else(|e| panic!("blob of {size} bytes for {}: {e}", importer.name()))
        .buffer()
        .clone()
}

/// Encodes one frame with vicodec's stateful encoder (draining it) and returns the FWHT
/// bitstream.
fn encode(allocator: &Allocator, frame: &[u8], width: u32, height: u32) -> Vec<u8> {
    let dev = open("stateful-encoder");
    let mut enc = StatefulEncoder::new(
        dev.clone(),
        PixelFormat::YUV420,
        width,
        height,
        PixelFormat::FWHT,
    )
    .unwrap_or_else(|e| panic!("stateful encoder: {e}"));
    let out_importer: Arc<dyn Importer> =
        Arc::new(V4l2Importer::new(dev.clone(), Direction::Output));
    let cap_importer: Arc<dyn Importer> =
        Arc::new(V4l2Importer::new(dev.clone(), Direction::Capture));
    let request = BufferRequest::image(width, height, Fourcc::Yuv420, Usage::VIDEO_ENCODE);
    let input = allocator
        .allocate_and_import(&request, std::slice::from_ref(&out_importer))
        .unwrap_or_else(|e| panic!("encoder input: {e}"))
        .buffer()
        .clone();
    {
        let mut map = input.map(CpuAccess::Write).unwrap();
        map.as_mut_slice()[..frame.len()].copy_from_slice(frame);
    }
    let coded_size = u64::from(enc.coded_format().planes[0].sizeimage);
    let output = blob(allocator, &cap_importer, coded_size);
    enc.start(1, std::slice::from_ref(&output)).unwrap();
    enc.encode(0, &input).unwrap();
    let d = enc
        .dequeue_bitstream(TIMEOUT)
        .unwrap()
        .expect("an encoded frame within the timeout");
    assert!(!d.is_error());
    let n = d.bytesused[0] as usize;
    assert!(n > 0, "empty bitstream");
    let bits = {
        let map = output.map(CpuAccess::Read).unwrap();
        map.as_slice()[..n].to_vec()
    };
    // Drain: the encoder returns the bitstream buffer once more, empty and marked LAST.
    enc.dequeue_frame(TIMEOUT)
        .unwrap()
        .expect("the raw frame back");
    enc.requeue_bitstream(d.index, &output).unwrap();
    enc.drain().unwrap();
    let last = enc
        .dequeue_bitstream(TIMEOUT)
        .unwrap()
        .expect("the drained bitstream buffer");
    assert!(last.is_last(), "encoder drain without V4L2_BUF_FLAG_LAST");
    println!(
        "encoded {width}x{height} YU12 ({} bytes) into {n} bytes of FWHT",
        frame.len()
    );
    bits
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vicodec_encode_decode_round_trip_into_cenalloc_buffers() {
    let _turn = exclusive();
    let before = fds::open_fd_count();
    {
        let (width, height) = (640u32, 480u32); // vicodec: at least 640x360, multiples of 8
        let allocator = Allocator::new();
        let frame = synthetic_yu12(width as usize, height as usize);
        let bits = encode(&allocator, &frame, width, height);

        let dev = open("stateful-decoder");
        let mut dec = StatefulDecoder::new(dev.clone(), PixelFormat::FWHT, width, height, 1)
            .expect("stateful decoder");
        let bs_importer: Arc<dyn Importer> =
            Arc::new(V4l2Importer::new(dev.clone(), Direction::Output));
        let sizeimage = u64::from(dec.output_format().unwrap().planes[0].sizeimage);
        let bitstream = blob(&allocator, &bs_importer, sizeimage.max(bits.len() as u64));
        {
            let mut map = bitstream.map(CpuAccess::Write).unwrap();
            map.as_mut_slice()[..bits.len()].copy_from_slice(&bits);
        }
        dec.queue_bitstream(0, &bitstream, bits.len() as u32)
            .unwrap();
        let fmt = dec.wait_source_change(TIMEOUT).unwrap();
        println!("decoder CAPTURE format after SOURCE_CHANGE: {fmt:?}");
        assert_eq!((fmt.width, fmt.height), (width, height));
        let fourcc = cenalloc_v4l2::v4l2_to_drm(fmt.pixelformat)
            .unwrap_or_else(|| panic!("no DRM equivalent of {}", fmt.pixelformat));
        assert_eq!(
            fourcc,
            Fourcc::Yuv420,
            "the decoder keeps the encoder's 4:2:0 planar format"
        );

        let frame_importer: Arc<dyn Importer> =
            Arc::new(V4l2Importer::new(dev.clone(), Direction::Capture));
        let frames = buffers_of(&decoder_frames(
            &allocator,
            &frame_importer,
            (width, height),
        ));
        dec.start_capture(&frames).unwrap();
        dec.drain().unwrap();

        let mut decoded = None;
        let mut saw_last = false;
        for _ in 0..8 {
            let d = dec
                .dequeue_frame(TIMEOUT)
                .unwrap()
                .expect("a decoded frame within the timeout");
            let buffer = d.buffer.clone().expect("the cenalloc buffer");
            if d.bytesused[0] > 0 && decoded.is_none() {
                let map = buffer.map(CpuAccess::Read).unwrap();
                decoded = Some(map.as_slice()[..frame.len()].to_vec());
            }
            if d.is_last() {
                saw_last = true;
                break;
            }
            dec.requeue_frame(d.index, &buffer).unwrap();
        }
        assert!(saw_last, "draining never produced V4L2_BUF_FLAG_LAST");
        let decoded = decoded.expect("a decoded frame with payload");
        let luma = (width * height) as usize;
        let p_y = psnr(&frame[..luma], &decoded[..luma]);
        let p_c = psnr(&frame[luma..], &decoded[luma..]);
        println!("round trip PSNR: Y {p_y:.1} dB, CbCr {p_c:.1} dB");
        // FWHT at vicodec's default quantisation is lossy; 30 dB is the usual "visually
        // faithful" threshold and well below what a smooth frame reaches.
        assert!(p_y >= 30.0, "luma PSNR {p_y:.1} dB < 30 dB");
        assert!(p_c >= 30.0, "chroma PSNR {p_c:.1} dB < 30 dB");
    }
    assert_eq!(fds::open_fd_count(), before, "fds leaked");
}

/// Decoded-frame buffers for a `width`×`height` YU12 stream, planned by cenalloc for the
/// decoder's CAPTURE queue as it is now.
fn decoder_frames(
    allocator: &Allocator,
    frames: &Arc<dyn Importer>,
    (width, height): (u32, u32),
) -> Vec<cenalloc::SharedBuffer> {
    let request = BufferRequest::image(width, height, Fourcc::Yuv420, Usage::VIDEO_DECODE);
    (0..2)
        .map(|_| {
            allocator
                .allocate_and_import(&request, std::slice::from_ref(frames))
                .unwrap_or_else(|e| panic!("{width}x{height} decoded frame buffer: {e}"))
        })
        .collect()
}

fn buffers_of(shared: &[cenalloc::SharedBuffer]) -> Vec<Buffer> {
    shared.iter().map(|s| s.buffer().clone()).collect()
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vicodec_decoder_follows_a_resolution_change_mid_stream() {
    let _turn = exclusive();
    let before = fds::open_fd_count();
    {
        let allocator = Allocator::new();
        // One bitstream: two frames at 640x480, then two at 1280x720.
        let sizes = [(640u32, 480u32), (640, 480), (1280, 720), (1280, 720)];
        let sources: Vec<Vec<u8>> = sizes
            .iter()
            .map(|&(w, h)| synthetic_yu12(w as usize, h as usize))
            .collect();
        let chunks: Vec<Vec<u8>> = sizes
            .iter()
            .zip(&sources)
            .map(|(&(w, h), frame)| encode(&allocator, frame, w, h))
            .collect();

        let dev = open("stateful-decoder");
        let slots = chunks.len() as u32;
        let mut dec = StatefulDecoder::new(dev.clone(), PixelFormat::FWHT, 640, 480, slots)
            .expect("stateful decoder");
        let bs_importer: Arc<dyn Importer> =
            Arc::new(V4l2Importer::new(dev.clone(), Direction::Output));
        let sizeimage = u64::from(dec.output_format().unwrap().planes[0].sizeimage);
        let bitstream: Vec<Buffer> = chunks
            .iter()
            .map(|chunk| {
                let b = blob(&allocator, &bs_importer, sizeimage.max(chunk.len() as u64));
                let mut map = b.map(CpuAccess::Write).unwrap();
                map.as_mut_slice()[..chunk.len()].copy_from_slice(chunk);
                drop(map);
                b
            })
            .collect();
        for (i, (b, chunk)) in bitstream.iter().zip(&chunks).enumerate() {
            dec.queue_bitstream(i as u32, b, chunk.len() as u32)
                .unwrap();
        }
        let fmt = dec.wait_source_change(TIMEOUT).unwrap();
        assert_eq!((fmt.width, fmt.height), sizes[0]);

        let frame_importer: Arc<dyn Importer> =
            Arc::new(V4l2Importer::new(dev.clone(), Direction::Capture));
        let mut frames = decoder_frames(&allocator, &frame_importer, sizes[0]);
        let first_plan: *const cenalloc::Plan = frames[0].plan();
        dec.start_capture(&buffers_of(&frames)).unwrap();

        let mut size = sizes[0];
        let mut decoded = Vec::new();
        let mut changes = Vec::new();
        for _ in 0..32 {
            let d = dec
                .dequeue_frame(TIMEOUT)
                .unwrap()
                .expect("a decoded buffer within the timeout");
            let buffer = d.buffer.clone().expect("the cenalloc buffer");
            if d.bytesused[0] > 0 {
                let source = &sources[sizes.iter().position(|s| *s == size).unwrap()];
                let luma = (size.0 * size.1) as usize;
                let map = buffer.map(CpuAccess::Read).unwrap();
                decoded.push((size, psnr(&source[..luma], &map.as_slice()[..luma])));
            }
            if !d.is_last() {
                dec.requeue_frame(d.index, &buffer).unwrap();
                continue;
            }
            match dec.after_last(TIMEOUT).unwrap() {
                LastBuffer::ResolutionChange(f) => {
                    println!("resolution change after {} frames: {f:?}", decoded.len());
                    size = (f.width, f.height);
                    changes.push(size);
                    // The 640x480 buffers are refused for 1280x720 frames, by name and
                    // cause; the decoder stays ready for the right ones.
                    let stale = dec
                        .restart_capture(&buffers_of(&frames))
                        .expect_err("640x480 buffers accepted for 1280x720 frames");
                    println!("old buffers for the new format: {stale}");
                    assert!(
                        matches!(&stale, Error::Incompatible { device, kind: ConstraintKind::Plane, .. }
                            if device.contains("stateful-decoder")),
                        "{stale:?}"
                    );
                    frames = decoder_frames(&allocator, &frame_importer, size);
                    dec.restart_capture(&buffers_of(&frames)).unwrap();
                    // Every chunk is queued: drain, so that the end is flagged too.
                    dec.drain().unwrap();
                }
                LastBuffer::Drained => break,
            }
        }
        println!("decoded (size, luma PSNR dB): {decoded:?}");
        assert_eq!(changes, [sizes[2]], "one resolution change, to 1280x720");
        let shapes: Vec<(u32, u32)> = decoded.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            shapes, sizes,
            "every frame decoded, at its own size, in order"
        );
        for (s, p) in &decoded {
            assert!(*p >= 30.0, "{s:?} frame: luma PSNR {p:.1} dB < 30 dB");
        }
        assert!(
            !std::ptr::eq(first_plan, frames[0].plan()),
            "the 1280x720 frames have a plan of their own"
        );
        assert!(frames[0].buffer().layout().size() >= 1280 * 720 * 3 / 2);
    }
    assert_eq!(fds::open_fd_count(), before, "fds leaked");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn probe_all_covers_every_video_node_and_vivid_outputs() {
    let _turn = exclusive();
    let reports = cenalloc_v4l2::probe_all();
    let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
    println!("video nodes: {names:?}");
    for name in [
        "vivid-000-vid-cap",
        "vivid-001-vid-cap",
        "vivid-000-vid-out",
        "vivid-001-vid-out",
        "stateful-encoder",
        "stateful-decoder",
        "stateless-decoder",
        "visl",
        "vim2m",
    ] {
        assert!(names.contains(&name), "probe_all misses {name}: {names:?}");
    }
    let by_name = |n: &str| reports.iter().find(|r| r.name == n).unwrap();
    assert_eq!(by_name("vivid-000-vid-out").roles, [Role::VideoOutput]);
    assert!(by_name("vivid-000-vid-out").needs_contiguous);
    assert!(!by_name("vivid-001-vid-out").needs_contiguous);
    for name in ["vivid-000-vid-out", "vivid-001-vid-out"] {
        assert_ne!(
            by_name(name).contiguity_evidence,
            ContiguityEvidence::DriverTable,
            "{name}: the trial import was inconclusive"
        );
    }
    assert_eq!(
        by_name("stateless-decoder").roles,
        [Role::Decoder, Role::M2m]
    );
    for r in &reports {
        println!(
            "{:24} {:8} roles={:?} import={} contiguous={} ({:?}) capture={} output={}",
            r.name,
            r.driver,
            r.roles,
            r.can_import,
            r.needs_contiguous,
            r.contiguity_evidence,
            r.capture_formats.len(),
            r.output_formats.len()
        );
    }
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vivid_001_exports_its_own_buffers_with_expbuf() {
    let _turn = exclusive();
    let before = fds::open_fd_count();
    {
        let (width, height) = (640u32, 360u32);
        let dev = open("vivid-001-vid-cap");
        let fmt = dev
            .set_format(Direction::Capture, PixelFormat::YUYV, width, height)
            .unwrap();
        let stride = u64::from(fmt.planes[0].bytesperline);
        let size = u64::from(fmt.planes[0].sizeimage);
        let mut queue = Queue::new(dev.clone(), Direction::Capture).unwrap();
        let exported = queue.request_exported(2).unwrap();
        assert_eq!(exported.len(), 2);
        let buffers: Vec<Buffer> = exported
            .into_iter()
            .map(|mut planes| {
                assert_eq!(planes.len(), 1);
                Buffer::from_fd(
                    planes.remove(0),
                    yuyv_layout(width, height, stride, size),
                    SourceChoice {
                        kind: SourceKind::Device,
                        name: dev.display_name(),
                        path: Some(dev.path().to_owned()),
                    },
                )
                .expect("VIDIOC_EXPBUF gives a dma-buf")
            })
            .collect();
        for i in 0..2 {
            queue.queue_exported(i, &[]).unwrap();
        }
        queue.stream_on().unwrap();
        let d = queue.dequeue(TIMEOUT).unwrap().expect("a frame");
        assert!(d.buffer.is_none(), "MMAP queues hold no cenalloc buffer");
        let map = buffers[d.index as usize].map(CpuAccess::Read).unwrap();
        let luma = yuyv_at(map.as_slice(), stride as usize, width as usize / 16, 270).0;
        assert!(
            luma.abs_diff(180) <= 6,
            "white bar luma {luma} in the exported buffer"
        );
        drop(map);
        queue.release().unwrap();
    }
    assert_eq!(fds::open_fd_count(), before, "fds leaked");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vim2m_converts_between_cenalloc_buffers() {
    let _turn = exclusive();
    let before = fds::open_fd_count();
    {
        let (width, height) = (64u32, 48u32);
        let dev = open("vim2m");
        let rgb = PixelFormat::from_chars(b"RGB3");
        let bgr = PixelFormat::from_chars(b"BGR3");
        let out_fmt = dev
            .set_format(Direction::Output, rgb, width, height)
            .unwrap();
        let cap_fmt = dev
            .set_format(Direction::Capture, bgr, width, height)
            .unwrap();
        assert_eq!((cap_fmt.pixelformat, cap_fmt.width), (bgr, width));
        let allocator = Allocator::new();
        let src_imp: Arc<dyn Importer> =
            Arc::new(V4l2Importer::new(dev.clone(), Direction::Output));
        let dst_imp: Arc<dyn Importer> =
            Arc::new(V4l2Importer::new(dev.clone(), Direction::Capture));
        // V4L2 RGB3 is R, G, B in memory: DRM BGR888. BGR3 is DRM RGB888.
        let src = allocator
            .allocate_and_import(
                &BufferRequest::image(width, height, Fourcc::Bgr888, Usage::CPU_WRITE),
                std::slice::from_ref(&src_imp),
            )
            .unwrap()
            .buffer()
            .clone();
        let dst = allocator
            .allocate_and_import(
                &BufferRequest::image(width, height, Fourcc::Rgb888, Usage::CPU_READ),
                std::slice::from_ref(&dst_imp),
            )
            .unwrap()
            .buffer()
            .clone();
        let stride = out_fmt.planes[0].bytesperline as usize;
        let pixel = |x: usize, y: usize| [(x * 4) as u8, (y * 5) as u8, (x + y) as u8];
        {
            let mut map = src.map(CpuAccess::Write).unwrap();
            let data = map.as_mut_slice();
            for y in 0..height as usize {
                for x in 0..width as usize {
                    data[y * stride + x * 3..][..3].copy_from_slice(&pixel(x, y));
                }
            }
        }
        let mut out_q = Queue::new(dev.clone(), Direction::Output).unwrap();
        let mut cap_q = Queue::new(dev.clone(), Direction::Capture).unwrap();
        out_q.request_dmabuf(1).unwrap();
        cap_q.request_dmabuf(1).unwrap();
        cap_q.queue_buffer(0, &dst, &[]).unwrap();
        out_q
            .queue_buffer(0, &src, &[out_fmt.planes[0].sizeimage])
            .unwrap();
        cap_q.stream_on().unwrap();
        out_q.stream_on().unwrap();
        let d = cap_q.dequeue(TIMEOUT).unwrap().expect("a converted frame");
        assert_eq!(d.bytesused[0], cap_fmt.planes[0].sizeimage);
        let map = dst.map(CpuAccess::Read).unwrap();
        let data = map.as_slice();
        let cstride = cap_fmt.planes[0].bytesperline as usize;
        let mut wrong = 0;
        for y in 0..height as usize {
            for x in 0..width as usize {
                let [r, g, b] = pixel(x, y);
                if data[y * cstride + x * 3..][..3] != [b, g, r] {
                    wrong += 1;
                }
            }
        }
        assert_eq!(wrong, 0, "{wrong} pixels not converted RGB→BGR");
        drop(map);
        out_q.release().unwrap();
        cap_q.release().unwrap();
    }
    assert_eq!(fds::open_fd_count(), before, "fds leaked");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn visl_multiplanar_queue_takes_cenalloc_buffers() {
    let _turn = exclusive();
    let before = fds::open_fd_count();
    {
        let dev = open("visl");
        let fmt = dev
            .set_format(Direction::Capture, PixelFormat::NV12, 320, 240)
            .unwrap();
        assert!(fmt.mplane, "visl uses the multi-planar API");
        let allocator = Allocator::new();
        let imp: Arc<dyn Importer> = Arc::new(V4l2Importer::new(dev.clone(), Direction::Capture));
        let request =
            BufferRequest::image(fmt.width, fmt.height, Fourcc::Nv12, Usage::VIDEO_DECODE);
        let shared = allocator
            .allocate_and_import(&request, std::slice::from_ref(&imp))
            .unwrap_or_else(|e| panic!("NV12 for visl: {e}"));
        let mut q = Queue::new(dev.clone(), Direction::Capture).unwrap();
        q.request_dmabuf(1).unwrap();
        q.queue_buffer(0, shared.buffer(), &[]).unwrap();
        q.release().unwrap();
    }
    assert_eq!(fds::open_fd_count(), before, "fds leaked");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vivid_000_allocates_itself_when_no_memory_source_fits() {
    let _turn = exclusive();
    let before = fds::open_fd_count();
    {
        let (width, height) = (640u32, 360u32);
        let dev = open("vivid-000-vid-cap");
        let fmt = dev
            .set_format(Direction::Capture, PixelFormat::YUYV, width, height)
            .unwrap();
        let importer: Arc<dyn Importer> =
            Arc::new(V4l2Importer::new(dev.clone(), Direction::Capture));
        // No heap, no udmabuf: only the device itself can give contiguous memory.
        let allocator = Allocator::from_sources(Vec::new());
        let request = BufferRequest::image(width, height, Fourcc::Yuyv, Usage::CAMERA_WRITE);
        let shared = allocator
            .allocate_and_import(&request, std::slice::from_ref(&importer))
            .unwrap_or_else(|e| panic!("vivid-000 exporting: {e}"));
        println!("plan: {:?}", shared.plan().reasons());
        assert_eq!(shared.plan().source().kind, SourceKind::Device);
        let buffer = shared.buffer().clone();
        assert!(buffer.layout().size() >= u64::from(fmt.planes[0].sizeimage));
        let mut queue = Queue::new(dev.clone(), Direction::Capture).unwrap();
        queue.request_dmabuf(1).unwrap();
        queue.queue_buffer(0, &buffer, &[]).unwrap();
        queue.stream_on().unwrap();
        let d = queue.dequeue(TIMEOUT).unwrap().expect("a frame");
        let map = d.buffer.as_ref().unwrap().map(CpuAccess::Read).unwrap();
        let stride = fmt.planes[0].bytesperline as usize;
        let white = yuyv_at(map.as_slice(), stride, width as usize / 16, 270).0;
        let black = yuyv_at(map.as_slice(), stride, 15 * width as usize / 16, 270).0;
        assert!(
            white.abs_diff(180) <= 6 && black.abs_diff(16) <= 6,
            "{white} {black}"
        );
        drop(map);
        queue.release().unwrap();
    }
    assert_eq!(fds::open_fd_count(), before, "fds leaked");
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn importer_constraints_come_from_try_fmt_and_the_probe() {
    let _turn = exclusive();
    let request = BufferRequest::image(640, 360, Fourcc::Yuyv, Usage::CAMERA_WRITE);
    for (name, contiguous) in [("vivid-000-vid-cap", true), ("vivid-001-vid-cap", false)] {
        let imp = V4l2Importer::new(open(name), Direction::Capture);
        let c = imp.constraints(&request).unwrap();
        assert_eq!(c.contiguous, contiguous, "{name}");
        assert_eq!(c.modifiers, vec![Modifier::LINEAR]);
        assert_eq!(c.planes.len(), 1);
        assert_eq!(c.planes[0].exact_stride, Some(1280), "{name}: bytesperline");
        assert_eq!(c.planes[0].min_size, 460_800, "{name}: sizeimage");
        assert!(c.can_import && c.can_export);
        // A format the queue does not have, and a size the webcam input does not offer.
        let bad_format = BufferRequest::image(640, 360, Fourcc::Xrgb2101010, Usage::CAMERA_WRITE);
        match imp.constraints(&bad_format) {
            Err(Error::Unsupported { device, kind, .. }) => {
                assert!(device.contains(name), "{device}");
                assert_eq!(kind, ConstraintKind::Format);
            }
            other => panic!("{name}: XR30 accepted: {other:?}"),
        }
        let bad_size = BufferRequest::image(1000, 700, Fourcc::Yuyv, Usage::CAMERA_WRITE);
        match imp.constraints(&bad_size) {
            Err(Error::Unsupported { kind, detail, .. }) => {
                assert_eq!(kind, ConstraintKind::Format);
                println!("{name}: {detail}");
            }
            other => panic!("{name}: 1000x700 accepted: {other:?}"),
        }
        let tiled = request.clone().with_modifiers([Modifier(1)]);
        assert!(matches!(
            imp.constraints(&tiled),
            Err(Error::Unsupported {
                kind: ConstraintKind::Modifier,
                ..
            })
        ));
    }
    // NV12 on the decoder: two colour planes in one V4L2 buffer, packed.
    let dec = V4l2Importer::new(open("stateful-decoder"), Direction::Capture);
    let c = dec
        .constraints(&BufferRequest::image(
            640,
            480,
            Fourcc::Nv12,
            Usage::VIDEO_DECODE,
        ))
        .unwrap();
    let planes: Vec<(u64, u64)> = c
        .planes
        .iter()
        .map(|p| (p.min_stride, p.min_size))
        .collect();
    assert_eq!(planes, vec![(640, 640 * 480), (640, 640 * 240)]);
}

#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn a_kept_plan_is_refused_after_a_decoders_resolution_change_and_a_new_plan_follows_it() {
    let _turn = exclusive();
    let before = fds::open_fd_count();
    {
        let dev = open("stateful-decoder");
        let importer: Arc<dyn Importer> =
            Arc::new(V4l2Importer::new(dev.clone(), Direction::Output));
        let importers = std::slice::from_ref(&importer);
        let sizeimage = |w, h| {
            let f = dev
                .set_format(Direction::Output, PixelFormat::FWHT, w, h)
                .unwrap_or_else(|e| panic!("S_FMT FWHT {w}x{h}: {e}"));
            u64::from(f.planes[0].sizeimage)
        };
        let small = sizeimage(640, 480);
        // A bitstream buffer of at least 4 KiB: the queue's sizeimage decides its size.
        let request = BufferRequest::blob(4096, Usage::VIDEO_DECODE | Usage::CPU_WRITE);
        let allocator = Allocator::new();
        let plan = allocator.plan(&request, importers).unwrap();
        let first = allocator.allocate(&plan).unwrap();
        let second = allocator.allocate(&plan).unwrap();
        assert!(first.buffer().layout().size() >= small);
        assert_eq!(first.buffer().layout(), second.buffer().layout());

        // The stream's resolution changes (S_FMT on the queue's file): the decoder's import
        // refuses a buffer of the kept plan, naming itself, and nothing leaks.
        let large = sizeimage(1920, 1088);
        assert!(large > first.buffer().layout().size(), "{large} vs {small}");
        let fds_held = fds::open_fd_count();
        match allocator.allocate(&plan) {
            Err(e @ (Error::Incompatible { .. } | Error::Unsupported { .. })) => {
                assert!(e.to_string().contains(importer.name()), "{e}")
            }
            other => panic!("a buffer of the old plan after the change: {other:?}"),
        }
        assert_eq!(fds::open_fd_count(), fds_held, "the refused buffer leaked");
        // Planning anew asks the decoder again and follows the change.
        let after = allocator
            .allocate_and_import(&request, importers)
            .unwrap_or_else(|e| panic!("after the resolution change: {e}"));
        assert!(
            after.buffer().layout().size() >= large,
            "{} bytes for a sizeimage of {large}",
            after.buffer().layout().size()
        );
        println!(
            "bitstream buffer: {} bytes at 640x480, {} bytes at 1920x1088",
            first.buffer().layout().size(),
            after.buffer().layout().size()
        );
    }
    assert_eq!(fds::open_fd_count(), before, "fds leaked");
}

/// vicodec's stateless decoder given bad input: a P-frame with no frame before it to
/// reference, and a media request holding a buffer but not the FWHT parameters the driver
/// requires. Both are typed errors naming the decoder; nothing leaks.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn stateless_decoder_refuses_a_p_frame_without_reference_and_a_request_without_its_controls() {
    let fds_before = fds::open_fd_count();
    {
        let allocator = Allocator::new();
        let dev = open("stateless-decoder");
        let mut decoder =
            StatelessFwhtDecoder::new(dev.clone(), PixelFormat::XBGR32, 640, 480, 1).unwrap();
        let frames: Arc<dyn Importer> =
            Arc::new(V4l2Importer::new(dev.clone(), Direction::Capture));
        let request = BufferRequest::image(640, 480, Fourcc::Xrgb8888, Usage::VIDEO_DECODE);
        let targets: Vec<Buffer> = (0..2)
            .map(|_| {
                allocator
                    .allocate_and_import(&request, std::slice::from_ref(&frames))
                    .unwrap()
                    .buffer()
                    .clone()
            })
            .collect();
        decoder.start(&targets).unwrap();
        let coded: Arc<dyn Importer> = Arc::new(V4l2Importer::new(dev.clone(), Direction::Output));
        let size = u64::from(decoder.output_format().unwrap().planes[0].sizeimage);
        let bitstream = blob(&allocator, &coded, size);
        let p_frame = FrameHeader {
            version: 3,
            width: 640,
            height: 480,
            flags: 0x13_0180,
            colorspace: 3,
            xfer_func: 0,
            ycbcr_enc: 0,
            quantization: 0,
            size: 64,
        };
        let e = decoder.decode(0, &bitstream, &p_frame).unwrap_err();
        assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("stateless-decoder")
                && text.contains("P-frame")
                && text.contains("reference"),
            "{text}"
        );

        // A second file of the node is a second decoding context with its own queues.
        let other = open("stateless-decoder");
        other
            .set_format(Direction::Output, PixelFormat::FWHT_STATELESS, 640, 480)
            .unwrap();
        other
            .set_format(Direction::Capture, PixelFormat::XBGR32, 640, 480)
            .unwrap();
        let mut output = Queue::new(other.clone(), Direction::Output).unwrap();
        output.request_dmabuf(1).unwrap();
        let media = MediaDevice::of(&other).unwrap();
        let bare = media.allocate_request().unwrap();
        output
            .queue_in_request(0, &bitstream, &[64], &bare, Duration::from_micros(1))
            .unwrap();
        let e = bare.queue(&other).unwrap_err();
        assert!(matches!(e, Error::InvalidRequest(_)), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains("stateless-decoder")
                && text.contains("lacks")
                && text.contains("control"),
            "{text}"
        );
    }
    assert_eq!(fds::open_fd_count(), fds_before, "fds leaked");
}

/// vivid-002 (dma-contig, multi-planar API) captures NM12: NV12 with each plane in a buffer of
/// its own. cenalloc plans one dma-buf per plane (each from CMA: the device is dma-contig),
/// V4L2 gets one fd per plane, vgem a GEM handle per plane, and vivid's 75% colour bars are
/// found in both planes through the per-plane CPU mapping.
#[test]
#[ignore = "needs the guest devices: cargo xtask test runs it"]
fn vivid_002_captures_nm12_into_one_dma_buf_per_plane() {
    let _turn = exclusive();
    let (width, height) = (640u32, 360u32);
    let fds_before = fds::open_fd_count();
    {
        let dev = open("vivid-002-vid-cap");
        let fmt = dev
            .set_format(Direction::Capture, PixelFormat::NV12M, width, height)
            .unwrap();
        assert_eq!(fmt.pixelformat, PixelFormat::NV12M, "{fmt:?}");
        assert_eq!(fmt.planes.len(), 2, "NM12 has two memory planes: {fmt:?}");
        let importer: Arc<dyn Importer> = Arc::new(
            V4l2Importer::new(dev.clone(), Direction::Capture)
                .with_pixel_format(PixelFormat::NV12M),
        );
        let allocator = Allocator::new();
        let request = BufferRequest::image(
            width,
            height,
            Fourcc::Nv12,
            Usage::CAMERA_WRITE | Usage::CPU_READ,
        );
        let plan = allocator
            .plan(&request, std::slice::from_ref(&importer))
            .unwrap();
        println!("{:#?}", plan.reasons());
        let layout = plan.layout().clone();
        assert!(layout.has_separate_planes(), "{layout:?}");
        assert_eq!(plan.source().name, "reserved", "dma-contig: CMA per plane");
        assert!(plan
            .reasons()
            .iter()
            .any(|r| r.starts_with("one dma-buf per plane: required by vivid-002")));
        assert_eq!(layout.planes()[0].size, u64::from(fmt.planes[0].sizeimage));
        assert!(layout.planes()[1].size >= u64::from(fmt.planes[1].sizeimage));
        let buffers: Vec<Buffer> = (0..3)
            .map(|_| allocator.allocate(&plan).unwrap().buffer().clone())
            .collect();
        for b in &buffers {
            assert_eq!(b.dma_bufs().count(), 2);
            let inode = |fd| rustix::fs::fstat(fd).unwrap().st_ino;
            assert_ne!(inode(b.plane_fd(0).unwrap()), inode(b.plane_fd(1).unwrap()));
        }
        // A DRM device imports each plane's dma-buf: one GEM handle per plane (vgem: no
        // KMS, so no framebuffer; no display of the guest scans out NV12).
        let vgem = cenalloc_vmtests::drm_device("vgem", cenalloc_drm::NodeKind::Card);
        {
            let import = vgem.import_buffer(&buffers[0]).unwrap();
            let handles = import.gem_handles();
            assert_eq!(handles.len(), 2);
            assert_ne!(handles[0], handles[1], "{handles:?}");
        }
        let mut queue = Queue::new(dev.clone(), Direction::Capture).unwrap();
        assert_eq!(queue.request_dmabuf(3).unwrap(), 3);
        for (i, b) in buffers.iter().enumerate() {
            queue.queue_buffer(i as u32, b, &[]).unwrap();
        }
        queue.stream_on().unwrap();
        let (luma_stride, chroma_stride) = (
            fmt.planes[0].bytesperline as usize,
            fmt.planes[1].bytesperline as usize,
        );
        for _ in 0..3 {
            let d = queue.dequeue(TIMEOUT).unwrap().expect("a frame");
            assert!(!d.is_error());
            assert_eq!(d.bytesused.len(), 2, "{d:?}");
            let buffer = d.buffer.expect("the queued cenalloc buffer");
            {
                let map = buffer.map(CpuAccess::Read).unwrap();
                let (luma, chroma) = (map.plane(0).unwrap(), map.plane(1).unwrap());
                let y = height as usize * 3 / 4;
                let lumas: Vec<u8> = (0..8)
                    .map(|bar| luma[y * luma_stride + (2 * bar + 1) * width as usize / 16])
                    .collect();
                let expected = [180u8, 162, 131, 112, 84, 65, 35, 16];
                for (bar, (got, want)) in lumas.iter().zip(expected).enumerate() {
                    assert!(
                        got.abs_diff(want) <= 6,
                        "bar {bar} luma {got}, expected {want}±6 (all: {lumas:?})"
                    );
                }
                // Chroma plane: Cb, Cr pairs for 2×2 pixels. White (128, 128), 75% yellow
                // (44, 142), green (72, 58).
                let uv = |x: usize| {
                    let at = (y / 2) * chroma_stride + (x & !1);
                    (chroma[at], chroma[at + 1])
                };
                for (bar, (u, v)) in [(0usize, (128u8, 128u8)), (1, (44, 142)), (3, (72, 58))] {
                    let (gu, gv) = uv((2 * bar + 1) * width as usize / 16);
                    assert!(
                        gu.abs_diff(u) <= 4 && gv.abs_diff(v) <= 4,
                        "bar {bar} chroma {gu},{gv}, expected {u},{v}"
                    );
                }
            }
            queue.queue_buffer(d.index, &buffer, &[]).unwrap();
        }
        queue.release().unwrap();

        // A layout whose planes share one dma-buf is refused by the capture queue, saying why.
        let one = BufferRequest::image(width, height, Fourcc::Nv12, Usage::CAMERA_WRITE);
        let single = allocator.plan_with_source(&one, &[], "reserved").unwrap();
        assert!(!single.layout().has_separate_planes());
        let e = importer
            .import(allocator.allocate(&single).unwrap().buffer())
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Incompatible {
                    kind: ConstraintKind::Plane,
                    ..
                }
            ),
            "{e:?}"
        );
    }
    assert_eq!(fds::open_fd_count(), fds_before, "fds leaked");
}
