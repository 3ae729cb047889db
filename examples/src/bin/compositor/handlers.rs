//! Compositor state: Wayland protocol handlers (compositor, xdg-shell, linux-dmabuf), the
//! render/present loop and the per-frame zero-copy checks.

use std::os::unix::net::UnixStream;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use cenalloc::smithay::CenallocAllocator;
use drm::control::{plane, Device as _};
use smithay::backend::allocator::dmabuf::Dmabuf;
use smithay::backend::allocator::Buffer as _;
use smithay::backend::drm::compositor::DrmCompositor;
use smithay::backend::drm::DrmDeviceFd;
use smithay::backend::renderer::pixman::PixmanRenderer;
use smithay::backend::renderer::utils::{on_commit_buffer_handler, with_renderer_surface_state};
use smithay::backend::renderer::ImportDma;
use smithay::input::{SeatHandler, SeatState};
use smithay::output::{Output, PhysicalProperties, Subpixel};
use smithay::reexports::wayland_protocols::wp::presentation_time::server::wp_presentation_feedback;
use smithay::reexports::wayland_protocols::xdg::shell::server::xdg_toplevel;
use smithay::reexports::wayland_server::backend::{ClientData, ClientId, DisconnectReason};
use smithay::reexports::wayland_server::protocol::{
    wl_buffer::WlBuffer, wl_seat, wl_surface::WlSurface,
};
use smithay::reexports::wayland_server::{Client, Display, DisplayHandle};
use smithay::utils::Serial;
use smithay::wayland::buffer::BufferHandler;
use smithay::wayland::compositor::{
    get_parent, with_states, with_surface_tree_downward, CompositorClientState, CompositorHandler,
    CompositorState, SurfaceAttributes, TraversalAction,
};
use smithay::wayland::dmabuf::{
    DmabufFeedback, DmabufGlobal, DmabufHandler, DmabufState, ImportNotifier,
    SurfaceDmabufFeedbackState,
};
use smithay::wayland::output::{OutputHandler, OutputManagerState};
use smithay::wayland::presentation::{
    PresentationFeedbackCachedState, PresentationFeedbackCallback, PresentationState, Refresh,
};
use smithay::wayland::shell::xdg::{
    PopupSurface, PositionerState, ToplevelSurface, XdgShellHandler, XdgShellState,
    XdgToplevelSurfaceData,
};
use smithay::wayland::shm::{ShmHandler, ShmState};
use smithay::wayland::viewporter::ViewporterState;
use smithay::{delegate_output, delegate_presentation, delegate_seat, delegate_viewporter};

use cenalloc_examples::client_dmabuf::{self, ClientBuffer, ClientPlane, Rejection};

use crate::exporter::{CenallocExporter, ClientHoldings, FramebufferRegistry};
use crate::verify::{self, Writeback};
use crate::Expect;

/// What a queued frame showed, checked when it reaches the screen.
#[derive(Debug)]
pub struct FrameInfo {
    /// DrmCompositor put the client's buffer on the primary plane itself.
    direct: bool,
    /// A client surface is in the frame.
    client: bool,
    /// The client's buffer in this frame, when it is a dma-buf.
    dmabuf: Option<Dmabuf>,
    /// wp_presentation feedback of the surfaces in the frame, each with whether its buffer is
    /// the one on the primary plane.
    feedback: Vec<(PresentationFeedbackCallback, bool)>,
}

type Compositor = DrmCompositor<CenallocAllocator, CenallocExporter, FrameInfo, DrmDeviceFd>;

/// The two dma-buf feedbacks the compositor sends.
pub struct Feedback {
    /// The scanout tranche first, then the renderer's: the default feedback, and a surface's
    /// once its buffer could go on the primary plane.
    pub scanout: DmabufFeedback,
    /// The renderer's tranche alone: a new surface's.
    pub render: DmabufFeedback,
}

/// The clock wp_presentation reports in: CLOCK_MONOTONIC, as the kernel's page-flip events.
const CLOCK_MONOTONIC: u32 = 1;

/// Counts of the verification.
#[derive(Debug, Default)]
struct Tally {
    checked: u32,
    zero_copy: u32,
    composited: u32,
    /// Composited frames that carried the modeset of taking the display back after a pause
    /// (smithay composes that frame; scan-out of the client's buffer resumes with the next).
    retaken: u32,
}

