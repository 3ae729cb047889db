//! A smithay 0.7 compositor that proves zero-copy presentation of cenalloc-allocated client
//! buffers on a KMS device.
//!
//! `compositor [--device PATH] [--session] [--verify N] [--expect zero-copy|composited]
//! [--timeout S] [--mode WxH] [--first "CMD ARGS"]... [--also "CMD ARGS"]... -- CMD ARGS...` opens the KMS
//! node directly (root, no logind) or, with `--session`, through a libseat session (seatd or
//! logind; the `libseat` cargo feature), drives one CRTC with smithay's DrmCompositor (pixman
//! for composition, a swapchain allocated by cenalloc for the display) and makes framebuffers
//! for dma-bufs by PRIME import + ADDFB2 ([`exporter`]). It serves what standard clients
//! expect: wl_compositor, xdg-shell (every toplevel fullscreen), wl_shm (ARGB8888, XRGB8888),
//! wl_output with xdg-output, a wl_seat without input, wp_viewporter, wp_presentation (the
//! ZERO_COPY flag only for the buffer that was itself on the plane) and linux-dmabuf up to v5,
//! whose scanout tranche lists what cenalloc-drm's probe says the primary plane accepts.
//!
//! `--verify N` drives the CRTC with the vkms writeback connector alone (vkms in Linux 6.12
//! cannot clone Virtual-1 and Writeback-1 onto one CRTC), and for N client frames checks that
//! (a) DrmCompositor assigned the client's buffer to the primary plane, (b) the plane's
//! framebuffer is backed by the client's dma-buf, (c) the written-back frame equals the
//! client's pixels — or, for a composited frame, (b) the plane shows a swapchain buffer and (c)
//! the written-back frame equals that composed frame. After N frames the clients are ended;
//! after `--timeout` (300 s) without them the run fails, naming what it waited for. `--first`
//! clients run to completion before the main client, `--also` clients run beside it
//! (misbehaving clients for tests); the compositor fails if one of them fails.

mod exporter;
mod fd_budget;
mod guard;
mod handlers;
mod session;
mod verify;

use std::process::{Child, Command, ExitCode};
use std::sync::Arc;

use cenalloc::smithay::CenallocAllocator;
use cenalloc::{Importer, Usage};
use std::time::Duration;

use drm::control::{connector, Device as _, ModeTypeFlags};
use drm::Device as _;
use drm_fourcc::DrmFourcc;
use smithay::backend::allocator::gbm::GbmDevice;
use smithay::backend::allocator::Format as DrmFormat;
use smithay::backend::drm::compositor::{DrmCompositor, FrameFlags, PrimaryPlaneElement};
use smithay::backend::drm::{DrmDevice, DrmDeviceFd, DrmEvent};
use smithay::backend::renderer::element::surface::{
    render_elements_from_surface_tree, WaylandSurfaceRenderElement,
};
use smithay::backend::renderer::element::{Element, Kind, RenderElement, UnderlyingStorage};
use smithay::backend::renderer::pixman::PixmanRenderer;
use smithay::backend::renderer::ImportDma;
use smithay::output::OutputModeSource;
use smithay::reexports::calloop::generic::Generic;
use smithay::reexports::calloop::timer::{TimeoutAction, Timer};
use smithay::reexports::calloop::{EventLoop, Interest, Mode, PostAction};
use smithay::reexports::rustix;
use smithay::reexports::wayland_server::Display;
use smithay::utils::{DeviceFd, Transform};
use smithay::wayland::dmabuf::{get_dmabuf, DmabufFeedbackBuilder};
use smithay::wayland::socket::ListeningSocketSource;

use handlers::State;

/// What the verified frames must show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// The client's buffer scanned out directly.
    ZeroCopy,
    /// The client's buffer composited into the swapchain (format the plane cannot scan out).
    Composited,
}

