//! A Wayland client that allocates its buffers with cenalloc and presents them fullscreen via
//! linux-dmabuf (version 3, 4 or 5) and xdg-shell.
//!
//! It reads its surface's dma-buf feedback (version 4 and later; a version 3 compositor gives
//! only its formats) and allocates its buffers with cenalloc: for a format in a scanout
//! tranche, with SCANOUT usage and the main device (opened through cenalloc-drm) as importer;
//! for any other format, or without a scanout tranche, for the CPU alone. When the feedback
//! changes (a compositor may add the scanout tranche once the surface could be scanned out)
//! it allocates anew. It draws a moving pattern on the CPU (frame counter in the first pixels
//! of row 0), presents `--frames N` frames and, where the compositor has wp_presentation,
//! prints for each frame whether it was presented zero-copy. `--format` picks the fourcc (e.g. one the plane cannot scan out, to see
//! the compositor composite it); `--bad KIND` sends one malformed buffer and expects the
//! linux-dmabuf protocol error (exit 0 if it came, 1 if the compositor accepted the buffer).
//! `--cycles N` repeats the whole connection N times (connect, allocate, present, disconnect).
//! `--hog N` sends up to N buffers and keeps them, and expects the compositor to refuse one
//! because its file descriptors run out (exit 0 when it did).
//!
//! Exit codes: 0 done, 1 failure, 3 the compositor killed the client with a protocol error
//! (outside `--bad` mode).

mod feedback;
mod pattern;

use std::os::fd::AsFd;
use std::process::ExitCode;
use std::str::FromStr;
use std::sync::Arc;

use cenalloc::{BufferRequest, CpuAccess, Fourcc, Importer, Modifier, SharedBuffer, Usage};
use wayland_client::globals::{registry_queue_init, GlobalListContents};
use wayland_client::protocol::{wl_buffer, wl_callback, wl_compositor, wl_registry, wl_surface};
use wayland_client::Proxy;
use wayland_client::{delegate_noop, Connection, Dispatch, EventQueue, QueueHandle, WEnum};
use wayland_protocols::wp::linux_dmabuf::zv1::client::{
    zwp_linux_buffer_params_v1, zwp_linux_dmabuf_feedback_v1, zwp_linux_dmabuf_v1,
};
use wayland_protocols::wp::presentation_time::client::{wp_presentation, wp_presentation_feedback};
use wayland_protocols::xdg::shell::client::{xdg_surface, xdg_toplevel, xdg_wm_base};

use feedback::Feedback;

/// How `--bad` misbehaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadKind {
    /// A stride that makes the plane run past the end of the dma-buf.
    Stride,
    /// A stride smaller than one row of pixels.
    ShortStride,
    /// An offset past the end of the dma-buf.
    Offset,
    /// A dma-buf too small for the claimed size.
    Size,
    /// Fewer planes than the format needs.
    Planes,
    /// A memfd instead of a dma-buf.
    NotDmabuf,
}

impl FromStr for BadKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "stride" => BadKind::Stride,
            "short-stride" => BadKind::ShortStride,
            "offset" => BadKind::Offset,
            "size" => BadKind::Size,
            "planes" => BadKind::Planes,
            "not-dmabuf" => BadKind::NotDmabuf,
            _ => {
                return Err(format!(
                "unknown --bad kind {s:?} (stride, short-stride, offset, size, planes, not-dmabuf)"
            ))
            }
        })
    }
}

#[derive(Debug)]
struct Options {
    frames: u32,
    fourcc: Fourcc,
    bad: Option<BadKind>,
    /// Kill the process with SIGKILL right after committing this frame (tests of a client
    /// that dies mid-frame).
    kill_after: Option<u32>,
    /// Connect, present `frames` and disconnect this many times in a row (tests of a
    /// compositor's resources over many client lifetimes).
    cycles: u32,
    /// Send this many buffers (each a new fd in the compositor) and keep them, expecting the
    /// compositor to refuse one for lack of file descriptors (tests of its fd budget).
    hog: Option<u32>,
}