/// Open fds of this process that are not dma-bufs (connections, files, the DRM node); the
/// swapchain's dma-bufs grow with its buffers and are left out.
fn fds_other_than_dmabufs() -> usize {
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    dir.flatten()
        .filter(|e| {
            std::fs::read_link(e.path())
                .map(|l| !l.to_string_lossy().starts_with("/dmabuf:"))
                .unwrap_or(false)
        })
        .count()
}

/// Tells clients their feedback's frame was not shown.
fn discard(feedback: Vec<(PresentationFeedbackCallback, bool)>) {
    for (callback, _) in feedback {
        callback.discarded();
    }
}

/// A frame that reached the screen as the seat took the display away cannot be verified
/// (capturing it needs DRM master); a later frame takes its place.
fn unverifiable_frame() {
    println!("frame shown as the session paused: not verified (not DRM master)");
}

/// Everything the compositor keeps.
pub struct State {
    /// The Wayland display (taken out while it dispatches into the state).
    pub display: Option<Display<State>>,
    compositor_state: CompositorState,
    xdg_shell_state: XdgShellState,
    dmabuf_state: DmabufState,
    seat_state: SeatState<State>,
    shm_state: ShmState,
    _output_manager_state: OutputManagerState,
    _viewporter_state: ViewporterState,
    _presentation_state: PresentationState,
    /// The display as clients see it (wl_output, xdg-output).
    output: Output,
    /// Presented frames, counted for wp_presentation's sequence numbers.
    presented: u64,
    _seat: smithay::input::Seat<State>,
    _dmabuf_global: DmabufGlobal,
    feedback: Feedback,
    renderer: PixmanRenderer,
    compositor: Compositor,
    drm: DrmDeviceFd,
    primary_plane: plane::Handle,
    registry: FramebufferRegistry,
    client_holdings: ClientHoldings,
    /// Open fds other than dma-bufs when the first frame was shown, before any client.
    fds_at_start: Option<usize>,
    /// Resident memory (KiB) when the first frame was shown.
    rss_at_start: Option<u64>,
    size: (i32, i32),
    /// Fullscreen windows, oldest first (the newest is in front).
    toplevels: Vec<ToplevelSurface>,
    render_needed: bool,
    flip_pending: bool,
    /// The seat paused the session: the display is not ours, nothing is presented and no
    /// frame callback is sent until it is activated again.
    paused: bool,
    /// The display was just taken back: the next verified frame carries the modeset.
    retaking: bool,
    writeback: Option<Writeback>,
    verify: Option<u32>,
    expect: Expect,
    tally: Tally,
    start: Instant,
    /// Set when the compositor is done.
    pub exit_code: Option<ExitCode>,
}