/// Command line.
#[derive(Debug)]
struct Options {
    device: Option<String>,
    session: bool,
    verify: Option<u32>,
    expect: Expect,
    first: Vec<Vec<String>>,
    also: Vec<Vec<String>>,
    client: Vec<String>,
    /// How long `--verify` waits for its frames.
    timeout: Duration,
    /// `--mode WxH`: the connector mode to drive (default: the preferred one).
    mode: Option<(u16, u16)>,
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        device: None,
        session: false,
        verify: None,
        expect: Expect::ZeroCopy,
        first: Vec::new(),
        also: Vec::new(),
        client: Vec::new(),
        timeout: Duration::from_secs(300),
        mode: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--device" => o.device = Some(value()?),
            "--session" => o.session = true,
            "--verify" => o.verify = Some(value()?.parse().map_err(|e| format!("--verify: {e}"))?),
            "--expect" => {
                o.expect = match value()?.as_str() {
                    "zero-copy" => Expect::ZeroCopy,
                    "composited" => Expect::Composited,
                    v => return Err(format!("--expect zero-copy|composited, not {v:?}")),
                }
            }
            "--timeout" => {
                let secs: u64 = value()?.parse().map_err(|e| format!("--timeout: {e}"))?;
                o.timeout = Duration::from_secs(secs);
            }
            "--mode" => {
                let v = value()?;
                let (w, h) = v
                    .split_once('x')
                    .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                    .ok_or_else(|| format!("--mode WxH, not {v:?}"))?;
                o.mode = Some((w, h));
            }
            "--first" => o
                .first
                .push(value()?.split_whitespace().map(String::from).collect()),
            "--also" => o
                .also
                .push(value()?.split_whitespace().map(String::from).collect()),
            "--" => {
                o.client = args.by_ref().collect();
                break;
            }
            _ => return Err(format!("unknown argument {a:?}")),
        }
    }
    Ok(o)
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(
        env_logger::Env::default().default_filter_or("info,smithay=warn,tracing=warn"),
    )
    .init();
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("compositor: {e}");
            eprintln!("usage: compositor [--device PATH] [--session] [--verify N] [--expect zero-copy|composited] [--timeout S] [--mode WxH] [--first \"CMD ARGS\"]... [--also \"CMD ARGS\"]... -- CLIENT ARGS...");
            return ExitCode::from(2);
        }
    };
    match run(options) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("compositor: {e}");
            ExitCode::from(1)
        }
    }
}

/// A DRM node opened only to ask its driver's name.
struct Probe(std::fs::File);

impl std::os::fd::AsFd for Probe {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl drm::Device for Probe {}

/// The vkms card, found by the driver name DRM_IOCTL_VERSION reports or — for a card this
/// user may not open (under a session the seat opens it) — by the device sysfs names for it.
fn find_vkms() -> Result<String, String> {
    let mut cards: Vec<_> = std::fs::read_dir("/dev/dri")
        .map_err(|e| format!("/dev/dri: {e}"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("card"))
        })
        .collect();
    cards.sort();
    for path in cards {
        let is_vkms = match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
        {
            Ok(file) => Probe(file).get_driver().is_ok_and(|d| d.name() == "vkms"),
            Err(_) => sysfs_device_name(&path).as_deref() == Some("vkms"),
        };
        if is_vkms {
            return Ok(path.display().to_string());
        }
    }
    Err("no vkms card in /dev/dri (pass --device PATH)".into())
}

/// The name of the device behind a DRM node in sysfs (`vkms` for the platform device vkms
/// registers without a driver), found by the node's device number.
fn sysfs_device_name(node: &std::path::Path) -> Option<String> {
    let rdev = rustix::fs::stat(node).ok()?.st_rdev;
    let (major, minor) = (rustix::fs::major(rdev), rustix::fs::minor(rdev));
    let device = std::fs::read_link(format!("/sys/dev/char/{major}:{minor}/device")).ok()?;
    Some(device.file_name()?.to_string_lossy().into_owned())
}