fn parse_fourcc(s: &str) -> Result<Fourcc, String> {
    let b = s.as_bytes();
    if b.len() != 4 {
        return Err(format!("--format wants four characters, got {s:?}"));
    }
    let code = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    Fourcc::try_from(code).map_err(|_| format!("unknown fourcc {s:?}"))
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        frames: 60,
        fourcc: Fourcc::Xrgb8888,
        bad: None,
        kill_after: None,
        cycles: 1,
        hog: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--frames" => o.frames = value()?.parse().map_err(|e| format!("--frames: {e}"))?,
            "--format" => o.fourcc = parse_fourcc(&value()?)?,
            "--bad" => o.bad = Some(value()?.parse()?),
            "--kill-after" => {
                o.kill_after = Some(value()?.parse().map_err(|e| format!("--kill-after: {e}"))?)
            }
            "--cycles" => o.cycles = value()?.parse().map_err(|e| format!("--cycles: {e}"))?,
            "--hog" => o.hog = Some(value()?.parse().map_err(|e| format!("--hog: {e}"))?),
            "-h" | "--help" => {
                return Err("usage: client [--frames N] [--format XR24] [--bad stride|short-stride|offset|size|planes|not-dmabuf] [--kill-after N] [--cycles N] [--hog N]".into())
            }
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    Ok(o)
}

/// Client state the event handlers update.
#[derive(Default)]
struct State {
    feedback: Feedback,
    /// format/modifier pairs a version 3 linux-dmabuf global announced.
    v3_formats: Vec<(u32, u64)>,
    /// Frames the compositor reported presented, and how many of them zero-copy.
    presented: u32,
    zero_copy: u32,
    size: (i32, i32),
    configure_serial: Option<u32>,
    frame_done: bool,
    released: Vec<bool>,
    closed: bool,
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("client: {e}");
            return ExitCode::from(2);
        }
    };
    let mut outcome = Ok(ExitCode::SUCCESS);
    for cycle in 1..=options.cycles {
        outcome = run(&options);
        if outcome.is_err() {
            eprintln!("client: cycle {cycle} of {} failed", options.cycles);
            break;
        }
    }
    if options.cycles > 1 && outcome.is_ok() {
        println!(
            "client: {} connect/commit/disconnect cycles",
            options.cycles
        );
    }
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("client: {e}");
            if e.starts_with("protocol error") {
                ExitCode::from(3)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// The name of a zwp_linux_buffer_params_v1 error code.
fn params_error_name(code: u32) -> &'static str {
    match code {
        0 => "already_used",
        1 => "plane_idx",
        2 => "plane_set",
        3 => "incomplete",
        4 => "invalid_format",
        5 => "invalid_dimensions",
        6 => "out_of_bounds",
        7 => "invalid_wl_buffer",
        _ => "unknown",
    }
}

/// An error from a roundtrip, naming the protocol error when the compositor sent one.
fn wayland_error(conn: &Connection, e: impl std::fmt::Display) -> String {
    match conn.protocol_error() {
        Some(p) => format!(
            "protocol error from the compositor: {}@{} code {} ({}): {}",
            p.object_interface,
            p.object_id,
            p.code,
            if p.object_interface == "zwp_linux_buffer_params_v1" {
                params_error_name(p.code)
            } else {
                "-"
            },
            p.message
        ),
        None => format!("wayland: {e}"),
    }
}

/// The buffers of the client and how they were allocated.
struct Buffers {
    shared: Vec<SharedBuffer>,
    /// Allocated for a scanout tranche (with the main device as importer).
    scanout: bool,
    /// The feedback generation they were allocated for.
    generation: u32,
}