impl State {
    /// Creates the globals and the state.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        dh: &DisplayHandle,
        feedback: Feedback,
        renderer: PixmanRenderer,
        compositor: Compositor,
        drm: DrmDeviceFd,
        primary_plane: plane::Handle,
        registry: FramebufferRegistry,
        client_holdings: ClientHoldings,
        size: (i32, i32),
        refresh_mhz: i32,
        writeback: Option<Writeback>,
        verify: Option<u32>,
        expect: Expect,
    ) -> State {
        let compositor_state = CompositorState::new::<State>(dh);
        let xdg_shell_state = XdgShellState::new::<State>(dh);
        let mut dmabuf_state = DmabufState::new();
        let dmabuf_global =
            dmabuf_state.create_global_with_default_feedback::<State>(dh, &feedback.scanout);
        // wl_shm's two mandatory formats are always offered; pixman composites both.
        let shm_state = ShmState::new::<State>(dh, []);
        let output_manager_state = OutputManagerState::new_with_xdg_output::<State>(dh);
        let output = Output::new(
            "cenalloc-1".into(),
            PhysicalProperties {
                size: (0, 0).into(),
                subpixel: Subpixel::Unknown,
                make: "cenalloc".into(),
                model: "KMS".into(),
            },
        );
        let mode = smithay::output::Mode {
            size: size.into(),
            refresh: refresh_mhz,
        };
        output.change_current_state(
            Some(mode),
            Some(smithay::utils::Transform::Normal),
            None,
            Some((0, 0).into()),
        );
        output.set_preferred(mode);
        output.create_global::<State>(dh);
        let mut seat_state = SeatState::new();
        // A seat without capabilities: the rig has no input devices.
        let seat = seat_state.new_wl_seat(dh, "seat0");
        State {
            display: None,
            compositor_state,
            xdg_shell_state,
            dmabuf_state,
            seat_state,
            shm_state,
            _output_manager_state: output_manager_state,
            _viewporter_state: ViewporterState::new::<State>(dh),
            _presentation_state: PresentationState::new::<State>(dh, CLOCK_MONOTONIC),
            output,
            presented: 0,
            _seat: seat,
            _dmabuf_global: dmabuf_global,
            feedback,
            renderer,
            compositor,
            drm,
            primary_plane,
            registry,
            client_holdings,
            fds_at_start: None,
            rss_at_start: None,
            size,
            toplevels: Vec::new(),
            render_needed: true,
            flip_pending: false,
            paused: false,
            retaking: false,
            writeback,
            verify,
            expect,
            tally: Tally::default(),
            start: Instant::now(),
            exit_code: None,
        }
    }

    /// Accepts a client connection.
    pub fn add_client(&mut self, stream: UnixStream) {
        if let Some(display) = self.display.as_mut() {
            if let Err(e) = display
                .handle()
                .insert_client(stream, Arc::new(ClientState::default()))
            {
                log::error!("cannot add a client: {e}");
            }
        }
    }

    /// Dispatches client requests, and sends what they caused (a configure) at once: some
    /// clients wait for it only briefly (GStreamer's waylandsink, 100 ms).
    pub fn dispatch_clients(&mut self) {
        if let Some(mut display) = self.display.take() {
            if let Err(e) = display.dispatch_clients(self) {
                log::error!("dispatching clients: {e}");
            }
            let _ = display.flush_clients();
            self.display = Some(display);
        }
    }

    /// Sends queued events to clients.
    pub fn flush_clients(&mut self) {
        if let Some(display) = self.display.as_mut() {
            let _ = display.flush_clients();
        }
    }

    /// Renders and queues a frame if a client committed and no flip is pending.
    pub fn render_if_needed(&mut self) {
        if !self.render_needed || self.flip_pending || self.paused {
            return;
        }
        self.render_needed = false;
        // Front to back: the newest window first.
        let mut elements = Vec::new();
        for t in self.toplevels.iter().rev() {
            elements.extend(crate::surface_elements(&mut self.renderer, t.wl_surface()));
        }
        let dmabuf = elements
            .first()
            .and_then(|e| crate::element_dmabuf(&mut self.renderer, e));
        let feedback = self.take_presentation_feedback();
        let direct = match self.compositor.render_frame(
            &mut self.renderer,
            &elements,
            [0.0, 0.0, 0.0, 1.0],
            crate::FRAME_FLAGS,
        ) {
            Ok(result) if !result.is_empty => crate::primary_assignment(&result.primary_element),
            Ok(_) => {
                discard(feedback);
                self.send_frame_callbacks();
                return;
            }
            Err(e) => {
                log::error!("render_frame: {e}");
                discard(feedback);
                self.send_frame_callbacks();
                return;
            }
        };
        let frame = FrameInfo {
            direct,
            client: !elements.is_empty(),
            dmabuf,
            feedback,
        };
        match self.compositor.queue_frame(frame) {
            Ok(()) => self.flip_pending = true,
            Err(e) => {
                log::error!("queue_frame: {e}");
                self.send_frame_callbacks();
            }
        }
    }

    /// The wp_presentation feedback requested by the committed state of every surface, the
    /// front window's marked (its buffer is the one that may go on the plane).
    fn take_presentation_feedback(&mut self) -> Vec<(PresentationFeedbackCallback, bool)> {
        let mut feedback = Vec::new();
        for (i, t) in self.toplevels.iter().rev().enumerate() {
            with_surface_tree_downward(
                t.wl_surface(),
                (),
                |_, _, _| TraversalAction::DoChildren(()),
                |_, states, _| {
                    let mut cached = states.cached_state.get::<PresentationFeedbackCachedState>();
                    let callbacks = cached.current().callbacks.drain(..);
                    feedback.extend(callbacks.map(|c| (c, i == 0)));
                },
                |_, _, _| true,
            );
        }
        feedback
    }

    /// Tells each surface of a frame that reached the screen when, and how: always on a
    /// vblank with the kernel's page-flip completion; ZERO_COPY only for the buffer that was
    /// itself on the primary plane (not copied into the swapchain).
    fn send_presentation_feedback(&mut self, frame: &mut FrameInfo) {
        use wp_presentation_feedback::Kind;
        self.presented += 1;
        let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let time = std::time::Duration::new(now.tv_sec as u64, now.tv_nsec as u32);
        let refresh = self
            .output
            .current_mode()
            .map(|m| 1_000_000_000_000u64 / m.refresh.max(1) as u64)
            .map(|ns| Refresh::fixed(std::time::Duration::from_nanos(ns)))
            .unwrap_or(Refresh::Unknown);
        for (callback, front) in frame.feedback.drain(..) {
            let mut kind = Kind::Vsync | Kind::HwCompletion;
            if front && frame.direct {
                kind |= Kind::ZeroCopy;
            }
            callback.presented(&self.output, time, refresh, self.presented, kind);
        }
    }

    /// A queued frame reached the screen.
    pub fn vblank(&mut self) {
        self.flip_pending = false;
        if self.fds_at_start.is_none() {
            self.fds_at_start = Some(fds_other_than_dmabufs());
            self.rss_at_start = Some(cenalloc_examples::pipeline::resources::rss_kib());
        }
        match self.compositor.frame_submitted() {
            Ok(Some(mut info)) => {
                self.send_presentation_feedback(&mut info);
                if self.paused {
                    unverifiable_frame();
                } else {
                    self.check_frame(info);
                }
            }
            Ok(None) => {}
            Err(e) => log::error!("frame_submitted: {e}"),
        }
        self.send_frame_callbacks();
    }

    fn send_frame_callbacks(&mut self) {
        let time = self.start.elapsed().as_millis() as u32;
        for t in &self.toplevels {
            with_surface_tree_downward(
                t.wl_surface(),
                (),
                |_, _, _| TraversalAction::DoChildren(()),
                |_, states, _| {
                    let mut cached = states.cached_state.get::<SurfaceAttributes>();
                    for callback in cached.current().frame_callbacks.drain(..) {
                        callback.done(time);
                    }
                },
                |_, _, _| true,
            );
        }
    }

    /// Every frame `--verify` asked for has been checked.
    pub fn verified_all(&self) -> bool {
        self.verify.is_some_and(|n| self.tally.checked >= n)
    }

    /// What verify mode is waiting for, for a timeout's message.
    pub fn waiting_for(&self) -> String {
        match self.verify {
            Some(n) if self.toplevels.is_empty() => format!(
                "a client window (frame {}/{n}): no xdg toplevel was created",
                self.tally.checked + 1
            ),
            Some(n) => format!(
                "presented frame {}/{n} of the client's window ({} checked so far)",
                self.tally.checked + 1,
                self.tally.checked
            ),
            None => "the client to exit".to_owned(),
        }
    }

    /// The three checks on one presented frame, in verify mode: where the client's buffer
    /// went (primary plane or composition), which memory backs the plane, and what the
    /// display produced (writeback) — equal to the client's pixels when its buffer covers
    /// the output, else to the composed frame on the plane.
    fn check_frame(&mut self, info: FrameInfo) {
        let Some(total) = self.verify else {
            return;
        };
        if !info.client || self.tally.checked >= total {
            return;
        }
        self.tally.checked += 1;
        let n = self.tally.checked;
        let retaking = std::mem::take(&mut self.retaking);
        let plane = match (info.direct, retaking) {
            (true, _) => "client buffer on the primary plane",
            (false, false) => "composited into the swapchain",
            (false, true) => "composited into the swapchain (the modeset taking the display back)",
        };
        let backing = match (&info.dmabuf, info.direct) {
            (Some(dmabuf), true) => {
                let fb_handles = self
                    .drm
                    .get_plane(self.primary_plane)
                    .ok()
                    .and_then(|p| p.framebuffer())
                    .and_then(|fb| self.registry.lock().ok()?.get(&u32::from(fb)).cloned())
                    .unwrap_or_default();
                verify::check_plane_backing(&self.drm, self.primary_plane, dmabuf, &fb_handles)
            }
            (None, true) => Err("direct scan-out of a buffer that is not a dma-buf".to_owned()),
            // Composited: the plane must show a swapchain buffer, not the client's dma-buf.
            (Some(dmabuf), false) => match (
                verify::plane_backing(&self.drm, self.primary_plane),
                verify::dmabuf_inode(dmabuf),
            ) {
                (Ok((fb, fb_ino)), Ok(client_ino)) if fb_ino != client_ino => Ok(format!(
                    "plane shows swapchain FB {} (dma-buf inode {fb_ino}), not the client's ({client_ino})",
                    u32::from(fb)
                )),
                (Ok((fb, _)), Ok(_)) => Err(format!(
                    "inconsistent: FB {} on the plane is the client's dma-buf",
                    u32::from(fb)
                )),
                (Err(e), _) | (_, Err(e)) => Err(e),
            },
            (None, false) => verify::plane_backing(&self.drm, self.primary_plane).map(
                |(fb, fb_ino)| {
                    format!(
                        "plane shows swapchain FB {} (dma-buf inode {fb_ino}); the client's buffer is shared memory",
                        u32::from(fb)
                    )
                },
            ),
        };
        // What the display should have produced.
        let covers_output = info.dmabuf.as_ref().is_some_and(|d| {
            let size = d.size();
            (size.w, size.h) == self.size
        });
        let expected = match &info.dmabuf {
            Some(dmabuf) if info.direct || covers_output => verify::client_rgb(dmabuf)
                .map(|(pixels, _)| (pixels, "the client's buffer".to_owned())),
            _ => verify::plane_rgb(&self.drm, self.primary_plane)
                .map(|pixels| (pixels, "the composed frame".to_owned())),
        };
        let pixels = match (self.writeback.as_mut(), expected) {
            (Some(wb), Ok((want, what))) => match wb.capture(&self.drm) {
                Ok(Some(capture)) => {
                    let (diff, first) = verify::compare(&capture, &want);
                    Ok((what, diff, first))
                }
                Ok(None) => {
                    unverifiable_frame();
                    self.tally.checked -= 1;
                    self.retaking = retaking;
                    return;
                }
                Err(e) => Err(e),
            },
            (None, _) => Err("no writeback connector".to_owned()),
            (_, Err(e)) => Err(format!("cannot read the expected pixels: {e}")),
        };
        let pixels_ok = matches!(pixels, Ok((_, 0, _)));
        let pixel_text = match &pixels {
            Ok((what, 0, _)) => format!("writeback == {what}, bit-exact"),
            Ok((what, diff, first)) => {
                let first = first
                    .map(|m| {
                        format!(
                            "pixel {}: display {:?}, expected {:?}",
                            m.index, m.got, m.want
                        )
                    })
                    .unwrap_or_default();
                format!("writeback differs from {what} in {diff} pixels ({first})")
            }
            Err(e) => e.clone(),
        };
        let backing_text = match &backing {
            Ok(t) => t.clone(),
            Err(e) => e.clone(),
        };
        println!("frame {n}/{total}: {plane}; {backing_text}; {pixel_text}");
        if info.direct && backing.is_ok() && pixels_ok {
            self.tally.zero_copy += 1;
        } else if !info.direct && backing.is_ok() && pixels_ok {
            if retaking {
                self.tally.retaken += 1;
            } else {
                self.tally.composited += 1;
            }
        }
    }

    /// The seat took the display away: nothing is rendered, and clients get no frame
    /// callbacks (so they wait, as for a hidden window), until it comes back.
    #[cfg(feature = "libseat")]
    pub fn session_paused(&mut self) {
        self.paused = true;
    }

    /// The seat gave the display back: what DrmCompositor knew of the hardware is stale, so
    /// it is reset and the next frame drawn in full.
    #[cfg(feature = "libseat")]
    pub fn session_activated(&mut self) {
        if let Err(e) = self.compositor.reset_state() {
            log::error!("resetting the DRM compositor's state: {e}");
        }
        self.paused = false;
        self.retaking = true;
        self.flip_pending = false;
        self.render_needed = true;
    }

    /// No client window is left (every client that had one has disconnected).
    pub fn no_windows(&self) -> bool {
        self.toplevels.is_empty()
    }

    /// Nothing to draw and no frame on its way to the screen.
    pub fn idle(&self) -> bool {
        self.paused || (!self.render_needed && !self.flip_pending)
    }

    /// Ends the run once the clients are gone: prints what they left behind and the verdict,
    /// and sets the exit code. Clients must leave no framebuffer, GEM handle or fd (their
    /// connections, their dma-bufs) behind.
    pub fn finish(&mut self, failed_clients: u32) {
        let mut ok = failed_clients == 0;
        // CPU time of the whole run (user + sys), for the compositor's benchmark.
        let cpu = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
        let cpu_us = cpu.tv_sec as u64 * 1_000_000 + cpu.tv_nsec as u64 / 1000;
        println!(
            "compositor CPU: {cpu_us} us for {} presented frames",
            self.presented
        );
        let (framebuffers, gem_handles) = self.client_holdings.now();
        let fds = fds_other_than_dmabufs();
        let fds_at_start = self.fds_at_start.unwrap_or(fds);
        println!(
            "left behind by clients: {framebuffers} framebuffers, {gem_handles} GEM handles; \
             fds other than dma-bufs {fds_at_start} -> {fds}"
        );
        let rss = cenalloc_examples::pipeline::resources::rss_kib();
        println!(
            "compositor RSS: {} KiB at the first frame -> {rss} KiB",
            self.rss_at_start.unwrap_or(rss)
        );
        if framebuffers > 0 || gem_handles > 0 || fds > fds_at_start {
            println!("clients' resources were not all released");
            ok = false;
        }
        if failed_clients > 0 {
            println!("{failed_clients} client(s) failed");
        }
        if let Some(total) = self.verify {
            let t = &self.tally;
            println!("{}/{total} frames zero-copy", t.zero_copy);
            println!("{}/{total} frames composited", t.composited);
            if t.retaken > 0 {
                println!(
                    "{}/{total} frames composited while taking the display back",
                    t.retaken
                );
            }
            ok &= match self.expect {
                Expect::ZeroCopy => t.zero_copy + t.retaken == total,
                Expect::Composited => t.composited + t.retaken == total,
            };
        }
        self.exit_code = Some(if ok {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }

    /// Rejects malformed client buffers (see [`cenalloc_examples::client_dmabuf::validate`])
    /// and planes whose fd is not a dma-buf, with the linux-dmabuf protocol error to send.
    fn validate(&mut self, dmabuf: &Dmabuf) -> Result<(), Rejection> {
        let planes = dmabuf
            .offsets()
            .zip(dmabuf.strides())
            .zip(dmabuf.handles())
            .map(|((offset, stride), fd)| ClientPlane {
                offset,
                stride,
                fd_size: dmabuf_size(fd),
            })
            .collect();
        let format = dmabuf.format();
        client_dmabuf::validate(&ClientBuffer {
            fourcc: format.code,
            width: dmabuf.width(),
            height: dmabuf.height(),
            modifier: cenalloc::Modifier(u64::from(format.modifier)),
            planes,
        })?;
        for (i, fd) in dmabuf.handles().enumerate() {
            if let Err(e) =
                cenalloc::buffer::check_dmabuf(fd, &format!("plane {i} of a client buffer"))
            {
                return Err(Rejection::Failed(e.to_string()));
            }
        }
        Ok(())
    }
}

/// The size of a plane's dma-buf (its end, from `lseek`); `None` if it cannot be read. The
/// file position is put back at 0, where smithay leaves it too.
fn dmabuf_size(fd: std::os::fd::BorrowedFd<'_>) -> Option<u64> {
    use smithay::reexports::rustix::fs::{seek, SeekFrom};
    let size = seek(fd, SeekFrom::End(0)).ok();
    let _ = seek(fd, SeekFrom::Start(0));
    size
}

/// Per-client data.
#[derive(Default)]
struct ClientState {
    compositor: CompositorClientState,
}

impl ClientData for ClientState {
    fn initialized(&self, _: ClientId) {}
    fn disconnected(&self, id: ClientId, reason: DisconnectReason) {
        log::info!("client {id:?} disconnected: {reason:?}");
    }
}

impl CompositorHandler for State {
    fn compositor_state(&mut self) -> &mut CompositorState {
        &mut self.compositor_state
    }

    fn client_compositor_state<'a>(&self, client: &'a Client) -> &'a CompositorClientState {
        &client
            .get_data::<ClientState>()
            .expect("every client is inserted with ClientState")
            .compositor
    }

    fn commit(&mut self, surface: &WlSurface) {
        on_commit_buffer_handler::<Self>(surface);
        // A subsurface's commit (a video player's picture over its window) shows when its
        // window is drawn again.
        let mut root = surface.clone();
        while let Some(parent) = get_parent(&root) {
            root = parent;
        }
        if root != *surface {
            if self.toplevels.iter().any(|t| *t.wl_surface() == root) {
                self.render_needed = true;
            }
            return;
        }
        let Some(toplevel) = self.toplevels.iter().find(|t| t.wl_surface() == surface) else {
            return;
        };
        let initial_sent = with_states(surface, |states| {
            states
                .data_map
                .get::<XdgToplevelSurfaceData>()
                .and_then(|d| d.lock().ok().map(|d| d.initial_configure_sent))
                .unwrap_or(true)
        });
        if initial_sent {
            self.render_needed = true;
        } else {
            toplevel.send_configure();
        }
        // A buffer that covers the output could be scanned out: from now on the surface's
        // feedback leads with the scanout tranche (no event if it already does).
        let size = with_renderer_surface_state(surface, |s| s.buffer_size()).flatten();
        if size.is_some_and(|s| (s.w, s.h) == self.size) {
            let scanout = &self.feedback.scanout;
            with_states(surface, |states| {
                if let Some(feedback) = SurfaceDmabufFeedbackState::from_states(states) {
                    feedback.set_feedback(scanout);
                }
            });
        }
    }
}