fn run(options: Options) -> Result<ExitCode, String> {
    let path = match &options.device {
        Some(p) => p.clone(),
        None => find_vkms()?,
    };
    // The node smithay drives: from the seat (which makes us DRM master and may take it back),
    // or opened directly as root.
    let (node, seat) = if options.session {
        let seat = session::open(std::path::Path::new(&path))?;
        let fd = seat
            .fd
            .try_clone()
            .map_err(|e| format!("dup of the seat's {path}: {e}"))?;
        (fd, Some(seat))
    } else {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| format!("open {path}: {e}"))?;
        (std::os::fd::OwnedFd::from(file), None)
    };
    // cenalloc-drm (the swapchain's importer) works on the same open file: a duplicate of the
    // fd, not a second open of the node, which a user without access to the node could not
    // do. Its imports and the exporter's framebuffers then share one GEM handle namespace;
    // the exporter uses cenalloc-drm's handles for swapchain buffers ([`exporter`]).
    let display_device = node
        .try_clone()
        .map_err(|e| format!("dup of {path}: {e}"))
        .and_then(|dup| {
            cenalloc_drm::DrmDevice::from_fd(dup).map_err(|e| format!("cenalloc-drm {path}: {e}"))
        })?;
    let fd = DrmDeviceFd::new(DeviceFd::from(node));
    let main_dev = rustix::fs::fstat(&fd)
        .map_err(|e| format!("fstat {path}: {e}"))?
        .st_rdev;
    if options.verify.is_some() {
        // Writeback connectors are listed only to clients that ask; needs atomic first.
        fd.set_client_capability(drm::ClientCapability::Atomic, true)
            .map_err(|e| format!("atomic cap: {e}"))?;
        fd.set_client_capability(drm::ClientCapability::WritebackConnectors, true)
            .map_err(|e| format!("writeback cap on {path}: {e}"))?;
    }
    let (mut drm_device, notifier) =
        DrmDevice::new(fd.clone(), true).map_err(|e| format!("DrmDevice {path}: {e}"))?;

    // Output: the writeback connector in verify mode, else the first connected one.
    let resources = fd
        .resource_handles()
        .map_err(|e| format!("resources: {e}"))?;
    let mut chosen = None;
    for c in resources.connectors() {
        let info = fd
            .get_connector(*c, true)
            .map_err(|e| format!("connector {c:?}: {e}"))?;
        let wanted = if options.verify.is_some() {
            info.interface() == connector::Interface::Writeback
        } else {
            info.interface() != connector::Interface::Writeback
                && info.state() == connector::State::Connected
        };
        if wanted && !info.modes().is_empty() {
            chosen = Some(info);
            break;
        }
    }
    let connector = chosen.ok_or_else(|| {
        if options.verify.is_some() {
            format!("{path} has no writeback connector with modes (vkms.enable_writeback=1?)")
        } else {
            format!("{path} has no connected connector")
        }
    })?;
    let mode = if options.verify.is_some() {
        // Small frames keep the per-frame comparison cheap under TCG.
        connector
            .modes()
            .iter()
            .find(|m| m.size() == (640, 480))
            .or_else(|| {
                connector
                    .modes()
                    .iter()
                    .min_by_key(|m| m.size().0 as u32 * m.size().1 as u32)
            })
            .copied()
    } else if let Some(size) = options.mode {
        connector.modes().iter().find(|m| m.size() == size).copied()
    } else {
        connector
            .modes()
            .iter()
            .find(|m| m.mode_type().contains(ModeTypeFlags::PREFERRED))
            .or_else(|| connector.modes().first())
            .copied()
    }
    .ok_or("no mode of the size asked for (or none at all) on the connector")?;
    let crtc = connector
        .encoders()
        .iter()
        .filter_map(|e| fd.get_encoder(*e).ok())
        .flat_map(|e| resources.filter_crtcs(e.possible_crtcs()))
        .next()
        .ok_or("no CRTC for the connector")?;
    let (w, h) = (mode.size().0 as u32, mode.size().1 as u32);
    log::info!(
        "{path}: {:?}-{} {}x{}@{} on {crtc:?}",
        connector.interface(),
        connector.interface_id(),
        w,
        h,
        mode.vrefresh()
    );

    let surface = drm_device
        .create_surface(crtc, mode, &[connector.handle()])
        .map_err(|e| format!("DRM surface: {e}"))?;
    let primary_plane = surface.plane();
    // Shared with the session's event handler; taken and dropped at the end while the seat
    // still grants DRM master, so the device can restore the CRTC state it found.
    let drm_device = std::rc::Rc::new(std::cell::RefCell::new(Some(drm_device)));

    // Scanout tranche: what cenalloc-drm's probe says the primary plane accepts (IN_FORMATS,
    // or LINEAR for formats only the legacy list names). The same device is the swapchain's
    // importer below.
    let plane_report = display_device
        .probe()
        .planes
        .iter()
        .find(|p| p.id == u32::from(primary_plane))
        .ok_or_else(|| format!("cenalloc-drm's probe of {path} lacks plane {primary_plane:?}"))?;
    let mut scanout: Vec<DrmFormat> = Vec::new();
    for code in &plane_report.raw_formats {
        let Ok(fourcc) = DrmFourcc::try_from(*code) else {
            continue;
        };
        for m in plane_report.modifiers_for(*code) {
            scanout.push(DrmFormat {
                code: fourcc,
                modifier: drm_fourcc::DrmModifier::from(m.0),
            });
        }
    }
    log::info!(
        "primary plane scans out: {}",
        scanout
            .iter()
            .map(|f| format!("{:?}/{:?}", f.code, f.modifier))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let renderer = PixmanRenderer::new().map_err(|e| format!("pixman: {e}"))?;
    let render_formats: Vec<DrmFormat> = renderer.dmabuf_formats().iter().copied().collect();
    let mut all_formats = render_formats.clone();
    for f in &scanout {
        if !all_formats.contains(f) {
            all_formats.push(*f);
        }
    }
    // Default feedback: the scanout tranche first (what the primary plane takes), then what
    // the renderer imports. A surface's own feedback starts with the renderer's tranche alone
    // and gains the scanout tranche once its buffer could go on the plane (it covers the
    // output), as weston does.
    let scanout_feedback = DmabufFeedbackBuilder::new(main_dev, all_formats.iter().copied())
        .add_preference_tranche(
            main_dev,
            Some(smithay::reexports::wayland_protocols::wp::linux_dmabuf::zv1::server::zwp_linux_dmabuf_feedback_v1::TrancheFlags::Scanout),
            scanout.iter().copied(),
        )
        .build()
        .map_err(|e| format!("dma-buf feedback: {e}"))?;
    let render_feedback = DmabufFeedbackBuilder::new(main_dev, render_formats.iter().copied())
        .build()
        .map_err(|e| format!("dma-buf feedback: {e}"))?;

    // The swapchain: cenalloc buffers the display can scan out (its constraints come from
    // cenalloc-drm's probe of the card) and the CPU renderer can write.
    let display_importer: Arc<dyn Importer> = Arc::new(display_device);
    let allocator = CenallocAllocator::new(
        cenalloc::Allocator::new(),
        vec![display_importer],
        Usage::SCANOUT | Usage::CPU_WRITE | Usage::CPU_READ,
    );
    let registry = exporter::FramebufferRegistry::default();
    let client_holdings = exporter::ClientHoldings::default();
    let exporter =
        exporter::CenallocExporter::new(fd.clone(), registry.clone(), client_holdings.clone());
    let compositor = DrmCompositor::new(
        OutputModeSource::Static {
            size: (w as i32, h as i32).into(),
            scale: smithay::output::Scale::Integer(1).fractional_scale().into(),
            transform: Transform::Normal,
        },
        surface,
        None,
        allocator,
        exporter,
        [DrmFourcc::Xrgb8888, DrmFourcc::Argb8888],
        render_formats.iter().copied(),
        (64, 64).into(),
        None::<GbmDevice<DrmDeviceFd>>,
    )
    .map_err(|e| format!("DrmCompositor: {e}"))?;

    let writeback = match options.verify {
        Some(_) => Some(verify::Writeback::new(&fd, connector.handle(), (w, h))?),
        None => None,
    };

    let mut event_loop: EventLoop<State> =
        EventLoop::try_new().map_err(|e| format!("event loop: {e}"))?;
    let mut display: Display<State> = Display::new().map_err(|e| format!("display: {e}"))?;
    let dh = display.handle();
    let mut state = State::new(
        &dh,
        handlers::Feedback {
            scanout: scanout_feedback,
            render: render_feedback,
        },
        renderer,
        compositor,
        fd.clone(),
        primary_plane,
        registry,
        client_holdings,
        (w as i32, h as i32),
        mode.vrefresh() as i32 * 1000,
        writeback,
        options.verify,
        options.expect,
    );

    let socket = ListeningSocketSource::new_auto().map_err(|e| format!("socket: {e}"))?;
    let socket_name = socket.socket_name().to_string_lossy().into_owned();
    let handle = event_loop.handle();
    handle
        .insert_source(socket, |stream, _, state| state.add_client(stream))
        .map_err(|e| format!("socket source: {e}"))?;
    let poll_fd = display
        .backend()
        .poll_fd()
        .try_clone_to_owned()
        .map_err(|e| format!("dup display fd: {e}"))?;
    state.display = Some(display);
    handle
        .insert_source(
            Generic::new(poll_fd, Interest::READ, Mode::Level),
            |_, _, state| {
                state.dispatch_clients();
                Ok(PostAction::Continue)
            },
        )
        .map_err(|e| format!("display source: {e}"))?;
    handle
        .insert_source(notifier, |event, _, state| match event {
            DrmEvent::VBlank(_) => state.vblank(),
            DrmEvent::Error(e) => log::error!("DRM: {e}"),
        })
        .map_err(|e| format!("DRM source: {e}"))?;
    // Under a session: let go of the display when the seat pauses us (VT switch, another
    // session), take it back and redraw when it activates us again.
    #[cfg(feature = "libseat")]
    let _session = match seat {
        Some(seat) => {
            use smithay::backend::session::Event as SessionEvent;
            let session::SeatNode {
                session, notifier, ..
            } = seat;
            let drm = drm_device.clone();
            handle
                .insert_source(notifier, move |event, _, state| {
                    let mut drm = drm.borrow_mut();
                    let Some(drm) = drm.as_mut() else { return };
                    match event {
                        SessionEvent::PauseSession => {
                            log::info!("session paused: releasing the display");
                            drm.pause();
                            state.session_paused();
                        }
                        SessionEvent::ActivateSession => {
                            log::info!("session active again: taking the display back");
                            if let Err(e) = drm.activate(false) {
                                log::error!("re-activating the DRM device: {e}");
                            }
                            state.session_activated();
                        }
                    }
                })
                .map_err(|e| format!("session source: {e}"))?;
            Some(session)
        }
        None => None,
    };
    #[cfg(not(feature = "libseat"))]
    drop(seat);

    // Clients: the --first ones one after another, then the main one.
    let mut queue: Vec<Vec<String>> = options.first.clone();
    if !options.client.is_empty() {
        queue.push(options.client.clone());
    }
    let spawn = move |argv: &[String]| -> Result<Child, String> {
        log::info!("spawning {}", argv.join(" "));
        Command::new(&argv[0])
            .args(&argv[1..])
            .env("WAYLAND_DISPLAY", &socket_name)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", argv[0]))
    };
    let mut queue = queue.into_iter();
    let main_client = options.client.clone();
    let also = options.also.clone();
    let mut others: Vec<(Vec<String>, Child)> = Vec::new();
    let start = move |argv: Vec<String>, others: &mut Vec<(Vec<String>, Child)>| {
        let child = spawn(&argv)?;
        if argv == main_client {
            for a in &also {
                others.push((a.clone(), spawn(a)?));
            }
        }
        Ok::<_, String>((argv, child))
    };
    let mut current: Option<(Vec<String>, Child)> = match queue.next() {
        Some(argv) => Some(start(argv, &mut others)?),
        None => None,
    };
    let mut failed_clients = 0;
    let mut main_done = false;
    // Clients ended by the compositor itself (verification done, or timed out) are not
    // failures of theirs.
    let mut ending = false;
    let started = std::time::Instant::now();
    let timeout = options.timeout;
    let main_client = options.client.clone();
    handle
        .insert_source(
            Timer::from_duration(Duration::from_millis(50)),
            move |_, _, state| {
                if !ending && state.verified_all() {
                    ending = true;
                } else if !ending && options.verify.is_some() && started.elapsed() > timeout {
                    println!(
                        "timed out after {} s waiting for {}",
                        timeout.as_secs(),
                        state.waiting_for()
                    );
                    failed_clients += 1;
                    ending = true;
                }
                if ending {
                    for (_, child) in others.iter_mut().chain(current.iter_mut()) {
                        let _ = child.kill();
                    }
                }
                // Clients running beside the main one.
                others.retain_mut(|(argv, child)| match reap(argv, child) {
                    Some(ok) => {
                        failed_clients += u32::from(!ok && !ending);
                        false
                    }
                    None => true,
                });
                if let Some((argv, child)) = current.as_mut() {
                    if let Some(ok) = reap(argv, child) {
                        failed_clients += u32::from(!ok && !ending);
                        main_done = *argv == main_client || ending;
                        current = None;
                        if !main_done {
                            match queue.next() {
                                Some(next) => match start(next, &mut others) {
                                    Ok(c) => current = Some(c),
                                    Err(e) => {
                                        eprintln!("compositor: {e}");
                                        failed_clients += 1;
                                        main_done = true;
                                    }
                                },
                                None => main_done = true,
                            }
                        }
                    }
                }
                // Done once the last frame without the clients is on screen (it releases their
                // framebuffers). A client reaped here may not be disconnected yet (its
                // socket's hang-up is read on the next dispatch): until its windows are gone,
                // the frame on screen may still hold its buffers.
                if main_done
                    && others.is_empty()
                    && state.exit_code.is_none()
                    && state.idle()
                    && state.no_windows()
                {
                    state.finish(failed_clients);
                }
                TimeoutAction::ToDuration(Duration::from_millis(50))
            },
        )
        .map_err(|e| format!("timer: {e}"))?;

    while state.exit_code.is_none() {
        event_loop
            .dispatch(Some(Duration::from_millis(100)), &mut state)
            .map_err(|e| format!("event loop: {e}"))?;
        state.render_if_needed();
        state.flush_clients();
    }
    let code = state.exit_code.unwrap_or(ExitCode::FAILURE);
    // Surfaces first, then the device and our last handle on its fd (which gives DRM master
    // back), then — with the event loop — the session.
    drop(state);
    drop(drm_device.borrow_mut().take());
    drop(fd);
    Ok(code)
}