/// Allocates three buffers for the feedback as it stands: with the main device for a format
/// in a scanout tranche, else for the CPU alone.
fn allocate(
    allocator: &cenalloc::Allocator,
    feedback: &Feedback,
    options: &Options,
    (width, height): (u32, u32),
) -> Result<Buffers, String> {
    let fourcc = options.fourcc;
    let modifier = Modifier::LINEAR;
    let code = fourcc as u32;
    if !feedback.supports(code, modifier.0) {
        log::warn!("{fourcc:?}/LINEAR is not in the compositor's feedback; trying anyway");
    }
    let node = feedback.main_device.and_then(feedback::node_of);
    let scanout = feedback.scanout_supports(code, modifier.0);
    log::info!(
        "{width}x{height} {fourcc:?}/LINEAR: {}",
        if scanout {
            "in a scanout tranche"
        } else {
            "in no scanout tranche: the compositor will composite it"
        }
    );
    // The compositor's main device takes part in the allocation (SCANOUT constraints from its
    // planes) when the format is in a scanout tranche; otherwise the buffer only needs to be
    // sampled by the compositor's renderer, so it is allocated for the CPU alone.
    let main_importer: Option<Arc<dyn Importer>> = match (&node, scanout) {
        (Some(path), true) => match cenalloc_drm::DrmDevice::open(path) {
            Ok(dev) => Some(Arc::new(dev)),
            Err(e) => {
                log::warn!("cannot open the main device {}: {e}", path.display());
                None
            }
        },
        _ => None,
    };
    let alloc_height = if options.bad == Some(BadKind::Size) {
        height / 2
    } else {
        height
    };
    let usage = if scanout {
        Usage::SCANOUT | Usage::CPU_WRITE
    } else {
        Usage::CPU_WRITE
    };
    let request =
        BufferRequest::image(width, alloc_height, fourcc, usage).with_modifiers([modifier]);
    let importers: Vec<Arc<dyn Importer>> = main_importer.into_iter().collect();
    let plan = allocator
        .plan(&request, &importers)
        .map_err(|e| format!("cenalloc: {e}"))?;
    let shared = (0..3)
        .map(|i| {
            allocator
                .allocate(&plan)
                .map_err(|e| format!("cenalloc allocation {i}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    log::info!(
        "allocated {} buffers for [{}] from {} ({})",
        shared.len(),
        importers
            .iter()
            .map(|i| i.name().to_owned())
            .collect::<Vec<_>>()
            .join(", "),
        plan.source().name,
        plan.reasons().join("; ")
    );
    Ok(Buffers {
        shared,
        scanout,
        generation: feedback.generation,
    })
}

fn run(options: &Options) -> Result<ExitCode, String> {
    let conn = Connection::connect_to_env().map_err(|e| format!("cannot connect: {e}"))?;
    let (globals, mut queue): (_, EventQueue<State>) =
        registry_queue_init(&conn).map_err(|e| format!("registry: {e}"))?;
    let qh = queue.handle();
    let compositor: wl_compositor::WlCompositor = globals
        .bind(&qh, 4..=6, ())
        .map_err(|e| format!("wl_compositor: {e}"))?;
    let wm_base: xdg_wm_base::XdgWmBase = globals
        .bind(&qh, 1..=6, ())
        .map_err(|e| format!("xdg_wm_base: {e}"))?;
    let dmabuf: zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1 = globals
        .bind(&qh, 3..=5, ())
        .map_err(|e| format!("zwp_linux_dmabuf_v1 version 3 to 5: {e}"))?;
    let presentation: Option<wp_presentation::WpPresentation> = globals.bind(&qh, 1..=1, ()).ok();
    let mut state = State::default();

    let surface = compositor.create_surface(&qh, ());
    let with_feedback = dmabuf.version() >= 4;
    if with_feedback {
        // The surface's own feedback: the compositor may change it as the surface's buffers
        // go on a plane or not.
        dmabuf.get_surface_feedback(&surface, &qh, ());
    }
    let xdg_surface = wm_base.get_xdg_surface(&surface, &qh, ());
    let toplevel = xdg_surface.get_toplevel(&qh, ());
    toplevel.set_title("cenalloc client".into());
    toplevel.set_fullscreen(None);
    surface.commit();
    while state.configure_serial.is_none() || (with_feedback && state.feedback.generation == 0) {
        queue
            .blocking_dispatch(&mut state)
            .map_err(|e| wayland_error(&conn, e))?;
    }
    if !with_feedback {
        state.feedback = Feedback::from_formats(std::mem::take(&mut state.v3_formats));
    }
    let (width, height) = match state.size {
        (w, h) if w > 0 && h > 0 => (w as u32, h as u32),
        _ => (640, 480),
    };
    xdg_surface.ack_configure(state.configure_serial.take().expect("configured"));
    log::info!(
        "linux-dmabuf version {}, main device {}, {} tranche(s), {} scanout format(s)",
        dmabuf.version(),
        state
            .feedback
            .main_device
            .map(|d| {
                let node = feedback::node_of(d);
                format!(
                    "{d:#x} ({})",
                    node.map(|p| p.display().to_string())
                        .unwrap_or_else(|| "no node".into())
                )
            })
            .unwrap_or_else(|| "unknown".into()),
        state.feedback.tranches.len(),
        state
            .feedback
            .tranches
            .iter()
            .filter(|t| t.scanout)
            .map(|t| t.formats.len())
            .sum::<usize>()
    );

    let allocator = cenalloc::Allocator::new();
    let mut buffers = allocate(&allocator, &state.feedback, options, (width, height))?;

    if let Some(count) = options.hog {
        return hog_fds(
            &conn,
            &mut queue,
            &mut state,
            &dmabuf,
            &buffers.shared[0],
            count,
            (width, height),
        );
    }

    if let Some(kind) = options.bad {
        return present_bad(
            &conn,
            &mut queue,
            &mut state,
            &dmabuf,
            &buffers.shared[0],
            kind,
            (width, height),
        );
    }

    let mut wl_buffers = create_wl_buffers(&dmabuf, &qh, &buffers, (width, height));
    state.released = vec![true; wl_buffers.len()];

    let fourcc = options.fourcc;
    for frame in 0..options.frames {
        // A changed feedback that changes where the buffers should come from: allocate anew.
        // The old buffers' wl_buffers go at once; the compositor keeps what it still shows
        // (its import holds the dma-buf) until the next frame replaces it.
        if state.feedback.generation != buffers.generation {
            let scanout = state
                .feedback
                .scanout_supports(fourcc as u32, Modifier::LINEAR.0);
            if scanout != buffers.scanout {
                log::info!("the surface's dma-buf feedback changed: allocating anew");
                for b in wl_buffers.drain(..) {
                    b.destroy();
                }
                buffers = allocate(&allocator, &state.feedback, options, (width, height))?;
                wl_buffers = create_wl_buffers(&dmabuf, &qh, &buffers, (width, height));
                state.released = vec![true; wl_buffers.len()];
            }
            buffers.generation = state.feedback.generation;
        }
        let index = loop {
            if state.closed {
                return Ok(ExitCode::SUCCESS);
            }
            if let Some(i) = state.released.iter().position(|r| *r) {
                break i;
            }
            queue
                .blocking_dispatch(&mut state)
                .map_err(|e| wayland_error(&conn, e))?;
        };
        {
            let buffer = buffers.shared[index].buffer();
            let stride = buffer.layout().planes()[0].stride as usize;
            let mut map = buffer
                .map(CpuAccess::Write)
                .map_err(|e| format!("mapping buffer {index}: {e}"))?;
            pattern::draw(map.as_mut_slice(), fourcc, width, height, stride, frame);
        }
        state.released[index] = false;
        state.frame_done = false;
        surface.attach(Some(&wl_buffers[index]), 0, 0);
        surface.damage_buffer(0, 0, width as i32, height as i32);
        surface.frame(&qh, ());
        if let Some(p) = &presentation {
            p.feedback(&surface, &qh, frame);
        }
        surface.commit();
        if options.kill_after == Some(frame) {
            let _ = conn.flush();
            log::info!("killing myself after committing frame {frame}");
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::Kill,
            );
        }
        while !state.frame_done && !state.closed {
            queue
                .blocking_dispatch(&mut state)
                .map_err(|e| wayland_error(&conn, e))?;
        }
        log::debug!("frame {frame} shown");
    }
    // The last frames' presentation feedback.
    let _ = queue.roundtrip(&mut state);
    log::info!("presented {} frames", options.frames);
    if presentation.is_some() {
        println!(
            "client: {}/{} presented frames zero-copy (wp_presentation)",
            state.zero_copy, state.presented
        );
    }
    for b in wl_buffers {
        b.destroy();
    }
    toplevel.destroy();
    xdg_surface.destroy();
    surface.destroy();
    let _ = conn.roundtrip();
    Ok(ExitCode::SUCCESS)
}

/// A wl_buffer for each buffer.
fn create_wl_buffers(
    dmabuf: &zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1,
    qh: &QueueHandle<State>,
    buffers: &Buffers,
    size: (u32, u32),
) -> Vec<wl_buffer::WlBuffer> {
    buffers
        .shared
        .iter()
        .enumerate()
        .map(|(i, b)| create_wl_buffer(dmabuf, qh, b, i, size))
        .collect()
}

fn create_wl_buffer(
    dmabuf: &zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1,
    qh: &QueueHandle<State>,
    buffer: &SharedBuffer,
    index: usize,
    (width, height): (u32, u32),
) -> wl_buffer::WlBuffer {
    let b = buffer.buffer();
    let layout = b.layout();
    let params = dmabuf.create_params(qh, ());
    for (i, p) in layout.planes().iter().enumerate() {
        params.add(
            b.plane_fd(i).unwrap_or(b.fd()),
            i as u32,
            p.offset as u32,
            p.stride as u32,
            (layout.modifier().0 >> 32) as u32,
            layout.modifier().0 as u32,
        );
    }
    let fourcc = layout.fourcc().map(|f| f as u32).unwrap_or(0);
    let wl = params.create_immed(
        width as i32,
        height as i32,
        fourcc,
        zwp_linux_buffer_params_v1::Flags::empty(),
        qh,
        index,
    );
    params.destroy();
    wl
}

/// Sends `count` buffers of one dma-buf (each `add` passes a new fd to the compositor) and keeps
/// them all, until the compositor refuses one for lack of file descriptors.
fn hog_fds(
    conn: &Connection,
    queue: &mut EventQueue<State>,
    state: &mut State,
    dmabuf: &zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1,
    buffer: &SharedBuffer,
    count: u32,
    size: (u32, u32),
) -> Result<ExitCode, String> {
    let qh = queue.handle();
    let mut held = Vec::new();
    for i in 0..count {
        held.push(create_wl_buffer(dmabuf, &qh, buffer, 0, size));
        // A round trip per buffer: the compositor closes the connection right after its
        // error, and a client still writing would see only EPIPE, not the error.
        if let Err(e) = queue.roundtrip(state) {
            let error = wayland_error(conn, e);
            if error.contains("out of file descriptors") {
                println!(
                    "client: the compositor refused buffer {} of {count}: {error}",
                    i + 1
                );
                return Ok(ExitCode::SUCCESS);
            }
            return Err(error);
        }
    }
    Err(format!(
        "the compositor kept all {count} buffer fds without refusing one"
    ))
}

/// Sends one malformed buffer and waits for the compositor's verdict.
fn present_bad(
    conn: &Connection,
    queue: &mut EventQueue<State>,
    state: &mut State,
    dmabuf: &zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1,
    buffer: &SharedBuffer,
    kind: BadKind,
    (width, height): (u32, u32),
) -> Result<ExitCode, String> {
    let qh = queue.handle();
    let b = buffer.buffer();
    let layout = b.layout();
    let plane = layout.planes()[0];
    let fourcc = layout.fourcc().map(|f| f as u32).unwrap_or(0);
    let params = dmabuf.create_params(&qh, ());
    let (hi, lo) = (
        (layout.modifier().0 >> 32) as u32,
        layout.modifier().0 as u32,
    );
    let mut format = fourcc;
    match kind {
        BadKind::Stride => {
            params.add(b.fd(), 0, 0, plane.stride as u32 + 256, hi, lo);
        }
        BadKind::ShortStride => {
            params.add(b.fd(), 0, 0, plane.stride as u32 / 2, hi, lo);
        }
        BadKind::Offset => {
            params.add(
                b.fd(),
                0,
                layout.size() as u32 + 4096,
                plane.stride as u32,
                hi,
                lo,
            );
        }
        BadKind::Size => {
            // The dma-buf holds half the rows the buffer claims.
            params.add(b.fd(), 0, 0, plane.stride as u32, hi, lo);
        }
        BadKind::Planes => {
            if state
                .feedback
                .supports(Fourcc::Nv12 as u32, layout.modifier().0)
            {
                // NV12 needs two planes; send only the luma plane.
                format = Fourcc::Nv12 as u32;
                params.add(b.fd(), 0, 0, width, hi, lo);
            }
            // Otherwise no plane at all for a one-plane format.
        }
        BadKind::NotDmabuf => {
            let memfd = rustix::fs::memfd_create("not-a-dmabuf", rustix::fs::MemfdFlags::CLOEXEC)
                .map_err(|e| format!("memfd_create: {e}"))?;
            rustix::fs::ftruncate(&memfd, layout.size()).map_err(|e| format!("ftruncate: {e}"))?;
            params.add(memfd.as_fd(), 0, 0, plane.stride as u32, hi, lo);
        }
    }
    log::info!("sending a malformed buffer ({kind:?})");
    let _wl = params.create_immed(
        width as i32,
        height as i32,
        format,
        zwp_linux_buffer_params_v1::Flags::empty(),
        &qh,
        0usize,
    );
    match queue.roundtrip(state) {
        Ok(_) => {
            eprintln!("client: the compositor accepted a malformed buffer ({kind:?})");
            Ok(ExitCode::from(1))
        }
        Err(e) => {
            let message = wayland_error(conn, e);
            println!("client: got the expected {message}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

impl Dispatch<wl_registry::WlRegistry, GlobalListContents> for State {
    fn event(
        _: &mut Self,
        _: &wl_registry::WlRegistry,
        _: wl_registry::Event,
        _: &GlobalListContents,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
    }
}

delegate_noop!(State: wl_compositor::WlCompositor);
delegate_noop!(State: ignore wl_surface::WlSurface);
delegate_noop!(State: ignore wp_presentation::WpPresentation);

impl Dispatch<zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1, ()> for State {
    fn event(
        state: &mut Self,
        _: &zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1,
        event: zwp_linux_dmabuf_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        // Version 3: the formats and modifiers the compositor imports, in place of feedback.
        if let zwp_linux_dmabuf_v1::Event::Modifier {
            format,
            modifier_hi,
            modifier_lo,
        } = event
        {
            let modifier = (u64::from(modifier_hi) << 32) | u64::from(modifier_lo);
            state.v3_formats.push((format, modifier));
        }
    }
}

impl Dispatch<wp_presentation_feedback::WpPresentationFeedback, u32> for State {
    fn event(
        state: &mut Self,
        _: &wp_presentation_feedback::WpPresentationFeedback,
        event: wp_presentation_feedback::Event,
        frame: &u32,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use wp_presentation_feedback::{Event, Kind};
        match event {
            Event::Presented { flags, .. } => {
                let zero_copy = matches!(flags, WEnum::Value(f) if f.contains(Kind::ZeroCopy));
                state.presented += 1;
                state.zero_copy += u32::from(zero_copy);
                println!(
                    "client: frame {frame} presented {}",
                    if zero_copy { "zero-copy" } else { "composited" }
                );
            }
            Event::Discarded => println!("client: frame {frame} discarded"),
            _ => {}
        }
    }
}
delegate_noop!(State: ignore zwp_linux_buffer_params_v1::ZwpLinuxBufferParamsV1);

impl Dispatch<wl_buffer::WlBuffer, usize> for State {
    fn event(
        state: &mut Self,
        _: &wl_buffer::WlBuffer,
        event: wl_buffer::Event,
        index: &usize,
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_buffer::Event::Release = event {
            if let Some(r) = state.released.get_mut(*index) {
                *r = true;
            }
        }
    }
}

impl Dispatch<wl_callback::WlCallback, ()> for State {
    fn event(
        state: &mut Self,
        _: &wl_callback::WlCallback,
        event: wl_callback::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let wl_callback::Event::Done { .. } = event {
            state.frame_done = true;
        }
    }
}

impl Dispatch<xdg_wm_base::XdgWmBase, ()> for State {
    fn event(
        _: &mut Self,
        wm_base: &xdg_wm_base::XdgWmBase,
        event: xdg_wm_base::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_wm_base::Event::Ping { serial } = event {
            wm_base.pong(serial);
        }
    }
}

impl Dispatch<xdg_surface::XdgSurface, ()> for State {
    fn event(
        state: &mut Self,
        _: &xdg_surface::XdgSurface,
        event: xdg_surface::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        if let xdg_surface::Event::Configure { serial } = event {
            state.configure_serial = Some(serial);
        }
    }
}

impl Dispatch<xdg_toplevel::XdgToplevel, ()> for State {
    fn event(
        state: &mut Self,
        _: &xdg_toplevel::XdgToplevel,
        event: xdg_toplevel::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        match event {
            xdg_toplevel::Event::Configure { width, height, .. } => state.size = (width, height),
            xdg_toplevel::Event::Close => state.closed = true,
            _ => {}
        }
    }
}

impl Dispatch<zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1, ()> for State {
    fn event(
        state: &mut Self,
        _: &zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1,
        event: zwp_linux_dmabuf_feedback_v1::Event,
        _: &(),
        _: &Connection,
        _: &QueueHandle<Self>,
    ) {
        use zwp_linux_dmabuf_feedback_v1::{Event, TrancheFlags};
        let fb = &mut state.feedback;
        if !matches!(event, Event::Done) {
            fb.receiving();
        }
        match event {
            Event::FormatTable { fd, size } => {
                if let Err(e) = fb.read_table(fd, size) {
                    log::error!("cannot read the format table: {e}");
                }
            }
            Event::MainDevice { device } => fb.main_device = feedback::dev_from_bytes(&device),
            Event::TrancheTargetDevice { device } => {
                fb.pending.target_device = feedback::dev_from_bytes(&device)
            }
            Event::TrancheFormats { indices } => fb.add_indices(&indices),
            Event::TrancheFlags { flags } => {
                fb.pending.scanout =
                    matches!(flags, WEnum::Value(f) if f.contains(TrancheFlags::Scanout))
            }
            Event::TrancheDone => {
                let t = std::mem::take(&mut fb.pending);
                fb.tranches.push(t);
            }
            Event::Done => fb.finish(),
            _ => {}
        }
    }
}