impl BufferHandler for State {
    fn buffer_destroyed(&mut self, _buffer: &WlBuffer) {}
}

impl XdgShellHandler for State {
    fn xdg_shell_state(&mut self) -> &mut XdgShellState {
        &mut self.xdg_shell_state
    }

    fn new_toplevel(&mut self, surface: ToplevelSurface) {
        let size = self.size;
        surface.with_pending_state(|s| {
            s.size = Some(size.into());
            s.states.set(xdg_toplevel::State::Fullscreen);
        });
        self.toplevels.push(surface);
    }

    fn toplevel_destroyed(&mut self, surface: ToplevelSurface) {
        self.toplevels.retain(|t| *t != surface);
        self.render_needed = true;
    }

    fn new_popup(&mut self, _surface: PopupSurface, _positioner: PositionerState) {}

    fn grab(&mut self, _surface: PopupSurface, _seat: wl_seat::WlSeat, _serial: Serial) {}

    fn reposition_request(
        &mut self,
        _surface: PopupSurface,
        _positioner: PositionerState,
        _token: u32,
    ) {
    }
}

impl DmabufHandler for State {
    fn dmabuf_state(&mut self) -> &mut DmabufState {
        &mut self.dmabuf_state
    }

    fn new_surface_feedback(
        &mut self,
        _surface: &WlSurface,
        _global: &DmabufGlobal,
    ) -> Option<DmabufFeedback> {
        Some(self.feedback.render.clone())
    }