/// Whether `child` has exited (printing its status): `Some(true)` on success.
fn reap(argv: &[String], child: &mut Child) -> Option<bool> {
    match child.try_wait() {
        Ok(Some(status)) => {
            println!("client `{}` exited: {status}", argv.join(" "));
            Some(status.success())
        }
        Ok(None) => None,
        Err(e) => {
            eprintln!("compositor: waiting for `{}`: {e}", argv.join(" "));
            Some(false)
        }
    }
}

/// The render elements of the compositor: client surfaces.
pub type SurfaceElement = WaylandSurfaceRenderElement<PixmanRenderer>;

/// Collects the elements of `surface` at the origin.
pub fn surface_elements(
    renderer: &mut PixmanRenderer,
    surface: &smithay::reexports::wayland_server::protocol::wl_surface::WlSurface,
) -> Vec<SurfaceElement> {
    render_elements_from_surface_tree(renderer, surface, (0, 0), 1.0, 1.0, Kind::Unspecified)
}

/// The client dma-buf behind a render element, if it is one.
pub fn element_dmabuf(
    renderer: &mut PixmanRenderer,
    element: &SurfaceElement,
) -> Option<smithay::backend::allocator::dmabuf::Dmabuf> {
    match element.underlying_storage(renderer)? {
        UnderlyingStorage::Wayland(buffer) => get_dmabuf(buffer).ok().cloned(),
        UnderlyingStorage::Memory { .. } => None,
    }
}

/// How DrmCompositor placed a frame's client element.
pub fn primary_assignment<B, F, E>(result: &PrimaryPlaneElement<'_, B, F, E>) -> bool
where
    B: smithay::backend::allocator::Buffer,
    F: smithay::backend::drm::Framebuffer,
    E: Element,
{
    matches!(result, PrimaryPlaneElement::Element(_))
}

/// Frame flags: direct scanout allowed, on the primary plane for every format the plane accepts
/// (the scanout tranche promises all of them, not only the swapchain's format).
pub const FRAME_FLAGS: FrameFlags =
    FrameFlags::DEFAULT.union(FrameFlags::ALLOW_PRIMARY_PLANE_SCANOUT_ANY);