    fn dmabuf_imported(
        &mut self,
        _global: &DmabufGlobal,
        dmabuf: Dmabuf,
        notifier: ImportNotifier,
    ) {
        if let Err(rejection) = self.validate(&dmabuf) {
            log::warn!("rejecting a client dma-buf: {rejection}");
            match rejection {
                Rejection::Incomplete(_) => notifier.incomplete(),
                Rejection::Failed(_) => notifier.failed(),
            }
            return;
        }
        if let Err(e) = self.renderer.import_dmabuf(&dmabuf, None) {
            log::warn!(
                "pixman cannot import the client's {:?}: {e}",
                dmabuf.format()
            );
            notifier.failed();
            return;
        }
        let _ = notifier.successful::<State>();
    }
}

impl SeatHandler for State {
    type KeyboardFocus = WlSurface;
    type PointerFocus = WlSurface;
    type TouchFocus = WlSurface;

    fn seat_state(&mut self) -> &mut SeatState<State> {
        &mut self.seat_state
    }
}

impl ShmHandler for State {
    fn shm_state(&self) -> &ShmState {
        &self.shm_state
    }
}

impl OutputHandler for State {}

// delegate_compositor!, delegate_xdg_shell!, delegate_dmabuf! and delegate_shm!, less
// wl_surface, wl_region, xdg_surface, xdg_toplevel, zwp_linux_buffer_params_v1 and
// wl_shm_pool: crate::guard checks their requests before smithay sees them.
mod delegated {
    use super::{CompositorState, DmabufState, ShmState, State, XdgShellState};
    use smithay::backend::allocator::dmabuf::Dmabuf;
    use smithay::reexports::wayland_protocols::wp::linux_dmabuf::zv1::server::{
        zwp_linux_dmabuf_feedback_v1::ZwpLinuxDmabufFeedbackV1,
        zwp_linux_dmabuf_v1::ZwpLinuxDmabufV1,
    };
    use smithay::reexports::wayland_protocols::xdg::shell::server::{
        xdg_popup::XdgPopup, xdg_positioner::XdgPositioner, xdg_wm_base::XdgWmBase,
    };
    use smithay::reexports::wayland_server::protocol::wl_buffer::WlBuffer;
    use smithay::reexports::wayland_server::protocol::wl_shm::WlShm;
    use smithay::reexports::wayland_server::protocol::{
        wl_callback::WlCallback, wl_compositor::WlCompositor, wl_subcompositor::WlSubcompositor,
        wl_subsurface::WlSubsurface,
    };
    use smithay::reexports::wayland_server::{delegate_dispatch, delegate_global_dispatch};
    use smithay::wayland::compositor::SubsurfaceUserData;
    use smithay::wayland::dmabuf::{DmabufData, DmabufFeedbackData, DmabufGlobalData};
    use smithay::wayland::shell::xdg::{
        XdgPositionerUserData, XdgShellSurfaceUserData, XdgWmBaseUserData,
    };
    use smithay::wayland::shm::ShmBufferUserData;

    delegate_global_dispatch!(State: [WlCompositor: ()] => CompositorState);
    delegate_global_dispatch!(State: [WlSubcompositor: ()] => CompositorState);
    delegate_dispatch!(State: [WlCompositor: ()] => CompositorState);
    delegate_dispatch!(State: [WlCallback: ()] => CompositorState);
    delegate_dispatch!(State: [WlSubcompositor: ()] => CompositorState);
    delegate_dispatch!(State: [WlSubsurface: SubsurfaceUserData] => CompositorState);
    delegate_global_dispatch!(State: [XdgWmBase: ()] => XdgShellState);
    delegate_dispatch!(State: [XdgWmBase: XdgWmBaseUserData] => XdgShellState);
    delegate_dispatch!(State: [XdgPositioner: XdgPositionerUserData] => XdgShellState);
    delegate_dispatch!(State: [XdgPopup: XdgShellSurfaceUserData] => XdgShellState);
    delegate_global_dispatch!(State: [ZwpLinuxDmabufV1: DmabufGlobalData] => DmabufState);
    delegate_dispatch!(State: [ZwpLinuxDmabufV1: DmabufData] => DmabufState);
    delegate_dispatch!(State: [WlBuffer: Dmabuf] => DmabufState);
    delegate_dispatch!(State: [ZwpLinuxDmabufFeedbackV1: DmabufFeedbackData] => DmabufState);
    delegate_global_dispatch!(State: [WlShm: ()] => ShmState);
    delegate_dispatch!(State: [WlShm: ()] => ShmState);
    delegate_dispatch!(State: [WlBuffer: ShmBufferUserData] => ShmState);
}
delegate_output!(State);
delegate_viewporter!(State);
delegate_presentation!(State);
delegate_seat!(State);
